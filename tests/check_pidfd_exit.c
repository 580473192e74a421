/* SPDX-License-Identifier: MIT */
/*
 * check_pidfd_exit.c: a job's end read from its pidfd (PIDFD_INFO_EXIT,
 * Linux 6.15) against the same end from the server's record. Every case
 * runs twice: _i == 0 with the pidfd path, _i == 1 with it forced off
 * (MPSPAWN_NO_PIDFD_EXIT=1); both must give the same exit codes and the
 * same full records. Two cases show which path was taken, through the
 * library's count of ends read from pidfds (lib.h): a join of a job that
 * was reaped before it began, and a join that was already waiting in poll
 * when the (stopped) server reaped the job.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../include/mpspawn.h"
#include "../launcher/lib.h"
#include "testutil.h"

static struct tu_server srv;
static char preload[PATH_MAX];

static void setup(void) {
        tu_preload_table(preload, sizeof(preload));
        const char *extra[] = {"--preload", preload, NULL};
        tu_server_start(&srv, extra);
}

static void teardown(void) {
        int st = tu_server_stop(&srv);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* A client on the pidfd path (path 0) or forced to the records (1). Each
 * test runs in a child of its own (Check's fork mode): the variable is
 * that test's. */
static mps_client *open_client(int path) {
        ck_assert_int_eq(setenv("MPSPAWN_NO_PIDFD_EXIT", path ? "1" : "0", 1), 0);
        mps_client *c = NULL;
        char *msg = NULL;
        ck_assert_msg(mps_client_open(srv.path, &c, &msg) == 0, "%s", msg ? msg : "?");
        return c;
}

/* Linux 6.15 and later keep a reaped process's status for pidfds. */
static bool kernel_tells(void) {
        struct utsname u;
        int major = 0, minor = 0;
        ck_assert_int_eq(uname(&u), 0);
        ck_assert_int_eq(sscanf(u.release, "%d.%d", &major, &minor), 2);
        return major > 6 || (major == 6 && minor >= 15);
}

static unsigned long pidfd_exits(mps_client *c) {
        mps__client_lock(c);
        unsigned long n = mps__client_pidfd_exits(c);
        mps__client_unlock(c);
        return n;
}

/* How many of n ends the pidfd must have given on this path. */
static unsigned long expected_exits(int path, unsigned long n) {
        return path == 0 && kernel_tells() ? n : 0;
}

static mps_process *start_spec(mps_client *c, mps_spec *s) {
        mps_process *p;
        ck_assert_int_eq(mps_process_new(c, s, &p), 0);
        mps_spec_free(s);
        int r = mps_start(p);
        ck_assert_msg(r == 0, "start: %s", mps_client_error(c));
        return p;
}

static mps_process *start_exec(mps_client *c, const char *const *argv, double timeout,
                               const char *cwd) {
        mps_spec *s;
        ck_assert_int_eq(mps_spec_new(&s), 0);
        ck_assert_int_eq(mps_spec_set_exec(s, argv[0], argv), 0);
        if (timeout > 0)
                ck_assert_int_eq(mps_spec_set_timeout(s, timeout, -1), 0);
        if (cwd)
                ck_assert_int_eq(mps_spec_set_cwd(s, cwd), 0);
        return start_spec(c, s);
}

static mps_process *start_call(mps_client *c, const char *entry, const char *args) {
        mps_spec *s;
        ck_assert_int_eq(mps_spec_new(&s), 0);
        ck_assert_int_eq(mps_spec_set_call(s, entry, args), 0);
        return start_spec(c, s);
}

/* Joins p and checks what every getter says of its end; returns its
 * record. */
static mps_exit_info join_and_check(mps_process *p, int code) {
        mps_exit_info info;
        ck_assert_int_eq(mps_join(p, -1), 0);
        ck_assert_int_eq(mps_is_alive(p), 0);
        ck_assert_int_eq(mps_exitcode(p), code);
        ck_assert_int_eq(mps_exit_info_get(p, &info), 0);
        ck_assert_int_eq(info.exitcode, code);
        ck_assert(info.wall_seconds > 0);
        ck_assert_int_gt(info.max_rss_kib, 0);
        /* The record, once read, changes nothing. */
        ck_assert_int_eq(mps_exitcode(p), code);
        return info;
}

/* ---- the same ends on both paths ---------------------------------------------- */

