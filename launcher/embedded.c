/* SPDX-License-Identifier: MIT */
/*
 * embedded.c: the library's embedded default, one private mpforkserver per
 * process. The first client that falls back to it starts the server
 * (posix_spawn, never a fork of the host) on a socketpair whose near end is
 * the "control" connection: the library's own, greeted like any client's
 * but used only to hand the server further connections. Every client,
 * the first included, gets a connection of its own: a fresh socketpair
 * whose far end goes to the server in an "adopt" request. The server
 * serves each as if it had accepted it (credentials from the kernel: the
 * maker of a socketpair is this process) and exits when its last
 * connection is gone. Clients therefore close in any order; the last one
 * closes the control connection too.
 *
 * The record below is the process's one shared state. Its mutex is held
 * only while a client opens (start, adopt) or closes, never on a job's
 * path. A server found gone (control connection broken, or stopping) is
 * forgotten and the next open starts a fresh one. A child forked by the
 * host forgets the record (atfork), so that its first open starts a server
 * of its own and never talks on the parent's control connection.
 *
 * An mpforkserver that predates adopt (no "adopt" in its welcome) serves
 * only its first connection: that one goes to the client, and the next
 * open starts another server, as every open did before.
 */
#include "embedded.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fdutil.h"
#include "idmap.h"
#include "lib.h"

#ifndef MPS_VERSION_STRING
#define MPS_VERSION_STRING "0.0.0"
#endif

#define EMBEDDED_START_TIMEOUT_MS 10000
/* The server's answer to a hello or an adopt on the control connection. */
#define EMBEDDED_REPLY_TIMEOUT_MS 10000

extern char **environ;

/* ---- starting a server ---------------------------------------------------------- */

/* Whether pid has ended, reaping it: 1 (status set), 0 not yet, or -errno.
 * ECHILD means the host reaps its children itself (or ignores SIGCHLD):
 * it has ended, with an unknown status, taken as success. */
static int reap_nohang(pid_t pid, int *status) {
        int r = mps__wait_retry(pid, status, WNOHANG, NULL);
        if (r == -ECHILD) {
                *status = 0;
                return 1;
        }
        return r < 0 ? r : r > 0;
}

/*
 * Waits, bounded, for the embedded server's first process, which exits as
 * soon as it has detached: a binary that never does (a wrong
 * $MPSPAWN_FORKSERVER, a stopped process) must not hang the caller. Waits
 * on a pidfd when there is one, else polls with WNOHANG every 10 ms. Past
 * EMBEDDED_START_TIMEOUT_MS the process is killed and reaped.
 */
static int wait_detached(pid_t pid, const char *path, char *msg, size_t msglen) {
        uint64_t deadline = mps__now_ns() + EMBEDDED_START_TIMEOUT_MS * 1000000ull;
        int pidfd = pidfd_open(pid, 0);
        int status = 0, r;
        while ((r = reap_nohang(pid, &status)) == 0) {
                uint64_t now = mps__now_ns();
                if (now >= deadline)
                        break;
                int left_ms = (int)((deadline - now) / 1000000) + 1;
                if (pidfd >= 0)
                        (void)mps__poll_one(pidfd, POLLIN, left_ms);
                else
                        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
        }
        mps__safe_close(pidfd);
        if (r == 0) {
                kill(pid, SIGKILL);
                (void)mps__wait_retry(pid, &status, 0, NULL);
                snprintf(msg, msglen,
                         "the embedded forkserver '%s' did not start within %d s",
                         path, EMBEDDED_START_TIMEOUT_MS / 1000);
                return -ETIMEDOUT;
        }
        if (r < 0 || !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
                snprintf(msg, msglen, "the embedded forkserver '%s' failed to start",
                         path);
                return -ECHILD;
        }
        return 0;
}

void mps__server_spawnattr_init(posix_spawnattr_t *attr) {
        sigset_t none, all;
        posix_spawnattr_init(attr);
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawnattr_setsigmask(attr, &none);
        posix_spawnattr_setsigdefault(attr, &all);
        posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                               POSIX_SPAWN_SETSID);
}

/* A connection as a socketpair, our end sv[0] never at 0, 1 or 2 (closed
 * by the caller, they are what a job inherits as its stdio). 0, or -errno
 * with msg set and nothing left open. */
static int connection_pair(int sv[2], char *msg, size_t msglen) {
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
                int r = -errno;
                snprintf(msg, msglen, "socketpair: %s", strerror(-r));
                return r;
        }
        int ours = mps__fd_move_at_least(sv[0], 3);
        if (ours < 0) {
                mps__safe_close(sv[0]);
                sv[1] = mps__safe_close(sv[1]);
                snprintf(msg, msglen, "fcntl: %s", strerror(-ours));
                return ours;
        }
        sv[0] = ours;
        return 0;
}

