/* SPDX-License-Identifier: MIT */
/* testutil.c: see testutil.h. */
#include "testutil.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

const char *tu_forkserver(void) {
        const char *p = getenv("MPSPAWN_FORKSERVER");
        ck_assert_msg(p && *p, "MPSPAWN_FORKSERVER is not set (run through tests/run.sh)");
        return p;
}

void tu_preload_table(char *buf, size_t len) {
        /* Next to the server under test: BUILD/tests/preload_table.so;
         * $MPS_TEST_PRELOAD for another server's own (an older one refuses
         * a module of a newer ABI). */
        const char *own = getenv("MPS_TEST_PRELOAD");
        if (own && *own) {
                snprintf(buf, len, "%s", own);
                return;
        }
        snprintf(buf, len, "%s", tu_forkserver());
        char *slash = strrchr(buf, '/');
        ck_assert_ptr_nonnull(slash);
        snprintf(slash, len - (size_t)(slash - buf), "/tests/preload_table.so");
}

const char *tu_cli(void) {
        const char *p = getenv("MPSPAWN_CLI");
        ck_assert_msg(p && *p, "MPSPAWN_CLI is not set (run through tests/run.sh)");
        return p;
}

void tu_tmpdir(char *buf, size_t len) {
        snprintf(buf, len, "/tmp/mpspawn-test-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(buf));
}

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t tu_read_all(int fd, char *buf, size_t len, int timeout_ms) {
        size_t n = 0;
        int64_t deadline = now_ms() + timeout_ms;
        while (n + 1 < len) {
                int64_t left = deadline - now_ms();
                if (left <= 0)
                        break;
                struct pollfd p = {.fd = fd, .events = POLLIN};
                int r = poll(&p, 1, (int)left);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        break;
                ssize_t k = read(fd, buf + n, len - 1 - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                n += (size_t)k;
        }
        buf[n] = '\0';
        return n;
}

void tu_server_start(struct tu_server *s, const char *const *extra) {
        const char *argv[32];
        size_t n = 0;
        char notify[96];
        struct sockaddr_un sa = {.sun_family = AF_UNIX};

        memset(s, 0, sizeof(*s));
        tu_tmpdir(s->dir, sizeof(s->dir));
        snprintf(s->path, sizeof(s->path), "%s/sock", s->dir);
        snprintf(notify, sizeof(notify), "%s/notify", s->dir);

        /* The server says READY=1 through sd_notify once it listens: wait for
         * that datagram instead of polling the socket path. */
        int nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(nfd, 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", notify);
        ck_assert_int_eq(bind(nfd, (struct sockaddr *)&sa, sizeof(sa)), 0);

        argv[n++] = tu_forkserver();
        argv[n++] = "--socket";
        argv[n++] = s->path;
        argv[n++] = "--log-level";
        argv[n++] = "warning";
        for (size_t i = 0; extra && extra[i] && n < 30; i++)
                argv[n++] = extra[i];
        argv[n] = NULL;

        char envbuf[160];
        snprintf(envbuf, sizeof(envbuf), "NOTIFY_SOCKET=%s", notify);
        const char **envp = tu_environ_with("NOTIFY_SOCKET", envbuf);

        int r = posix_spawn(&s->pid, argv[0], NULL, NULL, (char *const *)argv,
                            (char *const *)envp);
        free(envp);
        ck_assert_msg(r == 0, "cannot start %s: %s", argv[0], strerror(r));
        s->pidfd = pidfd_open(s->pid, 0);
        ck_assert_int_ge(s->pidfd, 0);

        struct pollfd p[2] = {{.fd = nfd, .events = POLLIN},
                              {.fd = s->pidfd, .events = POLLIN}};
        r = poll(p, 2, 20000);
        ck_assert_msg(r > 0, "mpforkserver did not become ready in 20 s");
        ck_assert_msg(!(p[1].revents & POLLIN), "mpforkserver exited at start");
        char msg[256];
        ssize_t got = recv(nfd, msg, sizeof(msg) - 1, 0);
        ck_assert_int_gt(got, 0);
        msg[got] = '\0';
        ck_assert_msg(strstr(msg, "READY=1"), "unexpected notification '%s'", msg);
        close(nfd);
        unlink(notify);
}

int tu_server_stop(struct tu_server *s) {
        int status = -1;
        if (s->pid <= 0)
                return -1;
        kill(s->pid, SIGTERM);
        struct pollfd p = {.fd = s->pidfd, .events = POLLIN};
        int r = poll(&p, 1, 20000);
        if (r <= 0) {
                kill(s->pid, SIGKILL);
        }
        while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
                ;
        close(s->pidfd);
        unlink(s->path);
        rmdir(s->dir);
        s->pid = 0;
        return status;
}

int tu_run(const char *const *argv, const char *const *extra_env, char *out,
           size_t outlen, char *err, size_t errlen) {
        int po[2], pe[2];
        posix_spawn_file_actions_t fa;
        pid_t pid;
        int status;

        ck_assert_int_eq(pipe2(po, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(pe, O_CLOEXEC), 0);
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, po[1], 1);
        posix_spawn_file_actions_adddup2(&fa, pe[1], 2);

        size_t ne = 0, nx = 0;
        while (environ[ne])
                ne++;
        while (extra_env && extra_env[nx])
                nx++;
        const char **envp = calloc(ne + nx + 1, sizeof(*envp));
        ck_assert_ptr_nonnull(envp);
        memcpy(envp, environ, ne * sizeof(*envp));
        for (size_t i = 0; i < nx; i++)
                envp[ne + i] = extra_env[i];

        int r = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv,
                            (char *const *)envp);
        free(envp);
        posix_spawn_file_actions_destroy(&fa);
        ck_assert_msg(r == 0, "cannot run %s: %s", argv[0], strerror(r));
        close(po[1]);
        close(pe[1]);
        /* Output is small: read stdout to EOF, then stderr. */
        char dummy[4];
        tu_read_all(po[0], out ? out : dummy, out ? outlen : sizeof(dummy), 60000);
        tu_read_all(pe[0], err ? err : dummy, err ? errlen : sizeof(dummy), 60000);
        close(po[0]);
        close(pe[0]);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        return status;
}

/* The state field of a /proc stat file (and the parent's pid), 0 if gone. */
static char stat_state(const char *path, pid_t *ret_ppid) {
        char buf[512];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return 0;
        buf[n] = '\0';
        /* The command name may hold spaces and parentheses: parse after the
         * last ')'. */
        char *rp = strrchr(buf, ')');
        if (!rp)
                return 0;
        char state;
        int ppid;
        if (sscanf(rp + 1, " %c %d", &state, &ppid) != 2)
                return 0;
        if (ret_ppid)
                *ret_ppid = ppid;
        return state;
}

char tu_proc_state(pid_t pid, pid_t *ret_ppid) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        return stat_state(path, ret_ppid);
}

char tu_thread_state(pid_t tid) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
        return stat_state(path, NULL);
}

