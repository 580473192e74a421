/* SPDX-License-Identifier: MIT */
/*
 * server.c: the server's life. Start-up in its order (signals, the child
 * environment, preloads, the event sources, the socket, the policies,
 * pre-forked children), the signals, the stop, and teardown; and what the
 * loop does between event batches: deferred frees, the stop request, pre-fork
 * refills, idle exit and the service status.
 *
 * A stop is only ever requested inside an event handler (a signal, idle
 * exit, the last connection of an embedded server gone) and carried out
 * after the batch, so that no handler runs while the server is half-way
 * into stopping.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/pidfd.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../launcher/fdutil.h"
#include "config.h"
#include "policy.h"
#include "server.h"
#include "steps.h"

/* ---- signals -------------------------------------------------------------------------- */

/* The settings a reload changed that the server keeps copies of. */
static void apply_settings(struct server *srv, const struct config *cfg) {
        log_max_level = (enum log_level)cfg->log_level;
        srv->life.grace_ms = cfg->grace_ms;
        srv->quota.max_children = cfg->max_children;
        srv->quota.max_jobs_per_client = config_max_jobs_per_client(cfg);
}

/*
 * SIGHUP: the configuration is read again as at start (the file, then the
 * options that set keys), and what can change at run time takes effect at
 * once (config_reload_into says which); connections and jobs already there
 * keep going. A file that no longer reads is logged and changes nothing.
 */
static void reload(struct server *srv) {
        const struct server_options *o = srv->life.opts;
        struct config fresh;
        char err[1024], restart[256];
        if (!o->reload) {
                log_info("received SIGHUP; no configuration file to reload");
                return;
        }
        config_init(&fresh);
        int r = o->reload(o->reload_data, &fresh, err, sizeof(err));
        if (r < 0) {
                log_err("reload: %s; keeping the running configuration", err);
                config_free(&fresh);
                return;
        }
        config_reload_into(srv->life.cfg, &fresh, restart, sizeof(restart));
        config_free(&fresh);
        apply_settings(srv, srv->life.cfg);
        log_info("received SIGHUP; reloaded %s", srv->life.cfg->file ? srv->life.cfg->file
                                                                     : "the configuration");
        if (restart[0])
                log_warn("reload: %s changed, which takes effect only at a restart", restart);
}

/* SIGCHLD reaps (without pidfds); SIGHUP reloads the configuration;
 * SIGTERM and SIGINT ask for a stop, and a second one (even within one
 * batch) for a stop that does not wait. */
static void on_signal(struct watch *w, uint32_t events) {
        struct server *srv = w->data;
        (void)events;
        struct signalfd_siginfo si;
        ssize_t n;
        while ((n = mps__read_retry(srv->life.signal_fd, &si, sizeof(si))) == sizeof(si)) {
                if (si.ssi_signo == SIGCHLD) {
                        job_reap_any(srv);
                        continue;
                }
                if (si.ssi_signo == SIGHUP) {
                        reload(srv);
                        continue;
                }
                log_info("received SIG%s, stopping", sigabbrev_np((int)si.ssi_signo));
                if (srv->life.stopping || srv->life.stop_requested)
                        srv->life.stop_now = true;
                srv->life.stop_requested = true;
        }
}

/*
 * The kernel's struct sigaction for rt_sigaction(2), on the architectures
 * whose layout is the generic one (not alpha, mips, sparc: there glibc's
 * sigaction is used, and 32/33 stay as inherited).
 */
struct kernel_sigaction {
        void (*handler)(int);
        unsigned long flags;
        void (*restorer)(void);
        unsigned long mask;
};

/*
 * Every disposition back to SIG_DFL through the raw system call: glibc's
 * sigaction refuses its own signals (32 and 33, which its posix_spawn
 * leaves ignored in the program it starts, as libmpspawn starts an
 * embedded server), and an ignored signal stays ignored across every
 * fork and exec down to the jobs.
 */
