/* SPDX-License-Identifier: MIT */
/*
 * child.c: what a freshly forked child does before it becomes the job.
 *
 * The order of the steps is given at child_run. Any
 * failure is written to the exec pipe as {stage, errno} and the child exits
 * 127 without running atexit handlers. The exec pipe is O_CLOEXEC, so the
 * server sees EOF exactly when exec succeeded.
 *
 * The server is single-threaded, so the forked copy may call anything; still,
 * nothing here allocates, so a move to vfork-style spawning stays possible.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sched.h>
#include <termios.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/keyctl.h>

#include "../launcher/fdutil.h"
#include "child.h"
#include "policy.h"
#include "server.h"
#include "steps.h"

static const char *const stage_names[] = {
        [CHILD_STAGE_FDS] = "fds",
        [CHILD_STAGE_SESSION] = "setsid",
        [CHILD_STAGE_CHDIR] = "chdir",
        [CHILD_STAGE_EXEC] = "exec",
        [CHILD_STAGE_RLIMIT] = "rlimit",
        [CHILD_STAGE_CALL] = "call",
        [CHILD_STAGE_CREDENTIALS] = "credentials",
        [CHILD_STAGE_NICE] = "nice",
        [CHILD_STAGE_SECCOMP] = "seccomp",
        [CHILD_STAGE_CONTEXT] = "context",
        [CHILD_STAGE_TERMINAL] = "terminal",
};

const char *child_stage_name(int stage) {
        if (stage <= 0 || (size_t)stage >= sizeof(stage_names) / sizeof(stage_names[0]))
                return "setup";
        return stage_names[stage];
}

static _Noreturn void fail(int errpipe, int stage, int err) {
        struct child_failure f = {.stage = stage, .err = err};
        (void)mps__write_all(errpipe, &f, sizeof(f));
        _exit(127);
}

/* The server set every disposition to default at start (server.c) and
 * noted the ones changed since (srv->launch.child_reset): a child resets those,
 * before a handler could run in it, and before exec passes an ignored
 * signal on to the job. Every signal is blocked until then (the server
 * blocks them all across the fork, spawn_block_signals); then the mask is
 * mask, which no handler of the server's can be reached through any more. */
void child_reset_signals(const struct server *srv, const sigset_t *mask) {
        struct sigaction sa = {.sa_handler = SIG_DFL};
        sigemptyset(&sa.sa_mask);
        for (int sig = 1; sig < NSIG; sig++)
                if (sigismember(&srv->launch.child_reset, sig) == 1)
                        sigaction(sig, &sa, NULL);
        sigprocmask(SIG_SETMASK, mask, NULL);
}

/* Closes every fd in [lo, hi] (inclusive) except keep. */
void close_range_except(unsigned lo, unsigned hi, int keep) {
        if (lo > hi)
                return;
        if (keep >= 0 && (unsigned)keep >= lo && (unsigned)keep <= hi) {
                if ((unsigned)keep > lo)
                        close_range(lo, (unsigned)keep - 1, 0);
                if ((unsigned)keep < hi)
                        close_range((unsigned)keep + 1, hi, 0);
        } else {
                close_range(lo, hi, 0);
        }
}

int child_close_all_except(int *keep, size_t n) {
        /* Insertion sort: received in order, fds are mostly ascending
         * already, and a child may not allocate (qsort might). */
        for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
                        int t = keep[j];
                        keep[j] = keep[j - 1];
                        keep[j - 1] = t;
                }
        unsigned from = 0;
        for (size_t i = 0; i < n; i++) {
                if ((unsigned)keep[i] > from)
                        close_range(from, (unsigned)keep[i] - 1, 0);
                from = (unsigned)keep[i] + 1;
        }
        return close_range(from, ~0u, 0);
}

/* Closes every fd but errpipe, resultfd (when >= 0) and fds[]; -1 (errno
 * set) where the kernel lacks close_range (before 5.9): a job must not run
 * with the server's fds (call jobs never exec). */
static int close_all_but(const int *fds, size_t nfds, int errpipe, int resultfd) {
        int keep[MPS_WIRE_SPAWN_FDS_MAX + 2];
        size_t nkeep = 0;
        keep[nkeep++] = errpipe;
        if (resultfd >= 0)
                keep[nkeep++] = resultfd;
        for (size_t i = 0; i < nfds; i++)
                keep[nkeep++] = fds[i];
        return child_close_all_except(keep, nkeep);
}

