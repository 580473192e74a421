/* SPDX-License-Identifier: MIT */
/*
 * cli_server.c: the per-user server that mpspawn starts for itself. With no
 * --socket, no $MPSPAWN_SOCKET and no system or user server answering, RUN
 * and BATCH (and so --detach) start one on the user socket, in the
 * directory mps__user_dir names ($XDG_RUNTIME_DIR, or a private 0700
 * /tmp/mpspawn-UID), and later invocations, `ps`, `kill` and `wait` find it
 * there. It exits after $MPSPAWN_USER_SERVER_IDLE seconds (default 600)
 * without a client, a job or an exit record waiting to be collected, as
 * gpg-agent leaves when it is not needed.
 *
 * Two CLIs racing to start it end with one server: the check, the start
 * and the wait for readiness happen under an flock of DIR/mpspawn.lock,
 * and whoever gets the lock second finds the first one's server. The
 * server is started with posix_spawn (this process is never forked) in a
 * session of its own, forks once more to leave us (--detach), and writes a
 * line to a pipe when it listens (--ready-fd). Its stdio is /dev/null but
 * for stderr, its log (warnings and errors), which goes to DIR/mpspawn.log.
 *
 * What the first CLI's context leaks into the server: jobs get their own
 * client's context (forkserver/peer.c), but the server's own life must not
 * hang on its starter's. Its environment is a short list of variables, its
 * cwd "/", its umask 077, its signal mask empty and every disposition the
 * default; soft resource limits that could end it (CPU, file size, memory,
 * processes) are raised to the hard ones. What cannot be undone by an
 * unprivileged process stays, and is documented in mpspawn(1): a raised
 * nice value, hard limits, a seccomp filter, no_new_privs, the cgroup and
 * the namespaces of the first CLI.
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
#include <sys/file.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "embedded.h"
#include "fdutil.h"
#include "lib.h"
#include "number.h"

#define USER_SOCKET_NAME "mpspawn.sock"
#define USER_LOCK_NAME "mpspawn.lock"
#define USER_LOG_NAME "mpspawn.log"
#define USER_IDLE_DEFAULT "600"
#define USER_IDLE_MAX 86400
#define START_TIMEOUT_MS 10000
/* Another CLI holds the lock for at most one start and its wait. */
#define LOCK_TIMEOUT_MS (2 * START_TIMEOUT_MS + 5000)
/* The log is cut back to nothing at a start once it is past this size. */
#define LOG_MAX_BYTES (1 << 20)

extern char **environ;

/* What the server's environment keeps of ours: what a log line or a
 * library may look at, and the test suite's switches. */
static const char *const kept_env[] = {
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "XDG_RUNTIME_DIR",
        "MPSPAWN_SERVER_NO_PIDFD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
};

/* Soft limits raised to the hard ones for the server: any of them could
 * end it or stop it from serving. */
static const int raised_limits[] = {
        RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_DATA, RLIMIT_AS, RLIMIT_NPROC,
};
#define NRAISED (sizeof(raised_limits) / sizeof(raised_limits[0]))

/* A malloc()ed message (NULL when memory ran out). */
__attribute__((format(printf, 1, 2))) static char *msg_dup(const char *fmt, ...) {
        va_list ap;
        char *m;
        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        return m;
}

/* The environment of the server: kept_env's variables that are set. */
static void server_env(char **env, size_t max) {
        size_t n = 0;
        for (size_t i = 0; i < sizeof(kept_env) / sizeof(kept_env[0]) && n + 1 < max; i++) {
                size_t len = strlen(kept_env[i]);
                for (char **e = environ; e && *e; e++)
                        if (strncmp(*e, kept_env[i], len) == 0 && (*e)[len] == '=') {
                                env[n++] = *e;
                                break;
                        }
        }
        env[n] = NULL;
}

/* Takes the lock, waiting at most LOCK_TIMEOUT_MS: a CLI that holds it
 * and was stopped (Ctrl-Z) must not hang every other one. */
static int lock_bounded(int fd) {
        uint64_t deadline = mps__now_ns() + LOCK_TIMEOUT_MS * 1000000ull;
        while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno != EWOULDBLOCK && errno != EINTR)
                        return -errno;
                if (mps__now_ns() >= deadline)
                        return -ETIMEDOUT;
                nanosleep(&(struct timespec){.tv_nsec = 5000000}, NULL);
        }
        return 0;
}

/* The log, opened for the server's stderr and cut back when too long. */
static int open_log(const char *path) {
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) == 0 && st.st_size > LOG_MAX_BYTES)
                (void)!ftruncate(fd, 0);
        int moved = fcntl(fd, F_DUPFD_CLOEXEC, 10);
        mps__safe_close(fd);
        return moved < 0 ? -errno : moved;
}

