/* SPDX-License-Identifier: MIT */
/*
 * spawn.c: a spawn request, from the datagram to a tracked child.
 *
 *   admit   decode the request; refuse it while stopping or over a quota
 *   plan    what the child will run: a call job's entry point and its
 *           arguments, the seccomp policy, the client's credentials
 *   launch  a job record and its exec pipe, then one of three ways to a
 *           child: a pre-forked child takes it, a vfork-style clone, a fork
 *   track   ids, maps, epoll, the timeout, the client's list; a vforked
 *           child's exec result is known already and is answered at once
 *
 * Before admit, receive finds the request's spec and descriptors where
 * one datagram could not carry them: a sealed memfd (spec_memfd) and a
 * socket queueing more descriptors (fd_bundle).
 *
 * Each stage answers the client itself when it refuses, and returns -1;
 * spawn_request then only releases what the request held. From track on,
 * the job is job.c's (exec result, exit, deadlines).
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../launcher/fdutil.h"
#include "config.h"
#include "policy.h"
#include "server.h"
#include "steps.h"

/*
 * Exec jobs are started the way posix_spawn starts programs: a child that
 * shares our memory (CLONE_VM) while we wait (CLONE_VFORK) until it has
 * exec'ed or failed. No page tables are copied, the pidfd comes with the
 * clone (CLONE_PIDFD), and the exec pipe can be read at once instead of
 * through the event loop. child_run allocates nothing and changes no
 * memory of ours but its own stack and errno, which is what makes this
 * safe; the server is single-threaded, so one stack serves every child.
 * Where the kernel allows, it shares our fd table too (CLONE_FILES) and
 * its first act is to keep a private copy of only the fds below the
 * highest it needs, which our pidfds are not (see server.h): a clone no
 * longer copies one fd per tracked job, nor does the child close them.
 * Call jobs are forked: their point is a copy-on-write copy of the server.
 * So are jobs that run with their client's credentials (spawn_launch says
 * why): the clone is for jobs nobody but us can stop.
 */
#if defined(__SANITIZE_ADDRESS__)
/* AddressSanitizer cannot follow a child onto a stack of our own (false
 * stack-overflow reports, google/sanitizers#189): its builds fork. */
#define USE_VFORK 0
#else
#define USE_VFORK 1
#endif
#define VFORK_STACK_SIZE (256 * 1024)
static _Alignas(64) char vfork_stack[VFORK_STACK_SIZE];

/* One request on its way through the stages. */
struct spawn {
        struct server *srv;
        struct client *c;
        struct mps__msg *msg;
        /* The spawn's JSON and descriptors: the message's own, or, where
         * it named them (carried), a spec read from its memfd and the
         * message's descriptors followed by its bundle's. */
        const cJSON *json;
        cJSON *memfd_json;    /* owned: the spec a memfd held */
        size_t spec_bytes;    /* its size, to give the memory back after */
        int *fds;
        size_t nfds;
        int *allfds;          /* owned, when a bundle came: fds, whose */
        size_t bundle_from;   /* entries from here on are the bundle's */
        bool carried;         /* spec_memfd or fd_bundle was used */
        struct mps__spawn sp;
        bool decoded;         /* sp holds the decoder's arrays */
        const char **own_envp; /* the decoder's (empty) envp while sp.envp is
                                  the connection's stored one (env_ref) */
        struct spawn_plan plan;
        struct peer_context ctx; /* the client's, read for this spawn */
        struct spawn_shared *shared; /* a batch's job: what its batch shares */
        char *raw_owned;      /* a batch job's datagram, printed for a hand-over */
        bool same_context;       /* ctx is the server's own */
        struct job *j;        /* until track hands it to the server */
        int pipefd[2];        /* the exec pipe, until the job holds its read end */
        int keeper_sock;      /* the keeper channel's child end, until the fork */
        pid_t pid;
        bool preforked;       /* a pre-forked child took the job */
        bool exec_done;       /* the (vforked) child has exec'ed or failed already */
};

/* --- signals across the fork ------------------------------------------------ */

/*
 * As glibc's and musl's posix_spawn do: no signal may be delivered to the
 * child before it has reset the server's dispositions (child_run), since a
 * handler a preloaded library installed would run there, in a vforked
 * child on our own memory. The server is single-threaded, so the process
 * mask is the thread's.
 */
