/* SPDX-License-Identifier: MIT */
/*
 * check_small.c: the smaller trust fixes of issue 13, end to end against a
 * root server (or an embedded one) with real unprivileged users:
 *
 *   log      a client's newline cannot forge a log line
 *   env      a setuid program on the library ignores $MPSPAWN_FORKSERVER
 *            and $MPSPAWN_SOCKET (secure_getenv)
 *   connect  the CLI answers SIGINT/SIGTERM while connecting to a stopped
 *            server
 *   timeout  --timeout 1e-10 is a timeout, not none
 *   reload   SIGHUP reloads the configuration and does not end the server
 *   signals  jobs start with no disposition ignored (32 and 33 included)
 *   embedded the embedded start is bounded
 *   stdio    a closed fd 0 stays closed in the job, never our socket
 *
 * The binary is also its own setuid helper (--secure-env-helper).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/pidfd.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../include/mpspawn.h"
#include "testutil.h"

/* The library's own choice of server binary (client.c, not public). */
int mps__forkserver_path(char *buf, size_t len);

#define USER_A "mps-small-a"
#define USER_B "mps-small-b"

extern char **environ;

static bool created_a, created_b;
static uid_t uid_a, uid_b;
static gid_t gid_a, gid_b;

/* Unchecked fixture: runs in the parent, once, whatever the tests do. */
static void users_setup(void) {
        struct passwd *pw = tu_user(USER_A, &created_a);
        uid_a = pw->pw_uid;
        gid_a = pw->pw_gid;
        pw = tu_user(USER_B, &created_b);
        uid_b = pw->pw_uid;
        gid_b = pw->pw_gid;
}

static void users_teardown(void) {
        tu_user_done(USER_A, created_a);
        tu_user_done(USER_B, created_b);
}

/* ---- running programs as a user ------------------------------------------------- */

struct proc {
        pid_t pid;
        int pidfd;
        int out, err;
};

/* The kernel's struct sigaction (generic layout), to reset 32 and 33. */
struct ksigaction {
        void (*handler)(int);
        unsigned long flags;
        void (*restorer)(void);
        unsigned long mask;
};

/*
 * Starts argv as uid/gid (0: root) with stdout and stderr to pipes, stdin
 * /dev/null or closed, every disposition at its default (whatever started
 * this test), and extra "NAME=VALUE" entries in the environment.
 */