static void reset_all_dispositions(void) {
#if defined(__alpha__) || defined(__mips__) || defined(__sparc__)
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigemptyset(&dfl.sa_mask);
        for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        sigaction(sig, &dfl, NULL); /* EINVAL for libc's own */
#else
        struct kernel_sigaction dfl = {.handler = SIG_DFL};
        for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        (void)syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(dfl.mask));
#endif
}

/*
 * Whatever dispositions we were started with (a nohup'ed shell ignores
 * SIGHUP), jobs must start from the defaults: set them all here once, so
 * that a child has only SIGPIPE to reset. Then blocks what the signalfd
 * takes: SIGTERM, SIGINT, SIGHUP, and SIGCHLD when there are no pidfds.
 */
static void setup_signals(struct server *srv, sigset_t *ret_mask) {
        reset_all_dispositions();
        signal(SIGPIPE, SIG_IGN);
        sigemptyset(ret_mask);
        sigaddset(ret_mask, SIGTERM);
        sigaddset(ret_mask, SIGINT);
        sigaddset(ret_mask, SIGHUP);

        /* pidfds when the kernel (or valgrind) has them, else SIGCHLD. */
        int probe = pidfd_open(getpid(), 0);
        srv->launch.use_pidfd = probe >= 0;
        mps__safe_close(probe);
        /* The test suite runs once more on the fallback path. */
        const char *force = getenv("MPSPAWN_SERVER_NO_PIDFD");
        if (force && strcmp(force, "1") == 0 && srv->launch.use_pidfd) {
                srv->launch.use_pidfd = false;
                errno = ENOSYS;
        }
        if (!srv->launch.use_pidfd) {
                log_warn("pidfd_open: %m; tracking children with SIGCHLD instead");
                sigaddset(ret_mask, SIGCHLD);
        }
        sigprocmask(SIG_BLOCK, ret_mask, NULL);
}

/* What a child must set back to default: SIGPIPE (ignored above), and any
 * disposition a preloaded library changed. */
static void note_child_reset(struct server *srv) {
        sigemptyset(&srv->launch.child_reset);
        for (int sig = 1; sig < NSIG; sig++) {
                struct sigaction now;
                if (sig != SIGKILL && sig != SIGSTOP && sigaction(sig, NULL, &now) == 0 &&
                    now.sa_handler != SIG_DFL)
                        sigaddset(&srv->launch.child_reset, sig);
        }
}

/* ---- start-up ------------------------------------------------------------------------- */

/*
 * A server started from a terminal lets go of it before anything else, so
 * that no job, whatever its session, can reach it through /dev/tty
 * (TIOCSTI into the shell that started us, tcsetpgrp). A session leader
 * letting go sends SIGHUP (and SIGCONT) to the terminal's foreground group,
 * which may be ours: SIGHUP is ignored, and unblocked so that it is
 * discarded rather than kept pending, meanwhile.
 */
static void leave_terminal(void) {
        int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return; /* ENXIO: we have no controlling terminal */
        struct sigaction ign = {.sa_handler = SIG_IGN}, old;
        sigset_t hup, mask;
        sigemptyset(&ign.sa_mask);
        sigemptyset(&hup);
        sigaddset(&hup, SIGHUP);
        sigaction(SIGHUP, &ign, &old);
        sigprocmask(SIG_UNBLOCK, &hup, &mask);
        if (ioctl(fd, TIOCNOTTY) < 0)
                log_warn("cannot let go of the controlling terminal: %m");
        sigprocmask(SIG_SETMASK, &mask, NULL);
        sigaction(SIGHUP, &old, NULL);
        mps__safe_close(fd);
}

/* Leaves the parent that started us (libmpspawn), so that it never has a
 * zombie to reap: the parent waits for this first process only. */
static int detach_from_parent(void) {
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid > 0)
                _exit(0);
        if (setsid() < 0)
                return -errno;
        return 0;
}