void spawn_block_signals(sigset_t *ret_old) {
        sigset_t all;
        sigfillset(&all);
        sigprocmask(SIG_SETMASK, &all, ret_old);
}

void spawn_restore_signals(const sigset_t *old) {
        sigprocmask(SIG_SETMASK, old, NULL);
}

/* --- receive ----------------------------------------------------------------- */

/* A large spec as its client wrote it into a sealed memfd; the tree it
 * parses to stands in for the message's. */
static int receive_memfd(struct spawn *s, int fd, char *err, size_t errlen) {
        char *buf;
        size_t len;
        int r = mps__wire_spec_memfd_read(fd, MPS_WIRE_SPEC_MAX, &buf, &len, err, errlen);
        if (r < 0)
                return r;
        s->memfd_json = cJSON_ParseWithLength(buf, len);
        free(buf); /* the tree is all we keep */
        s->spec_bytes = len;
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(s->memfd_json, "op");
        if (!cJSON_IsObject(s->memfd_json) || !cJSON_IsString(op) ||
            mps__op_from_name(op->valuestring) != MPS_OP_SPAWN) {
                snprintf(err, errlen, "the spec memfd does not hold a spawn message");
                return -EBADMSG;
        }
        if (mps__wire_tag(s->memfd_json) != s->msg->tag) {
                snprintf(err, errlen, "the spec memfd's tag is not its request's");
                return -EBADMSG;
        }
        s->json = s->memfd_json;
        return 0;
}

/* More descriptors than one message carries, drained from the bundle
 * socket now (all were queued before the request was sent). */
static int receive_bundle(struct spawn *s, const struct mps__spawn_carrier *k, char *err,
                          size_t errlen) {
        if (k->own_nfds + k->bundle_nfds > MPS_WIRE_SPAWN_FDS_MAX) {
                snprintf(err, errlen, "the request carries %zu descriptors with its bundle; "
                         "the limit is %d", k->own_nfds + k->bundle_nfds,
                         MPS_WIRE_SPAWN_FDS_MAX);
                return -E2BIG;
        }
        s->allfds = malloc((k->own_nfds + k->bundle_nfds) * sizeof(int));
        if (!s->allfds)
                return -ENOMEM;
        memcpy(s->allfds, s->msg->fds, k->own_nfds * sizeof(int));
        size_t n;
        int r = mps__wire_bundle_recv(s->msg->fds[k->bundle], k->bundle_nfds,
                                      s->allfds + k->own_nfds, k->bundle_nfds, &n, err,
                                      errlen);
        if (r < 0)
                return r;
        s->fds = s->allfds;
        s->bundle_from = k->own_nfds;
        s->nfds = k->own_nfds + n;
        return 0;
}

/* Finds the spawn's JSON and descriptors (see struct spawn). */
static int spawn_receive(struct spawn *s) {
        struct mps__msg *msg = s->msg;
        struct mps__spawn_carrier k;
        char err[256];
        s->json = msg->json;
        s->fds = msg->fds;
        s->nfds = msg->nfds;
        int r = mps__spawn_carrier_decode(msg->json, msg->nfds, &k, err, sizeof(err));
        if (r == 0) {
                s->nfds = k.own_nfds;
                s->carried = k.has_memfd || k.has_bundle;
        }
        if (r == 0 && k.has_memfd)
                r = receive_memfd(s, msg->fds[k.memfd], err, sizeof(err));
        if (r == 0 && k.has_bundle)
                r = receive_bundle(s, &k, err, sizeof(err));
        if (r < 0) {
                log_warn("client %llu (pid %d): bad spawn request: %s",
                         (unsigned long long)s->c->serial, (int)s->c->pid, err);
                client_send_error(s->c, msg->tag, -r, "request", "bad spawn request: %s",
                                  err);
                return -1;
        }
        return 0;
}

/* Past this many bytes of spec, its memory goes back to the system after
 * the spawn (glibc would keep the freed heap in our RSS). */
#define SPEC_TRIM_BYTES (1u << 20)

/* Lets go of what receive took: the bundle's descriptors (the job has its
 * copies) and the memfd's tree. */
static void spawn_receive_done(struct spawn *s) {
        if (s->allfds && s->fds == s->allfds) /* (a failed drain released its own) */
                mps__wire_release_fds(s->allfds + s->bundle_from, s->nfds - s->bundle_from);
        free(s->allfds);
        cJSON_Delete(s->memfd_json);
        if (s->spec_bytes >= SPEC_TRIM_BYTES)
                malloc_trim(0);
}

