/* SPDX-License-Identifier: MIT */
/*
 * job.c: the life of a job in the server.
 *
 *   spawn request -> fork -> JOB_STARTING      (spawn.c, up to here)
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../launcher/fdutil.h"
#include "policy.h"
#include "server.h"
#include "steps.h"

/* A job is on its client's list exactly while j->client is set, so a job
 * that never had one (or lost it) is never unlinked. */
unsigned job_uid_count(const struct server *srv, uid_t uid) {
        return (unsigned)(uintptr_t)mps__idmap_get(&srv->jobs.by_uid, (uint64_t)uid + 1);
}

/* The map holds counts as pointers; a count of 0 is no entry. */
static int uid_count_set(struct server *srv, uid_t uid, unsigned n) {
        uint64_t key = (uint64_t)uid + 1;
        mps__idmap_remove(&srv->jobs.by_uid, key);
        return n ? mps__idmap_put(&srv->jobs.by_uid, key, (void *)(uintptr_t)n) : 0;
}

int job_uid_track(struct job *j) {
        struct server *srv = j->srv;
        int r = uid_count_set(srv, j->uid, job_uid_count(srv, j->uid) + 1);
        if (r == 0)
                j->uid_counted = true;
        return r;
}

static void uid_untrack(struct job *j) {
        if (!j->uid_counted)
                return;
        j->uid_counted = false;
        /* Going down never allocates, so it cannot fail. */
        uid_count_set(j->srv, j->uid, job_uid_count(j->srv, j->uid) - 1);
}