/* Closes every fd from lo up but a and b (each -1 or at least lo). */
static void close_from_except(unsigned lo, int a, int b) {
        int keep[2];
        size_t n = 0;
        if (a >= 0)
                keep[n++] = a;
        if (b >= 0)
                keep[n++] = b;
        if (n == 2 && keep[0] > keep[1]) {
                keep[0] = b;
                keep[1] = a;
        }
        unsigned from = lo;
        for (size_t i = 0; i < n; i++) {
                if ((unsigned)keep[i] > from)
                        close_range(from, (unsigned)keep[i] - 1, 0);
                from = (unsigned)keep[i] + 1;
        }
        close_range(from, ~0u, 0);
}

/*
 * Installs the fd map. Everything we hold is first moved to numbers at or
 * above every target (hi), so that installing one target can never clobber a
 * source of another; dup2 clears O_CLOEXEC on the targets only. Then every
 * number below hi that is not a target, and everything at or above hi but
 * the exec pipe and a call job's result channel (*resultfd, when resultfd
 * is not NULL and it is >= 0: moved above hi as the exec pipe is), is
 * closed.
 */
static int arrange_fds(const struct mps__spawn *spec, const int *fds, size_t nfds,
                       int *errpipe, int *resultfd) {
        bool is_target[MPS_WIRE_TARGET_FD_MAX + 1] = {false};
        bool left_closed[3] = {false};
        int moved[MPS_WIRE_SPAWN_FDS_MAX];
        int hi = 3;
        int devnull;

        for (size_t i = 0; i < spec->nfdmap; i++)
                if (spec->fdmap[i].target + 1 > hi)
                        hi = spec->fdmap[i].target + 1;

        /* First drop every server fd we do not need (its sockets, epoll,
         * other clients): the moves below need free numbers under the fd
         * limit, and a busy server may hold most of them. */
        int keepfd = resultfd ? *resultfd : -1;
        if (close_all_but(fds, nfds, *errpipe, keepfd) < 0)
                return -errno;

        int e = fcntl(*errpipe, F_DUPFD_CLOEXEC, hi);
        if (e < 0)
                return -errno;
        *errpipe = e;
        if (keepfd >= 0) {
                if ((keepfd = fcntl(keepfd, F_DUPFD_CLOEXEC, hi)) < 0)
                        return -errno;
                *resultfd = keepfd;
        }
        devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0)
                return -errno;
        if (devnull < hi) {
                int d = fcntl(devnull, F_DUPFD_CLOEXEC, hi);
                if (d < 0)
                        return -errno;
                devnull = d;
        }
        for (size_t i = 0; i < nfds; i++) {
                moved[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, hi);
                if (moved[i] < 0)
                        return -errno;
        }

        for (size_t i = 0; i < spec->nfdmap; i++) {
                int target = spec->fdmap[i].target;
                int src = spec->fdmap[i].source;
                if (src >= 0) {
                        if (dup2(moved[src], target) < 0)
                                return -errno;
                        is_target[target] = true;
                } else if (target <= 2 && src == MPS_WIRE_FD_CLOSED) {
                        left_closed[target] = true; /* as the client's was */
                } else if (target <= 2) {
                        if (dup2(devnull, target) < 0)
                                return -errno;
                        is_target[target] = true;
                }
        }
        /* Never leave 0, 1 or 2 closed (the job's next open() would take
         * it), unless the client's own was closed: then the job gets what a
         * direct exec would give it. */
        for (int t = 0; t <= 2; t++) {
                if (!is_target[t] && !left_closed[t]) {
                        if (dup2(devnull, t) < 0)
                                return -errno;
                        is_target[t] = true;
                }
        }

        int run = -1;
        for (int fd = 0; fd <= hi; fd++) {
                bool closing = fd < hi && !is_target[fd];
                if (closing && run < 0)
                        run = fd;
                if (!closing && run >= 0) {
                        close_range((unsigned)run, (unsigned)fd - 1, 0);
                        run = -1;
                }
        }
        close_from_except((unsigned)hi, *errpipe, keepfd);
        return 0;
}

