/* SPDX-License-Identifier: MIT */
/*
 * prefork.c: --prefork N keeps N children forked ahead of need (as Android's
 * zygote keeps unspecialised processes), so that a job skips fork on its
 * critical path. Each waits on its own socketpair for one spawn request: the
 * client's datagram as it came, with the job's exec pipe and result channel
 * (only call jobs are handed over, and each has one: result.c) as two extra
 * first fds. From there it is an ordinary forked child (child_run), tracked
 * by the pidfd the server opened when it forked it.
 *
 * Refills happen between event batches, one fork at a time, so a burst of
 * jobs never waits on refilling. Preloaded state is fixed at start, so idle
 * children never need to be rebuilt.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../launcher/fdutil.h"
#include "child.h"
#include "server.h"

/* The pre-forked child: wait for the request, then become the job. The
 * server's dispositions go first (every signal was blocked across the
 * fork until then), so that none of its handlers runs here while idle. */
/* One message of the server's: 1, 0 when it let go of us, or -errno. */
static int child_recv(int sock, struct mps__msg *msg) {
        char err[256];
        for (;;) {
                if (mps__poll_one(sock, POLLIN, -1) < 0)
                        return 0;
                int r = mps__wire_recv(sock, msg, err, sizeof(err), NULL);
                if (r != -EAGAIN && r != -EINTR)
                        return r;
        }
}

/* The pre-forked child: wait for the request (after the env request its
 * env_ref names, if it names one), then become the job. The server's
 * dispositions go first (every signal was blocked across the fork until
 * then), so that none of its handlers runs here while idle. */
static _Noreturn void prefork_child(struct server *srv, int sock, const sigset_t *mask) {
        child_reset_signals(srv, mask);
        close_range_except(3, ~0u, sock);
        struct mps__msg msg, envmsg = {0};
        struct mps__env env = {0};
        char err[256];
        int r = child_recv(sock, &msg);
        if (r > 0 && msg.op == MPS_OP_ENV) {
                envmsg = msg; /* its tree holds env's strings */
                if (mps__env_decode(envmsg.json, &env, err, sizeof(err)) < 0)
                        _exit(127); /* the server checked it already */
                r = child_recv(sock, &msg);
        }
        if (r <= 0 || msg.op != MPS_OP_SPAWN || msg.nfds < 2)
                _exit(0); /* the server let go of us, or nonsense */
        int errpipe = msg.fds[0];
        struct mps__spawn sp;
        if (mps__spawn_decode(msg.json, msg.nfds - 2, &sp, err, sizeof(err)) < 0 ||
            (sp.env_ref && !env.envp))
                _exit(127); /* the server checked it already */
        if (sp.env_ref) {
                sp.envp = env.envp;
                sp.envc = env.envc;
        }
        /* The server hands over neither a filter nor credentials, nor a
         * client context other than its own (spawn.c): the plan is the
         * server's, minus those. */
        struct spawn_plan plan;
        const char *stage;
        if (spawn_plan_build(srv, &sp, NULL, NULL, getppid(), &plan, &stage, err,
                             sizeof(err)) < 0)
                _exit(127);
        plan.plan.result_fd = msg.fds[1];
        child_run(srv, &sp, msg.fds + 2, msg.nfds - 2, errpipe, &plan.plan);
}

static void on_watch(struct watch *w, uint32_t events) {
        (void)events;
        prefork_on_exit(w->data);
}

static int spawn_one(struct server *srv) {
        int sv[2];
        struct prefork *p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
                free(p);
                return -errno;
        }
        sigset_t old;
        spawn_block_signals(&old);
        pid_t pid = fork();
        if (pid == 0)
                prefork_child(srv, sv[1], &old);
        int e = errno;
        spawn_restore_signals(&old);
        mps__safe_close(sv[1]);
        if (pid < 0) {
                mps__safe_close(sv[0]);
                free(p);
                return -e;
        }
        p->srv = srv;
        p->pid = pid;
        p->sock = sv[0];
        /* It becomes a job's pidfd: kept high as those are. */
        p->pidfd = job_pidfd_high(srv, pidfd_open(pid, 0));
        p->watch = (struct watch){.fn = on_watch, .data = p};
        if (p->pidfd < 0 || loop_add(srv, p->pidfd, EPOLLIN, &p->watch) < 0) {
                kill(pid, SIGKILL);
                mps__wait_retry(pid, NULL, 0, NULL);
                mps__safe_close(p->pidfd);
                mps__safe_close(p->sock);
                free(p);
                return -EMFILE;
        }
        p->next = srv->prefork.idle;
        srv->prefork.idle = p;
        srv->prefork.count++;
        return 0;
}