/*
 * Starts a private server on one end of a socketpair. posix_spawn (vfork
 * and exec, never a fork of this process) runs mpforkserver --embedded 3,
 * which detaches into its own session and exits its first process at once;
 * we reap that one here, so the caller is never left with a zombie and the
 * server's terminal signals never reach it.
 */
static int start_embedded(int *ret_fd, char *msg, size_t msglen) {
        char path[PATH_MAX];
        int sv[2] = {-1, -1}, far = -1, r;
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        pid_t pid;

        if ((r = mps__forkserver_path(path, sizeof(path))) < 0) {
                snprintf(msg, msglen, "cannot name the mpforkserver binary: %s",
                         strerror(-r));
                return r;
        }
        if ((r = connection_pair(sv, msg, msglen)) < 0)
                return r;
        /* dup2 onto the same number would keep O_CLOEXEC: keep the
         * server's end away from 3. */
        far = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
        if (far < 0) {
                r = -errno;
                snprintf(msg, msglen, "fcntl: %s", strerror(-r));
                goto out;
        }
        posix_spawn_file_actions_init(&fa);
        mps__server_spawnattr_init(&attr);
        /* The library never prints: the server's stdio is /dev/null unless
         * $MPSPAWN_DEBUG asks to see its log on our stderr. */
        const char *debug = secure_getenv("MPSPAWN_DEBUG");
        bool show_log = debug && *debug && strcmp(debug, "0") != 0;
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDWR, 0);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_RDWR, 0);
        if (!show_log)
                posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_RDWR, 0);
        posix_spawn_file_actions_adddup2(&fa, far, 3);
        posix_spawn_file_actions_addclosefrom_np(&fa, 4);
        char *argv[] = {path, "--embedded", "3", "--log-level",
                        show_log ? "debug" : "warning", NULL};
        r = posix_spawn(&pid, path, &fa, &attr, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        if (r != 0) {
                snprintf(msg, msglen, "cannot start the embedded forkserver '%s': %s",
                         path, strerror(r));
                r = -r;
                goto out;
        }
        if ((r = wait_detached(pid, path, msg, msglen)) < 0)
                goto out;
        *ret_fd = sv[0];
        sv[0] = -1;
        r = 0;
out:
        mps__safe_close(sv[0]);
        mps__safe_close(sv[1]);
        mps__safe_close(far);
        return r;
}

/* ---- the control connection ------------------------------------------------------ */

/* Sends json (with fds) on the control connection, waiting for room until
 * deadline. 0 or -errno. */
static int control_send(int fd, const cJSON *json, const int *fds, size_t nfds,
                        uint64_t deadline) {
        for (;;) {
                int r = mps__wire_send(fd, json, fds, nfds);
                if (r != -EAGAIN && r != -ENOBUFS)
                        return r;
                uint64_t now = mps__now_ns();
                if (now >= deadline)
                        return -ETIMEDOUT;
                r = mps__poll_one(fd, POLLOUT, (int)((deadline - now) / 1000000) + 1);
                if (r < 0)
                        return r;
        }
}

/* The next message on the control connection, by deadline: 1 with *m
 * filled, or -errno (-ECONNABORTED when the server closed it). */
static int control_recv(int fd, struct mps__msg *m, uint64_t deadline, char *msg,
                        size_t msglen) {
        char err[256] = "";
        for (;;) {
                uint64_t now = mps__now_ns();
                if (now >= deadline) {
                        snprintf(msg, msglen, "the embedded forkserver did not answer "
                                              "within %d s", EMBEDDED_REPLY_TIMEOUT_MS / 1000);
                        return -ETIMEDOUT;
                }
                int r = mps__poll_one(fd, POLLIN, (int)((deadline - now) / 1000000) + 1);
                if (r < 0)
                        return r;
                if (r == 0)
                        continue;
                r = mps__wire_recv(fd, m, err, sizeof(err), NULL);
                if (r == -EAGAIN)
                        continue;
                if (r == 0 || r == -ECONNRESET) {
                        snprintf(msg, msglen, "the embedded forkserver closed its connection");
                        return -ECONNABORTED;
                }
                if (r < 0) {
                        snprintf(msg, msglen, "the embedded forkserver: %s",
                                 err[0] ? err : strerror(-r));
                        return r;
                }
                return 1;
        }
}

