/* SPDX-License-Identifier: MIT */
/*
 * check_pool.c: the Pool (multiprocessing.Pool) against a real server:
 * map keeps order, callbacks fire once each, start failures reach the error
 * callback, close/join/terminate follow Python's rules.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../include/mpspawn.h"
#include "clientutil.h"
#include "testutil.h"

static struct tu_server srv;
static mps_client *client;

static void setup(void) {
        tu_server_start(&srv, NULL);
        char *msg = NULL;
        ck_assert_msg(mps_client_open(srv.path, &client, &msg) == 0, "%s", msg ? msg : "?");
}

static void teardown(void) {
        mps_client_close(client);
        int st = tu_server_stop(&srv);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}


START_TEST(test_map_keeps_order) {
        enum { N = 24 };
        mps_spec *specs[N];
        int codes[N];
        char script[64];
        mps_pool *pool;
        for (int i = 0; i < N; i++) {
                /* Later tasks finish first: order must come from the map. */
                snprintf(script, sizeof(script), "sleep 0.0%d; exit %d", (N - i) % 10, i);
                specs[i] = cu_sh_spec(script);
        }
        ck_assert_int_eq(mps_pool_new(client, 4, &pool), 0);
        ck_assert_int_eq(mps_pool_map(pool, (const mps_spec *const *)specs, N, codes), 0);
        for (int i = 0; i < N; i++) {
                ck_assert_int_eq(codes[i], i);
                mps_spec_free(specs[i]);
        }
        ck_assert_int_eq(mps_pool_close(pool), 0);
        ck_assert_int_eq(mps_pool_join(pool, -1), 0);
        ck_assert_int_eq(mps_pool_free(pool), 0);
}
END_TEST

struct counts {
        int done[40];
        int codes[40];
        int errors;
        int last_error;
};

struct task_ref {
        struct counts *c;
        int i;
};

static void on_done(mps_process *proc, int exitcode, void *ud) {
        struct task_ref *t = ud;
        ck_assert_int_gt(mps_pid(proc), 0);
        t->c->done[t->i]++;
        t->c->codes[t->i] = exitcode;
}

static void on_error(int err, const char *message, void *ud) {
        struct task_ref *t = ud;
        ck_assert_ptr_nonnull(message);
        t->c->errors++;
        t->c->last_error = err;
        t->c->done[t->i]++;
}

START_TEST(test_apply_async_callbacks_fire_once_each) {
        struct counts c = {0};
        struct task_ref refs[40];
        mps_pool *pool;
        ck_assert_int_eq(mps_pool_new(client, 3, &pool), 0);
        for (int i = 0; i < 40; i++) {
                char script[32];
                snprintf(script, sizeof(script), "exit %d", i % 7);
                mps_spec *s = cu_sh_spec(script);
                refs[i] = (struct task_ref){&c, i};
                ck_assert_int_eq(mps_pool_apply_async(pool, s, on_done, on_error, &refs[i]), 0);
                mps_spec_free(s);
        }
        /* join before close is refused, as in Python. */
        ck_assert_int_eq(mps_pool_join(pool, 0), -EINVAL);
        ck_assert_int_eq(mps_pool_close(pool), 0);
        mps_spec *late = cu_sh_spec("true");
        ck_assert_int_eq(mps_pool_apply_async(pool, late, NULL, NULL, NULL), -EINVAL);
        mps_spec_free(late);
        ck_assert_int_eq(mps_pool_join(pool, -1), 0);
        for (int i = 0; i < 40; i++) {
                ck_assert_int_eq(c.done[i], 1);
                ck_assert_int_eq(c.codes[i], i % 7);
        }
        ck_assert_int_eq(c.errors, 0);
        ck_assert_int_eq(mps_pool_free(pool), 0);
}
END_TEST

