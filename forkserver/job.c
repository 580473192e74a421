/*
 * job.c: the life of a job in the server.
 *
 *   spawn request -> fork -> JOB_STARTING
 *   exec pipe EOF           -> JOB_RUNNING, reply "spawned"
 *   exec pipe carries errno -> JOB_FAILED,  reply "error" (never an exit)
 *   pidfd readable          -> reap with wait4, reply "exited" (RUNNING only)
 *
 * Where pidfds are not available (kernels before 5.3, valgrind), children
 * are tracked by pid instead: SIGCHLD arrives on the server's signalfd and
 * wait4(-1) names each child that ended, found in a pid-keyed map. Either
 * way no event scans all jobs, and a child is signalled only while it is
 * unreaped, so its pid cannot have been reused.
 *
 * Both events can arrive in one epoll batch in either order; the pidfd
 * handler resolves the exec pipe first, so "spawned" always precedes
 * "exited". Every forked child is reaped exactly once, here.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../launcher/fdutil.h"
#include "policy.h"
#include "server.h"
#include "steps.h"

/* A job is on its client's list exactly while j->client is set, so a job
 * that never had one (or lost it) is never unlinked. */
static void link_client(struct job *j, struct client *c) {
        c->njobs++;
        j->client = c;
        mps__list_push_front(&c->jobs, &j->cnode);
}

static void unlink_client(struct job *j) {
        struct client *c = j->client;
        if (!c)
                return;
        mps__list_remove(&j->cnode);
        j->client = NULL;
        c->njobs--;
}

void job_free(struct job *j) {
        free(j->waiters);
        free(j->command);
        free(j->name);
        free(j->path);
        free(j->cwd);
        free(j);
}

static int kill_leader(struct job *j, int sig) {
        int r = j->pidfd >= 0 ? pidfd_send_signal(j->pidfd, sig, NULL, 0)
                              : kill(j->pid, sig);
        return r < 0 ? -errno : 0;
}

/* The job leads process group j->pid (child_run makes it so) and is not
 * reaped yet, so that group cannot be anyone else's. */
int job_kill_group(struct job *j, int sig) {
        if (kill(-j->pid, sig) == 0)
                return 0;
        /* The leader left its group (setsid, setpgid): reach it at least. */
        return kill_leader(j, sig);
}

int job_kill(struct job *j, int sig) {
        return j->kill_tree ? job_kill_group(j, sig) : kill_leader(j, sig);
}

static char *strdup_or_null(const char *s) {
        return s ? strdup(s) : NULL;
}

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

/* A pidfd of ours, moved to srv->pidfd_floor or above (see server.h),
 * where no clone copies it; where it was when that cannot be done. */
int job_pidfd_high(const struct server *srv, int pidfd) {
        int high = mps__fd_move_at_least(pidfd, srv->pidfd_floor);
        return high >= 0 ? high : pidfd;
}

/* argv joined by spaces, cut at COMMAND_MAX bytes: what ps shows. */
static char *command_line(const struct mps__spawn *sp) {
        char *cmd = malloc(COMMAND_MAX + 1);
        size_t n = 0;
        if (!cmd)
                return NULL;
        if (sp->call_entry) {
                snprintf(cmd, COMMAND_MAX + 1, "call %s", sp->call_entry);
                return cmd;
        }
        for (size_t i = 0; i < sp->argc && n < COMMAND_MAX; i++) {
                if (i > 0)
                        cmd[n++] = ' ';
                for (const char *a = sp->argv[i]; *a && n < COMMAND_MAX; a++)
                        cmd[n++] = *a;
        }
        /* Never cut inside a UTF-8 sequence: drop a partial one. */
        if (n == COMMAND_MAX) {
                size_t k = n;
                while (k > 0 && ((unsigned char)cmd[k - 1] & 0xC0) == 0x80)
                        k--;
                if (k > 0 && ((unsigned char)cmd[k - 1] & 0x80)) {
                        unsigned char lead = (unsigned char)cmd[k - 1];
                        size_t len = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
                        if (n - (k - 1) < len)
                                n = k - 1;
                }
        }
        cmd[n] = '\0';
        return cmd;
}

static void resolve_exec(struct job *j);