/* Embedded Python first (python_preload), then the configuration's
 * libraries, then the command line's. */
static int load_preloads(struct server *srv, const struct server_options *o) {
        const struct config *cfg = srv->cfg;
        char err[1024];
        int rp = python_preload_load(srv, err, sizeof(err));
        if (rp < 0) {
                log_err("%s", err);
                return rp;
        }
        for (size_t i = 0; i < cfg->n_preload + o->npreload; i++) {
                const char *lib = i < cfg->n_preload ? cfg->preload[i]
                                                     : o->preload[i - cfg->n_preload];
                int r = preload_load(srv, lib, err, sizeof(err));
                if (r < 0) {
                        log_err("%s", err);
                        return r;
                }
        }
        return 0;
}

/* Many pidfds may be open at once: take the hard limit, and give children
 * back the limit we were started with. */
static void raise_fd_limit(struct server *srv) {
        getrlimit(RLIMIT_NOFILE, &srv->launch.orig_nofile);
        struct rlimit raised = srv->launch.orig_nofile;
        raised.rlim_cur = raised.rlim_max;
        setrlimit(RLIMIT_NOFILE, &raised);
        /* On a table not shared this unshares nothing and closes nothing:
         * it only asks whether the kernel knows the flag. */
        srv->launch.unshare_fds = close_range(~0u, ~0u, CLOSE_RANGE_UNSHARE) == 0;
        /* Room for 1,024 descriptors of our own below the pidfds: the
         * listener, the loop's, clients' sockets, fds in transit. */
        getrlimit(RLIMIT_NOFILE, &raised);
        srv->launch.pidfd_floor = srv->launch.unshare_fds && raised.rlim_cur >= 4096 ? 1024 : 0;
}

/* The epoll set, the signalfd, the timerfd and the spare descriptor, in
 * that order, with the signal and timer watches registered. */
static int open_event_sources(struct server *srv, const sigset_t *mask) {
        int r = loop_open(srv);
        srv->life.signal_fd = signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (srv->life.signal_fd < 0 && r == 0)
                r = -errno;
        int rt = timer_open(srv, job_on_deadline);
        if (r == 0)
                r = rt;
        /* Without a spare, accept only cannot shed connections at EMFILE. */
        (void)listen_init(srv);
        srv->life.signal_watch = (struct watch){.fn = on_signal, .data = srv};
        if (r == 0 &&
            (r = loop_add(srv, srv->life.signal_fd, EPOLLIN, &srv->life.signal_watch)) == 0)
                r = loop_add(srv, srv->timers.fd, EPOLLIN, &srv->timers.watch);
        if (r < 0)
                log_err("cannot set up the event loop: %s", strerror(-r));
        return r;
}

/* --embedded FD: the first connection we serve; the host may hand us more
 * through it (adopt). */
static int start_embedded(struct server *srv, int fd) {
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ||
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
            client_new(srv, fd) < 0) {
                log_err("--embedded %d: not a usable connection", fd);
                return -EBADF;
        }
        return 0;
}

/* default_seccomp_policy: compiled once at start; every job loads it
 * before its own policy, if any. */
static int load_admin_policy(const char *path, struct policy **ret, char *err,
                             size_t errlen) {
        char *text;
        size_t n;
        int r = mps__read_file(path, POLICY_TEXT_MAX, &text, &n);
        if (r < 0) {
                snprintf(err, errlen, "default_seccomp_policy: cannot read '%s': %s", path,
                         r == -EFBIG ? "longer than 64 KiB" : strerror(-r));
                return r;
        }
        const char *base = strrchr(path, '/');
        r = policy_compile(text, n, base ? base + 1 : path, ret, err, errlen);
        free(text);
        if (r == 0)
                log_info("default_seccomp_policy %s: %zu instructions, applied to every job",
                         path, policy_instructions(*ret));
        return r;
}

