/* SPDX-License-Identifier: MIT */
/*
 * check_cli_run.c: the mpspawn command running one job, end to end (issue
 * 14): thousands of short runs never hang after the job ends; a job killed
 * by signal N kills mpspawn with N (without a core of its own); signals
 * ignored when mpspawn starts stay ignored in the job and are not
 * forwarded (nohup, `trap ''`); --pty without a terminal.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../include/mpspawn.h"
#include "testutil.h"

static struct tu_server server;

static void server_setup(void) {
        tu_server_start(&server, NULL);
}

static void server_teardown(void) {
        tu_server_stop(&server);
}

/* Starts mpspawn with args (NULL-terminated); stdin from in_fd (or
 * /dev/null), stdout into a pipe (*ret_out, or /dev/null if NULL), stderr
 * /dev/null; the signals in ignore (0-terminated, may be NULL) ignored, as
 * nohup or `trap ''` leave them. */
static pid_t start_cli(const char *const *args, int in_fd, int *ret_out, const int *ignore) {
        const char *argv[32];
        size_t n = 0;
        int p[2] = {-1, -1};
        argv[n++] = tu_cli();
        for (size_t i = 0; args[i] && n < 31; i++)
                argv[n++] = args[i];
        argv[n] = NULL;
        if (ret_out)
                ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR);
                dup2(in_fd >= 0 ? in_fd : null, 0);
                dup2(ret_out ? p[1] : null, 1);
                dup2(null, 2);
                /* What the test run may have inherited ignored (a shell
                 * runs background commands with INT and QUIT ignored)
                 * would be passed on to the job, rightly: start clean. */
                static const int deflt[] = {SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGUSR1};
                for (size_t i = 0; i < sizeof(deflt) / sizeof(int); i++)
                        signal(deflt[i], SIG_DFL);
                for (size_t i = 0; ignore && ignore[i]; i++)
                        signal(ignore[i], SIG_IGN);
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        if (ret_out) {
                close(p[1]);
                *ret_out = p[0];
        }
        return pid;
}

/* Waits (bounded) for pid and returns its wait status; fails the test if
 * it has not ended within timeout_ms (then kills it, so that a hang fails
 * this test instead of hanging the suite). */
static int wait_bounded(pid_t pid, int timeout_ms, const char *what, int round) {
        int pidfd = pidfd_open(pid, 0);
        ck_assert_int_ge(pidfd, 0);
        struct pollfd p = {.fd = pidfd, .events = POLLIN};
        int r;
        while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
                ;
        close(pidfd);
        if (r == 0)
                kill(pid, SIGKILL);
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
        ck_assert_msg(r == 1, "%s: mpspawn hung (run %d)", what, round);
        return st;
}

/* Reads one line (up to \n) from fd, bounded. */
static void read_line(int fd, char *buf, size_t len) {
        size_t n = 0;
        while (n + 1 < len) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                ck_assert_msg(poll(&p, 1, 30000) == 1, "no line from mpspawn");
                ssize_t k = read(fd, buf + n, 1);
                ck_assert_int_eq(k, 1);
                if (buf[n++] == '\n')
                        break;
        }
        buf[n] = '\0';
}

/* Issue 14 item 6: is_alive could take in the exit record after exitcode
 * said "none yet", and poll then waited forever (3 in about 14,000 runs). */
START_TEST(test_thousands_of_short_runs_never_hang) {
        const char *args[] = {"-s", server.path, "true", NULL};
        int runs = getenv("MPS_CLI_RUNS") ? atoi(getenv("MPS_CLI_RUNS")) : 5000;
        for (int i = 0; i < runs; i++) {
                pid_t pid = start_cli(args, -1, NULL, NULL);
                int st = wait_bounded(pid, 10000, "true", i);
                ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "run %d: status %#x", i, st);
        }
}
END_TEST

/* The shell sees a job killed by a signal as if it had run it itself:
 * a loop stops on Ctrl-C, "Segmentation fault" is printed. */
START_TEST(test_job_signal_kills_mpspawn_with_it) {
        static const int sigs[] = {SIGINT, SIGSEGV, SIGTERM, SIGQUIT};
        for (size_t i = 0; i < sizeof(sigs) / sizeof(int); i++) {
                char script[64];
                snprintf(script, sizeof(script), "kill -%d $$", sigs[i]);
                const char *args[] = {"-s", server.path, "sh", "-c", script, NULL};
                int st = wait_bounded(start_cli(args, -1, NULL, NULL), 30000, script, 0);
                ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == sigs[i], "%s: status %#x",
                              script, st);
                /* The job dumped its own core, if any: not a second one. */
                ck_assert_msg(!WCOREDUMP(st), "%s: mpspawn dumped core", script);
        }
        /* A signal that does not kill by default gives 128+N, as before. */
        const char *args[] = {"-s", server.path, "--", "sh", "-c", "exit 3", NULL};
        int st = wait_bounded(start_cli(args, -1, NULL, NULL), 30000, "exit 3", 0);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 3);
}
END_TEST