static void on_pidfd_watch(struct watch *w, uint32_t events) {
        (void)events;
        job_on_exit(w->data);
}

static void on_execpipe_watch(struct watch *w, uint32_t events) {
        (void)events;
        job_on_execpipe(w->data);
}

void job_spawn(struct client *c, struct mps__msg *msg) {
        struct server *srv = c->srv;
        struct mps__spawn sp;
        char err[256];
        int pipefd[2] = {-1, -1};
        struct job *j = NULL;
        struct child_call call = {0}, *callp = NULL;
        char *args_text = NULL;
        int r;

        steps_mark(STEP_RECEIVED);
        r = mps__spawn_decode(msg->json, msg->nfds, &sp, err, sizeof(err));
        if (r < 0) {
                log_warn("client %llu (pid %d): bad spawn request: %s",
                         (unsigned long long)c->serial, (int)c->pid, err);
                client_send_error(c, msg->tag, -r, "request", "bad spawn request: %s",
                                  err);
                return;
        }
        if (srv->stopping) {
                client_send_error(c, sp.tag, ESHUTDOWN, "request",
                                  "the server is shutting down");
                goto out;
        }
        if (srv->jobs.count >= srv->max_children) {
                client_send_error(c, sp.tag, EAGAIN, "request",
                                  "the server runs its maximum of %u jobs; try again later",
                                  srv->max_children);
                goto out;
        }
        if (c->njobs >= srv->max_jobs_per_client) {
                client_send_error(c, sp.tag, EAGAIN, "request",
                                  "too many jobs in flight: this connection has %u, the "
                                  "server allows %u (max_jobs_per_client); wait for one "
                                  "to end",
                                  c->njobs, srv->max_jobs_per_client);
                goto out;
        }

        if (sp.call_entry) {
                const struct mps_entry *e = preload_find(srv, sp.call_entry);
                if (!e) {
                        client_send_error(c, sp.tag, ENOENT, "call",
                                          "no entry point '%s' is preloaded in this server",
                                          sp.call_entry);
                        goto out;
                }
                args_text = sp.call_args ? cJSON_PrintUnformatted(sp.call_args) : NULL;
                if (sp.call_args && !args_text) {
                        client_send_error(c, sp.tag, ENOMEM, "request", "out of memory");
                        goto out;
                }
                call = (struct child_call){e->fn, e->name, args_text ? args_text : "null"};
                callp = &call;
        }
        const struct policy *policy = NULL;
        if (sp.seccomp_text) {
                bool hit;
                const char *name = sp.seccomp_name ? sp.seccomp_name : "policy";
                r = policy_cache_get(srv->policies, sp.seccomp_text, strlen(sp.seccomp_text),
                                     name, &policy, &hit, err, sizeof(err));
                if (r < 0) {
                        log_info("client %llu: policy refused: %s",
                                 (unsigned long long)c->serial, err);
                        client_send_error(c, sp.tag, -r, "policy", "%s", err);
                        goto out;
                }
        }
        struct child_plan plan = {
                .call = callp,
                .admin = srv->admin_policy,
                .policy = policy,
                .creds = c->creds,
                .server_pid = srv->pid,
        };

        j = calloc(1, sizeof(*j));
        if (!j || !(j->path = strdup(sp.path ? sp.path : sp.call_entry)) ||
            !(j->command = command_line(&sp)) ||
            (sp.name && !(j->name = strdup(sp.name))) ||
            (sp.cwd && !(j->cwd = strdup_or_null(sp.cwd)))) {
                client_send_error(c, sp.tag, ENOMEM, "request", "out of memory");
                goto out;
        }
        j->srv = srv;
        j->tag = sp.tag;
        j->uid = c->uid;
        j->want_pidfd = sp.want_pidfd;
        j->detached = sp.detached;
        j->kill_tree = sp.kill_tree;
        j->daemon = sp.daemon && !sp.detached;
        j->kill_after = sp.kill_after;
        j->timeout_ns = sp.timeout > 0 ? (uint64_t)(sp.timeout * 1e9) : 0;
        j->request_ns = msg->received_ns;
        j->pidfd = j->execpipe = -1;
        j->heap_index = SIZE_MAX;
        j->pidfd_watch = (struct watch){.fn = on_pidfd_watch, .data = j};
        j->execpipe_watch = (struct watch){.fn = on_execpipe_watch, .data = j};

        if (pipe2(pipefd, O_CLOEXEC) < 0) {
                srv->jobs_failed++;
                client_send_error(c, sp.tag, errno, "fork",
                                  "cannot create the exec pipe: %m");
                goto out;
        }
        j->start_ns = mps__now_ns();
        pid_t pid = -1;
        int fork_errno = 0;
        /* A call job takes a pre-forked child, when one waits, and skips
         * the fork. Exec jobs do not: the vfork below is cheaper than a
         * child decoding the request itself (make bench: 1.0 ms against
         * 1.4 ms). Nor do jobs that need the client's credentials or a
         * compiled filter, which a child forked earlier does not have. */
        bool take = callp && srv->use_pidfd && !policy && !c->creds &&
                    msg->nfds < MPS_WIRE_FDS_MAX; /* room for the exec pipe */
        struct prefork *pf = take ? prefork_take(srv) : NULL;
        if (pf && prefork_hand_over(pf, msg, pipefd[1]) < 0) {
                prefork_discard(pf);
                pf = NULL;
        }
        bool exec_done = false; /* the child has exec'ed or failed already */
        if (pf) {
                pid = pf->pid;
                j->pidfd = pf->pidfd;
                pf->pidfd = -1;
                prefork_retire(pf);
        } else if (USE_VFORK && !callp && srv->use_pidfd) {
                struct vfork_args a = {srv, &sp, msg->fds, msg->nfds, pipefd[1], &plan};
                int flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD;
                int pidfd = -1;
                if (srv->unshare_fds) {
                        flags |= CLONE_FILES;
                        plan.unshare_fds_below = highest_fd(msg->fds, msg->nfds, pipefd[1]) + 1;
                }
                pid = clone(vfork_child, vfork_stack + VFORK_STACK_SIZE, flags, &a, &pidfd);
                fork_errno = errno;
                plan.unshare_fds_below = 0;
                if (pid > 0) {
                        j->pidfd = job_pidfd_high(srv, pidfd);
                        exec_done = true;
                }
        }
        /* The clone needs a descriptor more at once (its pidfd, while the
         * pipe is open); at the fd limit, fork, which opens it later. */
        if (!pf && pid < 0 && (!USE_VFORK || callp || !srv->use_pidfd ||
                               fork_errno == EMFILE || fork_errno == ENFILE)) {
                pid = fork();
                if (pid == 0)
                        child_run(srv, &sp, msg->fds, msg->nfds, pipefd[1], &plan);
                fork_errno = errno;
        }
        steps_mark(STEP_FORKED);
        pipefd[1] = mps__safe_close(pipefd[1]);
        if (pid < 0) {
                srv->jobs_failed++;
                log_warn("fork for client %llu failed: %s",
                         (unsigned long long)c->serial, strerror(fork_errno));
                client_send_error(c, sp.tag, fork_errno, "fork", "cannot fork: %s",
                                  strerror(fork_errno));
                goto out;
        }
        j->pid = pid;
        /* The child is ours and unreaped, so its pid cannot be reused before
         * pidfd_open: the pidfd refers to exactly this child. */
        if (srv->use_pidfd && j->pidfd < 0)
                j->pidfd = job_pidfd_high(srv, pidfd_open(pid, 0));
        if (srv->use_pidfd && j->pidfd < 0) {
                int e = errno;
                kill(pid, SIGKILL);
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                srv->jobs_failed++;
                client_send_error(c, sp.tag, e, "fork", "cannot track the child: %s",
                                  strerror(e));
                goto out;
        }
        j->execpipe = pipefd[0];
        pipefd[0] = -1;
        j->id = ++srv->next_job_id;
        if ((r = mps__idmap_put(&srv->jobs, j->id, j)) < 0 ||
            /* A pre-forked child's pidfd is watched already: re-point it. */
            (r = j->pidfd < 0 ? mps__idmap_put(&srv->jobs_by_pid, (uint64_t)pid, j)
                 : pf         ? loop_mod(srv, j->pidfd, EPOLLIN, &j->pidfd_watch)
                              : loop_add(srv, j->pidfd, EPOLLIN, &j->pidfd_watch)) < 0 ||
            (!exec_done &&
             (r = loop_add(srv, j->execpipe, EPOLLIN, &j->execpipe_watch)) < 0)) {
                /* Cannot track it: do not let it run untracked. */
                job_kill(j, SIGKILL);
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                mps__idmap_remove(&srv->jobs, j->id);
                mps__idmap_remove(&srv->jobs_by_pid, (uint64_t)pid);
                loop_del(srv, j->pidfd);
                loop_del(srv, j->execpipe);
                mps__safe_close(j->pidfd);
                mps__safe_close(j->execpipe);
                srv->jobs_failed++;
                client_send_error(c, sp.tag, -r, "fork", "cannot track the child: %s",
                                  strerror(-r));
                goto out;
        }
        j->state = JOB_STARTING;
        j->execpipe_watched = !exec_done;
        if (j->timeout_ns > 0) {
                j->timer = TIMER_TIMEOUT;
                if (timer_arm(srv, j, j->start_ns + j->timeout_ns) < 0)
                        log_err("job %llu: cannot arm its timeout",
                                (unsigned long long)j->id);
        }
        link_client(j, c);
        if (j->daemon)
                srv->ndaemon_alive++;
        /* A vforked child is past exec (or failed) already: answer now. */
        if (exec_done)
                resolve_exec(j);
        j = NULL; /* owned by the server now */
out:
        mps__safe_close(pipefd[0]);
        mps__safe_close(pipefd[1]);
        if (j)
                job_free(j);
        cJSON_free(args_text);
        mps__spawn_done(&sp);
}