/* --- admit ------------------------------------------------------------------- */

/* The environment the spawn names by env_ref, stored on its connection:
 * the job gets exactly that one, as if it had come with the request. */
static int admit_env_ref(struct spawn *s) {
        const struct client_env *e = client_env_get(s->c, s->sp.env_ref);
        if (!e) {
                client_send_error(s->c, s->sp.tag, ENOENT, "env",
                                  "bad spawn request: env_ref %llu names no environment "
                                  "stored on this connection",
                                  (unsigned long long)s->sp.env_ref);
                return -1;
        }
        s->own_envp = s->sp.envp;
        s->sp.envp = e->vec;
        s->sp.envc = e->count;
        return 0;
}

/* Decodes the request and refuses it while stopping or past a quota. */
static int spawn_admit(struct spawn *s) {
        struct server *srv = s->srv;
        struct client *c = s->c;
        char err[256];
        int r = mps__spawn_decode(s->json, s->nfds, &s->sp, err, sizeof(err));
        if (r < 0) {
                log_warn("client %llu (pid %d): bad spawn request: %s",
                         (unsigned long long)c->serial, (int)c->pid, err);
                client_send_error(c, s->msg->tag, -r, "request", "bad spawn request: %s",
                                  err);
                return -1;
        }
        s->decoded = true;
        if (s->sp.env_ref && admit_env_ref(s) < 0)
                return -1;
        if (srv->life.stopping) {
                client_send_error(c, s->sp.tag, ESHUTDOWN, "request",
                                  "the server is shutting down");
                return -1;
        }
        if (srv->jobs.by_id.count >= srv->quota.max_children) {
                client_send_error(c, s->sp.tag, EAGAIN, "request",
                                  "the server runs its maximum of %u jobs; try again later",
                                  srv->quota.max_children);
                return -1;
        }
        /* A user's share, so that one user cannot take the whole server
         * from the others. The server's own user is not held to it: it
         * could stop the server anyway, and a per-user server serves it
         * alone. Read from the configuration, as the connection quotas
         * are. */
        unsigned share = config_max_children_per_uid(srv->cfg);
        unsigned mine = job_uid_count(srv, c->uid);
        if (c->uid != geteuid() && mine >= share) {
                client_send_error(c, s->sp.tag, EAGAIN, "request",
                                  "this user runs %u jobs, its share of the server "
                                  "(max_children_per_uid %u); try again later",
                                  mine, share);
                return -1;
        }
        if (c->njobs >= srv->quota.max_jobs_per_client) {
                client_send_error(c, s->sp.tag, EAGAIN, "request",
                                  "too many jobs in flight: this connection has %u, the "
                                  "server allows %u (max_jobs_per_client); wait for one "
                                  "to end",
                                  c->njobs, srv->quota.max_jobs_per_client);
                return -1;
        }
        return 0;
}

/* --- plan -------------------------------------------------------------------- */

/* A call job's entry point and its arguments as JSON text. */
static int plan_call(const struct server *srv, const struct mps__spawn *sp,
                     struct spawn_plan *p, const char **failed_stage) {
        const struct mps_entry *e = preload_find(srv, sp->call_entry);
        if (!e) {
                *failed_stage = "call";
                return -ENOENT;
        }
        p->args_text = sp->call_args ? cJSON_PrintUnformatted(sp->call_args) : NULL;
        if (sp->call_args && !p->args_text) {
                *failed_stage = "request";
                return -ENOMEM;
        }
        p->call = (struct child_call){e->fn, e->name, p->args_text ? p->args_text : "null"};
        p->plan.call = &p->call;
        return 0;
}

int spawn_plan_build(struct server *srv, const struct mps__spawn *sp,
                     const struct creds *creds, const struct peer_context *ctx,
                     pid_t server_pid, struct spawn_plan *p, const char **failed_stage,
                     char *err, size_t errlen) {
        int r;
        *p = (struct spawn_plan){
                .plan = {.admin = srv->policy.admin, .creds = creds, .ctx = ctx,
                         .server_pid = server_pid, .keeper_sock = -1, .result_fd = -1},
        };
        /* The mask a child sets once it has reset our dispositions: ours
         * as it is now, before signals are blocked across the fork. */
        sigprocmask(SIG_SETMASK, NULL, &p->plan.setup_mask);
        if (sp->call_entry && (r = plan_call(srv, sp, p, failed_stage)) < 0)
                return r;
        if (sp->seccomp_text) {
                bool hit;
                const char *name = sp->seccomp_name ? sp->seccomp_name : "policy";
                r = policy_cache_get(srv->policy.cache, sp->seccomp_text, strlen(sp->seccomp_text),
                                     name, &p->plan.policy, &hit, err, errlen);
                if (r < 0) {
                        *failed_stage = "policy";
                        return r;
                }
        }
        return 0;
}

