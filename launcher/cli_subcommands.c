/* SPDX-License-Identifier: MIT */
/*
 * cli_subcommands.c: `mpspawn ps | kill ID [SIGNAL] | wait ID | stats`: requests
 * about jobs by id to a shared server (never a private one, which would know
 * no jobs). Each sees only the caller's own jobs. Their arguments were
 * parsed with the rest of the command line, in cli_options.c.
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

static void format_runtime(double s, char *buf, size_t len) {
        unsigned long t = (unsigned long)s;
        if (t >= 3600)
                snprintf(buf, len, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
        else
                snprintf(buf, len, "%lu:%02lu", t / 60, t % 60);
}

static int cmd_ps(mps_client *c, bool json) {
        mps_job_info *jobs = NULL;
        size_t n = 0;
        int r = mps_client_list_jobs(c, &jobs, &n);
        if (r < 0) {
                fprintf(stderr, "mpspawn: ps: %s\n", mps_client_error(c));
                return MPS_EXIT_LAUNCHER;
        }
        if (json) {
                cJSON *arr = cJSON_CreateArray();
                for (size_t i = 0; arr && i < n; i++) {
                        cJSON *o = cJSON_CreateObject();
                        char id[24];
                        snprintf(id, sizeof(id), "%" PRIu64, jobs[i].id);
                        cJSON_AddItemToObject(o, "id", cJSON_CreateRaw(id));
                        cJSON_AddNumberToObject(o, "pid", jobs[i].pid);
                        /* Names and commands are the caller's bytes:
                         * mps__cli_json_add_bytes keeps the JSON valid. */
                        mps__cli_json_add_bytes(o, "name", jobs[i].name);
                        cJSON_AddStringToObject(o, "state", jobs[i].state);
                        cJSON_AddNumberToObject(o, "runtime", jobs[i].runtime);
                        mps__cli_json_add_bytes(o, "command", jobs[i].command);
                        cJSON_AddBoolToObject(o, "daemon", jobs[i].daemon);
                        if (strcmp(jobs[i].state, "exited") == 0) {
                                cJSON_AddNumberToObject(o, "exitcode", jobs[i].exitcode);
                                cJSON_AddBoolToObject(o, "timed_out", jobs[i].timed_out);
                        }
                        cJSON_AddItemToArray(arr, o);
                }
                char *s = cJSON_PrintUnformatted(arr);
                if (s)
                        printf("%s\n", s);
                cJSON_free(s);
                cJSON_Delete(arr);
        } else {
                printf("%-8s %-8s %-8s %9s %-16s %s\n", "ID", "PID", "STATE", "TIME", "NAME",
                       "COMMAND");
                for (size_t i = 0; i < n; i++) {
                        char t[32];
                        format_runtime(jobs[i].runtime, t, sizeof(t));
                        printf("%-8" PRIu64 " %-8d %-8s %9s %-16s %s\n", jobs[i].id,
                               (int)jobs[i].pid, jobs[i].state, t,
                               jobs[i].name[0] ? jobs[i].name : "-", jobs[i].command);
                }
        }
        free(jobs);
        return 0;
}