/* Reads the exec pipe once the child has exec'ed, failed or died. */
static void resolve_exec(struct job *j) {
        struct server *srv = j->srv;
        struct child_failure f;
        steps_mark(STEP_PIPE);
        ssize_t n = mps__read_retry(j->execpipe, &f, sizeof(f));
        if (j->execpipe_watched)
                loop_del(srv, j->execpipe);
        j->execpipe = mps__safe_close(j->execpipe);

        if (n == (ssize_t)sizeof(f)) {
                j->state = JOB_FAILED;
                srv->jobs_failed++;
                const char *what = j->path;
                if (f.stage == CHILD_STAGE_CHDIR && j->cwd)
                        what = j->cwd;
                log_info("job %llu: %s '%s' failed: %s", (unsigned long long)j->id,
                         child_stage_name(f.stage), what, strerror(f.err));
                if (j->client) {
                        if (f.stage == CHILD_STAGE_EXEC)
                                client_send_error(j->client, j->tag, f.err, "exec",
                                                  "cannot execute '%s': %s", what,
                                                  strerror(f.err));
                        else if (f.stage == CHILD_STAGE_CHDIR)
                                client_send_error(j->client, j->tag, f.err, "chdir",
                                                  "cannot change directory to '%s': %s",
                                                  what, strerror(f.err));
                        else
                                client_send_error(j->client, j->tag, f.err,
                                                  child_stage_name(f.stage),
                                                  "cannot set up the job (%s): %s",
                                                  child_stage_name(f.stage),
                                                  strerror(f.err));
                }
                return;
        }
        /* EOF (n == 0): exec succeeded (the CLOEXEC write end closed), or the
         * child died before it could say anything; its exit will tell. */
        j->state = JOB_RUNNING;
        srv->jobs_started++;
        srv->latency[srv->latency_count++ % LATENCY_SAMPLES] =
                (double)(mps__now_ns() - j->request_ns) / 1e9;
        log_info("job %llu: pid %d started '%s' for uid %u", (unsigned long long)j->id,
                 (int)j->pid, j->path, (unsigned)j->uid);
        if (j->client) {
                bool send_pidfd = j->want_pidfd && j->pidfd >= 0;
                struct mps__spawned s = {.tag = j->tag, .id = j->id, .pid = j->pid,
                                         .has_pidfd = send_pidfd};
                steps_mark(STEP_SPAWNED);
                client_send(j->client, mps__spawned_encode(&s),
                            send_pidfd ? j->pidfd : -1);
        }
        /* A detached job belongs to no connection from now on: its exit is
         * kept for a wait, and no disconnect ends it. */
        if (j->detached)
                unlink_client(j);
}

