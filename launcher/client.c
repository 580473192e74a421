/* SPDX-License-Identifier: MIT */
/*
 * client.c: the connection to a forkserver: choosing and reaching one
 * (explicit path, $MPSPAWN_SOCKET, system or user socket, else a private
 * embedded server), the version handshake, sending, and dispatching what the
 * server sends back.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "embedded.h"
#include "fdutil.h"
#include "selfpath.h"
#include "lib.h"

/* MPSPAWN_NO_BATCH=1 (a debugging knob, see mpspawn.h): every start goes
 * in a request of its own, as to a server without spawn_batch. */
static bool batch_forced_off(void) {
        const char *v = getenv("MPSPAWN_NO_BATCH");
        return v && v[0] && strcmp(v, "0") != 0;
}

#ifndef MPS_VERSION_STRING
#define MPS_VERSION_STRING "0.0.0"
#endif
#ifndef MPS_FORKSERVER_PATH
#define MPS_FORKSERVER_PATH "/usr/local/bin/mpforkserver"
#endif

#define SYSTEM_SOCKET "/run/mpspawn/forkserver.sock"
#define USER_SOCKET_NAME "mpspawn.sock"
#define USER_TMPDIR "/tmp"
#define HANDSHAKE_TIMEOUT_MS 10000

extern char **environ;

MPS_API const char *mps_version(void) {
        return MPS_VERSION_STRING;
}

MPS_API const char *mps_strerror(int err) {
        return strerror(err < 0 ? -err : err);
}

/* ---- errors and locking ------------------------------------------------------ */

/*
 * The calling thread's last failure, tagged with the client it is about (a
 * thread using two clients keeps the latest one's). A message shared by all
 * threads would be a race: one thread's failure would overwrite the message
 * another is about to read. stamp orders it against the client's unclaimed
 * (async) error, so that the newer of the two is the one shown.
 */
static _Thread_local struct {
        const mps_client *client;
        uint64_t stamp;
        char msg[MPS__ERROR_MAX];
} thread_error;

/* Stamps for every error of the process: errors are rare, so one atomic
 * counter costs the hot path nothing. */
static _Atomic uint64_t error_stamps;

void mps__client_set_error(mps_client *c, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(thread_error.msg, sizeof(thread_error.msg), fmt, ap);
        va_end(ap);
        thread_error.client = c;
        thread_error.stamp = atomic_fetch_add(&error_stamps, 1) + 1;
}

void mps__client_copy_error(char *buf, size_t len) {
        snprintf(buf, len, "%s", thread_error.msg);
}

/* With the lock held: an error no call of a thread claims (an unsolicited
 * "error" from the server, a bad message, the connection's loss), for
 * whichever thread asks next. */
__attribute__((format(printf, 2, 3)))
static void set_async_error(mps_client *c, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->async_error, sizeof(c->async_error), fmt, ap);
        va_end(ap);
        c->async_stamp = atomic_fetch_add(&error_stamps, 1) + 1;
}

void mps__client_lock(mps_client *c) {
        pthread_mutex_lock(&c->lock);
}

void mps__client_unlock(mps_client *c) {
        pthread_mutex_unlock(&c->lock);
}

int mps__client_check_forked(mps_client *c) {
        if (!c->forked)
                return 0;
        mps__client_set_error(c, "this client belongs to the parent process (pid %d): a "
                                 "forked child opens its own with mps_client_open",
                              (int)c->parent_pid);
        return -ENOTCONN;
}

MPS_API const char *mps_client_error(const mps_client *client) {
        if (!client)
                return "";
        /* The lock is no part of the caller's view of the client. */
        mps_client *c = (mps_client *)client;
        mps__client_lock(c);
        bool own = thread_error.client == c;
        if (c->async_stamp && (!own || c->async_stamp > thread_error.stamp)) {
                snprintf(thread_error.msg, sizeof(thread_error.msg), "%s", c->async_error);
                thread_error.client = c;
                thread_error.stamp = c->async_stamp;
                own = true;
        }
        mps__client_unlock(c);
        return own ? thread_error.msg : "";
}

MPS_API int mps_client_fd(const mps_client *client) {
        if (!client)
                return -EBADF;
        mps_client *c = (mps_client *)client;
        mps__client_lock(c);
        int r = mps__client_check_forked(c);
        if (r == 0)
                r = c->closed ? -EBADF : c->fd;
        mps__client_unlock(c);
        return r;
}

MPS_API pid_t mps_client_server_pid(const mps_client *client) {
        if (!client)
                return -EINVAL;
        mps_client *c = (mps_client *)client;
        mps__client_lock(c);
        int r = mps__client_check_forked(c);
        mps__client_unlock(c);
        return r < 0 ? r : c->server_pid;
}

uint64_t mps__deadline(int timeout_ms) {
        return timeout_ms >= 0 ? mps__now_ns() + (uint64_t)timeout_ms * 1000000u : 0;
}

/* ---- finding a server ------------------------------------------------------- */

static int connect_path(const char *path, int *ret_fd) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        /* Never at 0, 1 or 2, which the caller may have closed: a job would
         * get our socket as its stdio. */
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        int moved = mps__fd_move_at_least(fd, 3);
        if (moved < 0) {
                mps__safe_close(fd);
                return moved;
        }
        fd = moved;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int r = -errno;
                mps__safe_close(fd);
                return r;
        }
        *ret_fd = fd;
        return 0;
}

