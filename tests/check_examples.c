/* SPDX-License-Identifier: MIT */
/*
 * check_examples.c: the event-loop examples of docs/examples/ (epoll, libuv,
 * libevent), built by `make examples` into $(BUILD)/examples/, run as a
 * reader would run them:
 *
 *   socket    against a server on a temporary socket (argv[1])
 *   embedded  with no argument: the library's default, here an embedded
 *             server (tests/run.sh leaves no shared one to find)
 *   failure   with a PATH in which `sh` cannot be found, so that the first
 *             start fails: the example must say so and exit non-zero (an
 *             example that could not fail would prove nothing)
 *
 * Each example checks what it saw itself and exits 0 only if every exit
 * code was right and its loop kept ticking; here its status and its last
 * line are checked, and a run is bounded: one that hangs is killed and
 * fails.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"


static const char *const examples[] = {"epoll", "libuv", "libevent"};
#define NEXAMPLES (sizeof(examples) / sizeof(examples[0]))

/* A run may take this long before it counts as hung (the examples give up
 * by themselves after 20 s). */
#define RUN_LIMIT_MS 40000

/* $(BUILD)/examples/NAME: next to the CLI under test. */
static void example_path(const char *name, char *buf, size_t len) {
        char cli[PATH_MAX];
        snprintf(cli, sizeof(cli), "%s", tu_cli());
        snprintf(buf, len, "%s/examples/%s", dirname(cli), name);
        ck_assert_msg(access(buf, X_OK) == 0, "%s: %s (run `make examples`)", buf,
                      strerror(errno));
}

/*
 * Runs the example with stdout and stderr into one pipe, and with PATH
 * replaced by `path` when not NULL; its output into out. Returns the wait
 * status; a run that outlives RUN_LIMIT_MS is killed and fails the test.
 */
static int run_example(const char *name, const char *socket, const char *path, char *out,
                       size_t outlen) {
        char bin[PATH_MAX], pathvar[PATH_MAX + 8];
        int pfd[2], status;
        pid_t pid;
        example_path(name, bin, sizeof(bin));
        const char *argv[] = {bin, socket, NULL};

        snprintf(pathvar, sizeof(pathvar), "PATH=%s", path ? path : "");
        const char **envp = tu_environ_with(path ? "PATH" : NULL, path ? pathvar : NULL);

        ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
        posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
        int r = posix_spawn(&pid, bin, &fa, NULL, (char *const *)argv, (char *const *)envp);
        posix_spawn_file_actions_destroy(&fa);
        free(envp);
        close(pfd[1]);
        ck_assert_msg(r == 0, "cannot run %s: %s", bin, strerror(r));
        /* EOF once the example and its jobs (which share its stdout) are
         * gone; a hung example keeps the pipe open until the limit. */
        int pidfd = pidfd_open(pid, 0); /* our child, not reaped yet: no race */
        ck_assert_int_ge(pidfd, 0);
        tu_read_all(pfd[0], out, outlen, RUN_LIMIT_MS);
        close(pfd[0]);
        struct pollfd p = {.fd = pidfd, .events = POLLIN};
        bool hung = poll(&p, 1, 1000) != 1;
        close(pidfd);
        if (hung)
                kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        ck_assert_msg(!hung, "%s did not finish in %d ms:\n%s", name, RUN_LIMIT_MS, out);
        return status;
}

/* The example's verdict is its last line, "NAME: ...". */
static void assert_success(const char *name, int status, const char *out) {
        char want[64];
        snprintf(want, sizeof(want), "%s: every exit as expected\n", name);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "%s: status 0x%x:\n%s", name, status, out);
        ck_assert_msg(strstr(out, want), "%s: no success line:\n%s", name, out);
        ck_assert_msg(!strstr(out, "WRONG"), "%s:\n%s", name, out);
        /* Every job was seen both ways, and the pool's four callbacks ran. */
        ck_assert_msg(strstr(out, "job 8 (sleep 0.3): expected 0, seen 0 after dispatch, 0 "
                                  "through its sentinel"), "%s:\n%s", name, out);
        ck_assert_msg(strstr(out, "pool task 3: expected 23, callback got 23"), "%s:\n%s", name,
                      out);
}

START_TEST(socket_server) {
        const char *name = examples[_i];
        struct tu_server s;
        char out[8192];
        tu_server_start(&s, NULL);
        int status = run_example(name, s.path, NULL, out, sizeof(out));
        assert_success(name, status, out);
        status = tu_server_stop(&s);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "server: 0x%x", status);
}
END_TEST

START_TEST(embedded_default) {
        const char *name = examples[_i];
        char out[8192];
        int status = run_example(name, NULL, NULL, out, sizeof(out));
        assert_success(name, status, out);
}
END_TEST

START_TEST(start_failure) {
        const char *name = examples[_i];
        struct tu_server s;
        char out[8192], want[64];
        tu_server_start(&s, NULL);
        int status = run_example(name, s.path, "/nonexistent", out, sizeof(out));
        tu_server_stop(&s);
        snprintf(want, sizeof(want), "%s: FAILED\n", name);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1, "%s: status 0x%x:\n%s",
                      name, status, out);
        ck_assert_msg(strstr(out, "cannot execute 'sh'"), "%s: no reason given:\n%s", name,
                      out);
        ck_assert_msg(strstr(out, want), "%s:\n%s", name, out);
}
END_TEST

static Suite *examples_suite(void) {
        Suite *s = suite_create("examples");
        TCase *t = tcase_create("examples");
        tcase_set_timeout(t, 60);
        tcase_add_loop_test(t, socket_server, 0, NEXAMPLES);
        tcase_add_loop_test(t, embedded_default, 0, NEXAMPLES);
        tcase_add_loop_test(t, start_failure, 0, NEXAMPLES);
        suite_add_tcase(s, t);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(examples_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