int child_arrange_fds(const struct mps__spawn *spec, const int *fds, size_t nfds,
                      int *errpipe) {
        return arrange_fds(spec, fds, nfds, errpipe, NULL);
}

/* The value of PATH in envp, or the default search path. */
static const char *job_path(const char *const *envp) {
        for (; *envp; envp++)
                if (strncmp(*envp, "PATH=", 5) == 0)
                        return *envp + 5;
        return "/usr/local/bin:/usr/bin:/bin";
}

/* A file that is not a valid executable but is executable is a script for
 * /bin/sh, as execvp(3) has it. */
static void exec_as_script(const char *file, char *const argv[],
                           char *const envp[]) {
        const char *sh_argv[MPS_WIRE_ARGV_MAX + 2];
        size_t n = 0;
        sh_argv[n++] = "/bin/sh";
        sh_argv[n++] = file;
        size_t i = 1;
        for (; argv[i] && n < MPS_WIRE_ARGV_MAX + 1; i++)
                sh_argv[n++] = argv[i];
        if (argv[i]) {
                /* More arguments than this stack array holds (a job's argv
                 * may have far more): refuse rather than cut them, since
                 * this child may not allocate. */
                errno = E2BIG;
                return;
        }
        sh_argv[n] = NULL;
        execve("/bin/sh", (char *const *)sh_argv, envp);
}

/*
 * execvpe with the job's own PATH (not the server's), without allocation.
 * Returns the errno to report: EACCES if some candidate was found but could
 * not be executed, else the last error (ENOENT when nothing was found).
 */
static int exec_search(const char *file, char *const argv[], char *const envp[]) {
        if (strchr(file, '/')) {
                execve(file, argv, envp);
                if (errno == ENOEXEC)
                        exec_as_script(file, argv, envp);
                return errno;
        }
        if (strlen(file) > NAME_MAX)
                return ENAMETOOLONG;
        const char *path = job_path((const char *const *)envp);
        bool seen_eacces = false;
        int last = ENOENT;
        char buf[PATH_MAX];
        for (const char *p = path;; p++) {
                const char *colon = strchrnul(p, ':');
                size_t dlen = (size_t)(colon - p);
                if (dlen + 1 + strlen(file) + 1 <= sizeof(buf)) {
                        if (dlen == 0) {
                                strcpy(buf, file); /* empty entry: cwd */
                        } else {
                                memcpy(buf, p, dlen);
                                buf[dlen] = '/';
                                strcpy(buf + dlen + 1, file);
                        }
                        execve(buf, argv, envp);
                        int e = errno;
                        if (e == ENOEXEC) {
                                exec_as_script(buf, argv, envp);
                                return errno;
                        }
                        switch (e) {
                        case EACCES:
                                seen_eacces = true;
                                break;
                        case ENOENT:
                        case ENOTDIR:
                        case ESTALE:
                        case ENODEV:
                        case ETIMEDOUT:
                                break;
                        default:
                                return e; /* found but broken: report it */
                        }
                        last = e;
                }
                if (*colon == '\0')
                        break;
                p = colon;
        }
        return seen_eacces ? EACCES : (last == ENOTDIR ? ENOENT : last);
}

extern char **environ;

/*
 * A call job: no exec. Module hooks run now that the job is set up, then
 * the seccomp filter is loaded (last, as it would be before exec), then the
 * exec pipe is closed, which the server takes as "started", exactly as an
 * exec would; and the entry point's return value is the exit code.
 */