/*
 * Every variable of ours is read with secure_getenv: in a setuid or
 * file-capability program (AT_SECURE) the environment is the caller's,
 * and the caller must not choose the binary such a program execs, the
 * server it trusts, or where the embedded server's log goes.
 */
int mps__forkserver_path(char *buf, size_t len) {
        const char *env = secure_getenv("MPSPAWN_FORKSERVER");
        if (env && *env) {
                if (snprintf(buf, len, "%s", env) >= (int)len)
                        return -ENAMETOOLONG;
                return 0;
        }
        /* Next to the running program: how an uninstalled build finds it. */
        if (mps__beside_self("mpforkserver", X_OK, buf, len) == 0)
                return 0;
        if (snprintf(buf, len, "%s", MPS_FORKSERVER_PATH) >= (int)len)
                return -ENAMETOOLONG;
        return 0;
}

/*
 * The per-user server lives in $XDG_RUNTIME_DIR (made by the login manager:
 * ours, 0700, gone at logout), or where that is unset in a directory of our
 * own under /tmp, as tmux's /tmp/tmux-UID: anyone can create a name in
 * /tmp, so it is used only once checked to be ours (mps__user_dir_check).
 * $MPSPAWN_TMPDIR replaces /tmp (as $TMUX_TMPDIR does), for tests.
 */
int mps__user_dir(char *buf, size_t len, bool *ret_private) {
        const char *rt = secure_getenv("XDG_RUNTIME_DIR");
        int n;
        if (rt && *rt) {
                *ret_private = false;
                n = snprintf(buf, len, "%s", rt);
        } else {
                const char *tmp = secure_getenv("MPSPAWN_TMPDIR");
                *ret_private = true;
                n = snprintf(buf, len, "%s/mpspawn-%u", tmp && *tmp ? tmp : USER_TMPDIR,
                             (unsigned)geteuid());
        }
        /* Room for "/mpspawn.sock" in a sockaddr_un as well. */
        if (n < 0 || (size_t)n >= len ||
            (size_t)n + sizeof("/" USER_SOCKET_NAME) > sizeof(((struct sockaddr_un *)0)->sun_path))
                return -ENAMETOOLONG;
        return 0;
}

int mps__user_dir_check(const char *dir, bool create, char *msg, size_t msglen) {
        if (create && mkdir(dir, 0700) < 0 && errno != EEXIST) {
                int r = -errno;
                snprintf(msg, msglen, "cannot create the directory '%s': %s", dir, strerror(-r));
                return r;
        }
        /* Checked through an fd opened without following a symlink, so the
         * answer is about the directory itself; lstat only names what a
         * refused one is. */
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                int r = -errno;
                struct stat l;
                bool link = lstat(dir, &l) == 0 && S_ISLNK(l.st_mode);
                snprintf(msg, msglen, "refusing '%s': %s", dir,
                         link ? "it is a symbolic link"
                         : r == -ENOTDIR ? "it is not a directory" : strerror(-r));
                return r;
        }
        struct stat st;
        int r = fstat(fd, &st) < 0 ? -errno : 0;
        mps__safe_close(fd);
        if (r < 0) {
                snprintf(msg, msglen, "cannot check '%s': %s", dir, strerror(-r));
                return r;
        }
        if (st.st_uid != geteuid()) {
                snprintf(msg, msglen,
                         "refusing '%s': it belongs to uid %u, not to us (uid %u); remove it "
                         "or set XDG_RUNTIME_DIR", dir, (unsigned)st.st_uid, (unsigned)geteuid());
                return -EPERM;
        }
        if (st.st_mode & 077) {
                snprintf(msg, msglen,
                         "refusing '%s': its mode is %04o, others may reach it (it must be "
                         "0700)", dir, (unsigned)(st.st_mode & 07777));
                return -EPERM;
        }
        return 0;
}

/* Connects to the per-user server's socket, if a directory fit for it
 * is there; the path tried goes to where. */
static int connect_user(int *ret_fd, char *where, size_t wherelen) {
        char dir[PATH_MAX], why[PATH_MAX + 128];
        bool private;
        int r = mps__user_dir(dir, sizeof(dir), &private);
        if (r < 0)
                return r;
        snprintf(where, wherelen, "%s/%s", dir, USER_SOCKET_NAME);
        /* A directory someone else made must not give us their server. */
        if (private && (r = mps__user_dir_check(dir, false, why, sizeof(why))) < 0)
                return r;
        return connect_path(where, ret_fd);
}

/* The default choice of server (see mps_client_open). */
static int connect_default(unsigned flags, int *ret_fd, char *where, size_t wherelen,
                           char *msg, size_t msglen) {
        const char *env = secure_getenv("MPSPAWN_SOCKET");
        char user[PATH_MAX + 32] = "the user socket";
        int r;
        if (env && *env) {
                snprintf(where, wherelen, "%s", env);
                return connect_path(env, ret_fd);
        }
        r = connect_path(SYSTEM_SOCKET, ret_fd);
        if (r == 0) {
                snprintf(where, wherelen, "%s", SYSTEM_SOCKET);
                return 0;
        }
        if (connect_user(ret_fd, user, sizeof(user)) == 0) {
                snprintf(where, wherelen, "%s", user);
                return 0;
        }
        if (flags & MPS_OPEN_NO_EMBEDDED) {
                snprintf(where, wherelen, "%s", SYSTEM_SOCKET);
                snprintf(msg, msglen,
                         "no forkserver is running (tried $MPSPAWN_SOCKET, %s and %s); a "
                         "private one would know no jobs",
                         SYSTEM_SOCKET, user);
                return -ECONNREFUSED;
        }
        snprintf(where, wherelen, "the embedded forkserver");
        return mps__embedded_connect(ret_fd, msg, msglen);
}