const char **tu_environ_with(const char *name, const char *assignment) {
        size_t ne = 0, len = name ? strlen(name) : 0;
        while (environ[ne])
                ne++;
        const char **envp = calloc(ne + 2, sizeof(*envp));
        ck_assert_ptr_nonnull(envp);
        size_t k = 0;
        for (size_t i = 0; i < ne; i++)
                if (!name || strncmp(environ[i], name, len) != 0 || environ[i][len] != '=')
                        envp[k++] = environ[i];
        if (assignment)
                envp[k++] = assignment;
        envp[k] = NULL;
        return envp;
}

bool tu_wait_reaped(pid_t pid, pid_t parent, int timeout_ms) {
        int64_t deadline = now_ms() + timeout_ms;
        int pfd = pidfd_open(pid, 0);
        if (pfd >= 0) {
                /* First wait for the exit itself on its pidfd. */
                struct pollfd p = {.fd = pfd, .events = POLLIN};
                poll(&p, 1, timeout_ms);
                close(pfd);
        }
        /* Then bounded polling for the parent's reaping, which no descriptor
         * announces to a third party. */
        for (;;) {
                pid_t ppid = 0;
                char st = tu_proc_state(pid, &ppid);
                if (st == 0 || (parent > 0 && ppid != parent))
                        return true;
                if (now_ms() >= deadline)
                        return false;
                struct timespec ts = {0, 2 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
}

int tu_count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        int n = 0;
        struct dirent *e;
        ck_assert_ptr_nonnull(d);
        while ((e = readdir(d)))
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1; /* the directory's own descriptor */
}

#define TEST_USER "mpspawn-test"

struct passwd *tu_user(const char *name, bool *ret_created) {
        struct passwd *pw = getpwnam(name);
        *ret_created = false;
        if (!pw) {
                const char *argv[] = {"/usr/sbin/useradd", "--system", "--no-create-home",
                                      "--shell", "/usr/sbin/nologin", name, NULL};
                char err[512];
                int st = tu_run(argv, NULL, NULL, 0, err, sizeof(err));
                ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "useradd %s: %s", name,
                              err);
                *ret_created = true;
                pw = getpwnam(name);
        }
        ck_assert_ptr_nonnull(pw);
        return pw;
}

void tu_user_done(const char *name, bool created) {
        if (created) {
                const char *argv[] = {"/usr/sbin/userdel", name, NULL};
                tu_run(argv, NULL, NULL, 0, NULL, 0);
        }
}

struct passwd *tu_test_user(bool *ret_created) {
        return tu_user(TEST_USER, ret_created);
}

void tu_test_user_done(bool created) {
        tu_user_done(TEST_USER, created);
}
