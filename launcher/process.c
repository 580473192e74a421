/* SPDX-License-Identifier: MIT */
/*
 * process.c: process handles, the multiprocessing.Process model.
 *
 * A handle goes NEW -> STARTING -> RUNNING -> ENDED, or STARTING -> FAILED
 * when the server could not exec the program, or to LOST when the
 * connection goes first. The server's pidfd is kept as the sentinel: it
 * polls readable once the job has ended, and signals reach exactly this job
 * with no pid-reuse window.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "fdutil.h"
#include "lib.h"

MPS_API int mps_process_new(mps_client *c, const mps_spec *spec,
                            mps_process **ret_process) {
        if (!c || !spec || !ret_process)
                return -EINVAL;
        if (!spec->spawn.path && !spec->spawn.call_entry) {
                mps__client_set_error(c, "the spec names no program (mps_spec_set_exec) "
                                         "nor entry point (mps_spec_set_call)");
                return -EINVAL;
        }
        mps_process *p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        int r = mps__spec_copy(spec, &p->spec);
        if (r < 0) {
                free(p);
                return r;
        }
        p->pidfd = -1;
        p->client = c;
        c->refs++;
        *ret_process = p;
        return 0;
}

/* The caller's stdio fd as it will be sent; closed, it stays closed in the
 * job as with a direct exec (MPS_WIRE_FD_CLOSED), or is /dev/null (-1) with
 * a server too old to know that. */
static int usable_fd(const mps_client *c, int fd) {
        if (fcntl(fd, F_GETFD) >= 0)
                return fd;
        return c->features & MPS_FEATURE_CLOSED_FDS ? MPS_WIRE_FD_CLOSED : -1;
}

/* An older server would ignore what it does not know: refuse here. */
static int check_features(mps_client *c, const struct mps__spawn *m) {
        unsigned missing = mps__spawn_features(m) & ~c->features;
        if (!missing)
                return 0;
        mps__client_set_error(c, "the forkserver (version %s) does not support %s",
                              c->server_version,
                              mps__feature_description(missing & -missing));
        return -EOPNOTSUPP;
}

/* The fds a start sends and how the job installs them. */
struct start_fds {
        struct mps__fd_map map[MPS_WIRE_FDS_MAX + 3];
        size_t nmap;
        int fds[MPS_WIRE_FDS_MAX];
        size_t nfds;
};

/* Maps the job's fd target to the caller's fd src (-1: none; or
 * MPS_WIRE_FD_CLOSED). */
static int add_fd(struct start_fds *f, int target, int src) {
        if (src >= 0 && f->nfds >= MPS_WIRE_FDS_MAX)
                return -EMFILE;
        f->map[f->nmap].target = target;
        f->map[f->nmap].source = src >= 0 ? (int)f->nfds : src < -1 ? src : -1;
        if (src >= 0)
                f->fds[f->nfds++] = src;
        f->nmap++;
        return 0;
}

/* The spec's fd map, then the caller's 0, 1 and 2 where the spec says
 * nothing about them. */
static int build_fds(mps_client *c, const mps_spec *s, struct start_fds *f) {
        bool mapped[3] = {false, false, false};
        int r;
        f->nmap = f->nfds = 0;
        for (size_t i = 0; i < s->nfds; i++) {
                int src = s->fds[i].caller_fd;
                if (s->fds[i].child_fd <= 2)
                        mapped[s->fds[i].child_fd] = true;
                if (src >= 0 && fcntl(src, F_GETFD) < 0) {
                        mps__client_set_error(c, "fd %d, to be the job's fd %d, is not open",
                                              src, s->fds[i].child_fd);
                        return -EBADF;
                }
                if ((r = add_fd(f, s->fds[i].child_fd, src)) < 0)
                        return r;
        }
        for (int t = 0; t <= 2; t++)
                if (!mapped[t] && (r = add_fd(f, t, usable_fd(c, t))) < 0)
                        return r;
        return 0;
}

