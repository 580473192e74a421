/* SPDX-License-Identifier: MIT */
/*
 * job_requests.c: the library's requests about jobs by id and about the
 * server (what mpspawn ps, kill, wait and stats do), each one synchronous
 * request and its reply. Not to be confused with forkserver/job.c (the
 * server's jobs) or launcher/cli_jobs.c (the CLI subcommands over these).
 *
 * Any number of threads may have requests in flight on one client: each
 * waits for the reply with its own tag (client.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib.h"

/* Sends a list or stats request and returns its reply (owned by the
 * caller) when it is of op `want`. */
static int simple_request(mps_client *c, enum mps__op op, enum mps__op want,
                          cJSON **ret_reply) {
        cJSON *reply = NULL;
        enum mps__op got;
        cJSON *json = mps__wait_encode(op, &(struct mps__wait){0});
        if (!json)
                return -ENOMEM;
        int r = mps__client_request(c, json, -1, 0, &reply, &got);
        cJSON_Delete(json);
        if (r < 0)
                return r;
        if (got != want) {
                cJSON_Delete(reply);
                mps__client_set_error(c, "the server answered %s with %s", mps__op_name(op),
                                      mps__op_name(got));
                return -EPROTO;
        }
        *ret_reply = reply;
        return 0;
}

/* The jobs-by-id requests need a server that announced them. */
static int need_jobs(mps_client *c) {
        if (c->features & MPS_FEATURE_JOBS)
                return 0;
        mps__client_set_error(c, "the forkserver (version %s) does not support wait, list "
                                 "and stats",
                              c->server_version);
        return -EOPNOTSUPP;
}

MPS_API int mps_client_signal_job(mps_client *c, uint64_t id, int sig) {
        cJSON *reply = NULL;
        enum mps__op op;
        if (!c || id == 0 || sig < 0 || sig > 64)
                return -EINVAL;
        struct mps__signal s = {.id = id, .signo = sig};
        cJSON *json = mps__signal_encode(&s);
        if (!json)
                return -ENOMEM;
        int r = mps__client_request(c, json, -1, 0, &reply, &op);
        cJSON_Delete(json);
        cJSON_Delete(reply);
        return r;
}

struct stale_find {
        uint64_t id;
        uint64_t tag;
};

static void find_stale(uint64_t tag, void *value, void *data) {
        struct stale_find *f = data;
        if ((uint64_t)(uintptr_t)value == f->id && f->tag == 0)
                f->tag = tag;
}

/* With the lock held: an answer already kept for job id (0, *ret_reply
 * set, the caller's), else 1 with *ret_tag the tag of a wait of ours for it
 * that the server still holds (0: none). */
static int take_stale(mps_client *c, uint64_t id, cJSON **ret_reply, uint64_t *ret_tag) {
        cJSON *late = mps__idmap_remove(&c->late_exits, id);
        if (late) {
                *ret_reply = late;
                return 0;
        }
        struct stale_find f = {.id = id};
        mps__idmap_foreach(&c->stale_waits, find_stale, &f);
        if (f.tag)
                mps__idmap_remove(&c->stale_waits, f.tag);
        *ret_tag = f.tag;
        return 1;
}

/* A copy of a decoded result's value as text, to free(); NULL when none. */
static char *result_text(const cJSON *value) {
        char *printed = value ? cJSON_PrintUnformatted(value) : NULL;
        char *text = printed ? strdup(printed) : NULL;
        cJSON_free(printed);
        return text;
}

static int wait_job(mps_client *c, uint64_t id, int timeout_ms, mps_exit_info *ret_info,
                    char **ret_result, char **ret_error) {
        cJSON *reply = NULL;
        enum mps__op op;
        char err[256];
        uint64_t tag = 0;
        if (!c || id == 0)
                return -EINVAL;
        if (need_jobs(c) < 0)
                return -EOPNOTSUPP;
        /* An earlier wait that timed out may have been answered since; or a
         * wait of ours for this job is still registered in the server: take
         * up its answer rather than register a second one (both would be
         * answered, and the exit must come to us once). Looked up and
         * taken over under one hold of the lock, so that its answer cannot
         * slip between. */
        mps__client_lock(c);
        int r = mps__client_check_forked(c);
        if (r == 0 && (r = take_stale(c, id, &reply, &tag)) == 0) {
                mps__client_unlock(c);
                op = MPS_OP_EXITED;
        } else if (r > 0 && tag) {
                mps__client_ref_locked(c);
                r = mps__client_await_locked(c, tag, timeout_ms, id, &reply, &op);
                mps__client_unlock_unref(c);
        } else {
                mps__client_unlock(c);
                if (r < 0)
                        return r;
                struct mps__wait w = {.id = id};
                cJSON *json = mps__wait_encode(MPS_OP_WAIT, &w);
                if (!json)
                        return -ENOMEM;
                /* A timeout leaves the wait registered, its answer kept. */
                r = mps__client_request(c, json, timeout_ms, id, &reply, &op);
                cJSON_Delete(json);
        }
        if (r < 0)
                return r;
        struct mps__exited e;
        r = op == MPS_OP_EXITED ? mps__exited_decode(reply, &e, err, sizeof(err)) : -EPROTO;
        if (r == 0 && ret_info)
                *ret_info = mps__exit_info_of(&e);
        if (r == 0 && ret_result)
                *ret_result = result_text(e.result_value);
        if (r == 0 && ret_error)
                *ret_error = e.failure ? strdup(e.failure) : NULL;
        cJSON_Delete(reply);
        return r;
}