static void start_as(struct proc *p, uid_t uid, gid_t gid, const char *const *argv,
                     const char *const *extra_env, bool close_stdin) {
        int o[2], e[2];
        ck_assert_int_eq(pipe2(o, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(e, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                struct ksigaction dfl = {.handler = SIG_DFL};
                for (int sig = 1; sig < 65; sig++)
                        if (sig != SIGKILL && sig != SIGSTOP)
                                syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(dfl.mask));
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                dup2(o[1], 1);
                dup2(e[1], 2);
                if (close_stdin) {
                        close(0);
                } else {
                        int n = open("/dev/null", O_RDONLY);
                        if (n != 0) {
                                dup2(n, 0);
                                close(n);
                        }
                }
                for (size_t i = 0; extra_env && extra_env[i]; i++)
                        putenv((char *)extra_env[i]);
                if (uid != 0 && (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
                                 setresuid(uid, uid, uid) < 0))
                        _exit(126);
                if (chdir("/") < 0)
                        _exit(126);
                execve(argv[0], (char *const *)argv, environ);
                _exit(127);
        }
        close(o[1]);
        close(e[1]);
        p->pid = pid;
        p->pidfd = pidfd_open(pid, 0);
        ck_assert_int_ge(p->pidfd, 0);
        p->out = o[0];
        p->err = e[0];
}

/* Waits up to timeout_ms for p's end: its wait status, or -1 when it did
 * not end (it is killed then). Captures what it wrote. */
static int finish(struct proc *p, int timeout_ms, char *out, size_t outlen, char *err,
                  size_t errlen) {
        struct pollfd pf = {.fd = p->pidfd, .events = POLLIN};
        int r = poll(&pf, 1, timeout_ms);
        int status = -1;
        if (r <= 0)
                kill(p->pid, SIGKILL);
        int st;
        ck_assert_int_eq(waitpid(p->pid, &st, 0), p->pid);
        if (r > 0)
                status = st;
        char dummy[256];
        tu_read_all(p->out, out ? out : dummy, out ? outlen : sizeof(dummy), 2000);
        tu_read_all(p->err, err ? err : dummy, err ? errlen : sizeof(dummy), 2000);
        close(p->out);
        close(p->err);
        close(p->pidfd);
        return status;
}

static int run_as(uid_t uid, gid_t gid, const char *const *argv, const char *const *env,
                  bool close_stdin, int timeout_ms, char *out, size_t outlen, char *err,
                  size_t errlen) {
        struct proc p;
        start_as(&p, uid, gid, argv, env, close_stdin);
        return finish(&p, timeout_ms, out, outlen, err, errlen);
}

/* A root server other users may reach: socket 0666 in a 0755 directory. */
static void start_shared_server(struct tu_server *s, const char *const *extra) {
        const char *args[24] = {"--socket-mode", "0666"};
        size_t n = 2;
        for (size_t i = 0; extra && extra[i] && n < 23; i++)
                args[n++] = extra[i];
        args[n] = NULL;
        tu_server_start(s, args);
        ck_assert_int_eq(chmod(s->dir, 0755), 0);
}

static bool server_alive(const struct tu_server *s) {
        struct pollfd pf = {.fd = s->pidfd, .events = POLLIN};
        return poll(&pf, 1, 0) == 0;
}

/* ---- a: log records ---------------------------------------------------------------- */

/* A client's program path and name with a newline and a fake record after
 * it: the log gets them escaped on one line, never a line of their own. */
START_TEST(test_log_no_forged_line) {
        struct tu_server s;
        char logpath[] = "/tmp/mps-small-log-XXXXXX";
        int lfd = mkstemp(logpath);
        ck_assert_int_ge(lfd, 0);
        int saved = dup(2);
        dup2(lfd, 2);
        start_shared_server(&s, (const char *[]){"--log-level", "info", NULL});
        dup2(saved, 2);
        close(saved);

        const char *argv[] = {tu_cli(), "--socket", s.path,
                              "--name", "x\nmpforkserver[1]: info: forged-name",
                              "--", "/nonexistent\nmpforkserver[1]: info: forged-path\r\x1b[2K",
                              NULL};
        char err[1024];
        int st = run_as(uid_a, gid_a, argv, NULL, false, 20000, NULL, 0, err, sizeof(err));
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 127, "status %d: %s", st, err);
        tu_server_stop(&s);

        char log[65536];
        lseek(lfd, 0, SEEK_SET);
        ssize_t n = read(lfd, log, sizeof(log) - 1);
        close(lfd);
        unlink(logpath);
        ck_assert_int_gt(n, 0);
        log[n] = '\0';
        ck_assert_msg(strstr(log, "/nonexistent\\nmpforkserver[1]: info: forged-path\\x0d\\x1b[2K"),
                      "the path is not logged escaped:\n%s", log);
        ck_assert_msg(!strchr(log, '\r') && !strchr(log, '\x1b'),
                      "a raw control byte in the log:\n%s", log);
        for (char *line = log; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
                ck_assert_msg(strncmp(line, "mpforkserver[1]: info: forged", 29) != 0,
                              "a forged line in the log:\n%s", log);
}
END_TEST

/* ---- b: secure_getenv ------------------------------------------------------------ */

/* As a setuid helper: what the library makes of our variables. */
static _Noreturn void secure_env_helper(void) {
        char path[4096];
        mps_client *c = NULL;
        char *msg = NULL;
        printf("secure=%lu\n", getauxval(AT_SECURE));
        if (mps__forkserver_path(path, sizeof(path)) == 0)
                printf("forkserver=%s\n", path);
        int r = mps_client_open_flags(NULL, MPS_OPEN_NO_EMBEDDED, &c, &msg);
        printf("open=%d\nmsg=%s\n", r, msg ? msg : "");
        mps_client_close(c);
        free(msg);
        /* _exit: LeakSanitizer's exit-time check cannot run in a setuid
         * process (it is not dumpable), and would fail the helper. */
        fflush(stdout);
        _exit(0);
}

static void copy_file(const char *from, const char *to, mode_t mode) {
        int in = open(from, O_RDONLY | O_CLOEXEC);
        int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
        ck_assert_int_ge(in, 0);
        ck_assert_int_ge(out, 0);
        char buf[65536];
        ssize_t n;
        while ((n = read(in, buf, sizeof(buf))) > 0)
                ck_assert_int_eq(write(out, buf, (size_t)n), n);
        close(in);
        ck_assert_int_eq(fchown(out, uid_a, gid_a), 0);
        ck_assert_int_eq(fchmod(out, mode), 0);
        close(out);
}

/* A fresh directory where setuid bits count: under /tmp, or else in the
 * build directory, whichever is not mounted nosuid. */
static void suid_tmpdir(char *buf, size_t len) {
        struct statvfs sv;
        const char *top = getenv("MPSPAWN_TOP");
        if (statvfs("/tmp", &sv) == 0 && !(sv.f_flag & ST_NOSUID)) {
                tu_tmpdir(buf, len);
        } else {
                ck_assert_msg(top, "/tmp is nosuid and $MPSPAWN_TOP is not set");
                snprintf(buf, len, "%s/build/mps-small-XXXXXX", top);
                ck_assert_ptr_nonnull(mkdtemp(buf));
                ck_assert_msg(statvfs(buf, &sv) == 0 && !(sv.f_flag & ST_NOSUID),
                              "no directory without nosuid for the setuid helper");
        }
        ck_assert_int_eq(chmod(buf, 0755), 0);
}

/* A setuid-USER_A copy of this binary, run by root (AT_SECURE): the
 * library must not take the caller's $MPSPAWN_FORKSERVER or
 * $MPSPAWN_SOCKET. */
START_TEST(test_setuid_ignores_environment) {
        struct tu_server s;
        start_shared_server(&s, NULL);
        char dir[PATH_MAX], helper[PATH_MAX + 16];
        suid_tmpdir(dir, sizeof(dir));
        snprintf(helper, sizeof(helper), "%s/helper", dir);
        copy_file("/proc/self/exe", helper, 04755);

        char sockenv[160];
        snprintf(sockenv, sizeof(sockenv), "MPSPAWN_SOCKET=%s", s.path);
        const char *env[] = {"MPSPAWN_FORKSERVER=/caller/chose/this", sockenv, NULL};
        const char *argv[] = {helper, "--secure-env-helper", NULL};
        char out[8192], err[1024];
        int st = run_as(0, 0, argv, env, false, 20000, out, sizeof(out), err, sizeof(err));
        unlink(helper);
        rmdir(dir);
        tu_server_stop(&s);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "helper: %d %s", st, err);
        ck_assert_msg(strstr(out, "secure=1\n"), "not a secure exec: %s", out);
        ck_assert_msg(!strstr(out, "/caller/chose/this"), "took $MPSPAWN_FORKSERVER:\n%s",
                      out);
        ck_assert_msg(!strstr(out, "open=0\n"), "connected to $MPSPAWN_SOCKET:\n%s", out);
        ck_assert_msg(!strstr(out, s.path), "tried $MPSPAWN_SOCKET:\n%s", out);
}
END_TEST