/* ---- sending ------------------------------------------------------------------ */

int mps__client_send(mps_client *c, const cJSON *json, const int *fds,
                     size_t nfds) {
        size_t len;
        char *s = mps__wire_encode(json, &len);
        if (!s) {
                int r = -errno;
                mps__client_set_error(c, "cannot send to the forkserver: %s", strerror(-r));
                return r;
        }
        int r = mps__client_send_raw(c, s, len, fds, nfds);
        cJSON_free(s);
        return r;
}

/*
 * Sends without the lock and without the reading role: a SOCK_SEQPACKET
 * datagram goes whole or not at all, so threads sending at once never
 * interleave, and a start never waits behind another thread's join. The
 * caller holds a reference (a process handle, or a request's), so the fd
 * stays open until it returns; a close meanwhile shuts it down, and the
 * send then fails with EPIPE.
 */
int mps__client_send_raw(mps_client *c, const char *buf, size_t len, const int *fds,
                         size_t nfds) {
        mps__client_lock(c);
        int r = mps__client_check_forked(c);
        if (r == 0 && (c->closed || c->broken))
                r = -ENOTCONN;
        int fd = c->fd;
        mps__client_unlock(c);
        if (r < 0)
                return r;
        for (;;) {
                r = mps__wire_send_raw(fd, buf, len, fds, nfds);
                if (r != -EAGAIN && r != -ENOBUFS) {
                        if (r == -EPIPE || r == -ECONNRESET)
                                r = -ENOTCONN;
                        if (r < 0)
                                mps__client_set_error(c, "cannot send to the forkserver: %s",
                                                      strerror(-r));
                        return r;
                }
                r = mps__poll_one(fd, POLLOUT, -1);
                if (r < 0)
                        return r;
        }
}

/* ---- waiters and the reading role ---------------------------------------------- */

/* A thread waiting while another reads: on its own stack, in c->waiters. */
struct mps__waiter {
        struct mps__list node;
        pthread_cond_t cond;
        const void *target; /* a process, a request or a pool */
        mps_process *proc;  /* (mps__client_wait_process) whose pidfd to poll */
};

/* The most pidfds the reader polls besides the socket: the waits past
 * that learn their ends from the server's records only. */
#define WATCH_MAX 32

static pthread_once_t cond_attr_once = PTHREAD_ONCE_INIT;
static pthread_condattr_t cond_attr;

/* Deadlines are CLOCK_MONOTONIC (mps__now_ns), and so are the waits. */
static void cond_attr_init(void) {
        pthread_condattr_init(&cond_attr);
        pthread_condattr_setclock(&cond_attr, CLOCK_MONOTONIC);
}

void mps__client_wake(mps_client *c, const void *target) {
        struct mps__list *n, *tmp;
        mps__list_foreach_safe(n, tmp, &c->waiters) {
                struct mps__waiter *w = mps__list_entry(n, struct mps__waiter, node);
                if (w->target == target)
                        pthread_cond_signal(&w->cond);
        }
}

static void wake_all(mps_client *c) {
        struct mps__list *n, *tmp;
        mps__list_foreach_safe(n, tmp, &c->waiters)
                pthread_cond_signal(&mps__list_entry(n, struct mps__waiter, node)->cond);
}

/* With the role free: one waiter takes it over (the oldest), so that the
 * socket is read while anyone waits. */
static void hand_over(mps_client *c) {
        struct mps__list *n = mps__list_first(&c->waiters);
        if (!c->reading && n)
                pthread_cond_signal(&mps__list_entry(n, struct mps__waiter, node)->cond);
}

static bool is_reader(const mps_client *c) {
        return c->reading && pthread_equal(c->reader, pthread_self());
}

/* Takes the reading role if it is free: true if this call took it (false
 * also when the caller already held it: the role is recursive). */
static bool take_role(mps_client *c) {
        if (c->reading)
                return false;
        c->reading = true;
        c->reader = pthread_self();
        return true;
}

static void give_role(mps_client *c, bool took) {
        if (!took)
                return;
        c->reading = false;
        hand_over(c);
}

void mps__client_defer(mps_client *c, mps_process *p) {
        if (p->on_change && mps__list_empty(&p->deferred_node))
                mps__list_push_back(&c->deferred, &p->deferred_node);
}

/*
 * As the reader: runs the change hooks processing queued, in order, with
 * the lock released (they are user callbacks, which may call anything,
 * this client included) and the role kept (so no two run at once). A hook
 * may free its process: nothing of it is touched after the call.
 */
static void run_deferred(mps_client *c) {
        struct mps__list *n;
        while ((n = mps__list_first(&c->deferred))) {
                mps_process *p = mps__list_entry(n, mps_process, deferred_node);
                mps__list_remove(n);
                void (*fn)(mps_process *, void *) = p->on_change;
                void *data = p->on_change_data;
                if (!fn)
                        continue;
                mps__client_unlock(c);
                fn(p, data);
                mps__client_lock(c);
        }
}

