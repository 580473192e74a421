/*
 * check_cli.c: the mpspawn command end to end, as a shell user runs it:
 * exit-status conventions, options, signal forwarding, the embedded default,
 * an explicit socket, and `mpspawn server`.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../include/mpspawn.h"
#include "testutil.h"

static char out[65536], err[4096];

/* Runs mpspawn with args (NULL-terminated) and returns its exit status. */
static int mpspawn(const char *const *args) {
        const char *argv[64];
        size_t n = 0;
        argv[n++] = tu_cli();
        for (size_t i = 0; args[i] && n < 63; i++)
                argv[n++] = args[i];
        argv[n] = NULL;
        int st = tu_run(argv, NULL, out, sizeof(out), err, sizeof(err));
        ck_assert_msg(WIFEXITED(st), "mpspawn did not exit normally (%#x)", st);
        return WEXITSTATUS(st);
}

START_TEST(test_exit_status_is_the_jobs) {
        ck_assert_int_eq(mpspawn((const char *[]){"--", "sh", "-c", "exit 3", NULL}), 3);
        ck_assert_int_eq(mpspawn((const char *[]){"true", NULL}), 0);
        ck_assert_int_eq(mpspawn((const char *[]){"false", NULL}), 1);
        ck_assert_str_eq(err, "");
}
END_TEST

START_TEST(test_killed_by_signal_is_128_plus_n) {
        ck_assert_int_eq(mpspawn((const char *[]){"sh", "-c", "kill -KILL $$", NULL}), 137);
        ck_assert_int_eq(mpspawn((const char *[]){"sh", "-c", "kill -TERM $$", NULL}), 143);
}
END_TEST