START_TEST(test_exit_0_and_7) {
        mps_client *c = open_client(_i);
        const char *zero[] = {"/bin/true", NULL};
        const char *seven[] = {"/bin/sh", "-c", "exit 7", NULL};
        mps_process *p = start_exec(c, zero, 0, NULL);
        mps_exit_info info = join_and_check(p, 0);
        ck_assert(!info.core_dumped && !info.timed_out);
        ck_assert_int_eq(mps_process_close(p), 0);
        p = start_exec(c, seven, 0, NULL);
        info = join_and_check(p, 7);
        ck_assert(!info.core_dumped && !info.timed_out);
        ck_assert_int_eq(mps_process_close(p), 0);
        mps_client_close(c);
}
END_TEST

START_TEST(test_killed_by_sigkill_is_minus_9) {
        mps_client *c = open_client(_i);
        const char *argv[] = {"/bin/sleep", "30", NULL};
        mps_process *p = start_exec(c, argv, 0, NULL);
        ck_assert_int_eq(mps_kill(p), 0);
        mps_exit_info info = join_and_check(p, -SIGKILL);
        ck_assert(!info.core_dumped);
        ck_assert_int_eq(mps_process_close(p), 0);
        mps_client_close(c);
}
END_TEST

/* The core dump bit as the same shell gets it run directly here (core
 * files land in a directory of the test's own). */
START_TEST(test_core_dump_bit) {
        char dir[64];
        tu_tmpdir(dir, sizeof(dir));
        const char *argv[] = {"/bin/sh", "-c", "ulimit -c unlimited 2>/dev/null; kill -QUIT $$",
                              NULL};
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                if (chdir(dir) == 0)
                        execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGQUIT);
        mps_client *c = open_client(_i);
        mps_process *p = start_exec(c, argv, 0, dir);
        mps_exit_info info = join_and_check(p, -SIGQUIT);
        ck_assert_int_eq(info.core_dumped, WCOREDUMP(st) != 0);
        ck_assert_int_eq(mps_process_close(p), 0);
        mps_client_close(c);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* The sentinel readable, then is_alive and exitcode without a join. */
START_TEST(test_sentinel_then_is_alive_and_exitcode) {
        mps_client *c = open_client(_i);
        const char *argv[] = {"/bin/sh", "-c", "exit 7", NULL};
        mps_process *p = start_exec(c, argv, 0, NULL);
        struct pollfd pfd = {.fd = mps_sentinel(p), .events = POLLIN};
        ck_assert_int_ge(pfd.fd, 0);
        ck_assert_int_eq(poll(&pfd, 1, 20000), 1);
        ck_assert_int_eq(mps_is_alive(p), 0);
        ck_assert_int_eq(mps_exitcode(p), 7);
        mps_exit_info info;
        ck_assert_int_eq(mps_exit_info_get(p, &info), 0);
        ck_assert_int_eq(info.exitcode, 7);
        ck_assert(info.wall_seconds > 0);
        ck_assert_int_eq(mps_process_close(p), 0);
        mps_client_close(c);
}
END_TEST

/* A call job's result and failure come with the record, after a join
 * that may have ended it from the pidfd. */
START_TEST(test_call_result_after_join) {
        mps_client *c = open_client(_i);
        mps_process *p = start_call(c, "result_echo", "[7]");
        join_and_check(p, 0);
        ck_assert_ptr_nonnull(mps_result(p));
        ck_assert_str_eq(mps_result(p), "[7]");
        ck_assert_ptr_null(mps_result_error(p));
        ck_assert_int_eq(mps_process_close(p), 0);
        p = start_call(c, "error_set", "7");
        ck_assert_int_eq(mps_join(p, -1), 0);
        ck_assert_int_eq(mps_exitcode(p), 7);
        ck_assert_ptr_nonnull(mps_result_error(p));
        ck_assert_str_eq(mps_result_error(p), "bad input: \xc3\xbc");
        ck_assert_ptr_null(mps_result(p));
        ck_assert_int_eq(mps_process_close(p), 0);
        mps_client_close(c);
}
END_TEST

/* The server's timeout: the kernel gives -15, the record timed_out. */
START_TEST(test_timeout_is_in_the_record) {
        mps_client *c = open_client(_i);
        const char *argv[] = {"/bin/sleep", "30", NULL};
        mps_process *p = start_exec(c, argv, 0.1, NULL);
        mps_exit_info info = join_and_check(p, -SIGTERM);
        ck_assert(info.timed_out);
        ck_assert_int_eq(mps_process_close(p), 0);
        mps_client_close(c);
}
END_TEST

/* ---- which path was taken --------------------------------------------------- */

/* A job that exits 7 once the test lets it (its stdin reaches EOF), so
 * that its end comes after mps_start() has returned: a start that read a
 * quick job's record with its "spawned" would have ended it from that. */