static void mark_broken(mps_client *c, const char *why) {
        if (c->broken)
                return;
        c->broken = true;
        snprintf(c->broken_reason, sizeof(c->broken_reason),
                 "lost the connection to the forkserver: %s", why);
        set_async_error(c, "%s", c->broken_reason);
        /* Each process leaves the map as it is marked lost. */
        mps_process *p;
        while ((p = mps__idmap_any(&c->inflight, NULL)))
                mps__process_lost(p);
        wake_all(c);
}

/* The reply to a request in progress, by its tag: kept whole for the
 * requester, whatever its op. */
static bool take_reply(mps_client *c, struct mps__msg *msg) {
        struct mps__request *q = msg->tag ? mps__idmap_get(&c->requests, msg->tag) : NULL;
        if (!q || q->done ||
            !(msg->op == MPS_OP_SIGNALED || msg->op == MPS_OP_EXITED ||
              msg->op == MPS_OP_JOBS || msg->op == MPS_OP_SERVER_STATS ||
              msg->op == MPS_OP_ERROR))
                return false;
        q->done = true;
        q->op = msg->op;
        q->reply = msg->json;
        msg->json = NULL; /* taken */
        mps__client_wake(c, q);
        return true;
}

/* With the lock held, as the reader. */
static void on_message(mps_client *c, struct mps__msg *msg) {
        char err[256];
        if (take_reply(c, msg))
                return;
        /* The late answer to a wait that timed out. */
        if ((msg->op == MPS_OP_EXITED || msg->op == MPS_OP_ERROR) && msg->tag != 0 &&
            mps__idmap_get(&c->stale_waits, msg->tag)) {
                uint64_t id = (uint64_t)(uintptr_t)mps__idmap_remove(&c->stale_waits, msg->tag);
                /* Kept whole (a call job's result and failure with it), for
                 * the next wait to decode as if it had just come. */
                struct mps__exited e;
                if (msg->op == MPS_OP_EXITED &&
                    mps__exited_decode(msg->json, &e, err, sizeof(err)) == 0 &&
                    !mps__idmap_get(&c->late_exits, id) &&
                    mps__idmap_put(&c->late_exits, id, msg->json) == 0)
                        msg->json = NULL; /* taken */
                return;
        }
        switch (msg->op) {
        case MPS_OP_SPAWNED:
        case MPS_OP_EXITED:
        case MPS_OP_STOPPED:
        case MPS_OP_CONTINUED:
                mps__process_on_msg(c, msg);
                break;
        case MPS_OP_ERROR: {
                struct mps__error e;
                if (mps__error_decode(msg->json, &e, err, sizeof(err)) < 0)
                        break;
                mps__envcache_on_error(c, e.tag, e.stage);
                if (e.tag != 0 && mps__idmap_get(&c->inflight, e.tag))
                        mps__process_on_msg(c, msg);
                else
                        set_async_error(c, "forkserver: %s", e.message);
                break;
        }
        default:
                break; /* unknown or unexpected: ignored, as the protocol says */
        }
}

/*
 * As the reader, with the lock held: receives and processes every message
 * waiting, without blocking, and runs the hooks that queued. Receiving and
 * processing stay together under the lock: two threads each receiving one
 * message could apply an "exited" before its "spawned" and lose the exit.
 * The hooks run once what is waiting has been read, and every
 * MPS_WIRE_BATCH_MAX messages of a longer burst: so the ends of a Pool's
 * tasks that arrive together are all known when its hooks run, and the
 * tasks that take their places start together (pool.c), in a batch.
 * Returns the number handled, or -ENOTCONN once the connection is gone
 * (with none handled).
 */
static int drain(mps_client *c) {
        char err[256];
        int handled = 0;
        run_deferred(c);
        while (!c->broken) {
                struct mps__msg msg;
                int r = mps__wire_recv(c->fd, &msg, err, sizeof(err), NULL);
                if (r == -EAGAIN) {
                        run_deferred(c);
                        return handled;
                }
                if (r == 0) {
                        mark_broken(c, c->closed ? "the client closed it"
                                                 : "the server closed it");
                        break;
                }
                if (r == -EBADMSG || r == -EPROTO || r == -EMFILE) {
                        set_async_error(c, "bad message from the forkserver: %s", err);
                        continue;
                }
                if (r < 0) {
                        mark_broken(c, strerror(-r));
                        break;
                }
                on_message(c, &msg);
                mps__msg_release(&msg);
                if (++handled % MPS_WIRE_BATCH_MAX == 0)
                        run_deferred(c);
        }
        run_deferred(c);
        return handled ? handled : -ENOTCONN;
}

/* The socket, then the pidfds of own and of the processes other threads
 * wait on, to be polled; the count. */
struct watch_set {
        struct pollfd fds[1 + WATCH_MAX];
        mps_process *procs[1 + WATCH_MAX];
        size_t n;
};

static void watch_add(struct watch_set *ws, mps_process *p) {
        int fd = p ? mps__process_exit_pidfd(p) : -1;
        if (fd < 0 || ws->n >= 1 + WATCH_MAX)
                return;
        /* No events: POLLHUP comes at the reap (POLLIN already at the
         * exit, before the status is there). */
        ws->fds[ws->n] = (struct pollfd){.fd = fd, .events = 0};
        ws->procs[ws->n++] = p;
}