void spawn_plan_done(struct spawn_plan *p) {
        cJSON_free(p->args_text);
        p->args_text = NULL;
}

/*
 * What a job of this server would have if it got nothing of its client's:
 * the server's own context as it was at its first spawn, with the fd limit
 * it was started with and no signal ignored (child_run resets them). Read
 * once: nothing in the server changes it after start-up.
 */
static const struct peer_context *servers_context(const struct server *srv) {
        static struct peer_context self;
        static bool have; /* else tried again at the next spawn (EMFILE) */
        if (!have && peer_read_self(&self) == 0) {
                self.rlim[RLIMIT_NOFILE] = srv->launch.orig_nofile;
                self.sig_ign = 0;
                have = true;
        }
        return have ? &self : NULL;
}

/*
 * The client's context for this job, read from the kernel now (it may
 * have changed since it connected). A client under a seccomp filter gets
 * no unconfined job: the server cannot read its filter, so the job can
 * only carry it when the server runs under that stack itself, which a
 * job inherits. Filters only stack up, so a client with more filters than
 * the server added its own, and is refused; one with no more shares the
 * server's stack where both inherited it: an embedded server from its
 * client, or a server and its clients in one container (systemd-nspawn,
 * Docker) or under one service manager's filter. What this cannot tell
 * apart is a client whose equally long stack is another one (a socket
 * shared across containers): docs/security.md says so. s->plan.plan.ctx stays NULL when the context is the server's own:
 * there is nothing to apply, and a pre-forked child may take the job.
 */
static int plan_context(struct spawn *s) {
        struct client *c = s->c;
        char err[256];
        int r = 0;
        if (s->shared && s->shared->have_ctx) {
                s->ctx = s->shared->ctx;
        } else if ((r = peer_read_context(&c->peer, &s->ctx, err, sizeof(err))) == 0 &&
                   s->shared) {
                s->shared->ctx = s->ctx;
                s->shared->have_ctx = true;
        }
        if (r < 0) {
                log_warn("client %llu: %s", (unsigned long long)c->serial, err);
                client_send_error(c, s->sp.tag, -r, "context", "%s", err);
                return -1;
        }
        const struct peer_context *self = servers_context(s->srv);
        if (s->ctx.seccomp > 0 &&
            !(self && self->seccomp == s->ctx.seccomp &&
              s->ctx.seccomp_filters <= self->seccomp_filters)) {
                client_send_error(c, s->sp.tag, EPERM, "context",
                                  "the client runs under a seccomp filter (Seccomp: %d) "
                                  "that the server cannot carry into the job, and a "
                                  "confined client gets no unconfined job",
                                  s->ctx.seccomp);
                return -1;
        }
        s->same_context = self && peer_context_equal(&s->ctx, self);
        return 0;
}

static int spawn_plan(struct spawn *s) {
        struct client *c = s->c;
        const char *stage = "request";
        char err[256];
        if (plan_context(s) < 0)
                return -1;
        int r = spawn_plan_build(s->srv, &s->sp, c->creds, s->same_context ? NULL : &s->ctx,
                                 s->srv->life.pid, &s->plan, &stage, err, sizeof(err));
        if (r == 0)
                return 0;
        if (strcmp(stage, "call") == 0) {
                client_send_error(c, s->sp.tag, -r, "call",
                                  "no entry point '%s' is preloaded in this server",
                                  s->sp.call_entry);
        } else if (strcmp(stage, "policy") == 0) {
                log_info("client %llu: policy refused: %s", (unsigned long long)c->serial,
                         err);
                client_send_error(c, s->sp.tag, -r, "policy", "%s", err);
        } else {
                client_send_error(c, s->sp.tag, -r, "request", "out of memory");
        }
        return -1;
}

/* --- launch ------------------------------------------------------------------ */