/* ---- c: signals while connecting --------------------------------------------------- */

/* Whether pid has a socket open and sleeps: connected, in the handshake. */
static bool in_handshake(pid_t pid) {
        char dir[32], link[64], target[128];
        snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
        for (int fd = 3; fd < 64; fd++) {
                snprintf(link, sizeof(link), "%s/%d", dir, fd);
                ssize_t n = readlink(link, target, sizeof(target) - 1);
                if (n <= 0)
                        continue;
                target[n] = '\0';
                if (strncmp(target, "socket:", 7) == 0)
                        return tu_proc_state(pid, NULL) == 'S';
        }
        return false;
}

static void signal_while_connecting(int sig) {
        struct tu_server s;
        start_shared_server(&s, NULL);
        ck_assert_int_eq(kill(s.pid, SIGSTOP), 0);
        const char *argv[] = {tu_cli(), "--socket", s.path, "/bin/true", NULL};
        struct proc p;
        start_as(&p, uid_a, gid_a, argv, NULL, false);
        /* Bounded polling for the CLI to be waiting for the welcome. */
        bool waiting = false;
        for (int i = 0; i < 500 && !(waiting = in_handshake(p.pid)); i++)
                nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
        ck_assert_msg(waiting, "the CLI never reached the handshake");
        ck_assert_int_eq(kill(p.pid, sig), 0);
        char err[1024];
        int st = finish(&p, 3000, NULL, 0, err, sizeof(err));
        kill(s.pid, SIGCONT);
        tu_server_stop(&s);
        ck_assert_msg(st != -1, "SIG%s did not end the CLI within 3 s", sigabbrev_np(sig));
        ck_assert_msg((WIFSIGNALED(st) && WTERMSIG(st) == sig) ||
                              (WIFEXITED(st) && WEXITSTATUS(st) == 128 + sig),
                      "status %#x after SIG%s: %s", st, sigabbrev_np(sig), err);
}

