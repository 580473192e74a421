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
#include "lib.h"

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

void mps__client_set_error(mps_client *c, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->error, sizeof(c->error), fmt, ap);
        va_end(ap);
}

MPS_API const char *mps_client_error(const mps_client *c) {
        return c ? c->error : "";
}

MPS_API int mps_client_fd(const mps_client *c) {
        return c && !c->closed ? c->fd : -EBADF;
}

MPS_API pid_t mps_client_server_pid(const mps_client *c) {
        return c ? c->server_pid : -EINVAL;
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

static bool executable(const char *path) {
        return access(path, X_OK) == 0;
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
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n > 0) {
                self[n] = '\0';
                char *slash = strrchr(self, '/');
                if (slash) {
                        slash[1] = '\0';
                        if (snprintf(buf, len, "%smpforkserver", self) < (int)len &&
                            executable(buf))
                                return 0;
                }
        }
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

/* ---- sending and receiving --------------------------------------------------- */

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

int mps__client_send_raw(mps_client *c, const char *buf, size_t len, const int *fds,
                         size_t nfds) {
        if (c->closed || c->broken)
                return -ENOTCONN;
        for (;;) {
                int r = mps__wire_send_raw(c->fd, buf, len, fds, nfds);
                if (r != -EAGAIN && r != -ENOBUFS) {
                        if (r == -EPIPE || r == -ECONNRESET)
                                r = -ENOTCONN;
                        if (r < 0)
                                mps__client_set_error(c, "cannot send to the forkserver: %s",
                                                      strerror(-r));
                        return r;
                }
                r = mps__poll_one(c->fd, POLLOUT, -1);
                if (r < 0)
                        return r;
        }
}

static void mark_broken(mps_client *c, const char *why) {
        if (c->broken)
                return;
        c->broken = true;
        mps__client_set_error(c, "lost the connection to the forkserver: %s", why);
        /* Each process leaves the map as it is marked lost. */
        mps_process *p;
        while ((p = mps__idmap_any(&c->inflight, NULL)))
                mps__process_lost(p);
}

static void on_message(mps_client *c, struct mps__msg *msg) {
        char err[256];
        /* The reply to the one synchronous request in progress: kept whole
         * for the requester, whatever its op. */
        if (c->req_tag != 0 && msg->tag == c->req_tag && !c->req_done &&
            (msg->op == MPS_OP_SIGNALED || msg->op == MPS_OP_EXITED ||
             msg->op == MPS_OP_JOBS || msg->op == MPS_OP_SERVER_STATS ||
             msg->op == MPS_OP_ERROR)) {
                c->req_done = true;
                c->req_op = msg->op;
                c->req_reply = msg->json;
                msg->json = NULL; /* taken */
                return;
        }
        /* The late answer to a wait that timed out. */
        if ((msg->op == MPS_OP_EXITED || msg->op == MPS_OP_ERROR) && msg->tag != 0 &&
            mps__idmap_get(&c->stale_waits, msg->tag)) {
                uint64_t id = (uint64_t)(uintptr_t)mps__idmap_remove(&c->stale_waits, msg->tag);
                struct mps__exited e;
                mps_exit_info *info;
                if (msg->op == MPS_OP_EXITED &&
                    mps__exited_decode(msg->json, &e, err, sizeof(err)) == 0 &&
                    !mps__idmap_get(&c->late_exits, id) && (info = malloc(sizeof(*info)))) {
                        *info = mps__exit_info_of(&e);
                        if (mps__idmap_put(&c->late_exits, id, info) < 0)
                                free(info);
                }
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
                if (e.tag != 0 && mps__idmap_get(&c->inflight, e.tag))
                        mps__process_on_msg(c, msg);
                else
                        mps__client_set_error(c, "forkserver: %s", e.message);
                break;
        }
        default:
                break; /* unknown or unexpected: ignored, as the protocol says */
        }
}

int mps__client_request(mps_client *c, cJSON *json, int timeout_ms,
                        cJSON **ret_reply, enum mps__op *ret_op) {
        uint64_t tag = ++c->next_tag;
        cJSON *t = cJSON_GetObjectItemCaseSensitive(json, "tag");
        if (!t || (!cJSON_IsRaw(t) && !cJSON_IsNumber(t)))
                return -EINVAL;
        /* Requests are encoded with tag 0; give this one its own. */
        char buf[24];
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)tag);
        cJSON *raw = cJSON_CreateRaw(buf);
        if (!raw || !cJSON_ReplaceItemInObjectCaseSensitive(json, "tag", raw)) {
                cJSON_Delete(raw);
                return -ENOMEM;
        }
        int r = mps__client_send(c, json, NULL, 0);
        if (r < 0)
                return r;
        c->last_req_tag = tag;
        return mps__client_await(c, tag, timeout_ms, ret_reply, ret_op);
}