void prefork_refill(struct server *srv, unsigned budget) {
        while (budget-- > 0 && srv->prefork.count < srv->prefork.target &&
               !srv->life.stopping) {
                int r = spawn_one(srv);
                if (r < 0) {
                        /* Out of fds or processes: try again later, less and
                         * less often, not on every loop turn. */
                        srv->prefork.backoff_ms = srv->prefork.backoff_ms
                                ? (srv->prefork.backoff_ms >= 30000 ? 60000
                                                                    : srv->prefork.backoff_ms * 2)
                                : 100;
                        srv->prefork.retry_ns = mps__now_ns() +
                                (uint64_t)srv->prefork.backoff_ms * 1000000u;
                        log_warn("cannot pre-fork a child: %s; trying again in %u ms",
                                 strerror(-r), srv->prefork.backoff_ms);
                        return;
                }
                srv->prefork.backoff_ms = 0;
                srv->prefork.retry_ns = 0;
        }
}

int prefork_wait_ms(const struct server *srv) {
        if (srv->prefork.count >= srv->prefork.target || srv->life.stopping)
                return -1;
        uint64_t now = mps__now_ns();
        if (now >= srv->prefork.retry_ns)
                return 0;
        return (int)((srv->prefork.retry_ns - now + 999999u) / 1000000u);
}

struct prefork *prefork_take(struct server *srv) {
        struct prefork *p = srv->prefork.idle;
        if (!p)
                return NULL;
        srv->prefork.idle = p->next;
        srv->prefork.count--;
        p->next = NULL;
        p->taken = true;
        return p;
}

void prefork_retire(struct prefork *p) {
        struct server *srv = p->srv;
        p->sock = mps__safe_close(p->sock);
        p->next = srv->prefork.dead;
        srv->prefork.dead = p;
}

int prefork_hand_over(struct prefork *p, const struct mps__msg *msg,
                      const struct client_env *env, int errpipe, int resultfd) {
        int fds[MPS_WIRE_FDS_MAX];
        if (resultfd < 0)
                return -EBADF;
        if (msg->nfds + 2 > MPS_WIRE_FDS_MAX)
                return -EMSGSIZE;
        int r = env ? mps__wire_send_raw(p->sock, env->raw, env->rawlen, NULL, 0) : 0;
        if (r < 0)
                return r;
        fds[0] = errpipe;
        fds[1] = resultfd;
        memcpy(fds + 2, msg->fds, msg->nfds * sizeof(int));
        return mps__wire_send_raw(p->sock, msg->raw, msg->rawlen, fds, msg->nfds + 2);
}

/* Ends an idle child that will not be used (the caller took it). */
void prefork_discard(struct prefork *p) {
        loop_del(p->srv, p->pidfd);
        pidfd_send_signal(p->pidfd, SIGKILL, NULL, 0);
        mps__wait_retry(p->pid, NULL, 0, NULL);
        p->pidfd = mps__safe_close(p->pidfd);
        prefork_retire(p);
}

/* An idle child died (killed from outside): reap and forget it. */
void prefork_on_exit(struct prefork *p) {
        struct server *srv = p->srv;
        if (p->taken)
                return;
        struct prefork **pp = &srv->prefork.idle;
        while (*pp && *pp != p)
                pp = &(*pp)->next;
        if (!*pp)
                return;
        *pp = p->next;
        srv->prefork.count--;
        p->taken = true;
        log_warn("pre-forked child %d died while idle", (int)p->pid);
        loop_del(srv, p->pidfd);
        mps__wait_retry(p->pid, NULL, 0, NULL);
        p->pidfd = mps__safe_close(p->pidfd);
        prefork_retire(p);
}

void prefork_release_all(struct server *srv) {
        struct prefork *p;
        while ((p = prefork_take(srv)))
                prefork_discard(p);
        while ((p = srv->prefork.dead)) {
                srv->prefork.dead = p->next;
                free(p);
        }
}