START_TEST(test_start_failure_reaches_the_error_callback) {
        struct counts c = {0};
        struct task_ref ref = {&c, 0};
        mps_pool *pool;
        mps_spec *s;
        const char *argv[] = {"no-such-program-z", NULL};
        ck_assert_int_eq(mps_spec_new(&s), 0);
        ck_assert_int_eq(mps_spec_set_exec(s, argv[0], argv), 0);
        ck_assert_int_eq(mps_pool_new(client, 2, &pool), 0);
        ck_assert_int_eq(mps_pool_apply_async(pool, s, on_done, on_error, &ref), 0);
        int code = 0;
        ck_assert_int_eq(mps_pool_apply(pool, s, &code), -ENOENT);
        mps_pool_close(pool);
        ck_assert_int_eq(mps_pool_join(pool, -1), 0);
        ck_assert_int_eq(c.errors, 1);
        ck_assert_int_eq(c.last_error, -ENOENT);
        ck_assert_int_eq(c.done[0], 1);
        /* map reports the first start error, and NONE in that slot. */
        mps_spec *ok = cu_sh_spec("exit 4");
        const mps_spec *both[2] = {ok, s};
        int codes[2];
        mps_pool *p2;
        ck_assert_int_eq(mps_pool_new(client, 2, &p2), 0);
        ck_assert_int_eq(mps_pool_map(p2, both, 2, codes), -ENOENT);
        ck_assert_int_eq(codes[0], 4);
        ck_assert_int_eq(codes[1], MPS_EXITCODE_NONE);
        mps_pool_close(p2);
        mps_pool_join(p2, -1);
        mps_pool_free(p2);
        mps_pool_free(pool);
        mps_spec_free(ok);
        mps_spec_free(s);
}
END_TEST

START_TEST(test_terminate_drops_queued_and_ends_running) {
        struct counts c = {0};
        struct task_ref refs[6];
        mps_pool *pool;
        ck_assert_int_eq(mps_pool_new(client, 2, &pool), 0);
        mps_spec *s = cu_sh_spec("exec sleep 60");
        for (int i = 0; i < 6; i++) {
                refs[i] = (struct task_ref){&c, i};
                ck_assert_int_eq(mps_pool_apply_async(pool, s, on_done, on_error, &refs[i]), 0);
        }
        /* Two run (or are starting: signalling waits for their start), four
         * wait in the queue. */
        ck_assert_int_eq(mps_pool_free(pool), -EBUSY);
        mps_pool_terminate(pool);
        ck_assert_int_eq(mps_pool_join(pool, 60000), 0);
        /* The four queued were cancelled; the two running got SIGTERM. */
        int cancelled = 0, terminated = 0;
        for (int i = 0; i < 6; i++) {
                ck_assert_int_eq(c.done[i], 1);
                if (c.codes[i] == -SIGTERM)
                        terminated++;
        }
        cancelled = c.errors;
        ck_assert_int_eq(cancelled, 4);
        ck_assert_int_eq(c.last_error, -ECANCELED);
        ck_assert_int_eq(terminated, 2);
        ck_assert_int_eq(mps_pool_free(pool), 0);
        mps_spec_free(s);
}
END_TEST

/*
 * Signalling the pool while tasks are still starting: signalling one
 * dispatches replies, and the exits among them end other tasks of the
 * walk. Every task must be reported once and nothing used after it is
 * freed (make check-asan catches that). The jobs' shared stdout pipe
 * reaching EOF says they have all exited before the pool hears of it.
 */
START_TEST(test_signal_while_tasks_start_and_end) {
        struct counts c = {0};
        struct task_ref refs[4];
        mps_pool *pool;
        int out[2];
        char buf[16];
        ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
        mps_spec *s = cu_sh_spec("exit 0");
        ck_assert_int_eq(mps_spec_map_fd(s, 1, out[1]), 0);
        ck_assert_int_eq(mps_pool_new(client, 4, &pool), 0);
        for (int i = 0; i < 4; i++) {
                refs[i] = (struct task_ref){&c, i};
                ck_assert_int_eq(mps_pool_apply_async(pool, s, on_done, on_error, &refs[i]), 0);
        }
        mps_spec_free(s);
        close(out[1]);
        ck_assert_uint_eq(tu_read_all(out[0], buf, sizeof(buf), 20000), 0);
        close(out[0]);
        ck_assert_int_eq(mps_pool_terminate(pool), 0);
        ck_assert_int_eq(mps_pool_join(pool, -1), 0);
        for (int i = 0; i < 4; i++)
                ck_assert_int_eq(c.done[i], 1);
        ck_assert_int_eq(mps_pool_free(pool), 0);
}
END_TEST

static Suite *pool_suite(void) {
        Suite *s = suite_create("pool");
        TCase *t = tcase_create("pool");
        tcase_add_checked_fixture(t, setup, teardown);
        tcase_set_timeout(t, 120);
        tcase_add_test(t, test_map_keeps_order);
        tcase_add_test(t, test_apply_async_callbacks_fire_once_each);
        tcase_add_test(t, test_start_failure_reaches_the_error_callback);
        tcase_add_test(t, test_terminate_drops_queued_and_ends_running);
        tcase_add_test(t, test_signal_while_tasks_start_and_end);
        suite_add_tcase(s, t);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(pool_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