MPS_API int mps_client_wait_job(mps_client *c, uint64_t id, int timeout_ms,
                                mps_exit_info *ret_info) {
        return wait_job(c, id, timeout_ms, ret_info, NULL, NULL);
}

MPS_API int mps_client_wait_job_result(mps_client *c, uint64_t id, int timeout_ms,
                                       mps_exit_info *ret_info, char **ret_result,
                                       char **ret_error) {
        return wait_job(c, id, timeout_ms, ret_info, ret_result, ret_error);
}

MPS_API int mps_client_list_jobs(mps_client *c, mps_job_info **ret_jobs,
                                 size_t *ret_count) {
        cJSON *reply = NULL;
        char err[256];
        struct mps__job_entry *v = NULL;
        size_t n = 0;
        if (!c || !ret_jobs || !ret_count)
                return -EINVAL;
        if (need_jobs(c) < 0)
                return -EOPNOTSUPP;
        int r = simple_request(c, MPS_OP_LIST, MPS_OP_JOBS, &reply);
        if (r < 0)
                return r;
        r = mps__jobs_decode(reply, &v, &n, err, sizeof(err));
        if (r < 0) {
                mps__client_set_error(c, "bad job list from the server: %s", err);
                cJSON_Delete(reply);
                return r;
        }
        mps_job_info *out = calloc(n + 1, sizeof(*out));
        if (!out) {
                free(v);
                cJSON_Delete(reply);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                out[i].id = v[i].id;
                out[i].pid = v[i].pid;
                snprintf(out[i].name, sizeof(out[i].name), "%s", v[i].name);
                snprintf(out[i].state, sizeof(out[i].state), "%s", v[i].state);
                snprintf(out[i].command, sizeof(out[i].command), "%s", v[i].command);
                out[i].runtime = v[i].runtime;
                out[i].exitcode = v[i].exitcode;
                out[i].timed_out = v[i].timed_out;
                out[i].daemon = v[i].daemon;
        }
        free(v);
        bool truncated = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "truncated"));
        cJSON_Delete(reply);
        *ret_jobs = out;
        *ret_count = n;
        return truncated ? 1 : 0;
}

MPS_API int mps_client_stats(mps_client *c, mps_server_stats *ret_stats) {
        cJSON *reply = NULL;
        char err[256];
        struct mps__server_stats st;
        if (!c || !ret_stats)
                return -EINVAL;
        if (need_jobs(c) < 0)
                return -EOPNOTSUPP;
        int r = simple_request(c, MPS_OP_STATS, MPS_OP_SERVER_STATS, &reply);
        if (r < 0)
                return r;
        r = mps__server_stats_decode(reply, &st, err, sizeof(err));
        cJSON_Delete(reply);
        if (r < 0)
                return r;
        *ret_stats = (mps_server_stats){
                .uptime_seconds = st.uptime,
                .clients = st.clients,
                .jobs_started = st.jobs_started,
                .jobs_running = st.jobs_running,
                .jobs_failed_to_start = st.jobs_failed,
                .exits_zero = st.exits_zero,
                .exits_nonzero = st.exits_nonzero,
                .killed_by_signal = st.signaled,
                .timed_out = st.timed_out,
                .latency_samples = st.latency_samples,
                .latency_p50 = st.latency_p50,
                .latency_p90 = st.latency_p90,
                .latency_p99 = st.latency_p99,
                .latency_max = st.latency_max,
                .preloaded = st.preloaded,
                .preloaded_rss_kib = st.preloaded_rss_kib,
                .prefork_idle = st.prefork_idle,
                .policy_compiles = st.policy_compiles,
                .policy_cache_hits = st.policy_cache_hits,
        };
        return 0;
}