void job_link_client(struct job *j, struct client *c) {
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
        mps__safe_close(j->keeper_sock);
        mps__safe_close(j->result_fd);
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

/* A pidfd of ours, moved to srv->launch.pidfd_floor or above (see server.h),
 * where no clone copies it; where it was when that cannot be done. */
int job_pidfd_high(const struct server *srv, int pidfd) {
        int high = mps__fd_move_at_least(pidfd, srv->launch.pidfd_floor);
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
static void send_stop_report(struct job *j);

static void on_pidfd_watch(struct watch *w, uint32_t events) {
        (void)events;
        job_on_exit(w->data);
}

static void on_execpipe_watch(struct watch *w, uint32_t events) {
        (void)events;
        job_on_execpipe(w->data);
}

struct job *job_new(struct server *srv, const struct mps__spawn *sp, uid_t uid,
                    uint64_t request_ns) {
        struct job *j = calloc(1, sizeof(*j));
        if (!j || !(j->path = strdup(sp->path ? sp->path : sp->call_entry)) ||
            !(j->command = command_line(sp)) ||
            (sp->name && !(j->name = strdup(sp->name))) ||
            (sp->cwd && !(j->cwd = strdup_or_null(sp->cwd)))) {
                if (j)
                        job_free(j);
                return NULL;
        }
        j->srv = srv;
        j->tag = sp->tag;
        j->uid = uid;
        j->want_pidfd = sp->want_pidfd;
        j->detached = sp->detached;
        j->kill_tree = sp->kill_tree;
        j->daemon = sp->daemon && !sp->detached;
        j->kill_after = sp->kill_after;
        j->timeout_signal = sp->timeout_signal > 0 ? sp->timeout_signal : SIGTERM;
        /* A tiny positive timeout is 1 ns (the timerfd's resolution), never
         * 0, which means none. */
        j->timeout_ns = sp->timeout > 0 ? (uint64_t)(sp->timeout * 1e9) : 0;
        if (sp->timeout > 0 && j->timeout_ns == 0)
                j->timeout_ns = 1;
        j->request_ns = request_ns;
        j->pidfd = j->execpipe = j->keeper_sock = j->result_fd = -1;
        j->controlling_terminal = sp->controlling_terminal;
        j->report_stops = sp->report_stops;
        mps__list_init(&j->snode);
        j->heap_index = SIZE_MAX;
        j->pidfd_watch = (struct watch){.fn = on_pidfd_watch, .data = j};
        j->execpipe_watch = (struct watch){.fn = on_execpipe_watch, .data = j};
        return j;
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
        /* The child has exec'ed or failed: whatever keeper it started has
         * been handed over by now. */
        if (j->keeper_sock >= 0)
                keeper_adopt(j);

        if (n == (ssize_t)sizeof(f)) {
                j->state = JOB_FAILED;
                srv->stats.jobs_failed++;
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
        srv->stats.jobs_started++;
        srv->stats.latency[srv->stats.latency_count++ % LATENCY_SAMPLES] =
                (double)(mps__now_ns() - j->request_ns) / 1e9;
        log_info("job %llu: pid %d started '%s' for uid %u", (unsigned long long)j->id,
                 (int)j->pid, j->path, (unsigned)j->uid);
        if (j->client) {
                bool send_pidfd = j->want_pidfd && j->pidfd >= 0;
                struct mps__spawned s = {.tag = j->tag, .id = j->id, .pid = j->pid,
                                         .has_pidfd = send_pidfd};
                steps_mark(STEP_SPAWNED);
                client_send_spawned(j->client, &s, send_pidfd ? j->pidfd : -1);
                /* A stop seen while it was starting is reported now. */
                if (j->report_stops)
                        send_stop_report(j);
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

/* The exit record of job j, reaped with status and rusage ru. */
static struct mps__exited exit_record_of(const struct job *j, int status,
                                         const struct rusage *ru) {
        return (struct mps__exited){
                .tag = j->tag,
                .id = j->id,
                .pid = j->pid,
                .exitcode = mps__exitcode_of_status(status),
                .core_dumped = WIFSIGNALED(status) && WCOREDUMP(status),
                .utime = tv_seconds(ru->ru_utime),
                .stime = tv_seconds(ru->ru_stime),
                .maxrss_kib = ru->ru_maxrss,
                .wall = (double)(mps__now_ns() - j->start_ns) / 1e9,
                .timed_out = j->timed_out,
        };
}

/* Takes a reaped job out of every index, to be freed after the batch. This
 * comes before talking to anyone: a failed send drops the client, which
 * walks its job list. */
static void forget(struct job *j) {
        struct server *srv = j->srv;
        unlink_client(j);
        timer_disarm(srv, j);
        mps__idmap_remove(&srv->jobs.by_id, j->id);
        uid_untrack(j);
        if (j->pidfd >= 0)
                loop_del(srv, j->pidfd);
        else
                mps__idmap_remove(&srv->jobs.by_pid, (uint64_t)j->pid);
        j->pidfd = mps__safe_close(j->pidfd);
        mps__list_remove(&j->snode);
        keeper_job_gone(j);
        if (j->daemon)
                srv->jobs.ndaemon_alive--;
        j->dead = true;
        j->gnext = srv->jobs.dead;
        srv->jobs.dead = j;
}

static void count_and_log(struct server *srv, const struct mps__exited *e) {
        if (e->exitcode == 0)
                srv->stats.exits_zero++;
        else if (e->exitcode > 0)
                srv->stats.exits_nonzero++;
        else
                srv->stats.exits_signaled++;
        if (e->timed_out)
                srv->stats.exits_timed_out++;
        if (e->exitcode >= 0)
                log_info("job %llu: pid %d exited with status %d%s", (unsigned long long)e->id,
                         (int)e->pid, e->exitcode, e->timed_out ? " (timed out)" : "");
        else
                log_info("job %llu: pid %d killed by SIG%s%s%s", (unsigned long long)e->id,
                         (int)e->pid,
                         sigabbrev_np(-e->exitcode) ? sigabbrev_np(-e->exitcode) : "?",
                         e->core_dumped ? " (core dumped)" : "",
                         e->timed_out ? " (timed out)" : "");
}

/* A call job's result and failure message into e (*ret_result and
 * *ret_failure hold them, for the caller to free), from its channel, which
 * is closed now: the pages the job wrote there go with it. */
static void take_result(struct job *j, struct mps__exited *e, char **ret_result,
                        char **ret_failure) {
        if (j->result_fd < 0)
                return;
        if (j->state == JOB_RUNNING &&
            result_channel_read(j->result_fd, ret_result, ret_failure) < 0) {
                log_err("job %llu: out of memory reading its result",
                        (unsigned long long)j->id);
                e->failure = "the server ran out of memory reading the call job's result";
        }
        j->result_fd = mps__safe_close(j->result_fd);
        if (*ret_failure)
                e->failure = *ret_failure;
        e->result = *ret_result;
}

/* The job's child has been reaped with this status: report and forget. */
static void job_finish(struct job *j, int status, const struct rusage *ru) {
        struct server *srv = j->srv;
        char *result = NULL, *failure = NULL;

        steps_mark(STEP_EXIT_SEEN);
        if (j->execpipe >= 0)
                resolve_exec(j);
        struct mps__exited e = exit_record_of(j, status, ru);
        take_result(j, &e, &result, &failure);
        struct client *c = j->client;
        forget(j);

        if (j->state != JOB_RUNNING) {
                /* It never started: whoever waits for it hears so. */
                for (size_t i = 0; i < j->nwaiters; i++) {
                        struct client *w = mps__idmap_get(&srv->clients.by_serial,
                                                          j->waiters[i].client_serial);
                        if (w && !w->dead)
                                client_send_error(w, j->waiters[i].tag, ESRCH, "request",
                                                  "job %llu did not start",
                                                  (unsigned long long)j->id);
                }
                return;
        }
        count_and_log(srv, &e);

        /* Every waiter, then the job's own client, gets the record with its
         * own tag. With nobody to tell, it is kept for a later wait. */
        bool told = false;
        for (size_t i = 0; i < j->nwaiters; i++) {
                struct client *w = mps__idmap_get(&srv->clients.by_serial,
                                                  j->waiters[i].client_serial);
                if (!w || w->dead)
                        continue;
                struct mps__exited we = e;
                we.tag = j->waiters[i].tag;
                client_send_exited(w, &we);
                told = true;
        }
        if (c && !c->dead) {
                steps_mark(STEP_EXITED);
                client_send_exited(c, &e);
                told = true;
        }
        if (!told)
                retain_add(srv, j, &e);
        free(result);
        free(failure);
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
        r = mps__wait_retry(j->pid, &status, WNOHANG, &ru);
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

static void check_stops(struct server *srv);
static void reap_by_pid(struct server *srv);

void job_reap_any(struct server *srv) {
        /* With pidfds, SIGCHLD only reaches us for stop reports: the
         * pidfds reap (job_on_exit). */
        if (!srv->launch.use_pidfd)
                reap_by_pid(srv);
        check_stops(srv);
}

static void reap_by_pid(struct server *srv) {
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
                struct job *j = mps__idmap_get(&srv->jobs.by_pid, (uint64_t)pid);
                if (j && j->kill_tree)
                        kill(-pid, SIGKILL);
                struct rusage ru;
                int status;
                pid_t r;
                r = mps__wait_retry(pid, &status, WNOHANG, &ru);
                if (r <= 0)
                        return; /* cannot happen for the child waitid named */
                if (j)
                        job_finish(j, status, &ru);
        }
}

/* ---- stop reports ---------------------------------------------------------------- */

/*
 * pidfds do not poll for stops, so a report_stops job is watched through
 * SIGCHLD, which the server's signalfd takes once the first such job
 * starts (without pidfds it always does), and waitid(WSTOPPED |
 * WCONTINUED) on each job of jobs.stop_watch alone: no exit is reaped
 * here. Reports are coalesced: a job has one state, and only a change
 * from the state last sent is sent, and only into an empty reply queue
 * (else once it drains, job_flush_stop_reports), so a job that stops and
 * continues in a loop costs its client at most one queued report.
 */
static void sigchld_on(struct server *srv) {
        if (srv->jobs.sigchld_on)
                return;
        srv->jobs.sigchld_on = true;
        if (!srv->launch.use_pidfd)
                return; /* the signalfd takes SIGCHLD already */
        /* What the server blocks is what its signalfd takes (server.c):
         * the same set plus SIGCHLD. */
        sigset_t chld, mask;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        sigprocmask(SIG_BLOCK, &chld, &mask);
        sigaddset(&mask, SIGCHLD);
        if (signalfd(srv->life.signal_fd, &mask, 0) < 0)
                log_err("cannot watch SIGCHLD for stop reports: %m");
}

void job_watch_stops(struct job *j) {
        struct server *srv = j->srv;
        if (!srv->jobs.stop_watch.next)
                mps__list_init(&srv->jobs.stop_watch);
        sigchld_on(srv);
        mps__list_push_back(&srv->jobs.stop_watch, &j->snode);
}

static void send_stop_report(struct job *j) {
        struct client *c = j->client;
        if (j->stop_sig == j->stop_sent || j->state != JOB_RUNNING || !c || c->dead ||
            c->out_head)
                return;
        struct mps__stop_report r = {.tag = j->tag, .id = j->id, .signo = j->stop_sig};
        j->stop_sent = j->stop_sig;
        client_send(c, mps__stop_report_encode(j->stop_sig ? MPS_OP_STOPPED
                                                            : MPS_OP_CONTINUED, &r), -1);
}

/* The job's latest stop state; at most a few events (the kernel keeps one
 * per process), so the loop is bounded anyway. */
static void check_job_stops(struct job *j) {
        for (int i = 0; i < 8; i++) {
                siginfo_t si = {0};
                if (waitid(P_PID, (id_t)j->pid, &si, WSTOPPED | WCONTINUED | WNOHANG) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (si.si_pid == 0)
                        break;
                if (si.si_code == CLD_STOPPED || si.si_code == CLD_TRAPPED)
                        j->stop_sig = si.si_status;
                else if (si.si_code == CLD_CONTINUED)
                        j->stop_sig = 0;
        }
        send_stop_report(j);
}

static void check_stops(struct server *srv) {
        struct mps__list *n, *tmp;
        if (!srv->jobs.stop_watch.next)
                return;
        mps__list_foreach_safe(n, tmp, &srv->jobs.stop_watch) {
                struct job *j = mps__list_entry(n, struct job, snode);
                if (!j->dead)
                        check_job_stops(j);
        }
}

void job_flush_stop_reports(struct client *c) {
        struct mps__list *n, *tmp;
        if (!c->srv->jobs.sigchld_on)
                return;
        mps__list_foreach_safe(n, tmp, &c->jobs) {
                struct job *j = mps__list_entry(n, struct job, cnode);
                if (j->report_stops && !j->dead)
                        send_stop_report(j);
                if (c->dead || c->out_head)
                        return;
        }
}

/* Ends a daemon job by policy: SIGTERM, then SIGKILL when the grace period
 * runs out (or at once when the server is told to stop now). */
void job_stop_daemon(struct job *j) {
        struct server *srv = j->srv;
        if (!j->daemon || j->dead)
                return;
        if (srv->life.stop_now) {
                job_kill(j, SIGKILL);
                return;
        }
        if (j->timer == TIMER_KILL)
                return; /* SIGTERM sent already; SIGKILL is on its way */
        j->timer = TIMER_KILL;
        log_info("job %llu: pid %d: ending daemon job (SIGTERM, SIGKILL in %u.%03u s)",
                 (unsigned long long)j->id, (int)j->pid, srv->life.grace_ms / 1000,
                 srv->life.grace_ms % 1000);
        job_kill(j, SIGTERM);
        if (timer_arm(srv, j, mps__now_ns() + (uint64_t)srv->life.grace_ms * 1000000u) < 0)
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
                /* As timeout(1): its signal (SIGTERM unless --signal)
                 * now, SIGKILL after kill_after. */
                log_info("job %llu: pid %d timed out; sending SIG%s",
                         (unsigned long long)j->id, (int)j->pid,
                         sigabbrev_np(j->timeout_signal) ? sigabbrev_np(j->timeout_signal)
                                                         : "?");
                j->timed_out = true;
                j->timer = TIMER_KILL;
                job_kill(j, j->timeout_signal);
                if (timer_arm(srv, j, mps__now_ns() + (uint64_t)(j->kill_after * 1e9)) < 0)
                        job_kill(j, SIGKILL);
                break;
        case TIMER_KILL:
                log_info("job %llu: pid %d still alive after the timeout's signal; sending SIGKILL",
                         (unsigned long long)j->id, (int)j->pid);
                j->timer = TIMER_NONE;
                job_kill(j, SIGKILL);
                break;
        case TIMER_NONE:
                break;
        }
}

/* ---- terminal keepers (the processes are keeper.c's) ---------------------------- */

static void keeper_free(struct keeper *k) {
        if (k->job)
                k->job->keeper = NULL;
        mps__list_remove(&k->knode);
        loop_del(k->srv, k->pidfd);
        mps__safe_close(k->pidfd);
        mps__safe_close(k->sock);
        free(k);
}

/* The keeper has ended: reap it. Without pidfds the SIGCHLD reaper may
 * have done so already (ECHILD): it reaps every child it is told of. */
static void on_keeper_exit(struct watch *w, uint32_t events) {
        struct keeper *k = w->data;
        (void)events;
        siginfo_t si = {0};
        int r;
        do
                r = waitid(P_PIDFD, (id_t)k->pidfd, &si, WEXITED | WNOHANG);
        while (r < 0 && errno == EINTR);
        if (r == 0 && si.si_pid == 0)
                return; /* not yet */
        keeper_free(k);
}

/* Receives the keeper's pidfd (MSG_CMSG_CLOEXEC); -1 when none came. */
static int recv_pidfd(int sock) {
        char byte;
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } u;
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                            .msg_controllen = sizeof(u.buf)};
        ssize_t n;
        do
                n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
        int fd = -1;
        if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len == CMSG_LEN(sizeof(int)))
                memcpy(&fd, CMSG_DATA(c), sizeof(int));
        return fd;
}

void keeper_adopt(struct job *j) {
        struct server *srv = j->srv;
        int pidfd = recv_pidfd(j->keeper_sock);
        struct keeper *k = pidfd >= 0 ? calloc(1, sizeof(*k)) : NULL;
        if (!k) {
                /* No keeper (none started, or out of memory: then it ends
                 * with the job, reaped by the next SIGCHLD reaper if any). */
                mps__safe_close(pidfd);
                j->keeper_sock = mps__safe_close(j->keeper_sock);
                return;
        }
        *k = (struct keeper){.srv = srv, .job = j, .pidfd = job_pidfd_high(srv, pidfd),
                             .sock = j->keeper_sock};
        k->watch = (struct watch){.fn = on_keeper_exit, .data = k};
        if (!srv->jobs.keepers.next)
                mps__list_init(&srv->jobs.keepers);
        mps__list_push_back(&srv->jobs.keepers, &k->knode);
        j->keeper_sock = -1;
        /* Unwatched (ENOMEM), it is reaped only by a SIGCHLD reaper, if
         * the server runs one: say so. */
        if (loop_add(srv, k->pidfd, EPOLLIN, &k->watch) < 0)
                log_err("job %llu: cannot watch its terminal keeper",
                        (unsigned long long)j->id);
        j->keeper = k;
}

void keeper_job_gone(struct job *j) {
        j->keeper_sock = mps__safe_close(j->keeper_sock);
        struct keeper *k = j->keeper;
        if (!k)
                return;
        k->job = NULL;
        j->keeper = NULL;
        /* Its end of the channel closing ends it even before it sees the
         * job's pidfd. */
        k->sock = mps__safe_close(k->sock);
}

int keeper_command(struct job *j, bool foreground) {
        struct keeper *k = j->keeper;
        if (!k || k->sock < 0)
                return -ENOTSUP;
        char cmd = foreground ? 'f' : 'b';
        ssize_t n;
        do
                n = send(k->sock, &cmd, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        return n < 0 ? -errno : 0;
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
        /* Keepers still running end by themselves once their channel, the
         * server's end closed here, is gone. */
        struct mps__list *n, *tmp;
        if (srv->jobs.keepers.next)
                mps__list_foreach_safe(n, tmp, &srv->jobs.keepers)
                        keeper_free(mps__list_entry(n, struct keeper, knode));
        mps__idmap_foreach(&srv->jobs.by_id, release_job, NULL);
        mps__idmap_free(&srv->jobs.by_id);
        mps__idmap_free(&srv->jobs.by_pid);
        mps__idmap_free(&srv->jobs.by_uid);
}
