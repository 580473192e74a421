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
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../launcher/fdutil.h"
#include "server.h"

static void link_client(struct job *j, struct client *c) {
        j->client = c;
        c->njobs++;
        j->cprev = NULL;
        j->cnext = c->jobs;
        if (c->jobs)
                c->jobs->cprev = j;
        c->jobs = j;
}

static void unlink_client(struct job *j) {
        struct client *c = j->client;
        if (!c)
                return;
        if (j->cprev)
                j->cprev->cnext = j->cnext;
        else
                c->jobs = j->cnext;
        if (j->cnext)
                j->cnext->cprev = j->cprev;
        j->cnext = j->cprev = NULL;
        j->client = NULL;
        c->njobs--;
}

void job_free(struct job *j) {
        free(j->name);
        free(j->path);
        free(j->cwd);
        free(j);
}

int job_kill(struct job *j, int sig) {
        int r = j->pidfd >= 0 ? pidfd_send_signal(j->pidfd, sig, NULL, 0)
                              : kill(j->pid, sig);
        return r < 0 ? -errno : 0;
}

static char *strdup_or_null(const char *s) {
        return s ? strdup(s) : NULL;
}

void job_spawn(struct client *c, struct mps__msg *msg) {
        struct server *srv = c->srv;
        struct mps__spawn sp;
        char err[256];
        int pipefd[2] = {-1, -1};
        struct job *j = NULL;
        int r;

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

        j = calloc(1, sizeof(*j));
        if (!j || !(j->path = strdup(sp.path)) ||
            (sp.name && !(j->name = strdup(sp.name))) ||
            (sp.cwd && !(j->cwd = strdup_or_null(sp.cwd)))) {
                client_send_error(c, sp.tag, ENOMEM, "request", "out of memory");
                goto out;
        }
        j->srv = srv;
        j->tag = sp.tag;
        j->uid = c->uid;
        j->daemon = sp.daemon;
        j->want_pidfd = sp.want_pidfd;
        j->pidfd = j->execpipe = -1;
        j->heap_index = SIZE_MAX;
        j->pidfd_watch = (struct watch){.kind = WATCH_PIDFD, .owner = j};
        j->execpipe_watch = (struct watch){.kind = WATCH_EXECPIPE, .owner = j};

        if (pipe2(pipefd, O_CLOEXEC) < 0) {
                client_send_error(c, sp.tag, errno, "fork",
                                  "cannot create the exec pipe: %m");
                goto out;
        }
        j->start_ns = mps__now_ns();
        pid_t pid = fork();
        if (pid == 0)
                child_run(&sp, msg->fds, msg->nfds, pipefd[1], &srv->orig_nofile);
        int fork_errno = errno;
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
        if (srv->use_pidfd)
                j->pidfd = pidfd_open(pid, 0);
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
            (r = j->pidfd >= 0 ? loop_add(srv, j->pidfd, EPOLLIN, &j->pidfd_watch)
                               : mps__idmap_put(&srv->jobs_by_pid, (uint64_t)pid, j)) < 0 ||
            (r = loop_add(srv, j->execpipe, EPOLLIN, &j->execpipe_watch)) < 0) {
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
        link_client(j, c);
        if (j->daemon)
                srv->ndaemon_alive++;
        j = NULL; /* owned by the server now */
out:
        mps__safe_close(pipefd[0]);
        mps__safe_close(pipefd[1]);
        if (j)
                job_free(j);
        mps__spawn_done(&sp);
}

/* Reads the exec pipe once the child has exec'ed, failed or died. */
static void resolve_exec(struct job *j) {
        struct server *srv = j->srv;
        struct child_failure f;
        ssize_t n = mps__read_retry(j->execpipe, &f, sizeof(f));
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
        log_info("job %llu: pid %d started '%s' for uid %u", (unsigned long long)j->id,
                 (int)j->pid, j->path, (unsigned)j->uid);
        if (j->client) {
                bool send_pidfd = j->want_pidfd && j->pidfd >= 0;
                struct mps__spawned s = {.tag = j->tag, .id = j->id, .pid = j->pid,
                                         .has_pidfd = send_pidfd};
                client_send(j->client, mps__spawned_encode(&s),
                            send_pidfd ? j->pidfd : -1);
        }
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

        if (j->state == JOB_RUNNING) {
                if (e.exitcode >= 0)
                        log_info("job %llu: pid %d exited with status %d",
                                 (unsigned long long)j->id, (int)j->pid, e.exitcode);
                else
                        log_info("job %llu: pid %d killed by SIG%s%s",
                                 (unsigned long long)j->id, (int)j->pid,
                                 sigabbrev_np(-e.exitcode) ? sigabbrev_np(-e.exitcode) : "?",
                                 e.core_dumped ? " (core dumped)" : "");
                if (c)
                        client_send(c, mps__exited_encode(&e), -1);
        }
}

void job_on_exit(struct job *j) {
        struct rusage ru;
        int status;
        pid_t r;

        if (j->dead)
                return;
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
                struct rusage ru;
                int status;
                pid_t pid = wait4(-1, &status, WNOHANG, &ru);
                if (pid < 0 && errno == EINTR)
                        continue;
                if (pid <= 0)
                        return; /* none left to reap now (0), or no children */
                struct job *j = mps__idmap_get(&srv->jobs_by_pid, (uint64_t)pid);
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
        if (j->term_sent)
                return;
        j->term_sent = true;
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
        if (j->dead)
                return;
        if (j->term_sent) {
                log_info("job %llu: pid %d still alive after the grace period; "
                         "sending SIGKILL",
                         (unsigned long long)j->id, (int)j->pid);
                job_kill(j, SIGKILL);
        }
}

void job_signal(struct client *c, const struct mps__signal *req) {
        struct job *j = mps__idmap_get(&c->srv->jobs, req->id);
        /* Someone else's job gets the same answer as no job at all, so that
         * clients learn nothing about other users' jobs. */
        if (!j || j->dead || j->uid != c->uid || j->state == JOB_FAILED) {
                client_send_error(c, req->tag, ESRCH, "request", "no job %llu",
                                  (unsigned long long)req->id);
                return;
        }
        int r = job_kill(j, req->signo);
        if (r < 0) {
                client_send_error(c, req->tag, -r, "request",
                                  "cannot signal job %llu: %s",
                                  (unsigned long long)req->id, strerror(-r));
                return;
        }
        client_send(c, mps__signaled_encode(req->tag, req->id), -1);
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
