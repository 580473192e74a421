/* SPDX-License-Identifier: MIT */
/*
 * check_timer.c: the server's deadline heap (forkserver/timer.c) as a unit:
 * arming, disarming and re-arming, the order deadlines expire in, removal
 * from the middle, and every job's heap_index, with the heap checked whole
 * after each step. timer.o is linked alone: log_msg is stubbed here, and
 * what an expired deadline means is this file's fire function.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>

#include "../launcher/fdutil.h"
#include "../forkserver/server.h"

/* timer.c logs only when timerfd_settime fails. */
enum log_level log_max_level = LOG_LEVEL_ERR;
void log_msg(enum log_level level, const char *fmt, ...) {
        (void)level;
        (void)fmt;
}

#define NJOBS 256
#define HOUR_NS (3600ull * 1000000000ull)

static struct server srv;
static struct job jobs[NJOBS];
static struct job *fired[4 * NJOBS];
static size_t nfired;
static bool rearm_on_fire; /* fire() puts each job back an hour ahead */

static void fire(struct job *j) {
        ck_assert_uint_lt(nfired, sizeof(fired) / sizeof(fired[0]));
        /* Out of the heap before it is handed over. */
        ck_assert_uint_eq(j->heap_index, SIZE_MAX);
        fired[nfired++] = j;
        if (rearm_on_fire)
                ck_assert_int_eq(timer_arm(&srv, j, mps__now_ns() + HOUR_NS), 0);
}

static void setup(void) {
        memset(&srv, 0, sizeof(srv));
        memset(jobs, 0, sizeof(jobs));
        for (size_t i = 0; i < NJOBS; i++)
                jobs[i].heap_index = SIZE_MAX;
        nfired = 0;
        rearm_on_fire = false;
        ck_assert_int_eq(timer_open(&srv, fire), 0);
        ck_assert_int_ge(srv.timers.fd, 0);
}

static void teardown(void) {
        timer_close(&srv);
        ck_assert_int_eq(srv.timers.fd, -1);
        ck_assert_ptr_null(srv.timers.items);
}

/* Every item knows its index, no parent is later than its child, and the
 * count of armed jobs is the heap's. */
static void check_heap(void) {
        const struct timer_heap *h = &srv.timers;
        size_t armed = 0;
        for (size_t i = 0; i < h->count; i++) {
                ck_assert_uint_eq(h->items[i]->heap_index, i);
                if (i > 0)
                        ck_assert_uint_le(h->items[(i - 1) / 2]->deadline_ns,
                                          h->items[i]->deadline_ns);
        }
        for (size_t i = 0; i < NJOBS; i++) {
                if (jobs[i].heap_index == SIZE_MAX)
                        continue;
                armed++;
                ck_assert_uint_lt(jobs[i].heap_index, h->count);
                ck_assert_ptr_eq(h->items[jobs[i].heap_index], &jobs[i]);
        }
        ck_assert_uint_eq(armed, h->count);
}

/* The timerfd's absolute expiry as the kernel holds it (relative time
 * left, 0 when disarmed). */
static bool timerfd_armed(void) {
        struct itimerspec its;
        ck_assert_int_eq(timerfd_gettime(srv.timers.fd, &its), 0);
        return its.it_value.tv_sec != 0 || its.it_value.tv_nsec != 0;
}

/* A fixed pseudo-random sequence (xorshift), so failures repeat. */
static uint64_t next_random(uint64_t *state) {
        uint64_t x = *state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return *state = x;
}

START_TEST(test_arm_disarm_rearm) {
        uint64_t later = mps__now_ns() + HOUR_NS;
        struct job *j = &jobs[0];

        ck_assert(!timerfd_armed());
        ck_assert_int_eq(timer_arm(&srv, j, later), 0);
        ck_assert_uint_eq(j->heap_index, 0);
        ck_assert_uint_eq(j->deadline_ns, later);
        ck_assert_uint_eq(srv.timers.count, 1);
        ck_assert(timerfd_armed());
        check_heap();

        timer_disarm(&srv, j);
        ck_assert_uint_eq(j->heap_index, SIZE_MAX);
        ck_assert_uint_eq(srv.timers.count, 0);
        ck_assert(!timerfd_armed());
        /* Disarming what is not armed changes nothing. */
        timer_disarm(&srv, j);
        ck_assert_uint_eq(srv.timers.count, 0);

        /* Arming an armed job moves its deadline; it is in the heap once. */
        ck_assert_int_eq(timer_arm(&srv, j, later), 0);
        ck_assert_int_eq(timer_arm(&srv, &jobs[1], later + 10), 0);
        ck_assert_int_eq(timer_arm(&srv, j, later + 20), 0);
        ck_assert_uint_eq(srv.timers.count, 2);
        ck_assert_ptr_eq(srv.timers.items[0], &jobs[1]);
        ck_assert_uint_eq(j->deadline_ns, later + 20);
        check_heap();
        ck_assert_int_eq(timer_arm(&srv, j, later + 5), 0);
        ck_assert_ptr_eq(srv.timers.items[0], j);
        check_heap();

        /* Nothing is due: an expiry fires nothing and keeps the timer. */
        timer_on_expiry(&srv);
        ck_assert_uint_eq(nfired, 0);
        ck_assert_uint_eq(srv.timers.count, 2);
        ck_assert(timerfd_armed());
}
END_TEST

