/* SPDX-License-Identifier: MIT */
/*
 * request.c: every request but spawn, which has a module of its own:
 * "hello" (the protocol check), "signal" and "wait" about one job, and the
 * requests that look at the server rather than start anything, "list" (the
 * caller's jobs, for `mpspawn ps`) and "stats"; and "foreground" (a
 * terminal job's place in its terminal, keeper.c). connection.c decides which
 * handler a message goes to; each handler decodes it, answers through
 * client_send, and changes nothing when the message is bad.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../launcher/fdutil.h"
#include "config.h"
#include "policy.h"
#include "server.h"

#ifndef MPS_VERSION_STRING
#define MPS_VERSION_STRING "0.0.0"
#endif

void request_hello(struct client *c, const struct mps__msg *msg) {
        struct mps__hello h;
        char err[256];
        if (mps__hello_decode(msg->json, &h, err, sizeof(err)) < 0) {
                client_send_error(c, 0, EINVAL, "request", "bad hello: %s", err);
                return;
        }
        if (h.protocol != MPS_PROTOCOL_VERSION) {
                client_send_error(c, 0, EPROTONOSUPPORT, "request",
                                  "this server speaks protocol %d, the client %d",
                                  MPS_PROTOCOL_VERSION, h.protocol);
                return;
        }
        struct mps__welcome w = {.protocol = MPS_PROTOCOL_VERSION,
                                 .version = MPS_VERSION_STRING,
                                 .pid = c->srv->life.pid,
                                 .pidfd = c->srv->launch.use_pidfd,
                                 /* adopt only where it is taken (adopt.c). */
                                 .features = adopt_offered(c->srv)
                                                     ? MPS_FEATURES_ALL
                                                     : MPS_FEATURES_ALL & ~MPS_FEATURE_ADOPT};
        client_send(c, mps__welcome_encode(&w), -1);
}

/* The job of this id that client c may see, or NULL. Someone else's job
 * looks the same as no job at all, so that clients learn nothing about
 * other users' jobs. */
static struct job *visible_job(struct client *c, uint64_t id) {
        struct job *j = mps__idmap_get(&c->srv->jobs.by_id, id);
        if (!j || j->dead || j->uid != c->uid || j->state == JOB_FAILED)
                return NULL;
        return j;
}

/* visible_job for a request that names one: NULL after answering ESRCH. */
static struct job *requested_job(struct client *c, uint64_t tag, uint64_t id) {
        struct job *j = visible_job(c, id);
        if (!j)
                client_send_error(c, tag, ESRCH, "request", "no job %llu",
                                  (unsigned long long)id);
        return j;
}

void request_signal(struct client *c, const struct mps__msg *msg) {
        struct mps__signal req;
        char err[256];
        int r = mps__signal_decode(msg->json, &req, err, sizeof(err));
        if (r < 0) {
                client_send_error(c, msg->tag, -r, "request", "bad signal request: %s",
                                  err);
                return;
        }
        struct job *j = requested_job(c, req.tag, req.id);
        if (!j)
                return;
        r = req.group ? job_kill_group(j, req.signo) : job_kill(j, req.signo);
        if (r < 0) {
                client_send_error(c, req.tag, -r, "request",
                                  "cannot signal job %llu: %s",
                                  (unsigned long long)req.id, strerror(-r));
                return;
        }
        client_send(c, mps__signaled_encode(req.tag, req.id), -1);
}

/* A controlling-terminal job's foreground, through its keeper. No reply
 * unless refused: the client sends it without waiting (docs/protocol.md). */
void request_foreground(struct client *c, const struct mps__msg *msg) {
        struct mps__foreground req;
        char err[256];
        int r = mps__foreground_decode(msg->json, &req, err, sizeof(err));
        if (r < 0) {
                client_send_error(c, msg->tag, -r, "request", "bad foreground request: %s",
                                  err);
                return;
        }
        struct job *j = requested_job(c, req.tag, req.id);
        if (!j)
                return;
        if (!j->controlling_terminal) {
                client_send_error(c, req.tag, ENOTSUP, "request",
                                  "job %llu has no controlling terminal",
                                  (unsigned long long)req.id);
                return;
        }
        r = keeper_command(j, req.foreground);
        if (r < 0)
                client_send_error(c, req.tag, -r, "request",
                                  "cannot move job %llu to the %s: %s",
                                  (unsigned long long)req.id,
                                  req.foreground ? "foreground" : "background", strerror(-r));
}