int server_check_policy(const struct config *cfg, char *err, size_t errlen) {
        struct policy *p = NULL;
        if (!cfg->default_seccomp_policy)
                return 0;
        int r = load_admin_policy(cfg->default_seccomp_policy, &p, err, errlen);
        policy_free(p);
        return r;
}

static int load_policies(struct server *srv) {
        const char *path = srv->cfg->default_seccomp_policy;
        char err[1024];
        srv->policy.cache = calloc(1, sizeof(*srv->policy.cache));
        if (!srv->policy.cache) {
                log_err("out of memory");
                return -ENOMEM;
        }
        if (!path)
                return 0;
        int r = load_admin_policy(path, &srv->policy.admin, err, sizeof(err));
        if (r < 0)
                log_err("%s", err);
        return r;
}

/* Everything up to the point where the loop may run: 0, or the exit
 * status (1, or 2 when no socket was given). */
static int start(struct server *srv, const struct server_options *o, char *where,
                 size_t wherelen) {
        const struct config *cfg = srv->cfg;
        char err[1024];
        sigset_t mask;
        int r;

        apply_settings(srv, cfg);
        srv->life.start_ns = mps__now_ns();
        leave_terminal();
        setup_signals(srv, &mask);
        /* Jobs and preloads' children must not hold the starter's pipe: its
         * end of file is how the starter learns that we failed. */
        if (o->ready_fd >= 0 && fcntl(o->ready_fd, F_SETFD, FD_CLOEXEC) < 0) {
                log_err("--ready-fd %d: %s", o->ready_fd, strerror(errno));
                return 1;
        }
        if (o->embedded_fd >= 0 || o->detach) {
                if ((r = detach_from_parent()) < 0) {
                        log_err("cannot detach: %s", strerror(-r));
                        return 1;
                }
                srv->life.embedded = o->embedded_fd >= 0;
                /* Our NOTIFY_SOCKET, if any, is the starting program's. */
                unsetenv("NOTIFY_SOCKET");
        }
        srv->life.pid = getpid(); /* after the detach, which changes it */
        closer_install(); /* for this pid only: children close for themselves */
        if (load_preloads(srv, o) < 0)
                return 1;
        note_child_reset(srv);
        raise_fd_limit(srv);
        if (open_event_sources(srv, &mask) < 0)
                return 1;
        if (srv->life.embedded) {
                if (start_embedded(srv, o->embedded_fd) < 0)
                        return 1;
                snprintf(where, wherelen, "an inherited connection");
        } else if ((r = listen_start(srv, where, wherelen, err, sizeof(err))) < 0) {
                if (r != -EDESTADDRREQ) {
                        log_err("%s", err);
                        return 1;
                }
                fprintf(stderr, "mpforkserver: %s\n", err);
                return 2;
        }
        if (load_policies(srv) < 0)
                return 1;
        srv->prefork.target = srv->launch.use_pidfd ? cfg->prefork : 0;
        if (cfg->prefork && !srv->launch.use_pidfd)
                log_warn("prefork needs pidfds; pre-forking is off");
        return 0;
}

/* ---- between batches ------------------------------------------------------------------ */

static void stop_daemon_job(uint64_t id, void *value, void *data) {
        (void)id;
        (void)data;
        job_stop_daemon(value);
}

/*
 * Stopping: accept nothing more, end daemon jobs by the termination policy
 * (SIGTERM now, SIGKILL after the grace period; at once on a second
 * request), and exit once none is left. Other jobs run on.
 */
static void begin_stop(struct server *srv) {
        listen_stop(srv);
        srv->life.stopping = true;
        prefork_release_all(srv);
        mps__idmap_foreach(&srv->jobs.by_id, stop_daemon_job, NULL);
        service_stopping(srv);
}

/* What the batch tore down, now that no event of it can point there. */
static void free_dead(struct server *srv) {
        while (srv->jobs.dead) {
                struct job *j = srv->jobs.dead;
                srv->jobs.dead = j->gnext;
                job_free(j);
        }
        while (srv->clients.dead) {
                struct client *c = srv->clients.dead;
                srv->clients.dead = c->gnext;
                client_free(c);
        }
        while (srv->prefork.dead) {
                struct prefork *p = srv->prefork.dead;
                srv->prefork.dead = p->next;
                free(p);
        }
}