void job_on_execpipe(struct job *j) {
        if (j->dead || j->execpipe < 0)
                return;
        resolve_exec(j);
}

static double tv_seconds(struct timeval tv) {
        return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* The job's child has been reaped with this status: report and forget. */
static void job_finish(struct job *j, int status, const struct rusage *rup) {
        struct server *srv = j->srv;
        struct rusage ru = *rup;

        steps_mark(STEP_EXIT_SEEN);
        if (j->execpipe >= 0)
                resolve_exec(j);

        struct mps__exited e = {
                .tag = j->tag,
                .id = j->id,
                .pid = j->pid,
                .exitcode = WIFSIGNALED(status) ? -WTERMSIG(status)
                                                : WEXITSTATUS(status),
                .core_dumped = WIFSIGNALED(status) && WCOREDUMP(status),
                .utime = tv_seconds(ru.ru_utime),
                .stime = tv_seconds(ru.ru_stime),
                .maxrss_kib = ru.ru_maxrss,
                .wall = (double)(mps__now_ns() - j->start_ns) / 1e9,
                .timed_out = j->timed_out,
        };

        /* Take the job out of every index before talking to the client: a
         * failed send drops the client, which walks its job list. */
        struct client *c = j->client;
        unlink_client(j);
        timer_disarm(srv, j);
        mps__idmap_remove(&srv->jobs, j->id);
        if (j->pidfd >= 0)
                loop_del(srv, j->pidfd);
        else
                mps__idmap_remove(&srv->jobs_by_pid, (uint64_t)j->pid);
        j->pidfd = mps__safe_close(j->pidfd);
        if (j->daemon)
                srv->ndaemon_alive--;
        j->dead = true;
        j->gnext = srv->dead_jobs;
        srv->dead_jobs = j;

        if (j->state != JOB_RUNNING) {
                /* It never started: whoever waits for it hears so. */
                for (size_t i = 0; i < j->nwaiters; i++) {
                        struct client *w = mps__idmap_get(&srv->clients_by_serial,
                                                          j->waiters[i].client_serial);
                        if (w && !w->dead)
                                client_send_error(w, j->waiters[i].tag, ESRCH, "request",
                                                  "job %llu did not start",
                                                  (unsigned long long)j->id);
                }
                return;
        }
        if (e.exitcode == 0)
                srv->exits_zero++;
        else if (e.exitcode > 0)
                srv->exits_nonzero++;
        else
                srv->exits_signaled++;
        if (e.timed_out)
                srv->exits_timed_out++;
        if (e.exitcode >= 0)
                log_info("job %llu: pid %d exited with status %d%s", (unsigned long long)j->id,
                         (int)j->pid, e.exitcode, e.timed_out ? " (timed out)" : "");
        else
                log_info("job %llu: pid %d killed by SIG%s%s%s", (unsigned long long)j->id,
                         (int)j->pid,
                         sigabbrev_np(-e.exitcode) ? sigabbrev_np(-e.exitcode) : "?",
                         e.core_dumped ? " (core dumped)" : "",
                         e.timed_out ? " (timed out)" : "");

        /* Every waiter, then the job's own client, gets the record with its
         * own tag. With nobody to tell, it is kept for a later wait. */
        bool told = false;
        for (size_t i = 0; i < j->nwaiters; i++) {
                struct client *w = mps__idmap_get(&srv->clients_by_serial,
                                                  j->waiters[i].client_serial);
                if (!w || w->dead)
                        continue;
                struct mps__exited we = e;
                we.tag = j->waiters[i].tag;
                client_send(w, mps__exited_encode(&we), -1);
                told = true;
        }
        if (c && !c->dead) {
                steps_mark(STEP_EXITED);
                client_send(c, mps__exited_encode(&e), -1);
                told = true;
        }
        if (!told)
                retain_add(srv, j, &e);
        steps_report();
}

void job_on_exit(struct job *j) {
        struct rusage ru;
        int status;
        pid_t r;

        if (j->dead)
                return;
        /* The leader is a zombie and still holds its group: end what it
         * left behind in it (sh -c 'a | b &') before reaping frees the id. */
        if (j->kill_tree)
                kill(-j->pid, SIGKILL);
        do
                r = wait4(j->pid, &status, WNOHANG, &ru);
        while (r < 0 && errno == EINTR);
        if (r == 0)
                return; /* not yet: spurious wake-up */
        if (r < 0) {
                /* Cannot happen for our own unreaped child; do not spin. */
                log_err("wait4(%d): %m", (int)j->pid);
                memset(&ru, 0, sizeof(ru));
                status = 0;
        }
        job_finish(j, status, &ru);
}

void job_reap_any(struct server *srv) {
        for (;;) {
                /* Which child ended, without reaping it yet: a kill_tree
                 * leader's group is killed first, as job_on_exit does. */
                siginfo_t si = {0};
                if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
                        if (errno == EINTR)
                                continue;
                        return; /* no children */
                }
                if (si.si_pid == 0)
                        return; /* none left to reap now */
                pid_t pid = si.si_pid;
                struct job *j = mps__idmap_get(&srv->jobs_by_pid, (uint64_t)pid);
                if (j && j->kill_tree)
                        kill(-pid, SIGKILL);
                struct rusage ru;
                int status;
                pid_t r;
                do
                        r = wait4(pid, &status, WNOHANG, &ru);
                while (r < 0 && errno == EINTR);
                if (r <= 0)
                        return; /* cannot happen for the child waitid named */
                if (j)
                        job_finish(j, status, &ru);
        }
}