static _Noreturn void run_call(const struct server *srv, const struct mps__spawn *spec,
                               int errpipe, int resultfd, const struct child_plan *plan) {
        int fds[MPS_WIRE_FDMAP_MAX];
        size_t n = 0;
        for (size_t i = 0; i < spec->nfdmap && n < MPS_WIRE_FDMAP_MAX; i++)
                if (spec->fdmap[i].source >= 0)
                        fds[n++] = spec->fdmap[i].target;
        environ = (char **)spec->envp;
        for (size_t i = 0; i < srv->preload.count; i++)
                if (srv->preload.libs[i].module->after_fork)
                        srv->preload.libs[i].module->after_fork();
        int r;
        if ((plan->admin && (r = policy_apply(plan->admin)) < 0) ||
            (plan->policy && (r = policy_apply(plan->policy)) < 0))
                fail(errpipe, CHILD_STAGE_SECCOMP, -r);
        steps_mark(STEP_CHILD_READY);
        mps__safe_close(errpipe);
        /* The result channel stays CLOEXEC: a program the entry point
         * runs gets nothing of it. */
        result_child_attach(resultfd);
        mps_call_context ctx = {
                .entry = plan->call->entry,
                .args_json = plan->call->args_json,
                .fds = fds,
                .nfds = n,
                .set_result = result_child_set_result,
                .set_error = result_child_set_error,
        };
        r = plan->call->fn(&ctx);
        /* Only what the entry point wrote: the server never buffers stdio
         * output, so nothing of its own is flushed twice. */
        fflush(stdout);
        fflush(stderr);
        _exit(r & 0xff);
}

/* The client's credentials, for a server running as root. */
/* Raw system calls, as glibc's posix_spawn makes them: glibc's wrappers
 * change every thread of the process, and a child sharing the server's
 * memory would reach for the server's threads (a preloaded library may
 * have started some). These change only this process, which is all a
 * child has. */
static int drop_credentials(const struct creds *c) {
        if (syscall(SYS_setgroups, c->ngroups, c->groups) < 0 ||
            syscall(SYS_setresgid, c->gid, c->gid, c->gid) < 0 ||
            syscall(SYS_setresuid, c->uid, c->uid, c->uid) < 0)
                return -errno;
        return 0;
}

/* True when the job will run as another user than the server: such a job
 * must share neither the server's session (and so its controlling
 * terminal, if it had one) nor its session keyring. */
static bool for_other_user(const struct child_plan *plan) {
        return plan->creds && plan->creds->uid != geteuid();
}

/* The process itself: a private fd table (vforked children), signal
 * dispositions, its own session or group. A job of another user always
 * gets a session of its own, with no controlling terminal: in the
 * server's session it could reach the server's terminal (TIOCSTI into
 * root's shell, tcsetpgrp). A job of the server's own uid leads a group in
 * the server's session unless it asks for a session: there is no boundary
 * to keep there, and the server let go of its terminal at start. */
static void setup_process(const struct server *srv, const struct mps__spawn *spec,
                          int errpipe, const struct child_plan *plan) {
        /* Before anything touches a descriptor: ours are the server's. */
        if (plan->unshare_fds_below > 0 &&
            close_range(plan->unshare_fds_below, ~0u, CLOSE_RANGE_UNSHARE) < 0)
                fail(errpipe, CHILD_STAGE_FDS, errno);
        child_reset_signals(srv, &plan->setup_mask);

        bool own_session = spec->new_session || for_other_user(plan);
        if (own_session ? setsid() < 0 : setpgid(0, 0) < 0)
                fail(errpipe, CHILD_STAGE_SESSION, errno);
}

/*
 * A controlling-terminal job: the fd that becomes its fd 0 is made the
 * controlling terminal of the session setup_process created, still as the
 * server (TIOCSCTTY with 0 never steals another session's terminal, so
 * this gives the client nothing it did not hold: it sent the fd), and the
 * job's group its foreground. That is done before the fd map is
 * installed, on the fd the map will put at 0 (the same open file), so
 * that the keeper started next (keeper.c) is forked while the fds are
 * still the few this child holds, and goes before the map closes the
 * channel. The keeper is what lets the job stop at ^Z (see keeper.c).
 */
static void setup_terminal(const struct mps__spawn *spec, const int *fds, int errpipe,
                           const struct child_plan *plan) {
        int tty = -1;
        for (size_t i = 0; i < spec->nfdmap; i++)
                if (spec->fdmap[i].target == 0 && spec->fdmap[i].source >= 0)
                        tty = fds[spec->fdmap[i].source];
        if (tty < 0 || !isatty(tty))
                fail(errpipe, CHILD_STAGE_TERMINAL, ENOTTY);
        if (ioctl(tty, TIOCSCTTY, 0) < 0 || tcsetpgrp(tty, getpgrp()) < 0)
                fail(errpipe, CHILD_STAGE_TERMINAL, errno);
        int r = plan->keeper_sock >= 0 ? keeper_start(plan->keeper_sock) : 0;
        if (r < 0)
                fail(errpipe, CHILD_STAGE_TERMINAL, -r);
}