START_TEST(test_cli_sigint_while_connecting) {
        signal_while_connecting(SIGINT);
}
END_TEST

START_TEST(test_cli_sigterm_while_connecting) {
        signal_while_connecting(SIGTERM);
}
END_TEST

/* ---- d: tiny timeouts -------------------------------------------------------------- */

START_TEST(test_tiny_timeout_is_a_timeout) {
        struct tu_server s;
        start_shared_server(&s, NULL);
        const char *argv[] = {tu_cli(), "--socket", s.path, "--timeout", "1e-10",
                              "/bin/sleep", "5", NULL};
        char err[1024];
        int st = run_as(uid_a, gid_a, argv, NULL, false, 20000, NULL, 0, err, sizeof(err));
        tu_server_stop(&s);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 124, "status %#x: %s", st, err);
}
END_TEST

/* ---- e: SIGHUP reload -------------------------------------------------------------- */

static void write_config(const char *dir, const char *text) {
        char tmp[128], path[128];
        snprintf(tmp, sizeof(tmp), "%s/conf.tmp", dir);
        snprintf(path, sizeof(path), "%s/forkserver.conf", dir);
        FILE *f = fopen(tmp, "w");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        ck_assert_int_eq(fclose(f), 0);
        ck_assert_int_eq(rename(tmp, path), 0); /* never half a file */
}

static int run_true_as_b(const char *sock, char *err, size_t errlen) {
        const char *argv[] = {tu_cli(), "--socket", sock, "/bin/true", NULL};
        return run_as(uid_b, gid_b, argv, NULL, false, 20000, NULL, 0, err, errlen);
}

START_TEST(test_sighup_reloads) {
        struct tu_server s;
        char dir[64], conf[96], err[1024];
        tu_tmpdir(dir, sizeof(dir));
        write_config(dir, "allowed_users = " USER_A "\n");
        snprintf(conf, sizeof(conf), "%s/forkserver.conf", dir);
        start_shared_server(&s, (const char *[]){"--config", conf, NULL});

        int st = run_true_as_b(s.path, err, sizeof(err));
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 125 && strstr(err, "not allowed"),
                      "before the reload: status %#x: %s", st, err);

        write_config(dir, "allowed_users = " USER_A " " USER_B "\n");
        ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
        /* The reload happens when the server reads its signalfd: bounded
         * polling until USER_B gets in. */
        bool in = false;
        for (int i = 0; i < 100 && !in; i++) {
                st = run_true_as_b(s.path, err, sizeof(err));
                in = WIFEXITED(st) && WEXITSTATUS(st) == 0;
                ck_assert_msg(server_alive(&s), "SIGHUP ended the server");
                if (!in)
                        nanosleep(&(struct timespec){.tv_nsec = 50000000}, NULL);
        }
        ck_assert_msg(in, "allowed_users did not change on SIGHUP: %s", err);

        /* A broken file changes nothing, and the server goes on. */
        write_config(dir, "allowed_users = " USER_A "\nmax_children = lots\n");
        ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
        /* The signal is pending before the first connection is made, so it
         * is handled no later than that connection's batch: the later runs
         * are certainly after the attempted reload. */
        for (int i = 0; i < 3; i++) {
                st = run_true_as_b(s.path, err, sizeof(err));
                ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                              "a broken file changed the configuration: %#x %s", st, err);
        }
        ck_assert(server_alive(&s));
        ck_assert_int_eq(tu_server_stop(&s), 0);
        char path[128];
        snprintf(path, sizeof(path), "%s/forkserver.conf", dir);
        unlink(path);
        rmdir(dir);
}
END_TEST

/* ---- f: dispositions --------------------------------------------------------------- */