static mps_process *start_held(mps_client *c, int *ret_release) {
        const char *argv[] = {"/bin/sh", "-c", "read x; exit 7", NULL};
        int in[2];
        mps_spec *s;
        ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
        ck_assert_int_eq(mps_spec_new(&s), 0);
        ck_assert_int_eq(mps_spec_set_exec(s, argv[0], argv), 0);
        ck_assert_int_eq(mps_spec_map_fd(s, 0, in[0]), 0);
        mps_process *p = start_spec(c, s);
        close(in[0]);
        *ret_release = in[1];
        return p;
}

/* Lets the held job exit and polls its sentinel for POLLHUP (with no
 * events): the server has reaped it, and its record waits unread in our
 * socket. */
static void release_and_wait_reaped(mps_process *p, int release) {
        close(release);
        struct pollfd pfd = {.fd = mps_sentinel(p), .events = 0};
        ck_assert_int_ge(pfd.fd, 0);
        ck_assert_int_eq(poll(&pfd, 1, 20000), 1);
        ck_assert(pfd.revents & POLLHUP);
}

/* With the record waiting, the join ends the job from the pidfd all the
 * same on that path; the record read later completes it, once. */
START_TEST(test_join_after_the_reap_reads_the_pidfd) {
        mps_client *c = open_client(_i);
        int release;
        mps_process *p = start_held(c, &release);
        release_and_wait_reaped(p, release);
        ck_assert_int_eq(mps_join(p, -1), 0);
        ck_assert_int_eq(mps_exitcode(p), 7);
        ck_assert_uint_eq(pidfd_exits(c), expected_exits(_i, 1));
        ck_assert_int_ge(mps_client_dispatch(c), 0);
        mps_exit_info info;
        ck_assert_int_eq(mps_exit_info_get(p, &info), 0);
        ck_assert_int_eq(info.exitcode, 7);
        ck_assert(info.wall_seconds > 0);
        ck_assert_int_eq(mps_exitcode(p), 7);
        ck_assert_uint_eq(pidfd_exits(c), expected_exits(_i, 1));
        ck_assert_int_eq(mps_process_close(p), 0);
        mps_client_close(c);
}
END_TEST

/* The connection gone before the record: the exit code stays, and the
 * record is said to be lost, not invented. */
START_TEST(test_record_lost_after_a_pidfd_end) {
        mps_client *c = open_client(0);
        int release;
        mps_process *p = start_held(c, &release);
        release_and_wait_reaped(p, release);
        ck_assert_int_eq(mps_join(p, -1), 0);
        ck_assert_uint_eq(pidfd_exits(c), expected_exits(0, 1));
        mps_client_close(c);
        mps_exit_info info = {.exitcode = 99};
        int r = mps_exit_info_get(p, &info);
        if (expected_exits(0, 1)) {
                ck_assert_int_eq(r, -ENOTCONN);
                ck_assert_int_eq(info.exitcode, 99); /* untouched */
                ck_assert_ptr_null(mps_result(p));
        } else {
                ck_assert_int_eq(r, 0);
        }
        ck_assert_int_eq(mps_exitcode(p), 7);
        ck_assert_int_eq(mps_is_alive(p), 0);
        ck_assert_int_eq(mps_process_close(p), 0);
}
END_TEST

struct joiner {
        mps_process *p;
        _Atomic pid_t tid;
        int r;
};

static void *join_thread(void *arg) {
        struct joiner *j = arg;
        atomic_store(&j->tid, (pid_t)syscall(SYS_gettid));
        j->r = mps_join(j->p, -1);
        return NULL;
}

/* Whether thread tid of this process sleeps in poll (bounded polling of
 * /proc, 20 s). */
static bool in_poll(pid_t tid) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
        for (int i = 0; i < 20000; i++) {
                FILE *f = fopen(path, "r");
                long nr = -1;
                if (f) {
                        if (fscanf(f, "%ld", &nr) != 1)
                                nr = -1;
                        fclose(f);
                }
                if (nr == SYS_poll || nr == SYS_ppoll)
                        return true;
                struct timespec ms = {0, 1000000};
                nanosleep(&ms, NULL);
        }
        return false;
}

/* A join that polls while the server is stopped with the job killed (a
 * zombie: nothing to tell yet) wakes at the reap that SIGCONT lets
 * happen, and takes the end from the pidfd before the record. */