int mps__client_await(mps_client *c, uint64_t tag, int timeout_ms, cJSON **ret_reply,
                      enum mps__op *ret_op) {
        char err[256];
        int r = 0;
        c->req_tag = tag;
        c->req_done = false;
        uint64_t deadline = timeout_ms >= 0
                ? mps__now_ns() + (uint64_t)timeout_ms * 1000000u : 0;
        while (!c->req_done) {
                int wait_ms = -1;
                if (timeout_ms >= 0) {
                        uint64_t now = mps__now_ns();
                        if (now >= deadline) {
                                r = -ETIMEDOUT;
                                break;
                        }
                        wait_ms = (int)((deadline - now + 999999) / 1000000);
                }
                r = mps__client_wait(c, wait_ms);
                if (r < 0 && r != -EINTR)
                        break;
                r = 0;
        }
        c->req_tag = 0;
        if (!c->req_done)
                return r < 0 ? r : -ETIMEDOUT;
        cJSON *reply = c->req_reply;
        enum mps__op op = c->req_op;
        c->req_reply = NULL;
        c->req_done = false;
        if (op == MPS_OP_ERROR) {
                struct mps__error e;
                r = mps__error_decode(reply, &e, err, sizeof(err));
                if (r == 0) {
                        mps__client_set_error(c, "%s", e.message);
                        r = -e.err;
                }
                cJSON_Delete(reply);
                return r;
        }
        *ret_reply = reply;
        *ret_op = op;
        return 0;
}

MPS_API int mps_client_dispatch(mps_client *c) {
        char err[256];
        int handled = 0;
        if (!c || c->closed)
                return -EBADF;
        if (c->broken)
                return -ENOTCONN;
        for (;;) {
                struct mps__msg msg;
                int r = mps__wire_recv(c->fd, &msg, err, sizeof(err), NULL);
                if (r == -EAGAIN)
                        return handled;
                if (r == 0) {
                        mark_broken(c, "the server closed it");
                        return handled ? handled : -ENOTCONN;
                }
                if (r == -EBADMSG || r == -EPROTO || r == -EMFILE) {
                        mps__client_set_error(c, "bad message from the forkserver: %s",
                                              err);
                        continue;
                }
                if (r < 0) {
                        mark_broken(c, strerror(-r));
                        return handled ? handled : -ENOTCONN;
                }
                on_message(c, &msg);
                mps__msg_release(&msg);
                handled++;
        }
}

int mps__client_wait(mps_client *c, int timeout_ms) {
        if (c->closed)
                return -EBADF;
        if (c->broken)
                return -ENOTCONN;
        int r = mps__poll_one(c->fd, POLLIN, timeout_ms);
        if (r <= 0)
                return r;
        return mps_client_dispatch(c);
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
        c->fd = fd;
        c->refs = 1;
        if ((r = handshake(c, where, msg, sizeof(msg))) < 0) {
                free(c);
                goto fail;
        }
        *ret_client = c;
        return 0;
fail:
        mps__embedded_close(fd); /* a plain close unless the embedded server's */
        if (ret_message)
                *ret_message = strdup(msg);
        return r;
}

void mps__client_unref(mps_client *c) {
        if (!c || --c->refs > 0)
                return;
        cJSON_Delete(c->req_reply);
        void *info;
        while ((info = mps__idmap_any(&c->late_exits, NULL))) {
                uint64_t key = 0;
                mps__idmap_any(&c->late_exits, &key);
                free(mps__idmap_remove(&c->late_exits, key));
        }
        mps__idmap_free(&c->late_exits);
        mps__idmap_free(&c->stale_waits);
        mps__idmap_free(&c->inflight);
        free(c);
}

MPS_API void mps_client_close(mps_client *c) {
        if (!c || c->closed)
                return;
        mark_broken(c, "the client closed it");
        c->closed = true;
        c->fd = mps__embedded_close(c->fd); /* releases an embedded server */
        mps__client_unref(c);
}