struct vfork_args {
        const struct server *srv;
        const struct mps__spawn *sp;
        const int *fds;
        size_t nfds;
        int errpipe;
        const struct child_plan *plan;
};

static int vfork_child(void *arg) {
        const struct vfork_args *a = arg;
        child_run(a->srv, a->sp, a->fds, a->nfds, a->errpipe, a->plan);
}

/* The highest descriptor a vforked child needs of ours. */
static unsigned highest_fd(const int *fds, size_t nfds, int errpipe) {
        unsigned hi = (unsigned)errpipe > 2 ? (unsigned)errpipe : 2;
        for (size_t i = 0; i < nfds; i++)
                if (fds[i] >= 0 && (unsigned)fds[i] > hi)
                        hi = (unsigned)fds[i];
        return hi;
}

/* The job record and its exec pipe, before any child exists. */
static int launch_prepare(struct spawn *s) {
        s->j = job_new(s->srv, &s->sp, s->c->uid, s->msg->received_ns);
        if (!s->j) {
                client_send_error(s->c, s->sp.tag, ENOMEM, "request", "out of memory");
                return -1;
        }
        if (pipe2(s->pipefd, O_CLOEXEC) < 0) {
                s->srv->stats.jobs_failed++;
                client_send_error(s->c, s->sp.tag, errno, "fork",
                                  "cannot create the exec pipe: %m");
                return -1;
        }
        /* A terminal job's keeper (keeper.c) is started by the child; its
         * channel exists before, so that the server holds its end. */
        int sv[2];
        if (s->sp.controlling_terminal) {
                if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
                               sv) < 0) {
                        s->srv->stats.jobs_failed++;
                        client_send_error(s->c, s->sp.tag, errno, "fork",
                                          "cannot create the terminal keeper's channel: %m");
                        return -1;
                }
                s->j->keeper_sock = sv[0];
                s->keeper_sock = sv[1];
                s->plan.plan.keeper_sock = sv[1];
        }
        /* A call job's result channel (result.c), the job's from now on
         * and closed at its reap. Exec jobs get none. */
        if (s->plan.plan.call) {
                int fd = result_channel_new();
                if (fd < 0) {
                        s->srv->stats.jobs_failed++;
                        client_send_error(s->c, s->sp.tag, -fd, "fork",
                                          "cannot create the call job's result channel: %s",
                                          strerror(-fd));
                        return -1;
                }
                s->j->result_fd = s->plan.plan.result_fd = fd;
        }
        s->j->start_ns = mps__now_ns();
        return 0;
}

/* A call job takes a pre-forked child, when one waits, and skips the fork.
 * Exec jobs do not: the vfork is cheaper than a child decoding the request
 * itself (make bench: 1.0 ms against 1.4 ms). Nor do jobs that need the
 * client's credentials or a compiled filter, which a child forked earlier
 * does not have. True when one took it. */
static bool launch_preforked(struct spawn *s) {
        struct server *srv = s->srv;
        bool take = s->plan.plan.call && srv->launch.use_pidfd && !s->plan.plan.policy &&
                    !s->sp.controlling_terminal &&
                    !s->plan.plan.creds && !s->plan.plan.ctx &&
                    /* room for the exec pipe and the result channel */
                    s->msg->nfds + 2 <= MPS_WIRE_FDS_MAX &&
                    !s->carried; /* it forwards the datagram as it came */
        /* A batch's job has no datagram of its own to forward: its JSON
         * is printed as one, once a child is there to take it, and only if
         * it fits one (escapes may print longer than the client wrote). */
        if (take && !s->msg->raw && srv->prefork.count > 0 &&
            (s->raw_owned = cJSON_PrintUnformatted(s->json)) &&
            strlen(s->raw_owned) <= MPS_WIRE_MSG_MAX) {
                s->msg->raw = s->raw_owned;
                s->msg->rawlen = strlen(s->raw_owned);
        }
        take = take && s->msg->raw;
        struct prefork *pf = take ? prefork_take(srv) : NULL;
        /* The child, forked before, is given the stored environment the
         * request names, as its env request came. */
        const struct client_env *env = s->sp.env_ref ? client_env_get(s->c, s->sp.env_ref)
                                                     : NULL;
        if (pf && prefork_hand_over(pf, s->msg, env, s->pipefd[1],
                                    s->plan.plan.result_fd) < 0) {
                prefork_discard(pf);
                pf = NULL;
        }
        if (!pf)
                return false;
        s->pid = pf->pid;
        s->j->pidfd = pf->pidfd;
        pf->pidfd = -1;
        prefork_retire(pf);
        s->preforked = true;
        return true;
}