/* The server has a working directory of its own: the job gets an absolute
 * one, the caller's, or the spec's made absolute against it. *ret_dir is
 * dir itself or buf. */
static int absolute_cwd(mps_client *c, const char *dir, char *buf, size_t len,
                        const char **ret_dir) {
        if (dir && dir[0] == '/') {
                *ret_dir = dir;
                return 0;
        }
        if (!getcwd(buf, len)) {
                int r = -errno;
                mps__client_set_error(c, "cannot read the current directory: %s",
                                      strerror(-r));
                return r;
        }
        if (dir) {
                size_t n = strlen(buf);
                if (n + 1 + strlen(dir) + 1 > len) {
                        mps__client_set_error(c, "working directory '%s' is too long", dir);
                        return -ENAMETOOLONG;
                }
                snprintf(buf + n, len - n, "%s%s", n > 1 ? "/" : "", dir);
        }
        *ret_dir = buf;
        return 0;
}

/*
 * The job's working directory as a descriptor (O_PATH) of the caller's:
 * the spec's, relative to ours, or ours. The job then starts in the very
 * directory the caller names, in the caller's mount namespace, with no
 * path looked up again by the server. Only for a server that takes one and
 * while the message has room; a directory that cannot be opened here goes
 * as a path, as to older servers, and the server reports it as before
 * (stage "chdir"). Returns the fd to close after sending, or -1.
 */