static void watch_build(mps_client *c, mps_process *own, struct watch_set *ws) {
        ws->fds[0] = (struct pollfd){.fd = c->fd, .events = POLLIN};
        ws->procs[0] = NULL;
        ws->n = 1;
        if (!c->pidfd_exit)
                return;
        watch_add(ws, own);
        for (struct mps__list *n = c->waiters.next; n != &c->waiters; n = n->next)
                watch_add(ws, mps__list_entry(n, struct mps__waiter, node)->proc);
}

/* Whether p is still own or a waiter's process: one whose wait left while
 * the lock was released may have been closed since. */
static bool still_watched(mps_client *c, const mps_process *own, const mps_process *p) {
        if (p == own)
                return true;
        for (struct mps__list *n = c->waiters.next; n != &c->waiters; n = n->next)
                if (mps__list_entry(n, struct mps__waiter, node)->proc == p)
                        return true;
        return false;
}

/* As the reader: polls (without the lock) until the socket is readable,
 * a watched process is reaped, or the deadline; then takes the exits the
 * pidfds tell, and drains (the records of those exits may be among the
 * messages: they complete them). */
static int read_once(mps_client *c, uint64_t deadline, mps_process *own) {
        int timeout_ms = -1;
        if (deadline) {
                uint64_t now = mps__now_ns();
                if (now >= deadline)
                        return 0;
                timeout_ms = (int)((deadline - now + 999999) / 1000000);
        }
        struct watch_set ws;
        watch_build(c, own, &ws);
        mps__client_unlock(c);
        int r = mps__poll_many(ws.fds, ws.n, timeout_ms);
        mps__client_lock(c);
        if (r <= 0)
                return r;
        for (size_t i = 1; i < ws.n; i++)
                if (ws.fds[i].revents && still_watched(c, own, ws.procs[i]))
                        mps__process_take_pidfd_exit(ws.procs[i],
                                                     ws.fds[i].revents & POLLHUP);
        return ws.fds[0].revents ? drain(c) : r;
}

/* Sleeps on w until signalled or the deadline (spurious wake-ups are the
 * caller's loop's business). */
static void sleep_on(mps_client *c, struct mps__waiter *w, uint64_t deadline) {
        if (!deadline) {
                pthread_cond_wait(&w->cond, &c->lock);
                return;
        }
        struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000u),
                              .tv_nsec = (long)(deadline % 1000000000u)};
        pthread_cond_timedwait(&w->cond, &c->lock, &ts);
}

static int wait_for(mps_client *c, bool (*done)(void *arg), void *arg, const void *target,
                    mps_process *proc, uint64_t deadline_ns) {
        struct mps__waiter w = {.target = target, .proc = proc};
        bool took = false, have_cond = false;
        int r;
        mps__list_init(&w.node);
        for (;;) {
                if (done(arg)) {
                        r = 0;
                        break;
                }
                if ((r = mps__client_check_forked(c)) < 0)
                        break;
                if (c->broken) {
                        mps__client_set_error(c, "%s", c->broken_reason);
                        r = -ENOTCONN;
                        break;
                }
                if (deadline_ns && mps__now_ns() >= deadline_ns) {
                        r = -ETIMEDOUT;
                        break;
                }
                took |= take_role(c);
                if (is_reader(c)) {
                        /* (A waiter that took the role over reads now.) */
                        mps__list_remove(&w.node);
                        r = read_once(c, deadline_ns, proc);
                        if (r < 0 && r != -EINTR && r != -ENOTCONN)
                                break;
                        continue;
                }
                /* The reader may be polling without this pidfd (it began
                 * before this wait): a reap already done is seen here. */
                if (proc && mps__process_take_pidfd_exit(proc, false))
                        continue;
                if (!have_cond) {
                        pthread_once(&cond_attr_once, cond_attr_init);
                        pthread_cond_init(&w.cond, &cond_attr);
                        have_cond = true;
                }
                if (mps__list_empty(&w.node))
                        mps__list_push_back(&c->waiters, &w.node);
                sleep_on(c, &w, deadline_ns);
        }
        mps__list_remove(&w.node);
        if (have_cond)
                pthread_cond_destroy(&w.cond);
        give_role(c, took);
        /* A waiter signalled to take the role over may have left on its
         * deadline instead: pass it on. */
        hand_over(c);
        return r;
}

int mps__client_wait_until(mps_client *c, bool (*done)(void *arg), void *arg,
                           const void *target, uint64_t deadline_ns) {
        return wait_for(c, done, arg, target, NULL, deadline_ns);
}

int mps__client_wait_process(mps_client *c, bool (*done)(void *arg), mps_process *p,
                             uint64_t deadline_ns) {
        return wait_for(c, done, p, p, p, deadline_ns);
}

unsigned long mps__client_pidfd_exits(const mps_client *c) {
        return c->pidfd_exits;
}

unsigned long mps__client_batches(mps_client *c) {
        mps__client_lock(c);
        unsigned long n = c->batches;
        mps__client_unlock(c);
        return n;
}

/* ---- requests ------------------------------------------------------------------ */

static bool request_done(void *arg) {
        return ((struct mps__request *)arg)->done;
}

/* With the lock held: waits for q's reply and takes it; q leaves the
 * client's requests. A wait that times out with stale_id set stays
 * registered in the server: its answer is kept for the next wait. */