START_TEST(test_many_deadlines_expire_in_order) {
        uint64_t state = 88172645463325252ull;
        /* Deadlines long past (small absolute times), many of them equal. */
        for (size_t i = 0; i < NJOBS; i++) {
                ck_assert_int_eq(timer_arm(&srv, &jobs[i], 1 + next_random(&state) % 64), 0);
                check_heap();
        }
        ck_assert_uint_eq(srv.timers.count, NJOBS);
        timer_on_expiry(&srv);
        ck_assert_uint_eq(nfired, NJOBS);
        ck_assert_uint_eq(srv.timers.count, 0);
        ck_assert(!timerfd_armed());
        for (size_t i = 1; i < nfired; i++)
                ck_assert_uint_le(fired[i - 1]->deadline_ns, fired[i]->deadline_ns);
        /* Each job fired once. */
        for (size_t i = 0; i < nfired; i++)
                for (size_t k = i + 1; k < nfired; k++)
                        ck_assert_ptr_ne(fired[i], fired[k]);
}
END_TEST

START_TEST(test_only_due_deadlines_fire) {
        uint64_t now = mps__now_ns();
        for (size_t i = 0; i < 16; i++) {
                /* Even ones past, odd ones an hour ahead. */
                uint64_t d = i % 2 ? now + HOUR_NS + i : 1 + i;
                ck_assert_int_eq(timer_arm(&srv, &jobs[i], d), 0);
        }
        timer_on_expiry(&srv);
        ck_assert_uint_eq(nfired, 8);
        for (size_t i = 0; i < nfired; i++)
                ck_assert_uint_eq((size_t)(fired[i] - jobs) % 2, 0);
        ck_assert_uint_eq(srv.timers.count, 8);
        ck_assert(timerfd_armed());
        check_heap();
}
END_TEST

START_TEST(test_fire_may_rearm) {
        for (size_t i = 0; i < 8; i++)
                ck_assert_int_eq(timer_arm(&srv, &jobs[i], 100 + i), 0);
        rearm_on_fire = true;
        timer_on_expiry(&srv);
        /* Each fired once, and is armed again for later. */
        ck_assert_uint_eq(nfired, 8);
        ck_assert_uint_eq(srv.timers.count, 8);
        ck_assert(timerfd_armed());
        check_heap();
}
END_TEST

START_TEST(test_removal_from_the_middle) {
        uint64_t state = 2463534242ull;
        for (size_t i = 0; i < NJOBS; i++)
                ck_assert_int_eq(timer_arm(&srv, &jobs[i], 1 + next_random(&state) % 100000),
                                 0);
        /* Every third job goes, wherever it sits; the heap stays a heap. */
        for (size_t i = 1; i < NJOBS; i += 3) {
                timer_disarm(&srv, &jobs[i]);
                ck_assert_uint_eq(jobs[i].heap_index, SIZE_MAX);
                check_heap();
        }
        /* Re-arming some of them puts them back where they belong. */
        for (size_t i = 1; i < NJOBS; i += 6) {
                ck_assert_int_eq(timer_arm(&srv, &jobs[i], 1 + next_random(&state) % 100000),
                                 0);
                check_heap();
        }
        size_t armed = srv.timers.count;
        timer_on_expiry(&srv);
        ck_assert_uint_eq(nfired, armed);
        for (size_t i = 1; i < nfired; i++)
                ck_assert_uint_le(fired[i - 1]->deadline_ns, fired[i]->deadline_ns);
        /* The ones left disarmed never fired. */
        for (size_t i = 0; i < nfired; i++) {
                size_t k = (size_t)(fired[i] - jobs);
                ck_assert(!(k % 3 == 1 && k % 6 != 1));
        }
}
END_TEST

START_TEST(test_disarm_the_earliest_rearms_for_the_next) {
        uint64_t now = mps__now_ns();
        ck_assert_int_eq(timer_arm(&srv, &jobs[0], now + HOUR_NS), 0);
        ck_assert_int_eq(timer_arm(&srv, &jobs[1], now + 2 * HOUR_NS), 0);
        struct itimerspec its;
        ck_assert_int_eq(timerfd_gettime(srv.timers.fd, &its), 0);
        ck_assert_int_le(its.it_value.tv_sec, 3600);
        timer_disarm(&srv, &jobs[0]);
        ck_assert_ptr_eq(srv.timers.items[0], &jobs[1]);
        ck_assert_int_eq(timerfd_gettime(srv.timers.fd, &its), 0);
        ck_assert_int_gt(its.it_value.tv_sec, 3600);
        timer_disarm(&srv, &jobs[1]);
        ck_assert(!timerfd_armed());
}
END_TEST

static Suite *timer_suite(void) {
        Suite *s = suite_create("timer");
        TCase *t = tcase_create("heap");
        tcase_add_checked_fixture(t, setup, teardown);
        tcase_set_timeout(t, 30);
        tcase_add_test(t, test_arm_disarm_rearm);
        tcase_add_test(t, test_many_deadlines_expire_in_order);
        tcase_add_test(t, test_only_due_deadlines_fire);
        tcase_add_test(t, test_fire_may_rearm);
        tcase_add_test(t, test_removal_from_the_middle);
        tcase_add_test(t, test_disarm_the_earliest_rearms_for_the_next);
        suite_add_tcase(s, t);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(timer_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