/* An exec job's clone; the child has exec'ed or failed when it returns. */
static pid_t launch_vfork(struct spawn *s, int *ret_errno) {
        struct server *srv = s->srv;
        struct child_plan *plan = &s->plan.plan;
        struct vfork_args a = {srv, &s->sp, s->fds, s->nfds, s->pipefd[1], plan};
        int flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD;
        int pidfd = -1;
        if (srv->launch.unshare_fds) {
                flags |= CLONE_FILES;
                plan->unshare_fds_below =
                        highest_fd(s->fds, s->nfds, s->pipefd[1]) + 1;
        }
        pid_t pid = clone(vfork_child, vfork_stack + VFORK_STACK_SIZE, flags, &a, &pidfd);
        *ret_errno = errno;
        plan->unshare_fds_below = 0;
        if (pid > 0) {
                s->j->pidfd = job_pidfd_high(srv, pidfd);
                s->exec_done = true;
        }
        return pid;
}

static pid_t launch_fork(struct spawn *s, int *ret_errno) {
        pid_t pid = fork();
        if (pid == 0)
                child_run(s->srv, &s->sp, s->fds, s->nfds, s->pipefd[1],
                          &s->plan.plan);
        *ret_errno = errno;
        return pid;
}

/* Starts the child one of the three ways; -1 when none could (answered). */
static int spawn_launch(struct spawn *s) {
        struct server *srv = s->srv;
        int fork_errno = 0;
        if (launch_prepare(s) < 0)
                return -1;
        s->pid = -1;
        if (!launch_preforked(s)) {
                /* A job that changes credentials is forked, never cloned
                 * with CLONE_VFORK: once it has dropped to its client's
                 * uid, that client may SIGSTOP it before it execs, and a
                 * vfork parent would wait for it for good, and with it
                 * every other client. A forked child's exec result comes
                 * through the exec pipe, which the loop watches. Jobs that
                 * keep our credentials, which no other user can signal,
                 * keep the faster clone. A terminal job is forked too: its
                 * child waits for the keeper it starts (keeper.c), which a
                 * vfork parent, the server, must never wait for. */
                bool vfork = USE_VFORK && !s->plan.plan.call && srv->launch.use_pidfd &&
                             !s->plan.plan.creds && !s->sp.controlling_terminal;
                spawn_block_signals(&s->plan.plan.setup_mask);
                if (vfork)
                        s->pid = launch_vfork(s, &fork_errno);
                /* The clone needs a descriptor more at once (its pidfd,
                 * while the pipe is open); at the fd limit, fork, which
                 * opens it later. */
                if (s->pid < 0 && (!vfork || fork_errno == EMFILE || fork_errno == ENFILE))
                        s->pid = launch_fork(s, &fork_errno);
                spawn_restore_signals(&s->plan.plan.setup_mask);
        }
        steps_mark(STEP_FORKED);
        /* The result channel goes high, as pidfds do, once the child has
         * its copy: held low while a job runs it would be in the fd table
         * every exec job's clone copies, and high before the fork it would
         * have the fork copy the table up to it. */
        if (s->j->result_fd >= 0)
                s->j->result_fd = job_pidfd_high(srv, s->j->result_fd);
        s->pipefd[1] = mps__safe_close(s->pipefd[1]);
        s->keeper_sock = mps__safe_close(s->keeper_sock);
        if (s->pid < 0) {
                srv->stats.jobs_failed++;
                log_warn("fork for client %llu failed: %s",
                         (unsigned long long)s->c->serial, strerror(fork_errno));
                client_send_error(s->c, s->sp.tag, fork_errno, "fork", "cannot fork: %s",
                                  strerror(fork_errno));
                return -1;
        }
        return 0;
}

/* --- track ------------------------------------------------------------------- */

/* The child is ours and unreaped, so its pid cannot be reused before
 * pidfd_open: the pidfd refers to exactly this child. */