START_TEST(test_not_found_is_127_with_one_line) {
        ck_assert_int_eq(mpspawn((const char *[]){"mpspawn-no-such-program", "x", NULL}), 127);
        ck_assert_str_eq(err, "mpspawn: cannot execute 'mpspawn-no-such-program': "
                              "No such file or directory\n");
        ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(test_not_executable_is_126) {
        char dir[64], file[100], want[200];
        tu_tmpdir(dir, sizeof(dir));
        snprintf(file, sizeof(file), "%s/data", dir);
        int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        close(fd);
        ck_assert_int_eq(mpspawn((const char *[]){file, NULL}), 126);
        snprintf(want, sizeof(want), "mpspawn: cannot execute '%s': Permission denied\n", file);
        ck_assert_str_eq(err, want);
        ck_assert_int_eq(mpspawn((const char *[]){"/etc", NULL}), 126);
        unlink(file);
        rmdir(dir);
}
END_TEST

START_TEST(test_own_failures_are_125) {
        ck_assert_int_eq(mpspawn((const char *[]){"--no-such-option", "true", NULL}), 125);
        ck_assert_ptr_nonnull(strstr(err, "--no-such-option"));
        ck_assert_int_eq(mpspawn((const char *[]){NULL}), 125);
        ck_assert_ptr_nonnull(strstr(err, "no PROGRAM"));
        ck_assert_int_eq(mpspawn((const char *[]){"-e", "NOEQUALS", "true", NULL}), 125);
        ck_assert_ptr_nonnull(strstr(err, "NOEQUALS"));
        ck_assert_int_eq(mpspawn((const char *[]){"-C", "/nonexistent-dir", "true", NULL}), 125);
        ck_assert_str_eq(err, "mpspawn: cannot change directory to '/nonexistent-dir': "
                              "No such file or directory\n");
        ck_assert_int_eq(mpspawn((const char *[]){"-s", "/nonexistent/sock", "true", NULL}),
                         125);
        ck_assert_ptr_nonnull(strstr(err, "/nonexistent/sock"));
}
END_TEST

START_TEST(test_help_and_version) {
        ck_assert_int_eq(mpspawn((const char *[]){"--help", NULL}), 0);
        ck_assert_ptr_nonnull(strstr(out, "Usage: mpspawn"));
        ck_assert_ptr_nonnull(strstr(out, "Exit status"));
        ck_assert_ptr_nonnull(strstr(out, "--clear-env"));
        ck_assert_int_eq(mpspawn((const char *[]){"--version", NULL}), 0);
        char want[64];
        snprintf(want, sizeof(want), "mpspawn %s\n", mps_version());
        ck_assert_str_eq(out, want);
}
END_TEST

START_TEST(test_stdio_env_and_cwd) {
        ck_assert_int_eq(mpspawn((const char *[]){"-C", "/usr/share", "--clear-env", "-e",
                                                  "A=1", "-e", "B=two words", "sh", "-c",
                                                  "pwd; echo \"$A/$B\"; env | wc -l; "
                                                  "echo to-stderr >&2",
                                                  NULL}),
                         0);
        /* dash adds PWD to an empty environment: three variables. */
        ck_assert_str_eq(out, "/usr/share\n1/two words\n3\n");
        ck_assert_str_eq(err, "to-stderr\n");

        setenv("MPS_CLI_TEST", "inherited", 1);
        ck_assert_int_eq(mpspawn((const char *[]){"sh", "-c", "echo $MPS_CLI_TEST", NULL}), 0);
        ck_assert_str_eq(out, "inherited\n");
        ck_assert_int_eq(mpspawn((const char *[]){"-u", "MPS_CLI_TEST", "sh", "-c",
                                                  "echo \"[$MPS_CLI_TEST]\"", NULL}),
                         0);
        ck_assert_str_eq(out, "[]\n");
}
END_TEST

START_TEST(test_program_options_stay_the_programs) {
        /* Options after PROGRAM belong to it, without "--". */
        ck_assert_int_eq(mpspawn((const char *[]){"echo", "-e", "--help", NULL}), 0);
        ck_assert_str_eq(out, "--help\n");
}
END_TEST

/* Starts mpspawn with stdout on a pipe; returns its pid and the pipe. */
static pid_t start_mpspawn(const char *const *args, int *ret_out) {
        const char *argv[32];
        size_t n = 0;
        int p[2];
        pid_t pid;
        posix_spawn_file_actions_t fa;
        argv[n++] = tu_cli();
        for (size_t i = 0; args[i] && n < 31; i++)
                argv[n++] = args[i];
        argv[n] = NULL;
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, p[1], 1);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        extern char **environ;
        ck_assert_int_eq(posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ),
                         0);
        posix_spawn_file_actions_destroy(&fa);
        close(p[1]);
        *ret_out = p[0];
        return pid;
}

/* Reads one line (up to \n) from fd, bounded. */
static void read_line(int fd, char *buf, size_t len) {
        size_t n = 0;
        while (n + 1 < len) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                ck_assert_int_eq(poll(&p, 1, 20000), 1);
                ssize_t k = read(fd, buf + n, 1);
                ck_assert_int_eq(k, 1);
                if (buf[n++] == '\n')
                        break;
        }
        buf[n] = '\0';
}

START_TEST(test_sigterm_is_forwarded_to_the_job) {
        int fd;
        char line[128];
        pid_t pid = start_mpspawn(
                (const char *[]){"sh", "-c",
                                 "trap 'echo got TERM; exit 7' TERM; echo ready; "
                                 "while :; do sleep 0.05; done",
                                 NULL},
                &fd);
        read_line(fd, line, sizeof(line));
        ck_assert_str_eq(line, "ready\n");
        ck_assert_int_eq(kill(pid, SIGTERM), 0);
        read_line(fd, line, sizeof(line));
        ck_assert_str_eq(line, "got TERM\n");
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert(WIFEXITED(st));
        ck_assert_int_eq(WEXITSTATUS(st), 7);
        close(fd);
}
END_TEST