/*
 * The client's context (peer.c), in three steps around the credential
 * change: what needs the server's privilege first (the bounding set, with
 * CAP_SETPCAP; oom_score_adj, since a change of euid makes the child
 * non-dumpable and /proc/self root's), then the capabilities no more than
 * the client's, then, as the user, everything else.
 */

/* Drops from the bounding set what the client's lacks. True when that
 * could not be done (a server without CAP_SETPCAP): the job then gets
 * no_new_privs, so that no exec can give it a capability the client's
 * bounding set would have stopped. */
static bool context_bounding(const struct peer_context *ctx) {
        bool short_of = false;
        for (int cap = 0; cap < 64; cap++) {
                if (ctx->cap_bnd & (1ull << cap))
                        continue;
                int in = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
                if (in < 0)
                        break; /* past the kernel's last capability */
                if (in == 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
                        short_of = true;
        }
        return short_of;
}

static void context_oom(const struct peer_context *ctx) {
        char buf[16];
        int n = snprintf(buf, sizeof(buf), "%d", ctx->oom_score_adj);
        int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        /* Lowering it takes CAP_SYS_RESOURCE: without it the job keeps
         * the server's, which leaves it no better off than the client. */
        if (fd >= 0) {
                (void)mps__write_all(fd, buf, (size_t)n);
                close(fd);
        }
}

/* After the uid change: permitted, effective and inheritable no more than
 * both ours and the client's, then the client's ambient set (each needs
 * to be permitted and inheritable, so a non-root job raises none). */
static int context_caps(const struct peer_context *ctx) {
        struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct d[2];
        if (syscall(SYS_capget, &h, d) < 0)
                return -errno;
        uint64_t have[3] = {d[0].permitted | (uint64_t)d[1].permitted << 32,
                            d[0].effective | (uint64_t)d[1].effective << 32,
                            d[0].inheritable | (uint64_t)d[1].inheritable << 32};
        uint64_t want[3] = {have[0] & ctx->cap_prm, have[1] & ctx->cap_eff,
                            have[2] & ctx->cap_inh};
        for (int i = 0; i < 2; i++) {
                d[i].permitted = (uint32_t)(want[0] >> (32 * i));
                d[i].effective = (uint32_t)(want[1] >> (32 * i));
                d[i].inheritable = (uint32_t)(want[2] >> (32 * i));
        }
        if (syscall(SYS_capset, &h, d) < 0)
                return -errno;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                return -errno;
        for (int cap = 0; cap < 64; cap++)
                if ((ctx->cap_amb & want[0] & want[2]) & (1ull << cap))
                        (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
        return 0;
}

/* As the user: limits no higher than the client's (a hard limit above
 * ours cannot be raised: the job then has ours), nice (a value below ours
 * needs CAP_SYS_NICE or RLIMIT_NICE: the job then keeps ours), I/O
 * priority, umask, CPU
 * affinity, and the signals the client ignores, as an exec would keep
 * them. */
static int context_as_user(const struct peer_context *ctx) {
        for (int res = 0; res < PEER_RLIMITS && res < RLIM_NLIMITS; res++) {
                struct rlimit cur, rl = ctx->rlim[res];
                if (getrlimit(res, &cur) < 0)
                        continue; /* a resource this kernel lacks */
                if (rl.rlim_max > cur.rlim_max)
                        rl.rlim_max = cur.rlim_max;
                if (rl.rlim_cur > rl.rlim_max)
                        rl.rlim_cur = rl.rlim_max;
                if (setrlimit(res, &rl) < 0)
                        return -errno;
        }
        if (setpriority(PRIO_PROCESS, 0, ctx->nice) < 0 && errno != EACCES && errno != EPERM)
                return -errno;
        /* The client's I/O priority (ionice): an idle or best-effort one is
         * anyone's to take; a real-time one needs a capability the job may
         * lack as the user, and it then keeps ours, as with nice. */
        if (syscall(SYS_ioprio_set, PEER_IOPRIO_WHO_PROCESS, 0, ctx->ioprio) < 0 &&
            errno != EPERM)
                return -errno;
        if (ctx->umask >= 0)
                umask((mode_t)ctx->umask);
        /* EINVAL: none of those CPUs is ours to give (another cpuset). */
        if (sched_setaffinity(0, sizeof(ctx->affinity), &ctx->affinity) < 0 &&
            errno != EINVAL)
                return -errno;
        struct sigaction ign = {.sa_handler = SIG_IGN};
        sigemptyset(&ign.sa_mask);
        for (int sig = 1; sig <= 64 && sig < NSIG; sig++)
                if ((ctx->sig_ign & (1ull << (sig - 1))) && sig != SIGKILL && sig != SIGSTOP)
                        (void)sigaction(sig, &ign, NULL); /* glibc refuses 32, 33 */
        return 0;
}

/*
 * A fresh, empty session keyring, owned by (and counted against the key
 * quota of) the user we now are: the server's would otherwise be every
 * job's, and a key one user's job added there could be read by any
 * other's (keys grant their possessor access). Each costs a key of the
 * user's quota (kernel.keys.maxkeys, 200 by default) while the job runs;
 * with the quota used up (EDQUOT: many jobs at once), the job takes the
 * user's own user-session keyring instead, which costs nothing and is
 * what any process of that user without a session keyring uses. It is
 * joined by name, so it is checked to be that very keyring: another
 * user's keyring of the same name would have the job fail instead.
 * Without keys in the kernel (ENOSYS), or with keyctl refused, there is
 * nothing to share.
 */
static int join_fresh_keyring(uid_t uid) {
        if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) >= 0 || errno == ENOSYS)
                return 0;
        /* EPERM is no answer of the kernel's here but a filter's (a
         * container's seccomp profile): if keyctl is refused outright,
         * the job cannot read a key either. */
        int e = errno;
        if (e == EPERM &&
            syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0) < 0 &&
            errno == EPERM)
                return 0;
        if (e != EDQUOT)
                return -e;
        char name[32];
        snprintf(name, sizeof(name), "_uid_ses.%u", (unsigned)uid);
        long us = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_SESSION_KEYRING, 1);
        long joined = us < 0 ? -1 : syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name);
        return joined >= 0 && joined == us ? 0 : -EDQUOT;
}

