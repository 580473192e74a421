/* SPDX-License-Identifier: MIT */
/*
 * check_util.c: the small shared helpers: the bounded number parser
 * (launcher/number.c), the intrusive list (launcher/list.h) and the
 * EINTR-retrying wait (launcher/fdutil.c).
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../launcher/fdutil.h"
#include "../launcher/list.h"
#include "../launcher/number.h"

START_TEST(test_unsigned) {
        unsigned long long v = 7;
        ck_assert_int_eq(mps__parse_unsigned("42", 10, 0, 100, &v), 0);
        ck_assert_uint_eq(v, 42);
        ck_assert_int_eq(mps__parse_unsigned("0755", 8, 0, 0777, &v), 0);
        ck_assert_uint_eq(v, 0755);
        ck_assert_int_eq(mps__parse_unsigned("755", 8, 0, 0777, &v), 0);
        ck_assert_uint_eq(v, 0755);
        v = 7;
        ck_assert_int_eq(mps__parse_unsigned("101", 10, 0, 100, &v), -ERANGE);
        ck_assert_int_eq(mps__parse_unsigned("0", 10, 1, 100, &v), -ERANGE);
        ck_assert_int_eq(mps__parse_unsigned("99999999999999999999999", 10, 0, ULLONG_MAX, &v),
                         -ERANGE);
        ck_assert_int_eq(mps__parse_unsigned("-1", 10, 0, ULLONG_MAX, &v), -EINVAL);
        ck_assert_int_eq(mps__parse_unsigned(" 1", 10, 0, 100, &v), -EINVAL);
        ck_assert_int_eq(mps__parse_unsigned("1 ", 10, 0, 100, &v), -EINVAL);
        ck_assert_int_eq(mps__parse_unsigned("1x", 10, 0, 100, &v), -EINVAL);
        ck_assert_int_eq(mps__parse_unsigned("", 10, 0, 100, &v), -EINVAL);
        ck_assert_int_eq(mps__parse_unsigned(NULL, 10, 0, 100, &v), -EINVAL);
        ck_assert_int_eq(mps__parse_unsigned("8", 8, 0, 0777, &v), -EINVAL);
        ck_assert_uint_eq(v, 7); /* untouched on failure */
}
END_TEST

START_TEST(test_signed) {
        long long v = 7;
        ck_assert_int_eq(mps__parse_signed("-20", -20, 19, &v), 0);
        ck_assert_int_eq(v, -20);
        ck_assert_int_eq(mps__parse_signed("+19", -20, 19, &v), 0);
        ck_assert_int_eq(v, 19);
        v = 7;
        ck_assert_int_eq(mps__parse_signed("-21", -20, 19, &v), -ERANGE);
        ck_assert_int_eq(mps__parse_signed("20", -20, 19, &v), -ERANGE);
        ck_assert_int_eq(mps__parse_signed("--1", -20, 19, &v), -EINVAL);
        ck_assert_int_eq(mps__parse_signed("1.5", -20, 19, &v), -EINVAL);
        ck_assert_int_eq(mps__parse_signed("-", -20, 19, &v), -EINVAL);
        ck_assert_int_eq(v, 7);
}
END_TEST

START_TEST(test_double) {
        double v = 7;
        ck_assert_int_eq(mps__parse_double("0.5", 0, 10, &v), 0);
        ck_assert_double_eq(v, 0.5);
        ck_assert_int_eq(mps__parse_double("1e1", 0, 10, &v), 0);
        ck_assert_double_eq(v, 10);
        ck_assert_int_eq(mps__parse_double(".25", 0, 10, &v), 0);
        ck_assert_double_eq(v, 0.25);
        v = 7;
        ck_assert_int_eq(mps__parse_double("10.5", 0, 10, &v), -ERANGE);
        ck_assert_int_eq(mps__parse_double("-1", 0, 10, &v), -ERANGE);
        ck_assert_int_eq(mps__parse_double("1e999", 0, 1e300, &v), -ERANGE);
        ck_assert_int_eq(mps__parse_double("nan", 0, 10, &v), -EINVAL);
        ck_assert_int_eq(mps__parse_double("inf", 0, 10, &v), -EINVAL);
        ck_assert_int_eq(mps__parse_double("1s", 0, 10, &v), -EINVAL);
        ck_assert_int_eq(mps__parse_double("", 0, 10, &v), -EINVAL);
        ck_assert_double_eq(v, 7);
}
END_TEST

struct item {
        int value;
        struct mps__list node;
};

START_TEST(test_list) {
        struct mps__list head = MPS__LIST_INIT(head);
        struct item a = {1, MPS__LIST_INIT(a.node)}, b = {2, MPS__LIST_INIT(b.node)},
                    c = {3, MPS__LIST_INIT(c.node)};
        ck_assert(mps__list_empty(&head));
        ck_assert_ptr_null(mps__list_first(&head));
        mps__list_push_back(&head, &a.node);
        mps__list_push_back(&head, &b.node);
        mps__list_push_front(&head, &c.node); /* c a b */
        int order[3], n = 0;
        struct mps__list *it, *tmp;
        mps__list_foreach_safe(it, tmp, &head) {
                struct item *x = mps__list_entry(it, struct item, node);
                order[n++] = x->value;
                if (x->value == 1)
                        mps__list_remove(it); /* removal while walking */
        }
        ck_assert_int_eq(n, 3);
        ck_assert_int_eq(order[0], 3);
        ck_assert_int_eq(order[1], 1);
        ck_assert_int_eq(order[2], 2);
        ck_assert_ptr_eq(mps__list_first(&head), &c.node);
        ck_assert_ptr_eq(mps__list_last(&head), &b.node);
        mps__list_remove(&a.node); /* twice: harmless */
        mps__list_remove(&c.node);
        mps__list_remove(&b.node);
        ck_assert(mps__list_empty(&head));
}
END_TEST

START_TEST(test_wait_retry) {
        int status = 0;
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
                _exit(3);
        ck_assert_int_eq(mps__wait_retry(pid, &status, 0, NULL), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 3);
        ck_assert_int_eq(mps__wait_retry(pid, &status, 0, NULL), -ECHILD);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                pause();
                _exit(0);
        }
        ck_assert_int_eq(mps__wait_retry(pid, NULL, WNOHANG, NULL), 0);
        kill(pid, SIGKILL);
        ck_assert_int_eq(mps__wait_retry(pid, &status, 0, NULL), pid);
        ck_assert(WIFSIGNALED(status));
}
END_TEST

static Suite *util_suite(void) {
        Suite *s = suite_create("util");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_unsigned);
        tcase_add_test(tc, test_signed);
        tcase_add_test(tc, test_double);
        tcase_add_test(tc, test_list);
        tcase_add_test(tc, test_wait_retry);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(util_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