/* The last line of the log (what a failed start said), in buf; "" if none. */
static void log_tail(const char *path, char *buf, size_t len) {
        char tail[512];
        buf[0] = '\0';
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return;
        off_t end = lseek(fd, 0, SEEK_END);
        off_t from = end > (off_t)sizeof(tail) - 1 ? end - (off_t)sizeof(tail) + 1 : 0;
        ssize_t n = pread(fd, tail, sizeof(tail) - 1, from);
        mps__safe_close(fd);
        if (n <= 0)
                return;
        tail[n] = '\0';
        while (n > 0 && tail[n - 1] == '\n')
                tail[--n] = '\0';
        char *line = strrchr(tail, '\n');
        snprintf(buf, len, "%s", line ? line + 1 : tail);
}

/* The idle period as the server's --idle-exit value. */
static int idle_seconds(const char **ret) {
        const char *v = secure_getenv("MPSPAWN_USER_SERVER_IDLE");
        unsigned long long n;
        if (!v || !*v) {
                *ret = USER_IDLE_DEFAULT;
                return 0;
        }
        if (mps__parse_unsigned(v, 10, 0, USER_IDLE_MAX, &n) < 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

/*
 * Reaps the first process of the server, which exits 0 as soon as it has
 * forked the server proper; ECHILD (the caller ignores SIGCHLD) is fine.
 * Bounded by timeout_ms: past it the process (not the server, which has
 * left it) is killed.
 */
static void reap_starter(pid_t pid, int timeout_ms) {
        int pidfd = pidfd_open(pid, 0);
        if (pidfd >= 0) {
                (void)mps__poll_one(pidfd, POLLIN, timeout_ms);
                mps__safe_close(pidfd);
        }
        if (mps__wait_retry(pid, NULL, WNOHANG, NULL) == 0) {
                kill(pid, SIGKILL);
                (void)mps__wait_retry(pid, NULL, 0, NULL);
        }
}

/* posix_spawn of the server as the header comment says; the pid of its
 * first process. Called with the context reset around it. */
static int spawn_server(const char *bin, char *const argv[], int logfd, int readyfd,
                        pid_t *ret_pid) {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        char *env[sizeof(kept_env) / sizeof(kept_env[0]) + 1];
        struct rlimit saved[NRAISED];

        server_env(env, sizeof(env) / sizeof(env[0]));
        posix_spawn_file_actions_init(&fa);
        mps__server_spawnattr_init(&attr);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, logfd, 2);
        posix_spawn_file_actions_adddup2(&fa, readyfd, 3);
        posix_spawn_file_actions_addclosefrom_np(&fa, 4);
        posix_spawn_file_actions_addchdir_np(&fa, "/");
        /* posix_spawn has no attribute for these: set ours around it (we
         * are single-threaded) and put them back. */
        mode_t mask = umask(077);
        for (size_t i = 0; i < NRAISED; i++) {
                getrlimit(raised_limits[i], &saved[i]);
                struct rlimit up = {saved[i].rlim_max, saved[i].rlim_max};
                setrlimit(raised_limits[i], &up);
        }
        int r = posix_spawn(ret_pid, bin, &fa, &attr, argv, env);
        for (size_t i = 0; i < NRAISED; i++)
                setrlimit(raised_limits[i], &saved[i]);
        umask(mask);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        return -r;
}

/* Waits, bounded, for the line the server writes once it listens (its
 * first byte is enough): 0, or -errno (-ECHILD: it ended without one;
 * -ETIMEDOUT). */
static int wait_ready(int fd) {
        char c;
        int r = mps__poll_one(fd, POLLIN, START_TIMEOUT_MS);
        if (r == 0)
                return -ETIMEDOUT;
        if (r < 0)
                return r;
        ssize_t n = mps__read_retry(fd, &c, 1);
        return n == 1 ? 0 : n < 0 ? (int)n : -ECHILD;
}

/* Starts the server on sock and waits until it listens. 0, or -errno with
 * the reason in *ret_msg. Called under the lock. */
static int start_server(const char *dir, const char *sock, char **ret_msg) {
        char bin[PATH_MAX], logpath[PATH_MAX + 32], last[512];
        const char *idle;
        int pipefd[2] = {-1, -1}, far = -1, logfd = -1, r;
        pid_t pid;

        snprintf(logpath, sizeof(logpath), "%s/%s", dir, USER_LOG_NAME);
        if (idle_seconds(&idle) < 0) {
                *ret_msg = msg_dup("bad $MPSPAWN_USER_SERVER_IDLE '%s' (seconds, 0 to %d)",
                                   secure_getenv("MPSPAWN_USER_SERVER_IDLE"), USER_IDLE_MAX);
                return -EINVAL;
        }
        if ((r = mps__forkserver_path(bin, sizeof(bin))) < 0) {
                *ret_msg = msg_dup("cannot name the mpforkserver binary: %s", strerror(-r));
                return r;
        }
        /* The server starts in "/": a relative $MPSPAWN_FORKSERVER (make
         * demo's build/mpforkserver) is made absolute against our cwd. */
        if (bin[0] != '/') {
                char abs[PATH_MAX];
                if (!realpath(bin, abs)) {
                        r = -errno;
                        *ret_msg = msg_dup("cannot start the forkserver '%s': %s", bin,
                                           strerror(-r));
                        return r;
                }
                snprintf(bin, sizeof(bin), "%s", abs);
        }
        if ((logfd = open_log(logpath)) < 0) {
                r = logfd;
                *ret_msg = msg_dup("cannot open the server's log '%s': %s", logpath,
                                   strerror(-r));
                return r;
        }
        /* The server's end away from 3, so that dup2 onto 3 clears O_CLOEXEC. */
        if (pipe2(pipefd, O_CLOEXEC) < 0 || (far = fcntl(pipefd[1], F_DUPFD_CLOEXEC, 10)) < 0) {
                r = -errno;
                *ret_msg = msg_dup("pipe: %s", strerror(-r));
                goto out;
        }
        pipefd[1] = mps__safe_close(pipefd[1]);
        char *argv[] = {bin, "--socket", (char *)sock, "--idle-exit", (char *)idle,
                        "--log-level", "warning", "--detach", "--ready-fd", "3", NULL};
        if ((r = spawn_server(bin, argv, logfd, far, &pid)) < 0) {
                *ret_msg = msg_dup("cannot start the forkserver '%s': %s", bin, strerror(-r));
                goto out;
        }
        far = mps__safe_close(far);
        r = wait_ready(pipefd[0]);
        reap_starter(pid, r == 0 ? START_TIMEOUT_MS : 1000);
        if (r < 0) {
                log_tail(logpath, last, sizeof(last));
                *ret_msg = msg_dup("the per-user forkserver '%s' %s%s%s (log: %s)", bin,
                                   r == -ETIMEDOUT ? "did not answer within 10 s"
                                                   : "failed to start",
                                   last[0] ? ": " : "", last, logpath);
        }
out:
        mps__safe_close(pipefd[0]);
        mps__safe_close(pipefd[1]);
        mps__safe_close(far);
        mps__safe_close(logfd);
        return r;
}

/* Connects to the user's server, starting it if none answers: under the
 * lock, a second look, then at most two starts (the first can meet a
 * server that was just leaving on idle exit). */
static int open_user_server(mps_client **ret, char **ret_msg) {
        char dir[PATH_MAX], sock[PATH_MAX + 32], lock[PATH_MAX + 32], why[PATH_MAX + 256];
        bool private;
        int r = mps__user_dir(dir, sizeof(dir), &private);
        if (r < 0) {
                *ret_msg = msg_dup("the per-user server's directory name is too long");
                return r;
        }
        if (private && (r = mps__user_dir_check(dir, true, why, sizeof(why))) < 0) {
                *ret_msg = msg_dup("cannot start a per-user forkserver: %s", why);
                return r;
        }
        snprintf(sock, sizeof(sock), "%s/%s", dir, USER_SOCKET_NAME);
        snprintf(lock, sizeof(lock), "%s/%s", dir, USER_LOCK_NAME);
        int lockfd = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (lockfd < 0) {
                r = -errno;
                *ret_msg = msg_dup("cannot open the lock '%s': %s", lock, strerror(-r));
                return r;
        }
        if ((r = lock_bounded(lockfd)) < 0) {
                *ret_msg = msg_dup("cannot lock '%s': %s (another mpspawn starting the "
                                   "server?)", lock, strerror(-r));
                mps__safe_close(lockfd);
                return r;
        }
        char *m = NULL;
        r = mps_client_open(sock, ret, &m);
        for (int starts = 0; r < 0 && starts < 2; starts++) {
                free(m);
                m = NULL;
                if ((r = start_server(dir, sock, &m)) < 0)
                        continue;
                r = mps_client_open(sock, ret, &m);
        }
        if (r == 0)
                free(m);
        else
                *ret_msg = m;
        mps__safe_close(lockfd); /* unlocks */
        return r;
}

/* Errors that mean nobody answered (or a server on its way out). */
static bool nobody_answered(int r) {
        return r == -ECONNREFUSED || r == -ENOENT || r == -ECONNRESET || r == -ENOTCONN ||
               r == -EPIPE;
}

int mps__cli_open(const char *socket, mps_client **ret, char **ret_msg) {
        const char *env = secure_getenv("MPSPAWN_SOCKET");
        const char *user = secure_getenv("MPSPAWN_USER_SERVER");
        *ret_msg = NULL;
        /* A named server, or no per-user one wanted: as the library does. */
        if (socket || (env && *env) || (user && strcmp(user, "0") == 0))
                return mps_client_open(socket, ret, ret_msg);
        int r = mps_client_open_flags(NULL, MPS_OPEN_NO_EMBEDDED, ret, ret_msg);
        if (r == 0 || !nobody_answered(r))
                return r;
        free(*ret_msg);
        *ret_msg = NULL;
        return open_user_server(ret, ret_msg);
}