/* Ends a daemon job by policy: SIGTERM, then SIGKILL when the grace period
 * runs out (or at once when the server is told to stop now). */
void job_stop_daemon(struct job *j) {
        struct server *srv = j->srv;
        if (!j->daemon || j->dead)
                return;
        if (srv->stop_now) {
                job_kill(j, SIGKILL);
                return;
        }
        if (j->timer == TIMER_KILL)
                return; /* SIGTERM sent already; SIGKILL is on its way */
        j->timer = TIMER_KILL;
        log_info("job %llu: pid %d: ending daemon job (SIGTERM, SIGKILL in %u.%03u s)",
                 (unsigned long long)j->id, (int)j->pid, srv->grace_ms / 1000,
                 srv->grace_ms % 1000);
        job_kill(j, SIGTERM);
        if (timer_arm(srv, j, mps__now_ns() + (uint64_t)srv->grace_ms * 1000000u) < 0)
                job_kill(j, SIGKILL);
}

void job_client_gone(struct job *j) {
        unlink_client(j);
        job_stop_daemon(j);
}

void job_on_deadline(struct job *j) {
        struct server *srv = j->srv;
        if (j->dead)
                return;
        switch (j->timer) {
        case TIMER_TIMEOUT:
                /* As timeout(1): SIGTERM now, SIGKILL after kill_after. */
                log_info("job %llu: pid %d timed out; sending SIGTERM",
                         (unsigned long long)j->id, (int)j->pid);
                j->timed_out = true;
                j->timer = TIMER_KILL;
                job_kill(j, SIGTERM);
                if (timer_arm(srv, j, mps__now_ns() + (uint64_t)(j->kill_after * 1e9)) < 0)
                        job_kill(j, SIGKILL);
                break;
        case TIMER_KILL:
                log_info("job %llu: pid %d still alive after SIGTERM; sending SIGKILL",
                         (unsigned long long)j->id, (int)j->pid);
                j->timer = TIMER_NONE;
                job_kill(j, SIGKILL);
                break;
        case TIMER_NONE:
                break;
        }
}

static void release_job(uint64_t id, void *value, void *data) {
        struct job *j = value;
        (void)id;
        (void)data;
        mps__safe_close(j->pidfd);
        mps__safe_close(j->execpipe);
        job_free(j);
}

/* At exit: jobs still running are left to run (they are reparented); only
 * our records of them go. */
void job_release_all(struct server *srv) {
        mps__idmap_foreach(&srv->jobs, release_job, NULL);
        mps__idmap_free(&srv->jobs);
        mps__idmap_free(&srv->jobs_by_pid);
}