START_TEST(test_sigint_and_usr1_are_forwarded) {
        int fd;
        char line[128];
        pid_t pid = start_mpspawn(
                (const char *[]){"sh", "-c",
                                 "trap 'echo got USR1' USR1; trap 'echo got INT; exit 3' INT; "
                                 "echo ready; while :; do sleep 0.05; done",
                                 NULL},
                &fd);
        read_line(fd, line, sizeof(line));
        ck_assert_str_eq(line, "ready\n");
        ck_assert_int_eq(kill(pid, SIGUSR1), 0);
        read_line(fd, line, sizeof(line));
        ck_assert_str_eq(line, "got USR1\n");
        ck_assert_int_eq(kill(pid, SIGINT), 0);
        read_line(fd, line, sizeof(line));
        ck_assert_str_eq(line, "got INT\n");
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert_int_eq(WEXITSTATUS(st), 3);
        close(fd);
}
END_TEST

START_TEST(test_killed_mpspawn_takes_its_job_along) {
        int fd;
        char line[128];
        pid_t pid = start_mpspawn(
                (const char *[]){"sh", "-c", "echo $$; exec sleep 60", NULL}, &fd);
        read_line(fd, line, sizeof(line));
        pid_t job = atoi(line);
        ck_assert_int_gt(job, 0);
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        waitpid(pid, NULL, 0);
        /* The embedded server sees its client go and ends the daemon job. */
        ck_assert_msg(tu_wait_reaped(job, 0, 30000), "job %d outlived mpspawn", (int)job);
        close(fd);
}
END_TEST

START_TEST(test_explicit_socket_and_server_subcommand) {
        char dir[64], path[100];
        tu_tmpdir(dir, sizeof(dir));
        snprintf(path, sizeof(path), "%s/s", dir);
        int fd;
        /* `mpspawn server` runs a forkserver in the foreground. */
        pid_t server = start_mpspawn((const char *[]){"server", "--socket", path, NULL}, &fd);
        int spfd = pidfd_open(server, 0);
        ck_assert_int_ge(spfd, 0);
        /* Bounded polling until it answers (no readiness channel here). */
        int st = 1;
        for (int i = 0; i < 4000; i++) {
                st = mpspawn((const char *[]){"-s", path, "true", NULL});
                if (st == 0)
                        break;
                struct pollfd p = {.fd = spfd, .events = POLLIN};
                ck_assert_int_eq(poll(&p, 1, 5), 0); /* server still alive */
        }
        ck_assert_int_eq(st, 0);
        /* $MPSPAWN_SOCKET does the same as -s. */
        const char *argv[] = {tu_cli(), "sh", "-c", "exit 4", NULL};
        char envs[160];
        snprintf(envs, sizeof(envs), "MPSPAWN_SOCKET=%s", path);
        st = tu_run(argv, (const char *[]){envs, NULL}, out, sizeof(out), err, sizeof(err));
        ck_assert_int_eq(WEXITSTATUS(st), 4);
        ck_assert_int_eq(kill(server, SIGTERM), 0);
        ck_assert_int_eq(waitpid(server, &st, 0), server);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        close(spfd);
        close(fd);
        rmdir(dir);
}
END_TEST

static Suite *cli_suite(void) {
        Suite *s = suite_create("cli");
        TCase *t = tcase_create("cli");
        tcase_set_timeout(t, 120);
        tcase_add_test(t, test_exit_status_is_the_jobs);
        tcase_add_test(t, test_killed_by_signal_is_128_plus_n);
        tcase_add_test(t, test_not_found_is_127_with_one_line);
        tcase_add_test(t, test_not_executable_is_126);
        tcase_add_test(t, test_own_failures_are_125);
        tcase_add_test(t, test_help_and_version);
        tcase_add_test(t, test_stdio_env_and_cwd);
        tcase_add_test(t, test_program_options_stay_the_programs);
        tcase_add_test(t, test_sigterm_is_forwarded_to_the_job);
        tcase_add_test(t, test_sigint_and_usr1_are_forwarded);
        tcase_add_test(t, test_killed_mpspawn_takes_its_job_along);
        tcase_add_test(t, test_explicit_socket_and_server_subcommand);
        suite_add_tcase(s, t);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(cli_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