static int cmd_stats(mps_client *c, bool json) {
        mps_server_stats st;
        if (mps_client_stats(c, &st) < 0) {
                fprintf(stderr, "mpspawn: stats: %s\n", mps_client_error(c));
                return MPS_EXIT_LAUNCHER;
        }
        if (json) {
                printf("{\"uptime\":%.3f,\"clients\":%" PRIu64 ",\"jobs_started\":%" PRIu64
                       ",\"jobs_running\":%" PRIu64 ",\"jobs_failed_to_start\":%" PRIu64
                       ",\"exits_zero\":%" PRIu64 ",\"exits_nonzero\":%" PRIu64
                       ",\"killed_by_signal\":%" PRIu64 ",\"timed_out\":%" PRIu64
                       ",\"latency_samples\":%" PRIu64 ",\"latency_p50\":%.6f"
                       ",\"latency_p90\":%.6f,\"latency_p99\":%.6f,\"latency_max\":%.6f"
                       ",\"preloaded\":%" PRIu64 ",\"preloaded_rss_kib\":%" PRIu64
                       ",\"prefork_idle\":%" PRIu64 "}\n",
                       st.uptime_seconds, st.clients, st.jobs_started, st.jobs_running,
                       st.jobs_failed_to_start, st.exits_zero, st.exits_nonzero,
                       st.killed_by_signal, st.timed_out, st.latency_samples, st.latency_p50,
                       st.latency_p90, st.latency_p99, st.latency_max, st.preloaded,
                       st.preloaded_rss_kib, st.prefork_idle);
                return 0;
        }
        printf("uptime:               %.1f s\n", st.uptime_seconds);
        printf("clients:              %" PRIu64 "\n", st.clients);
        printf("jobs started:         %" PRIu64 "\n", st.jobs_started);
        printf("jobs running:         %" PRIu64 "\n", st.jobs_running);
        printf("failed to start:      %" PRIu64 "\n", st.jobs_failed_to_start);
        printf("exited 0:             %" PRIu64 "\n", st.exits_zero);
        printf("exited non-zero:      %" PRIu64 "\n", st.exits_nonzero);
        printf("killed by a signal:   %" PRIu64 "\n", st.killed_by_signal);
        printf("timed out:            %" PRIu64 "\n", st.timed_out);
        printf("preloaded libraries:  %" PRIu64 " (%" PRIu64 " KiB resident)\n",
               st.preloaded, st.preloaded_rss_kib);
        printf("pre-forked, idle:     %" PRIu64 "\n", st.prefork_idle);
        printf("spawn latency (last %" PRIu64 "): p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, "
               "max %.3f ms\n",
               st.latency_samples, st.latency_p50 * 1e3, st.latency_p90 * 1e3,
               st.latency_p99 * 1e3, st.latency_max * 1e3);
        return 0;
}

/* `kill ID [SIGNAL]`: 1 for an unknown job, as kill(1) fails. */
static int cmd_kill(mps_client *c, uint64_t id, int sig) {
        int r = mps_client_signal_job(c, id, sig);
        if (r < 0)
                fprintf(stderr, "mpspawn: kill: %s\n", mps_client_error(c));
        return r == 0 ? 0 : r == -ESRCH ? 1 : MPS_EXIT_LAUNCHER;
}

/* `wait ID`: the job's own exit status, 127 for an unknown job. */
static int cmd_wait(mps_client *c, uint64_t id, bool json) {
        mps_exit_info info;
        int r = mps_client_wait_job(c, id, -1, &info);
        if (r < 0) {
                fprintf(stderr, "mpspawn: wait: %s\n", mps_client_error(c));
                return r == -ESRCH ? MPS_EXIT_NOT_FOUND : MPS_EXIT_LAUNCHER;
        }
        if (json)
                mps__cli_print_json_exit(stderr, id, 0, &info);
        return mps__cli_exit_status(&info);
}

int mps__cli_subcommand(const struct mps__cli_options *o) {
        mps_client *client = NULL;
        char *msg = NULL;
        int status;
        int r = mps_client_open_flags(o->socket, MPS_OPEN_NO_EMBEDDED, &client, &msg);
        if (r < 0) {
                fprintf(stderr, "mpspawn: %s: %s\n", o->subcommand, msg ? msg : mps_strerror(r));
                free(msg);
                return MPS_EXIT_LAUNCHER;
        }
        switch (o->mode) {
        case MPS__CLI_PS:
                status = cmd_ps(client, o->json);
                break;
        case MPS__CLI_STATS:
                status = cmd_stats(client, o->json);
                break;
        case MPS__CLI_KILL:
                status = cmd_kill(client, o->id, o->signal);
                break;
        default:
                status = cmd_wait(client, o->id, o->json);
                break;
        }
        mps_client_close(client);
        return status;
}