static int request_finish(mps_client *c, struct mps__request *q, int timeout_ms,
                          uint64_t stale_id, cJSON **ret_reply, enum mps__op *ret_op) {
        char err[256];
        int r = mps__client_wait_until(c, request_done, q, q, mps__deadline(timeout_ms));
        mps__idmap_remove(&c->requests, q->tag);
        if (!q->done) {
                if (r == -ETIMEDOUT && stale_id)
                        (void)mps__idmap_put(&c->stale_waits, q->tag,
                                             (void *)(uintptr_t)stale_id);
                return r < 0 ? r : -ETIMEDOUT;
        }
        if (q->op == MPS_OP_ERROR) {
                struct mps__error e;
                r = mps__error_decode(q->reply, &e, err, sizeof(err));
                if (r == 0) {
                        mps__client_set_error(c, "%s", e.message);
                        r = -e.err;
                }
                cJSON_Delete(q->reply);
                return r;
        }
        *ret_reply = q->reply;
        *ret_op = q->op;
        return 0;
}

/* With the lock held: registers q (before its request goes out, so that
 * the reply finds it) and takes a reference for the wait. */
static int request_begin(mps_client *c, struct mps__request *q, uint64_t tag) {
        *q = (struct mps__request){.tag = tag};
        int r = mps__idmap_put(&c->requests, tag, q);
        if (r == 0)
                c->refs++;
        return r;
}

int mps__client_request(mps_client *c, cJSON *json, int timeout_ms, uint64_t stale_id,
                        cJSON **ret_reply, enum mps__op *ret_op) {
        struct mps__request q;
        cJSON *t = cJSON_GetObjectItemCaseSensitive(json, "tag");
        if (!t || (!cJSON_IsRaw(t) && !cJSON_IsNumber(t)))
                return -EINVAL;
        mps__client_lock(c);
        int r = mps__client_check_forked(c);
        uint64_t tag = ++c->next_tag;
        if (r == 0)
                r = request_begin(c, &q, tag);
        mps__client_unlock(c);
        if (r < 0)
                return r;
        /* Requests are encoded with tag 0; give this one its own. */
        char buf[24];
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)tag);
        cJSON *raw = cJSON_CreateRaw(buf);
        if (!raw || !cJSON_ReplaceItemInObjectCaseSensitive(json, "tag", raw)) {
                cJSON_Delete(raw);
                r = -ENOMEM;
        } else {
                r = mps__client_send(c, json, NULL, 0);
        }
        mps__client_lock(c);
        if (r < 0)
                mps__idmap_remove(&c->requests, tag);
        else
                r = request_finish(c, &q, timeout_ms, stale_id, ret_reply, ret_op);
        mps__client_unlock_unref(c);
        return r;
}

int mps__client_await_locked(mps_client *c, uint64_t tag, int timeout_ms, uint64_t stale_id,
                             cJSON **ret_reply, enum mps__op *ret_op) {
        struct mps__request q;
        int r = request_begin(c, &q, tag);
        if (r < 0)
                return r;
        r = request_finish(c, &q, timeout_ms, stale_id, ret_reply, ret_op);
        c->refs--; /* (the caller holds one too) */
        return r;
}

/* ---- dispatch -------------------------------------------------------------------- */

int mps__client_drain_locked(mps_client *c) {
        if (c->reading && !is_reader(c))
                return 0; /* that reader handles what is waiting */
        bool took = take_role(c);
        int r = drain(c);
        give_role(c, took);
        return r;
}

MPS_API int mps_client_dispatch(mps_client *c) {
        if (!c)
                return -EBADF;
        mps__client_lock(c);
        int r = mps__client_check_forked(c);
        if (r == 0 && c->closed)
                r = -EBADF;
        else if (r == 0 && c->broken)
                r = -ENOTCONN;
        if (r < 0) {
                mps__client_unlock(c);
                return r;
        }
        if (c->reading && !is_reader(c)) {
                mps__client_unlock(c);
                return 0;
        }
        bool took = take_role(c);
        c->refs++; /* a hook may close the client */
        r = drain(c);
        give_role(c, took);
        mps__client_unlock_unref(c);
        return r;
}

void mps__client_run_deferred(mps_client *c) {
        mps__client_lock(c);
        if (!c->reading) {
                take_role(c);
                c->refs++;
                run_deferred(c);
                give_role(c, true);
                mps__client_unlock_unref(c);
                return;
        }
        /* Ours: the loop up the stack runs them; another's: that reader
         * does after its next message. */
        mps__client_unlock(c);
}

/* ---- open clients, and a host that forks ------------------------------------------- */

/*
 * Every open client, for the fork handlers: a forked child must never talk
 * on its parent's connection (its messages would interleave with the
 * parent's and its replies go to whichever reads first). Touched only at
 * open, at the last reference's release, and around fork.
 */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mps__list registry = MPS__LIST_INIT(registry);
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static pid_t forking_pid;

/* Every client's lock is taken across fork, so that no copy is caught
 * half-changed by a thread that does not exist in the child. */
static void atfork_prepare(void) {
        pthread_mutex_lock(&registry_lock);
        forking_pid = getpid();
        struct mps__list *n;
        for (n = registry.next; n != &registry; n = n->next)
                mps__client_lock(mps__list_entry(n, mps_client, registry_node));
}

