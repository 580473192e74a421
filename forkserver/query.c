/*
 * query.c: the requests that look at the server rather than start anything:
 * "list" (the caller's jobs, for `mpspawn ps`) and "stats".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../launcher/fdutil.h"
#include "policy.h"
#include "server.h"

/* A reply must fit in one message: entries stop short of the bound, and the
 * reply says it was cut. An entry's encoding is at most its fixed fields
 * plus its strings with every byte escaped (\u00XX: 6 bytes). */
static size_t entry_bytes_max(const struct mps__job_entry *e) {
        return 256 + 6 * (strlen(e->name ? e->name : "") + strlen(e->command ? e->command : ""));
}

struct list_ctx {
        struct client *c;
        cJSON *msg;
        size_t bytes;
        bool truncated;
        uint64_t now;
};

static void add_entry(struct list_ctx *ctx, const struct mps__job_entry *e) {
        size_t need = entry_bytes_max(e);
        if (ctx->truncated || ctx->bytes + need > MPS_WIRE_MSG_MAX) {
                ctx->truncated = true;
                return;
        }
        if (mps__jobs_add(ctx->msg, e) == 0)
                ctx->bytes += need;
}

static void list_job(uint64_t id, void *value, void *data) {
        struct list_ctx *ctx = data;
        struct job *j = value;
        (void)id;
        if (j->dead || j->uid != ctx->c->uid || j->state == JOB_FAILED)
                return;
        struct mps__job_entry e = {
                .id = j->id,
                .pid = j->pid,
                .name = j->name,
                .state = j->state == JOB_STARTING ? "starting" : "running",
                .command = j->command,
                .runtime = (double)(ctx->now - j->start_ns) / 1e9,
                .daemon = j->daemon,
        };
        add_entry(ctx, &e);
}

void query_list(struct client *c, uint64_t tag) {
        struct server *srv = c->srv;
        struct list_ctx ctx = {.c = c, .msg = mps__jobs_encode(tag), .bytes = 512,
                               .now = mps__now_ns()};
        if (!ctx.msg) {
                client_send_error(c, tag, ENOMEM, "request", "out of memory");
                return;
        }
        retain_expire(srv);
        mps__idmap_foreach(&srv->jobs, list_job, &ctx);
        for (struct exit_record *r = srv->retained_head; r; r = r->next) {
                if (r->uid != c->uid)
                        continue;
                struct mps__job_entry e = {
                        .id = r->exited.id,
                        .pid = r->exited.pid,
                        .name = r->name,
                        .state = "exited",
                        .command = r->command,
                        .runtime = r->runtime,
                        .exitcode = r->exited.exitcode,
                        .timed_out = r->exited.timed_out,
                };
                add_entry(&ctx, &e);
        }
        if (ctx.truncated)
                cJSON_AddTrueToObject(ctx.msg, "truncated");
        client_send(c, ctx.msg, -1);
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

void query_stats(struct client *c, uint64_t tag) {
        struct server *srv = c->srv;
        struct mps__server_stats st = {
                .uptime = (double)(mps__now_ns() - srv->start_ns) / 1e9,
                .clients = srv->nclients,
                .jobs_started = srv->jobs_started,
                .jobs_running = srv->jobs.count,
                .jobs_failed = srv->jobs_failed,
                .exits_zero = srv->exits_zero,
                .exits_nonzero = srv->exits_nonzero,
                .signaled = srv->exits_signaled,
                .timed_out = srv->exits_timed_out,
                .preloaded = srv->npreloads,
                .prefork_idle = srv->prefork_count,
                .policy_compiles = srv->policies ? srv->policies->misses : 0,
                .policy_cache_hits = srv->policies ? srv->policies->hits : 0,
        };
        for (size_t i = 0; i < srv->npreloads; i++)
                st.preloaded_rss_kib += (uint64_t)srv->preloads[i].rss_kib;
        size_t n = srv->latency_count < LATENCY_SAMPLES ? srv->latency_count
                                                          : LATENCY_SAMPLES;
        st.latency_samples = n;
        if (n > 0) {
                double sorted[LATENCY_SAMPLES];
                memcpy(sorted, srv->latency, n * sizeof(double));
                qsort(sorted, n, sizeof(double), cmp_double);
                st.latency_p50 = sorted[(n - 1) * 50 / 100];
                st.latency_p90 = sorted[(n - 1) * 90 / 100];
                st.latency_p99 = sorted[(n - 1) * 99 / 100];
                st.latency_max = sorted[n - 1];
        }
        client_send(c, mps__server_stats_encode(tag, &st), -1);
}