/* wait, list and stats share one message shape (an id only for wait).
 * 0, or -errno once the client has been told why not. */
static int decode_wait(struct client *c, const struct mps__msg *msg,
                       struct mps__wait *ret) {
        char err[256];
        int r = mps__wait_decode(msg->json, msg->op == MPS_OP_WAIT, ret, err,
                                 sizeof(err));
        if (r < 0)
                client_send_error(c, msg->tag, -r, "request", "bad %s request: %s",
                                  mps__op_name(msg->op), err);
        return r;
}

void request_wait(struct client *c, const struct mps__msg *msg) {
        struct server *srv = c->srv;
        struct mps__wait req;
        if (decode_wait(c, msg, &req) < 0)
                return;
        struct job *j = visible_job(c, req.id);
        if (j) {
                if (j->nwaiters >= srv->cfg->client_queue) {
                        client_send_error(c, req.tag, EAGAIN, "request",
                                          "too many waiters for job %llu",
                                          (unsigned long long)req.id);
                        return;
                }
                struct waiter *n = realloc(j->waiters, (j->nwaiters + 1) * sizeof(*n));
                if (!n) {
                        client_send_error(c, req.tag, ENOMEM, "request", "out of memory");
                        return;
                }
                j->waiters = n;
                j->waiters[j->nwaiters++] = (struct waiter){c->serial, req.tag};
                return; /* answered with "exited" when it ends */
        }
        struct exit_record *rec = retain_take(srv, req.id, c->uid);
        if (rec) {
                struct mps__exited e = rec->exited;
                e.tag = req.tag;
                client_send_exited(c, &e);
                retain_free(rec);
                return;
        }
        client_send_error(c, req.tag, ESRCH, "request", "no job %llu",
                          (unsigned long long)req.id);
}

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

void request_list(struct client *c, const struct mps__msg *msg) {
        struct server *srv = c->srv;
        struct mps__wait req;
        if (decode_wait(c, msg, &req) < 0)
                return;
        uint64_t tag = req.tag;
        struct list_ctx ctx = {.c = c, .msg = mps__jobs_encode(tag), .bytes = 512,
                               .now = mps__now_ns()};
        if (!ctx.msg) {
                client_send_error(c, tag, ENOMEM, "request", "out of memory");
                return;
        }
        retain_expire(srv);
        mps__idmap_foreach(&srv->jobs.by_id, list_job, &ctx);
        for (struct exit_record *r = srv->retained.head; r; r = r->next) {
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

void request_stats(struct client *c, const struct mps__msg *msg) {
        struct server *srv = c->srv;
        struct mps__wait req;
        if (decode_wait(c, msg, &req) < 0)
                return;
        uint64_t tag = req.tag;
        struct mps__server_stats st = {
                .uptime = (double)(mps__now_ns() - srv->life.start_ns) / 1e9,
                .clients = srv->clients.count,
                .jobs_started = srv->stats.jobs_started,
                .jobs_running = srv->jobs.by_id.count,
                .jobs_failed = srv->stats.jobs_failed,
                .exits_zero = srv->stats.exits_zero,
                .exits_nonzero = srv->stats.exits_nonzero,
                .signaled = srv->stats.exits_signaled,
                .timed_out = srv->stats.exits_timed_out,
                .preloaded = srv->preload.count,
                .prefork_idle = srv->prefork.count,
                .policy_compiles = srv->policy.cache ? srv->policy.cache->misses : 0,
                .policy_cache_hits = srv->policy.cache ? srv->policy.cache->hits : 0,
        };
        for (size_t i = 0; i < srv->preload.count; i++)
                st.preloaded_rss_kib += (uint64_t)srv->preload.libs[i].rss_kib;
        size_t n = srv->stats.latency_count < LATENCY_SAMPLES ? srv->stats.latency_count
                                                          : LATENCY_SAMPLES;
        st.latency_samples = n;
        if (n > 0) {
                double sorted[LATENCY_SAMPLES];
                memcpy(sorted, srv->stats.latency, n * sizeof(double));
                qsort(sorted, n, sizeof(double), cmp_double);
                st.latency_p50 = sorted[(n - 1) * 50 / 100];
                st.latency_p90 = sorted[(n - 1) * 90 / 100];
                st.latency_p99 = sorted[(n - 1) * 99 / 100];
                st.latency_max = sorted[n - 1];
        }
        client_send(c, mps__server_stats_encode(tag, &st), -1);
}