/*
 * Pre-forked children are refilled only when no event waits, one fork per
 * turn, so a refill never delays a job's exec result or exit; the loop
 * does not sleep while some are missing, except after a failed fork
 * (backoff). Otherwise the only timeout is idle exit's (job deadlines have
 * their timerfd).
 */
static int next_timeout_ms(void *data) {
        struct server *srv = data;
        int refill_ms = prefork_wait_ms(srv);
        int timeout_ms = service_timeout_ms(srv);
        if (refill_ms >= 0 && (timeout_ms < 0 || refill_ms < timeout_ms))
                timeout_ms = refill_ms;
        srv->life.refill_due = refill_ms == 0;
        return timeout_ms;
}

static bool after_batch(void *data, int nevents) {
        struct server *srv = data;
        if (nevents == 0 && srv->life.refill_due) {
                prefork_refill(srv, 1);
                return true;
        }
        if (nevents == 0 && service_idle_expired(srv))
                srv->life.stop_requested = true;
        /* An embedded server serves the connections of the process that
         * started it (the first, and those it handed over: adopt.c), and
         * ends with the last of them. */
        if (srv->life.embedded && srv->clients.count == 0 && !srv->life.stopping)
                srv->life.stop_requested = true;
        if (srv->life.stop_requested) {
                srv->life.stop_requested = false;
                begin_stop(srv);
        }
        free_dead(srv);
        service_after_batch(srv);
        return !(srv->life.stopping && srv->jobs.ndaemon_alive == 0);
}

/* --ready-fd: the starter may connect now (the socket listens; the loop
 * accepts as soon as it runs). A line, so that a shell's `read` takes it.
 * A starter gone already is no error. */
static void signal_ready(int fd) {
        if (fd < 0)
                return;
        int r = mps__write_all(fd, "1\n", 2);
        if (r < 0)
                log_debug("--ready-fd %d: %s", fd, strerror(-r));
        mps__safe_close(fd);
}

/* ---- teardown ------------------------------------------------------------------------- */

static void teardown(struct server *srv) {
        listen_close(srv);
        log_debug("exiting: %llu jobs started, %llu failed to start",
                  (unsigned long long)srv->stats.jobs_started,
                  (unsigned long long)srv->stats.jobs_failed);
        client_release_all(srv);
        job_release_all(srv);
        retain_release_all(srv);
        prefork_release_all(srv);
        preload_release_all(srv);
        if (srv->policy.cache)
                policy_cache_free(srv->policy.cache);
        policy_free(srv->policy.admin);
        free(srv->policy.cache);
        timer_close(srv);
        loop_close(srv);
        srv->life.signal_fd = mps__safe_close(srv->life.signal_fd);
}

int server_run(struct config *cfg, const struct server_options *o) {
        static const struct loop_hooks hooks = {next_timeout_ms, after_batch};
        struct server srv = {
                .cfg = cfg,
                .loop.epfd = -1,
                .listen = {.fd = -1, .spare_fd = -1},
                .life = {.signal_fd = -1, .cfg = cfg, .opts = o},
                .timers.fd = -1,
        };
        char where[128];
        mps__list_init(&srv.clients.list);

        int status = start(&srv, o, where, sizeof(where));
        if (status == 0) {
                steps_init(); /* before any child: they must share its page */
                prefork_refill(&srv, srv.prefork.target);
                service_ready(&srv, where);
                signal_ready(o->ready_fd);
                int r = loop_run(&srv, &hooks, &srv);
                if (r < 0)
                        log_err("epoll_wait: %s", strerror(-r));
                status = r < 0 ? 1 : 0;
        }
        teardown(&srv);
        return status;
}