static int track_pidfd(struct spawn *s) {
        struct server *srv = s->srv;
        struct job *j = s->j;
        if (srv->launch.use_pidfd && j->pidfd < 0)
                j->pidfd = job_pidfd_high(srv, pidfd_open(s->pid, 0));
        if (srv->launch.use_pidfd && j->pidfd < 0) {
                int e = errno;
                kill(s->pid, SIGKILL);
                mps__wait_retry(s->pid, NULL, 0, NULL);
                srv->stats.jobs_failed++;
                client_send_error(s->c, s->sp.tag, e, "fork", "cannot track the child: %s",
                                  strerror(e));
                return -1;
        }
        return 0;
}

/* Ids, maps and epoll; a child that cannot be tracked is not let run. */
static int track_register(struct spawn *s) {
        struct server *srv = s->srv;
        struct job *j = s->j;
        int r;
        j->id = ++srv->jobs.next_id;
        if ((r = mps__idmap_put(&srv->jobs.by_id, j->id, j)) < 0 ||
            /* A pre-forked child's pidfd is watched already: re-point it. */
            (r = j->pidfd < 0 ? mps__idmap_put(&srv->jobs.by_pid, (uint64_t)s->pid, j)
                 : s->preforked ? loop_mod(srv, j->pidfd, EPOLLIN, &j->pidfd_watch)
                                : loop_add(srv, j->pidfd, EPOLLIN, &j->pidfd_watch)) < 0 ||
            (!s->exec_done &&
             (r = loop_add(srv, j->execpipe, EPOLLIN, &j->execpipe_watch)) < 0)) {
                job_kill(j, SIGKILL);
                mps__wait_retry(s->pid, NULL, 0, NULL);
                mps__idmap_remove(&srv->jobs.by_id, j->id);
                mps__idmap_remove(&srv->jobs.by_pid, (uint64_t)s->pid);
                loop_del(srv, j->pidfd);
                loop_del(srv, j->execpipe);
                mps__safe_close(j->pidfd);
                mps__safe_close(j->execpipe);
                srv->stats.jobs_failed++;
                client_send_error(s->c, s->sp.tag, -r, "fork", "cannot track the child: %s",
                                  strerror(-r));
                return -1;
        }
        return 0;
}

/* Hands the job to the server; the request keeps nothing of it after. */
static void spawn_track(struct spawn *s) {
        struct server *srv = s->srv;
        struct job *j = s->j;
        j->pid = s->pid;
        if (track_pidfd(s) < 0)
                return;
        j->execpipe = s->pipefd[0];
        s->pipefd[0] = -1;
        if (track_register(s) < 0)
                return;
        s->j = NULL; /* owned by the server now */
        if (job_uid_track(j) < 0)
                log_err("job %llu: out of memory counting it against its user's share",
                        (unsigned long long)j->id);
        j->state = JOB_STARTING;
        j->execpipe_watched = !s->exec_done;
        if (j->timeout_ns > 0) {
                j->timer = TIMER_TIMEOUT;
                if (timer_arm(srv, j, j->start_ns + j->timeout_ns) < 0)
                        log_err("job %llu: cannot arm its timeout",
                                (unsigned long long)j->id);
        }
        job_link_client(j, s->c);
        if (j->daemon)
                srv->jobs.ndaemon_alive++;
        if (j->report_stops)
                job_watch_stops(j);
        /* A vforked child is past exec (or failed) already: answer now. */
        if (s->exec_done)
                job_on_execpipe(j);
}

/* --- the request ------------------------------------------------------------- */

void spawn_request(struct client *c, struct mps__msg *msg, struct spawn_shared *shared) {
        struct spawn s = {.srv = c->srv, .c = c, .msg = msg, .pipefd = {-1, -1},
                          .keeper_sock = -1, .shared = shared};

        steps_mark(STEP_RECEIVED);
        if (spawn_receive(&s) == 0 && spawn_admit(&s) == 0 && spawn_plan(&s) == 0 &&
            spawn_launch(&s) == 0)
                spawn_track(&s);
        mps__safe_close(s.pipefd[0]);
        mps__safe_close(s.pipefd[1]);
        mps__safe_close(s.keeper_sock);
        if (s.j)
                job_free(s.j);
        spawn_plan_done(&s.plan);
        if (s.own_envp)
                s.sp.envp = s.own_envp; /* the stored one stays the connection's */
        if (s.decoded)
                mps__spawn_done(&s.sp);
        spawn_receive_done(&s);
        if (s.raw_owned) {
                free(s.raw_owned);
                msg->raw = NULL;
                msg->rawlen = 0;
        }
}