START_TEST(test_waiting_join_wakes_at_the_reap) {
        mps_client *c = open_client(_i);
        const char *argv[] = {"/bin/sleep", "30", NULL};
        mps_process *p = start_exec(c, argv, 0, NULL);
        ck_assert_int_eq(kill(srv.pid, SIGSTOP), 0);
        /* Stopped indeed (the signal is delivered when it next runs). */
        bool stopped = false;
        for (int i = 0; i < 20000 && !stopped; i++) {
                stopped = tu_proc_state(srv.pid, NULL) == 'T';
                struct timespec ms = {0, 1000000};
                if (!stopped)
                        nanosleep(&ms, NULL);
        }
        ck_assert(stopped);
        ck_assert_int_eq(mps_kill(p), 0); /* through our pidfd */
        struct joiner j = {.p = p};
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, join_thread, &j), 0);
        while (atomic_load(&j.tid) == 0)
                sched_yield();
        bool polling = in_poll(atomic_load(&j.tid));
        ck_assert_int_eq(kill(srv.pid, SIGCONT), 0);
        ck_assert_int_eq(pthread_join(t, NULL), 0);
        ck_assert(polling);
        ck_assert_int_eq(j.r, 0);
        ck_assert_int_eq(mps_exitcode(p), -SIGKILL);
        ck_assert_uint_eq(pidfd_exits(c), expected_exits(_i, 1));
        join_and_check(p, -SIGKILL);
        ck_assert_int_eq(mps_process_close(p), 0);
        mps_client_close(c);
}
END_TEST

struct worker {
        mps_client *c;
        int base;
        int bad; /* ends that came out wrong */
};

/* Ten jobs one after another, each exiting with its own code. */
static void *worker_thread(void *arg) {
        struct worker *w = arg;
        for (int k = 0; k < 10; k++) {
                char code[16];
                snprintf(code, sizeof(code), "exit %d", w->base + k);
                const char *argv[] = {"/bin/sh", "-c", code, NULL};
                mps_spec *s;
                mps_process *p;
                mps_exit_info info;
                if (mps_spec_new(&s) < 0 || mps_spec_set_exec(s, argv[0], argv) < 0 ||
                    mps_process_new(w->c, s, &p) < 0) {
                        w->bad++;
                        mps_spec_free(s);
                        continue;
                }
                mps_spec_free(s);
                if (mps_start(p) < 0 || mps_join(p, -1) < 0 ||
                    mps_exitcode(p) != w->base + k || mps_exit_info_get(p, &info) < 0 ||
                    info.exitcode != w->base + k || !(info.wall_seconds > 0))
                        w->bad++;
                if (mps_process_close(p) < 0)
                        w->bad++;
        }
        return NULL;
}

/* Eight threads joining on one client: the reader polls the others'
 * pidfds, followers look at their own, records complete every end. */
START_TEST(test_threads_joining_on_one_client) {
        mps_client *c = open_client(_i);
        struct worker w[8];
        pthread_t t[8];
        for (int i = 0; i < 8; i++) {
                w[i] = (struct worker){.c = c, .base = 10 * i};
                ck_assert_int_eq(pthread_create(&t[i], NULL, worker_thread, &w[i]), 0);
        }
        for (int i = 0; i < 8; i++) {
                ck_assert_int_eq(pthread_join(t[i], NULL), 0);
                ck_assert_int_eq(w[i].bad, 0);
        }
        if (expected_exits(_i, 1) == 0)
                ck_assert_uint_eq(pidfd_exits(c), 0);
        mps_client_close(c);
}
END_TEST

static Suite *suite(void) {
        Suite *s = suite_create("pidfd_exit");
        TCase *t = tcase_create("both");
        tcase_add_checked_fixture(t, setup, teardown);
        tcase_set_timeout(t, 60);
        tcase_add_loop_test(t, test_exit_0_and_7, 0, 2);
        tcase_add_loop_test(t, test_killed_by_sigkill_is_minus_9, 0, 2);
        tcase_add_loop_test(t, test_core_dump_bit, 0, 2);
        tcase_add_loop_test(t, test_sentinel_then_is_alive_and_exitcode, 0, 2);
        tcase_add_loop_test(t, test_call_result_after_join, 0, 2);
        tcase_add_loop_test(t, test_timeout_is_in_the_record, 0, 2);
        tcase_add_loop_test(t, test_join_after_the_reap_reads_the_pidfd, 0, 2);
        tcase_add_test(t, test_record_lost_after_a_pidfd_end);
        tcase_add_loop_test(t, test_threads_joining_on_one_client, 0, 2);
        suite_add_tcase(s, t);
        /* (A case of its own, to be run alone with CK_RUN_CASE.) */
        TCase *w = tcase_create("waiting");
        tcase_add_checked_fixture(w, setup, teardown);
        tcase_set_timeout(w, 60);
        tcase_add_loop_test(w, test_waiting_join_wakes_at_the_reap, 0, 2);
        suite_add_tcase(s, w);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