static void expect_no_ignored(const char *const *argv, const char *const *env) {
        char out[4096], err[1024];
        int st = run_as(uid_a, gid_a, argv, env, false, 20000, out, sizeof(out), err,
                        sizeof(err));
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x: %s", st, err);
        ck_assert_msg(strcmp(out, "SigIgn:\t0000000000000000\n") == 0,
                      "the job starts with signals ignored: %s", out);
}

START_TEST(test_embedded_job_ignores_nothing) {
        const char *argv[] = {tu_cli(), "/bin/grep", "SigIgn", "/proc/self/status", NULL};
        expect_no_ignored(argv, NULL);
}
END_TEST

START_TEST(test_root_server_job_ignores_nothing) {
        struct tu_server s;
        start_shared_server(&s, NULL);
        const char *argv[] = {tu_cli(), "--socket", s.path, "/bin/grep", "SigIgn",
                              "/proc/self/status", NULL};
        expect_no_ignored(argv, NULL);
        tu_server_stop(&s);
}
END_TEST

/* ---- g: bounded embedded start ----------------------------------------------------- */

START_TEST(test_embedded_start_is_bounded) {
        char dir[64], script[96], env[128], err[1024];
        tu_tmpdir(dir, sizeof(dir));
        ck_assert_int_eq(chmod(dir, 0755), 0);
        snprintf(script, sizeof(script), "%s/never-detaches", dir);
        FILE *f = fopen(script, "w");
        ck_assert_ptr_nonnull(f);
        fputs("#!/bin/sh\nexec sleep 60\n", f);
        fclose(f);
        ck_assert_int_eq(chmod(script, 0755), 0);
        snprintf(env, sizeof(env), "MPSPAWN_FORKSERVER=%s", script);
        const char *argv[] = {tu_cli(), "/bin/true", NULL};
        int st = run_as(uid_a, gid_a, argv, (const char *[]){env, NULL}, false, 25000, NULL,
                        0, err, sizeof(err));
        unlink(script);
        rmdir(dir);
        ck_assert_msg(st != -1, "the CLI still waited for the embedded server after 25 s");
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 125 && strstr(err, "did not start"),
                      "status %#x: %s", st, err);
}
END_TEST

/* ---- h: closed stdio --------------------------------------------------------------- */

static const char probe_fd0[] =
        "if [ -e /proc/self/fd/0 ]; then readlink /proc/self/fd/0; else echo closed; fi";

static void expect_fd0_closed(const char *const *argv) {
        char out[4096], err[1024];
        int st = run_as(uid_a, gid_a, argv, NULL, true, 20000, out, sizeof(out), err,
                        sizeof(err));
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x: %s", st, err);
        ck_assert_msg(strcmp(out, "closed\n") == 0, "the job's fd 0 is %s", out);
}

START_TEST(test_closed_stdin_stays_closed) {
        struct tu_server s;
        start_shared_server(&s, NULL);
        const char *argv[] = {tu_cli(), "--socket", s.path, "/bin/sh", "-c", probe_fd0, NULL};
        expect_fd0_closed(argv);
        tu_server_stop(&s);
}
END_TEST

START_TEST(test_closed_stdin_stays_closed_embedded) {
        const char *argv[] = {tu_cli(), "/bin/sh", "-c", probe_fd0, NULL};
        expect_fd0_closed(argv);
}
END_TEST

static Suite *small_suite(void) {
        Suite *s = suite_create("small");
        TCase *tc = tcase_create("small");
        tcase_add_unchecked_fixture(tc, users_setup, users_teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_log_no_forged_line);
        tcase_add_test(tc, test_setuid_ignores_environment);
        tcase_add_test(tc, test_cli_sigint_while_connecting);
        tcase_add_test(tc, test_cli_sigterm_while_connecting);
        tcase_add_test(tc, test_tiny_timeout_is_a_timeout);
        tcase_add_test(tc, test_sighup_reloads);
        tcase_add_test(tc, test_embedded_job_ignores_nothing);
        tcase_add_test(tc, test_root_server_job_ignores_nothing);
        tcase_add_test(tc, test_embedded_start_is_bounded);
        tcase_add_test(tc, test_closed_stdin_stays_closed);
        tcase_add_test(tc, test_closed_stdin_stays_closed_embedded);
        suite_add_tcase(s, tc);
        return s;
}

int main(int argc, char **argv) {
        if (argc > 1 && strcmp(argv[1], "--secure-env-helper") == 0)
                secure_env_helper();
        SRunner *sr = srunner_create(small_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