static void atfork_parent(void) {
        struct mps__list *n;
        for (n = registry.next; n != &registry; n = n->next)
                mps__client_unlock(mps__list_entry(n, mps_client, registry_node));
        pthread_mutex_unlock(&registry_lock);
}

/* close() only, never shutdown(): that would cut the parent's connection
 * too. The threads that read or waited are not in the child. */
static void atfork_child(void) {
        struct mps__list *n;
        for (n = registry.next; n != &registry; n = n->next) {
                mps_client *c = mps__list_entry(n, mps_client, registry_node);
                if (!c->forked) {
                        c->forked = true;
                        c->parent_pid = forking_pid;
                        c->fd = mps__safe_close(c->fd);
                }
                c->reading = false;
                mps__list_init(&c->waiters);
                mps__client_unlock(c);
        }
        pthread_mutex_unlock(&registry_lock);
}

/* After the embedded server's handlers, whose prepare therefore runs after
 * ours (prepare handlers run in reverse order): the lock order is a
 * client's lock, then the embedded server's record (mps__embedded_close
 * is called with the client's lock held). */
static void atfork_register(void) {
        mps__embedded_atfork_register();
        (void)pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

static void registry_add(mps_client *c) {
        pthread_once(&atfork_once, atfork_register);
        pthread_mutex_lock(&registry_lock);
        mps__list_push_back(&registry, &c->registry_node);
        pthread_mutex_unlock(&registry_lock);
}

/* ---- open / close ----------------------------------------------------------------- */

/* The hello could not be sent (r). A server that refuses us replies and
 * closes, perhaps before our hello arrived: its reason may be waiting for
 * us, and is the better message. */
static int hello_failed(mps_client *c, int r, const char *where, char *msg,
                        size_t msglen) {
        char err[256];
        for (int i = 0; i < 2; i++) {
                struct mps__msg m;
                int q = mps__wire_recv(c->fd, &m, err, sizeof(err), NULL);
                if (q == -ECONNRESET)
                        continue;
                if (q > 0 && m.op == MPS_OP_ERROR) {
                        struct mps__error e;
                        if (mps__error_decode(m.json, &e, err, sizeof(err)) == 0) {
                                snprintf(msg, msglen, "%s refused the connection: %s",
                                         where, e.message);
                                r = -e.err;
                                mps__msg_release(&m);
                                return r;
                        }
                }
                if (q > 0)
                        mps__msg_release(&m);
                break;
        }
        snprintf(msg, msglen, "cannot talk to %s: %s", where, strerror(-r));
        return r;
}

/* The server's answer to our hello: its welcome (taken into c) or its
 * refusal. 0, or a negative errno with msg set; 1 for any other message,
 * which the handshake skips. */
static int take_answer(mps_client *c, const struct mps__msg *m, const char *where,
                       char *msg, size_t msglen) {
        char err[256];
        int r;
        if (m->op == MPS_OP_WELCOME) {
                struct mps__welcome w;
                r = mps__welcome_decode(m->json, &w, err, sizeof(err));
                if (r == 0 && w.protocol != MPS_PROTOCOL_VERSION) {
                        snprintf(msg, msglen, "%s speaks protocol %d; this library speaks %d",
                                 where, w.protocol, MPS_PROTOCOL_VERSION);
                        r = -EPROTO;
                } else if (r == 0) {
                        c->server_pid = w.pid;
                        c->server_pidfd = w.pidfd;
                        c->features = w.features;
                        if (batch_forced_off())
                                c->features &= ~(unsigned)MPS_FEATURE_SPAWN_BATCH;
                        snprintf(c->server_version, sizeof(c->server_version), "%s",
                                 w.version);
                } else {
                        snprintf(msg, msglen, "bad welcome from %s: %s", where, err);
                }
                return r;
        }
        if (m->op == MPS_OP_ERROR) {
                struct mps__error e;
                if (mps__error_decode(m->json, &e, err, sizeof(err)) < 0)
                        return -EPROTO;
                snprintf(msg, msglen, "%s refused the connection: %s", where, e.message);
                return e.err == EPROTONOSUPPORT ? -EPROTO : -e.err;
        }
        return 1;
}

static int handshake(mps_client *c, const char *where, char *msg, size_t msglen) {
        struct mps__hello h = {.protocol = MPS_PROTOCOL_VERSION,
                               .client = "libmpspawn/" MPS_VERSION_STRING};
        cJSON *json = mps__hello_encode(&h);
        char err[256];
        int r;
        if (!json)
                return -ENOMEM;
        r = mps__client_send(c, json, NULL, 0);
        cJSON_Delete(json);
        if (r < 0)
                return hello_failed(c, r, where, msg, msglen);
        uint64_t deadline = mps__now_ns() + HANDSHAKE_TIMEOUT_MS * 1000000ull;
        bool reset_seen = false;
        for (;;) {
                uint64_t now = mps__now_ns();
                if (now >= deadline) {
                        snprintf(msg, msglen, "%s did not answer within %d s", where,
                                 HANDSHAKE_TIMEOUT_MS / 1000);
                        return -ETIMEDOUT;
                }
                r = mps__poll_one(c->fd, POLLIN, (int)((deadline - now) / 1000000) + 1);
                if (r < 0)
                        return r;
                if (r == 0)
                        continue;
                struct mps__msg m;
                r = mps__wire_recv(c->fd, &m, err, sizeof(err), NULL);
                if (r == -EAGAIN)
                        continue;
                /* A server that refuses us may close before reading our
                 * hello; its reply still waits behind the reset. */
                if (r == -ECONNRESET && !reset_seen) {
                        reset_seen = true;
                        continue;
                }
                if (r == 0) {
                        snprintf(msg, msglen, "%s closed the connection", where);
                        return -ECONNRESET;
                }
                if (r == -EPROTO) {
                        snprintf(msg, msglen,
                                 "%s speaks an incompatible protocol (%s); this "
                                 "library speaks version %d",
                                 where, err, MPS_PROTOCOL_VERSION);
                        return -EPROTO;
                }
                if (r < 0) {
                        snprintf(msg, msglen, "%s: %s", where, err[0] ? err : strerror(-r));
                        return r;
                }
                r = take_answer(c, &m, where, msg, msglen);
                mps__msg_release(&m);
                if (r <= 0)
                        return r;
        }
}

/* MPSPAWN_NO_PIDFD_EXIT=1 (a debugging knob, see mpspawn.h): ends come
 * from the server's records only, as before Linux 6.15. */
static bool pidfd_exit_forced_off(void) {
        const char *v = getenv("MPSPAWN_NO_PIDFD_EXIT");
        return v && v[0] && strcmp(v, "0") != 0;
}

MPS_API int mps_client_open(const char *path, mps_client **ret_client,
                            char **ret_message) {
        return mps_client_open_flags(path, 0, ret_client, ret_message);
}

MPS_API int mps_client_open_flags(const char *path, unsigned flags,
                                  mps_client **ret_client, char **ret_message) {
        char where[PATH_MAX + 32] = "", msg[PATH_MAX + 512] = "";
        int fd = -1, r;

        if (!ret_client)
                return -EINVAL;
        if (path) {
                snprintf(where, sizeof(where), "%s", path);
                r = connect_path(path, &fd);
        } else {
                r = connect_default(flags, &fd, where, sizeof(where), msg, sizeof(msg));
        }
        if (r < 0) {
                if (!msg[0])
                        snprintf(msg, sizeof(msg), "cannot connect to the forkserver at %s: %s",
                                 where, strerror(-r));
                goto fail;
        }
        mps_client *c = calloc(1, sizeof(*c));
        if (!c) {
                r = -ENOMEM;
                snprintf(msg, sizeof(msg), "out of memory");
                goto fail;
        }
        pthread_mutex_init(&c->lock, NULL);
        mps__list_init(&c->waiters);
        mps__list_init(&c->deferred);
        mps__list_init(&c->registry_node);
        c->fd = fd;
        c->refs = 1;
        c->pidfd_exit = !pidfd_exit_forced_off();
        if ((r = handshake(c, where, msg, sizeof(msg))) < 0) {
                pthread_mutex_destroy(&c->lock);
                free(c);
                goto fail;
        }
        registry_add(c);
        *ret_client = c;
        return 0;
fail:
        mps__embedded_close(fd); /* a plain close unless the embedded server's */
        if (ret_message)
                *ret_message = strdup(msg);
        return r;
}

/* The last reference is gone: no thread uses c any more. */
static void client_free(mps_client *c) {
        pthread_mutex_lock(&registry_lock);
        mps__list_remove(&c->registry_node);
        pthread_mutex_unlock(&registry_lock);
        void *reply;
        uint64_t key = 0;
        while ((reply = mps__idmap_any(&c->late_exits, &key)))
                cJSON_Delete(mps__idmap_remove(&c->late_exits, key));
        mps__idmap_free(&c->late_exits);
        mps__idmap_free(&c->stale_waits);
        mps__idmap_free(&c->requests);
        mps__idmap_free(&c->inflight);
        mps__envcache_free(c);
        pthread_mutex_destroy(&c->lock);
        free(c);
}

void mps__client_ref_locked(mps_client *c) {
        c->refs++;
}

void mps__client_unlock_unref(mps_client *c) {
        bool last = --c->refs == 0;
        /* Closed under the lock, before the client leaves the registry: a
         * fork in between must find the descriptor closed or closes it. */
        if (last)
                c->fd = mps__embedded_close(c->fd); /* releases an embedded server */
        mps__client_unlock(c);
        if (last)
                client_free(c);
}

void mps__client_unref(mps_client *c) {
        if (!c)
                return;
        mps__client_lock(c);
        mps__client_unlock_unref(c);
}

/*
 * The connection is shut down at once (the server sees its end and
 * terminates the daemon jobs), and waiters learn it: a reader in poll
 * wakes to the shutdown and marks the connection lost; with no reader,
 * this thread marks it, and runs the Pool hooks that queued. The
 * descriptor itself is closed with the last reference, never while
 * another thread may poll it. In a forked child only memory is freed.
 */
MPS_API void mps_client_close(mps_client *c) {
        if (!c)
                return;
        mps__client_lock(c);
        if (c->closed) {
                mps__client_unlock(c);
                return;
        }
        c->closed = true;
        if (!c->forked) {
                shutdown(c->fd, SHUT_RDWR);
                bool took = take_role(c);
                if (is_reader(c)) {
                        mark_broken(c, "the client closed it");
                        if (took) {
                                c->refs++;
                                run_deferred(c);
                                c->refs--;
                        }
                }
                give_role(c, took);
        }
        mps__client_unlock_unref(c);
}