/* Its own timeout is not the job's death: 124, as timeout(1) says. */
START_TEST(test_timeout_still_exits_124) {
        const char *args[] = {"-s", server.path, "--timeout", "0.2", "sleep", "30", NULL};
        int st = wait_bounded(start_cli(args, -1, NULL, NULL), 30000, "timeout", 0);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 124, "status %#x", st);
}
END_TEST

/*
 * sig is ignored when mpspawn starts (nohup, `trap '' INT`): it stays
 * ignored in the job, and mpspawn does not forward it. The second half
 * gives the job sig back its default (env --default-signal) with a trap
 * that would say "got", sends sig and then USR1 to mpspawn: USR1 is
 * forwarded, and signals reach the job in order, so "got USR1" proves that
 * no forwarded sig is on its way.
 */
static void check_ignored_stays_ignored(int sig, const char *name) {
        char script[512], line[128];
        int in[2], out;
        /* The job's own view: sig is ignored in it. */
        snprintf(script, sizeof(script), "kill -%s $$; echo survived", name);
        const char *a1[] = {"-s", server.path, "sh", "-c", script, NULL};
        pid_t pid = start_cli(a1, -1, &out, (const int[]){sig, 0});
        read_line(out, line, sizeof(line));
        ck_assert_str_eq(line, "survived\n");
        int st = wait_bounded(pid, 30000, name, 0);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
        close(out);

        snprintf(script, sizeof(script),
                 "exec env --default-signal=%s sh -c 'trap \"echo got %s\" %s; "
                 "trap \"echo got USR1\" USR1; echo ready; read x; echo done'",
                 name, name, name);
        const char *a2[] = {"-s", server.path, "sh", "-c", script, NULL};
        ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
        pid = start_cli(a2, in[0], &out, (const int[]){sig, 0});
        close(in[0]);
        read_line(out, line, sizeof(line));
        ck_assert_str_eq(line, "ready\n");
        ck_assert_int_eq(kill(pid, sig), 0);
        ck_assert_int_eq(kill(pid, SIGUSR1), 0);
        read_line(out, line, sizeof(line));
        ck_assert_str_eq(line, "got USR1\n");
        ck_assert_int_eq(write(in[1], "x\n", 2), 2);
        read_line(out, line, sizeof(line));
        ck_assert_str_eq(line, "done\n");
        st = wait_bounded(pid, 30000, name, 0);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
        close(in[1]);
        close(out);
}

START_TEST(test_nohup_sighup_stays_ignored) {
        check_ignored_stays_ignored(SIGHUP, "HUP");
}
END_TEST

START_TEST(test_trapped_sigint_stays_ignored) {
        check_ignored_stays_ignored(SIGINT, "INT");
}
END_TEST

/* --pty with neither stdin nor stdout a terminal (as ssh -tt): the job
 * has a terminal all the same, and the end of mpspawn's input reaches it
 * as ^D, even after a last line without its newline. */
START_TEST(test_forced_pty_relays_a_pipe_and_its_end) {
        int in[2], out;
        char buf[4096];
        ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
        const char *args[] = {"-s", server.path, "--pty", "sh", "-c",
                              "tty >/dev/null && echo has-a-tty; cat >/dev/null; echo cat-ended",
                              NULL};
        pid_t pid = start_cli(args, in[0], &out, NULL);
        close(in[0]);
        ck_assert_int_eq(write(in[1], "one\ntwo", 8), 8);
        close(in[1]);
        size_t n = tu_read_all(out, buf, sizeof(buf), 30000);
        ck_assert_int_gt(n, 0);
        ck_assert_msg(strstr(buf, "has-a-tty\r\n"), "output: %s", buf);
        ck_assert_msg(strstr(buf, "cat-ended\r\n"), "output: %s", buf);
        int st = wait_bounded(pid, 30000, "--pty", 0);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
        close(out);
}
END_TEST

/* Without a terminal, no pty: the job's stdio is mpspawn's, as before. */
START_TEST(test_no_terminal_no_pty) {
        int out;
        char buf[256];
        const char *args[] = {"-s", server.path, "sh", "-c", "tty; exit 0", NULL};
        pid_t pid = start_cli(args, -1, &out, NULL);
        tu_read_all(out, buf, sizeof(buf), 30000);
        ck_assert_str_eq(buf, "not a tty\n");
        int st = wait_bounded(pid, 30000, "tty", 0);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
        close(out);
}
END_TEST

static Suite *cli_run_suite(void) {
        Suite *s = suite_create("cli_run");
        TCase *t = tcase_create("run");
        tcase_set_timeout(t, 240);
        tcase_add_checked_fixture(t, server_setup, server_teardown);
        tcase_add_test(t, test_thousands_of_short_runs_never_hang);
        tcase_add_test(t, test_job_signal_kills_mpspawn_with_it);
        tcase_add_test(t, test_timeout_still_exits_124);
        tcase_add_test(t, test_nohup_sighup_stays_ignored);
        tcase_add_test(t, test_trapped_sigint_stays_ignored);
        tcase_add_test(t, test_forced_pty_relays_a_pipe_and_its_end);
        tcase_add_test(t, test_no_terminal_no_pty);
        suite_add_tcase(s, t);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(cli_run_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