/* The parent-death signal, set once the credentials are final: the kernel
 * clears it when the effective uid or gid changes, so set before the drop
 * it would be silently gone. If the server died before it was set, the
 * signal is raised now (it is delivered once the mask is cleared). */
static void set_pdeathsig(const struct mps__spawn *spec, int errpipe,
                          const struct child_plan *plan) {
        if (spec->pdeathsig <= 0)
                return;
        if (prctl(PR_SET_PDEATHSIG, spec->pdeathsig) < 0)
                fail(errpipe, CHILD_STAGE_SESSION, errno);
        if (getppid() != plan->server_pid)
                raise(spec->pdeathsig);
}

/* As the client: its context's privileged part, credentials, then the
 * rest of its context; then what the spec sets on top: cwd (access checked
 * as the user), umask, nice and rlimits (which cannot exceed what the user
 * may set). True when the job must get no_new_privs: the client has it, or
 * the bounding set could not be made the client's. */
static bool become_client(const struct mps__spawn *spec, int errpipe,
                          const struct child_plan *plan) {
        const struct peer_context *ctx = plan->ctx;
        bool nnp = false;
        int r;
        /* Whether the job is another user's, asked while we are still the
         * server. */
        bool other = for_other_user(plan);
        if (ctx) {
                nnp = context_bounding(ctx) || ctx->no_new_privs;
                context_oom(ctx);
        }
        if (plan->creds && (r = drop_credentials(plan->creds)) < 0)
                fail(errpipe, CHILD_STAGE_CREDENTIALS, -r);
        if (other && (r = join_fresh_keyring(plan->creds->uid)) < 0)
                fail(errpipe, CHILD_STAGE_CREDENTIALS, -r);
        if (ctx && ((r = context_caps(ctx)) < 0 || (r = context_as_user(ctx)) < 0))
                fail(errpipe, CHILD_STAGE_CONTEXT, -r);

        /* A directory given as an fd was entered already (child_run); as
         * the user now, "." is its right to be there checked again. */
        if (spec->has_cwd_fd ? chdir(".") < 0 : spec->cwd && chdir(spec->cwd) < 0)
                fail(errpipe, CHILD_STAGE_CHDIR, errno);
        if (spec->umask >= 0)
                umask((mode_t)spec->umask);
        if (spec->has_nice) {
                errno = 0;
                if (setpriority(PRIO_PROCESS, 0, spec->nice) < 0)
                        fail(errpipe, CHILD_STAGE_NICE, errno);
        }

        /* Limits come after the fds are arranged: a low RLIMIT_NOFILE
         * would otherwise forbid the moves above. */
        for (size_t i = 0; i < spec->nrlimits; i++) {
                const struct mps__rlimit *l = &spec->rlimits[i];
                struct rlimit rl;
                if (getrlimit(l->resource, &rl) < 0)
                        fail(errpipe, CHILD_STAGE_RLIMIT, errno);
                rl.rlim_cur = (rlim_t)l->soft;
                if (!l->hard_keep)
                        rl.rlim_max = (rlim_t)l->hard;
                if (setrlimit(l->resource, &rl) < 0)
                        fail(errpipe, CHILD_STAGE_RLIMIT, errno);
        }
        return nnp;
}