/* An error reply into msg; its errno, negative. */
static int refused(const struct mps__msg *m, const char *what, char *msg, size_t msglen) {
        char err[256];
        struct mps__error e;
        if (mps__error_decode(m->json, &e, err, sizeof(err)) < 0) {
                snprintf(msg, msglen, "bad error reply from the embedded forkserver: %s", err);
                return -EPROTO;
        }
        snprintf(msg, msglen, "the embedded forkserver refused %s: %s", what, e.message);
        return e.err == EPROTONOSUPPORT ? -EPROTO : -e.err;
}

/* The hello on a new control connection: the features the server has. */
static int control_hello(int fd, unsigned *ret_features, char *msg, size_t msglen) {
        struct mps__hello h = {.protocol = MPS_PROTOCOL_VERSION,
                               .client = "libmpspawn/" MPS_VERSION_STRING " (control)"};
        uint64_t deadline = mps__now_ns() + EMBEDDED_REPLY_TIMEOUT_MS * 1000000ull;
        char err[256];
        cJSON *json = mps__hello_encode(&h);
        int r = json ? control_send(fd, json, NULL, 0, deadline) : -ENOMEM;
        cJSON_Delete(json);
        if (r < 0) {
                snprintf(msg, msglen, "cannot talk to the embedded forkserver: %s",
                         strerror(-r));
                return r;
        }
        for (;;) {
                struct mps__msg m;
                if ((r = control_recv(fd, &m, deadline, msg, msglen)) < 0)
                        return r;
                if (m.op == MPS_OP_ERROR) {
                        r = refused(&m, "the connection", msg, msglen);
                } else if (m.op == MPS_OP_WELCOME) {
                        struct mps__welcome w;
                        r = mps__welcome_decode(m.json, &w, err, sizeof(err));
                        if (r < 0) {
                                snprintf(msg, msglen, "bad welcome from the embedded "
                                                      "forkserver: %s", err);
                        } else if (w.protocol != MPS_PROTOCOL_VERSION) {
                                snprintf(msg, msglen,
                                         "the embedded forkserver speaks protocol %d; this "
                                         "library speaks %d", w.protocol,
                                         MPS_PROTOCOL_VERSION);
                                r = -EPROTO;
                        } else {
                                *ret_features = w.features;
                        }
                } else {
                        r = 1; /* anything else before the welcome: skipped */
                }
                mps__msg_release(&m);
                if (r <= 0)
                        return r;
        }
}

/* ---- the process's shared server -------------------------------------------------- */

static struct {
        pthread_mutex_t lock;
        int control;    /* -1: no shared server */
        pid_t owner;    /* the process that started it (getpid()) */
        uint64_t next_tag;
        unsigned refs;  /* connections handed out and not closed yet */
        /* Those connections (fd + 1 -> (void *)1): a close releases a
         * reference only for a connection of the current server, not one of
         * a server already forgotten. */
        struct mps__idmap conns;
} shared = {.lock = PTHREAD_MUTEX_INITIALIZER, .control = -1};

/* shared.refs, readable without the lock: while it is 0 no connection is
 * the shared server's, and closing any client's takes no lock (a client's
 * open, which counted its connection, happened before its close). */
static atomic_uint shared_refs;

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* A fork child's copy of its parent's map, set aside by the atfork handler
 * (which may not free) and freed at the child's next open. */
static struct mps__idmap orphaned;

/* Lets go of the shared server: the next open starts another. Connections
 * of this one stay as they are (their close is a plain close). */
static void forget(void) {
        shared.control = mps__safe_close(shared.control);
        shared.refs = 0;
        atomic_store_explicit(&shared_refs, 0, memory_order_release);
        mps__idmap_free(&shared.conns);
}

static void atfork_prepare(void) {
        pthread_mutex_lock(&shared.lock);
}

static void atfork_parent(void) {
        pthread_mutex_unlock(&shared.lock);
}

/* The child of a fork: the parent's server is not its to talk to, nor to
 * keep alive. Only close() here (a forked child of a threaded host may
 * call nothing that is not async-signal-safe); the map's memory is set
 * aside rather than freed, for the same reason. */
static void atfork_child(void) {
        if (shared.control >= 0)
                close(shared.control);
        shared.control = -1;
        shared.refs = 0;
        atomic_store_explicit(&shared_refs, 0, memory_order_relaxed);
        if (!orphaned.slots)
                orphaned = shared.conns;
        shared.conns = (struct mps__idmap){0};
        pthread_mutex_unlock(&shared.lock);
}