static int add_cwd_fd(const mps_client *c, const char *dir, struct start_fds *f,
                      struct mps__spawn *msg) {
        if (!(c->features & MPS_FEATURE_CWD_FD) || f->nfds >= MPS_WIRE_FDS_MAX)
                return -1;
        int fd = open(dir ? dir : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        msg->has_cwd_fd = true;
        msg->cwd_fd = (int)f->nfds;
        f->fds[f->nfds++] = fd;
        return fd;
}

/* Registers p under its tag and sends its spawn request. */
static int send_spawn(mps_process *p, const struct mps__spawn *msg,
                      const struct start_fds *f) {
        mps_client *c = p->client;
        cJSON *json = mps__spawn_encode(msg);
        if (!json)
                return -ENOMEM;
        /* Registered before it is sent: once the request is out the job may
         * run, and its replies must find this handle. */
        int r = mps__idmap_put(&c->inflight, p->tag, p);
        if (r < 0) {
                cJSON_Delete(json);
                return r;
        }
        r = mps__client_send(c, json, f->fds, f->nfds);
        cJSON_Delete(json);
        if (r < 0)
                mps__idmap_remove(&c->inflight, p->tag);
        if (r == -EMSGSIZE) {
                mps__client_set_error(c, "the job's arguments and environment exceed "
                                         "the %d-byte message limit",
                                      MPS_WIRE_MSG_MAX);
                return -E2BIG;
        }
        return r;
}

int mps__process_send_start(mps_process *p) {
        mps_client *c = p->client;
        const mps_spec *s = p->spec;
        struct start_fds f;
        char cwd[PATH_MAX];
        const char *dir = NULL;
        char **envp = NULL;
        size_t envc;
        int r;

        if (p->state != PROC_NEW) {
                mps__client_set_error(c, "a process can be started only once");
                return -EALREADY;
        }
        if (c->closed || c->broken) {
                mps__client_set_error(c, "the client is not connected");
                return -ENOTCONN;
        }
        if ((r = check_features(c, &s->spawn)) < 0 || (r = build_fds(c, s, &f)) < 0 ||
            (r = absolute_cwd(c, s->spawn.cwd, cwd, sizeof(cwd), &dir)) < 0)
                return r;
        if ((r = mps__spec_build_env(s, &envp, &envc)) < 0) {
                mps__client_set_error(c, "cannot build the environment: %s", strerror(-r));
                return r;
        }
        /* The spec's job as it stands, plus what belongs to this start. */
        struct mps__spawn msg = s->spawn;
        p->tag = ++c->next_tag;
        msg.tag = p->tag;
        msg.envp = (const char **)envp;
        msg.envc = envc;
        msg.cwd = dir;
        msg.fdmap = f.map;
        msg.nfdmap = f.nmap;
        msg.want_pidfd = true;
        int dirfd = add_cwd_fd(c, s->spawn.cwd, &f, &msg);
        r = send_spawn(p, &msg, &f);
        mps__safe_close(dirfd);
        mps__strv_free(envp);
        if (r < 0)
                return r;
        p->state = PROC_STARTING;
        return 0;
}

/* Waits for answers until the process is no longer in state `from`. */
static int wait_leave(mps_process *p, enum proc_state from) {
        while (p->state == from) {
                int r = mps__client_wait(p->client, -1);
                if (r < 0 && r != -EINTR)
                        return r;
        }
        return 0;
}

MPS_API int mps_start(mps_process *p) {
        if (!p)
                return -EINVAL;
        int r = mps__process_send_start(p);
        if (r < 0)
                return r;
        r = wait_leave(p, PROC_STARTING);
        if (r < 0)
                return r;
        if (p->state == PROC_FAILED)
                return -p->start_error;
        if (p->state == PROC_LOST)
                return -ENOTCONN;
        return 0;
}

mps_exit_info mps__exit_info_of(const struct mps__exited *e) {
        return (mps_exit_info){
                .exitcode = e->exitcode,
                .core_dumped = e->core_dumped,
                .timed_out = e->timed_out,
                .user_seconds = e->utime,
                .system_seconds = e->stime,
                .max_rss_kib = e->maxrss_kib,
                .wall_seconds = e->wall,
        };
}

static void changed(mps_process *p) {
        if (p->on_change)
                p->on_change(p, p->on_change_data);
}

void mps__process_on_msg(mps_client *c, struct mps__msg *msg) {
        char err[256];
        switch (msg->op) {
        case MPS_OP_SPAWNED: {
                struct mps__spawned s;
                if (mps__spawned_decode(msg->json, &s, err, sizeof(err)) < 0)
                        return;
                mps_process *p = mps__idmap_get(&c->inflight, s.tag);
                if (!p || p->state != PROC_STARTING)
                        return;
                p->id = s.id;
                p->pid = s.pid;
                if (s.has_pidfd && msg->nfds > 0) {
                        p->pidfd = msg->fds[0];
                        msg->fds[0] = -1; /* taken */
                } else {
                        /* A server without pidfds (old kernel, valgrind):
                         * open one ourselves. The server reaps as soon as
                         * the job ends, so this is only as good as a pid. */
                        p->pidfd = mps__fd_move_at_least(pidfd_open(s.pid, 0), 3);
                }
                if (p->spec->spawn.detached) {
                        /* Nothing more will come about it. */
                        mps__idmap_remove(&c->inflight, s.tag);
                        p->state = PROC_DETACHED;
                } else {
                        p->state = PROC_RUNNING;
                }
                break;
        }
        case MPS_OP_EXITED: {
                struct mps__exited e;
                if (mps__exited_decode(msg->json, &e, err, sizeof(err)) < 0)
                        return;
                mps_process *p = mps__idmap_get(&c->inflight, e.tag);
                if (!p || p->state != PROC_RUNNING)
                        return;
                mps__idmap_remove(&c->inflight, e.tag);
                p->info = mps__exit_info_of(&e);
                p->state = PROC_ENDED;
                p->stop_signal = 0;
                changed(p);
                break;
        }
        case MPS_OP_STOPPED:
        case MPS_OP_CONTINUED: {
                struct mps__stop_report sr;
                if (mps__stop_report_decode(msg->json, msg->op == MPS_OP_STOPPED, &sr, err,
                                            sizeof(err)) < 0)
                        return;
                mps_process *p = mps__idmap_get(&c->inflight, sr.tag);
                if (!p || p->state != PROC_RUNNING || p->id != sr.id)
                        return;
                p->stop_signal = sr.signo;
                break;
        }
        case MPS_OP_ERROR: {
                struct mps__error e;
                if (mps__error_decode(msg->json, &e, err, sizeof(err)) < 0)
                        return;
                mps_process *p = mps__idmap_get(&c->inflight, e.tag);
                if (!p || p->state != PROC_STARTING)
                        return;
                mps__idmap_remove(&c->inflight, e.tag);
                p->start_error = e.err;
                snprintf(p->start_stage, sizeof(p->start_stage), "%s", e.stage);
                p->state = PROC_FAILED;
                mps__client_set_error(c, "%s", e.message);
                changed(p);
                break;
        }
        default:
                break;
        }
}

void mps__process_lost(mps_process *p) {
        mps__idmap_remove(&p->client->inflight, p->tag);
        if (p->state == PROC_STARTING || p->state == PROC_RUNNING) {
                p->state = PROC_LOST;
                changed(p);
        }
}

/*
 * The pidfd polls readable as soon as the job has ended, slightly before the
 * server's exit record can arrive. Callers that ask "has it ended?" wait for
 * that record then, so that is_alive/exitcode agree with the sentinel.
 */
static int sync_if_ended(mps_process *p) {
        if (p->state != PROC_RUNNING)
                return 0;
        if (!p->client->closed && !p->client->broken) {
                int r = mps_client_dispatch(p->client);
                if (r < 0 && r != -ENOTCONN)
                        return r;
        }
        if (p->state == PROC_RUNNING && p->pidfd >= 0 &&
            mps__poll_one(p->pidfd, POLLIN, 0) > 0)
                return wait_leave(p, PROC_RUNNING);
        return 0;
}

MPS_API int mps_join(mps_process *p, int timeout_ms) {
        if (!p)
                return -EINVAL;
        if (p->state == PROC_NEW || p->state == PROC_FAILED) {
                mps__client_set_error(p->client, "join of a process that was not started");
                return -EINVAL;
        }
        if (p->state == PROC_DETACHED) {
                mps__client_set_error(p->client, "join of a detached process: use "
                                                 "mps_client_wait_job()");
                return -EINVAL;
        }
        uint64_t deadline = timeout_ms >= 0
                ? mps__now_ns() + (uint64_t)timeout_ms * 1000000u : 0;
        for (;;) {
                int r = sync_if_ended(p);
                if (r < 0)
                        return r;
                if (p->state == PROC_ENDED)
                        return 0;
                if (p->state == PROC_LOST)
                        return -ENOTCONN;
                int wait_ms = -1;
                if (timeout_ms >= 0) {
                        uint64_t now = mps__now_ns();
                        if (now >= deadline)
                                return 0;
                        wait_ms = (int)((deadline - now + 999999) / 1000000);
                }
                r = mps__client_wait(p->client, wait_ms);
                if (r < 0 && r != -EINTR && r != -ENOTCONN)
                        return r;
        }
}

MPS_API int mps_is_alive(mps_process *p) {
        if (!p)
                return 0;
        if (p->state == PROC_DETACHED)
                return p->pidfd >= 0 && mps__poll_one(p->pidfd, POLLIN, 0) == 0;
        sync_if_ended(p);
        return p->state == PROC_STARTING || p->state == PROC_RUNNING;
}

MPS_API int mps_exitcode(mps_process *p) {
        if (!p)
                return MPS_EXITCODE_NONE;
        sync_if_ended(p);
        return p->state == PROC_ENDED ? p->info.exitcode : MPS_EXITCODE_NONE;
}

MPS_API int mps_exit_info_get(const mps_process *p, mps_exit_info *ret_info) {
        if (!p || !ret_info)
                return -EINVAL;
        if (p->state != PROC_ENDED)
                return -EAGAIN;
        *ret_info = p->info;
        return 0;
}

/* Asks the server to signal the job (when our pidfd cannot). */
static int signal_through_server(mps_process *p, int sig) {
        int r = mps_client_signal_job(p->client, p->id, sig);
        return r == -ESRCH ? 0 : r; /* ended meanwhile */
}

MPS_API int mps_send_signal(mps_process *p, int sig) {
        if (!p || sig < 0 || sig >= NSIG)
                return -EINVAL;
        if (p->state == PROC_NEW || p->state == PROC_FAILED)
                return -EINVAL;
        if (p->state == PROC_STARTING) {
                int r = wait_leave(p, PROC_STARTING);
                if (r < 0)
                        return r;
        }
        if (p->state != PROC_RUNNING && p->state != PROC_DETACHED)
                return 0; /* already ended: nothing to do, as in Python */
        /* A whole tree is the server's to reach (kill(-pgid) while it
         * knows the group is this job's); one process, our pidfd's. */
        if (p->pidfd >= 0 && !p->spec->spawn.kill_tree) {
                if (pidfd_send_signal(p->pidfd, sig, NULL, 0) == 0)
                        return 0;
                if (errno == ESRCH)
                        return 0; /* ended, not yet reported */
                if (errno != EPERM)
                        return -errno;
        }
        return signal_through_server(p, sig);
}

MPS_API int mps_stop_signal(const mps_process *p) {
        return p && p->state == PROC_RUNNING ? p->stop_signal : 0;
}

MPS_API int mps_set_terminal_foreground(mps_process *p, bool foreground) {
        if (!p || p->state == PROC_NEW || p->state == PROC_FAILED)
                return -EINVAL;
        mps_client *c = p->client;
        if (!p->spec->spawn.controlling_terminal || !(c->features & MPS_FEATURE_TERMINAL))
                return -ENOTSUP;
        if (p->state == PROC_STARTING) {
                int r = wait_leave(p, PROC_STARTING);
                if (r < 0)
                        return r;
        }
        if (p->state != PROC_RUNNING)
                return 0; /* ended: nothing to do */
        if (c->closed || c->broken)
                return -ENOTCONN;
        /* Its own tag, which nothing waits for: a refusal arrives as an
         * error no handle claims, and becomes the client's error. */
        struct mps__foreground m = {.tag = ++c->next_tag, .id = p->id,
                                    .foreground = foreground};
        cJSON *json = mps__foreground_encode(&m);
        if (!json)
                return -ENOMEM;
        int r = mps__client_send(c, json, NULL, 0);
        cJSON_Delete(json);
        return r;
}

MPS_API int mps_terminate(mps_process *p) {
        return mps_send_signal(p, SIGTERM);
}

MPS_API int mps_kill(mps_process *p) {
        return mps_send_signal(p, SIGKILL);
}

MPS_API pid_t mps_pid(const mps_process *p) {
        if (!p)
                return -EINVAL;
        return p->pid > 0 ? p->pid : -ESRCH;
}

MPS_API uint64_t mps_job_id(const mps_process *p) {
        return p ? p->id : 0;
}

MPS_API int mps_sentinel(const mps_process *p) {
        if (!p)
                return -EINVAL;
        if (p->pidfd < 0)
                return p->state == PROC_NEW || p->state == PROC_STARTING ? -ESRCH : -ENOTSUP;
        return p->pidfd;
}

MPS_API const char *mps_start_failed_stage(const mps_process *p) {
        return p && p->state == PROC_FAILED ? p->start_stage : NULL;
}

static void release(mps_process *p) {
        mps__idmap_remove(&p->client->inflight, p->tag);
        mps__safe_close(p->pidfd);
        mps_spec_free(p->spec);
        mps__client_unref(p->client);
        free(p);
}

MPS_API int mps_process_close(mps_process *p) {
        if (!p)
                return 0;
        if (p->state == PROC_STARTING || p->state == PROC_RUNNING) {
                /* (A detached one may go at once: nothing more comes.) */
                if (mps_is_alive(p)) {
                        mps__client_set_error(p->client,
                                              "cannot close a process that is still running");
                        return -EBUSY;
                }
        }
        release(p);
        return 0;
}