/*
 * Order: a private fd table (vforked children); signal dispositions, then
 * the server's mask (every signal was blocked until then); session or
 * process group (every job leads its own group, so that a whole tree can
 * be signalled; a job of another user its own session); for a
 * controlling-terminal job, that terminal and its keeper (setup_terminal);
 * fds, then the
 * server's fd limit back; then, as the client rather than as
 * the server, everything a client could otherwise abuse: credentials
 * first (with a fresh session keyring for another user), then cwd (access
 * checked as the user), umask, nice and rlimits (which cannot exceed what
 * the user may set); the parent-death signal, which a credential change
 * would clear; the signal mask; and last
 * no_new_privs and the seccomp filter, right before exec, so that the
 * filter has to allow as little as possible.
 */
_Noreturn void child_run(const struct server *srv, const struct mps__spawn *spec,
                         const int *fds, size_t nfds, int errpipe,
                         const struct child_plan *plan) {
        int r;
        sigset_t none;

        steps_mark(STEP_CHILD_START);
        setup_process(srv, spec, errpipe, plan);
        /* The caller's directory, while its fd is at hand: the fd map
         * closes it. */
        if (spec->has_cwd_fd && fchdir(fds[spec->cwd_fd]) < 0)
                fail(errpipe, CHILD_STAGE_CHDIR, errno);
        if (spec->controlling_terminal)
                setup_terminal(spec, fds, errpipe, plan);

        int resultfd = plan->call ? plan->result_fd : -1;
        if ((r = arrange_fds(spec, fds, nfds, &errpipe, &resultfd)) < 0)
                fail(errpipe, CHILD_STAGE_FDS, -r);
        /* The limit the server was started with, once the fds are in place:
         * the moves may need numbers above it. */
        setrlimit(RLIMIT_NOFILE, &srv->launch.orig_nofile);

        bool nnp = become_client(spec, errpipe, plan);
        set_pdeathsig(spec, errpipe, plan);

        /* A signal sent to the job from now on must reach it. */
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);

        if ((spec->no_new_privs || nnp) && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                fail(errpipe, CHILD_STAGE_SECCOMP, errno);
        if (plan->call)
                run_call(srv, spec, errpipe, resultfd, plan);
        /* Filters stack, and the kernel takes the strictest answer of all:
         * the client's can add to the administrator's, never loosen it. */
        if ((plan->admin && (r = policy_apply(plan->admin)) < 0) ||
            (plan->policy && (r = policy_apply(plan->policy)) < 0))
                fail(errpipe, CHILD_STAGE_SECCOMP, -r);
        steps_mark(STEP_CHILD_READY);
        r = exec_search(spec->path, (char *const *)spec->argv,
                        (char *const *)spec->envp);
        fail(errpipe, CHILD_STAGE_EXEC, r);
}