static void register_atfork(void) {
        (void)pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* A new connection from the shared server, through an adopt request:
 * 0 with *ret_fd, or -errno. */
static int adopt(int *ret_fd, char *msg, size_t msglen) {
        uint64_t deadline = mps__now_ns() + EMBEDDED_REPLY_TIMEOUT_MS * 1000000ull;
        int sv[2];
        int r = connection_pair(sv, msg, msglen);
        if (r < 0)
                return r;
        int ours = sv[0];
        uint64_t tag = ++shared.next_tag;
        cJSON *json = mps__adopt_encode(tag);
        r = json ? control_send(shared.control, json, &sv[1], 1, deadline) : -ENOMEM;
        cJSON_Delete(json);
        mps__safe_close(sv[1]); /* the server has its own copy now */
        if (r < 0)
                snprintf(msg, msglen, "cannot talk to the embedded forkserver: %s",
                         strerror(-r));
        while (r == 0) {
                struct mps__msg m;
                if ((r = control_recv(shared.control, &m, deadline, msg, msglen)) < 0)
                        break;
                /* Skipped: the late answer to an adopt that timed out. */
                r = m.tag != tag                ? 0
                    : m.op == MPS_OP_ADOPTED ? 1
                    : m.op == MPS_OP_ERROR   ? refused(&m, "a new connection", msg, msglen)
                                             : 0;
                mps__msg_release(&m);
        }
        if (r < 0) {
                mps__safe_close(ours);
                return r;
        }
        *ret_fd = ours;
        return 0;
}

/* Errors that say the shared server is no more (or will not be for long):
 * the next try starts another. */
static bool server_gone(int r) {
        return r == -EPIPE || r == -ECONNRESET || r == -ECONNABORTED || r == -ENOTCONN ||
               r == -ESHUTDOWN;
}

/* A shared server, started now: 1 when it shares (adopt), 0 when it is an
 * older binary whose one connection is *ret_own, or -errno. */
static int start_shared(int *ret_own, char *msg, size_t msglen) {
        unsigned features = 0;
        int control = -1;
        int r = start_embedded(&control, msg, msglen);
        if (r < 0)
                return r;
        if ((r = control_hello(control, &features, msg, msglen)) < 0) {
                mps__safe_close(control);
                return r;
        }
        if (!(features & MPS_FEATURE_ADOPT)) {
                /* It greets its client again, as any server answers every
                 * hello. */
                *ret_own = control;
                return 0;
        }
        shared.control = control;
        shared.owner = getpid();
        return 1;
}

static int connect_locked(int *ret_fd, char *msg, size_t msglen) {
        mps__idmap_free(&orphaned);
        /* A record made before a fork that ran no atfork handlers (a raw
         * clone): the parent's, not ours. */
        if (shared.control >= 0 && shared.owner != getpid()) {
                close(shared.control);
                shared.control = -1;
                shared.refs = 0;
                atomic_store_explicit(&shared_refs, 0, memory_order_release);
                shared.conns = (struct mps__idmap){0}; /* the parent's memory */
        }
        for (int attempt = 0;; attempt++) {
                bool fresh = shared.control < 0;
                int fd = -1, r;
                if (fresh && (r = start_shared(ret_fd, msg, msglen)) <= 0)
                        return r;
                r = adopt(&fd, msg, msglen);
                if (r == 0 && mps__idmap_put(&shared.conns, (uint64_t)fd + 1, (void *)1) < 0) {
                        mps__safe_close(fd);
                        snprintf(msg, msglen, "out of memory");
                        r = -ENOMEM;
                }
                if (r == 0) {
                        atomic_store_explicit(&shared_refs, ++shared.refs,
                                              memory_order_release);
                        *ret_fd = fd;
                        return 0;
                }
                if (fresh || attempt > 0 || !server_gone(r)) {
                        /* A server nobody uses must not stay behind. */
                        if (shared.refs == 0)
                                forget();
                        return r;
                }
                forget(); /* gone: try once more with a fresh one */
        }
}

void mps__embedded_atfork_register(void) {
        pthread_once(&atfork_once, register_atfork);
}

int mps__embedded_connect(int *ret_fd, char *msg, size_t msglen) {
        mps__embedded_atfork_register();
        pthread_mutex_lock(&shared.lock);
        int r = connect_locked(ret_fd, msg, msglen);
        pthread_mutex_unlock(&shared.lock);
        return r;
}

int mps__embedded_close(int fd) {
        if (fd < 0)
                return -1;
        if (atomic_load_explicit(&shared_refs, memory_order_acquire) == 0)
                return mps__safe_close(fd);
        pthread_mutex_lock(&shared.lock);
        if (shared.control >= 0 && shared.owner == getpid() &&
            mps__idmap_remove(&shared.conns, (uint64_t)fd + 1)) {
                atomic_store_explicit(&shared_refs, --shared.refs, memory_order_release);
                if (shared.refs == 0)
                        forget(); /* the server exits once fd, its last, is closed too */
        }
        mps__safe_close(fd);
        pthread_mutex_unlock(&shared.lock);
        return -1;
}
