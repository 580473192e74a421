/* SPDX-License-Identifier: MIT */
/*
 * check_idmap.c: the u64 -> pointer hash map (launcher/idmap.c). Exact
 * put/get/remove semantics, growth through many resizes, and a long
 * randomized run checked step by step against a plain reference array, which
 * exercises backward-shift deletion across clusters and the table's wrap.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../launcher/idmap.h"

#define TIMEOUT_S 30

/* A distinct non-NULL value for each key, so a value found under the wrong
 * key is noticed. */
static void *value_of(uint64_t key) {
        return (void *)(uintptr_t)(key * 16 + 8);
}

/* xorshift64*: a fixed, portable sequence, unlike rand(). */
static uint64_t rng_next(uint64_t *state) {
        uint64_t x = *state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *state = x;
        return x * 2685821657736338717ull;
}

START_TEST(test_empty_map) {
        struct mps__idmap m = {0};
        uint64_t key = 77;

        ck_assert_ptr_null(mps__idmap_get(&m, 1));
        ck_assert_ptr_null(mps__idmap_remove(&m, 1));
        ck_assert_ptr_null(mps__idmap_any(&m, &key));
        ck_assert_uint_eq(key, 77);
        ck_assert_uint_eq(m.count, 0);
        mps__idmap_free(&m);
        mps__idmap_free(&m); /* twice is harmless */
}
END_TEST

START_TEST(test_put_get_remove) {
        struct mps__idmap m = {0};
        int a, b, c;

        ck_assert_int_eq(mps__idmap_put(&m, 1, &a), 0);
        ck_assert_int_eq(mps__idmap_put(&m, 2, &b), 0);
        ck_assert_int_eq(mps__idmap_put(&m, UINT64_MAX, &c), 0);
        ck_assert_uint_eq(m.count, 3);
        ck_assert_ptr_eq(mps__idmap_get(&m, 1), &a);
        ck_assert_ptr_eq(mps__idmap_get(&m, 2), &b);
        ck_assert_ptr_eq(mps__idmap_get(&m, UINT64_MAX), &c);
        ck_assert_ptr_null(mps__idmap_get(&m, 3));

        ck_assert_ptr_eq(mps__idmap_remove(&m, 2), &b);
        ck_assert_uint_eq(m.count, 2);
        ck_assert_ptr_null(mps__idmap_get(&m, 2));
        ck_assert_ptr_null(mps__idmap_remove(&m, 2));
        ck_assert_ptr_eq(mps__idmap_get(&m, 1), &a);
        ck_assert_ptr_eq(mps__idmap_get(&m, UINT64_MAX), &c);

        /* A removed key can be added again, with a new value. */
        ck_assert_int_eq(mps__idmap_put(&m, 2, &c), 0);
        ck_assert_ptr_eq(mps__idmap_get(&m, 2), &c);
        ck_assert_uint_eq(m.count, 3);
        mps__idmap_free(&m);
        ck_assert_uint_eq(m.count, 0);
        ck_assert_ptr_null(mps__idmap_get(&m, 1));
}
END_TEST

START_TEST(test_null_value_is_stored) {
        struct mps__idmap m = {0};

        ck_assert_int_eq(mps__idmap_put(&m, 5, NULL), 0);
        ck_assert_uint_eq(m.count, 1);
        ck_assert_int_eq(mps__idmap_put(&m, 5, value_of(5)), -EEXIST);
        ck_assert_ptr_null(mps__idmap_remove(&m, 5));
        ck_assert_uint_eq(m.count, 0);
        mps__idmap_free(&m);
}
END_TEST

START_TEST(test_duplicate_key_is_eexist) {
        struct mps__idmap m = {0};
        int a, b;

        ck_assert_int_eq(mps__idmap_put(&m, 42, &a), 0);
        ck_assert_int_eq(mps__idmap_put(&m, 42, &b), -EEXIST);
        ck_assert_ptr_eq(mps__idmap_get(&m, 42), &a);
        ck_assert_uint_eq(m.count, 1);
        mps__idmap_free(&m);
}
END_TEST

/* The load-factor check runs before the duplicate check, so a rejected
 * duplicate may still grow the table; it must not change the entries. */
START_TEST(test_duplicate_at_growth_boundary) {
        struct mps__idmap m = {0};

        for (uint64_t k = 1; k <= 8; k++)
                ck_assert_int_eq(mps__idmap_put(&m, k, value_of(k)), 0);
        for (uint64_t k = 1; k <= 8; k++)
                ck_assert_int_eq(mps__idmap_put(&m, k, NULL), -EEXIST);
        ck_assert_uint_eq(m.count, 8);
        for (uint64_t k = 1; k <= 8; k++)
                ck_assert_ptr_eq(mps__idmap_get(&m, k), value_of(k));
        mps__idmap_free(&m);
}
END_TEST

START_TEST(test_key_zero_is_einval) {
        struct mps__idmap m = {0};
        int a;

        ck_assert_int_eq(mps__idmap_put(&m, 0, &a), -EINVAL);
        ck_assert_uint_eq(m.count, 0);
        ck_assert_ptr_null(mps__idmap_get(&m, 0));
        ck_assert_ptr_null(mps__idmap_remove(&m, 0));
        /* Zero marks empty slots: it must not match one once the table
         * exists either. */
        ck_assert_int_eq(mps__idmap_put(&m, 1, &a), 0);
        ck_assert_int_eq(mps__idmap_put(&m, 0, &a), -EINVAL);
        ck_assert_ptr_null(mps__idmap_get(&m, 0));
        ck_assert_ptr_null(mps__idmap_remove(&m, 0));
        ck_assert_uint_eq(m.count, 1);
        mps__idmap_free(&m);
}
END_TEST

START_TEST(test_growth_sequential_keys) {
        enum { N = 100000 };
        struct mps__idmap m = {0};

        for (uint64_t k = 1; k <= N; k++)
                ck_assert_int_eq(mps__idmap_put(&m, k, value_of(k)), 0);
        ck_assert_uint_eq(m.count, N);
        /* Load factor at most 1/2, and the capacity a power of two. */
        ck_assert_uint_ge(m.cap, 2 * N);
        ck_assert_uint_eq(m.cap & (m.cap - 1), 0);
        for (uint64_t k = 1; k <= N; k++)
                ck_assert_ptr_eq(mps__idmap_get(&m, k), value_of(k));
        ck_assert_ptr_null(mps__idmap_get(&m, N + 1));

        for (uint64_t k = 2; k <= N; k += 2)
                ck_assert_ptr_eq(mps__idmap_remove(&m, k), value_of(k));
        ck_assert_uint_eq(m.count, N / 2);
        for (uint64_t k = 1; k <= N; k++) {
                if (k % 2)
                        ck_assert_ptr_eq(mps__idmap_get(&m, k), value_of(k));
                else
                        ck_assert_ptr_null(mps__idmap_get(&m, k));
        }
        for (uint64_t k = 1; k <= N; k += 2)
                ck_assert_ptr_eq(mps__idmap_remove(&m, k), value_of(k));
        ck_assert_uint_eq(m.count, 0);
        ck_assert_ptr_null(mps__idmap_any(&m, NULL));
        mps__idmap_free(&m);
}
END_TEST

START_TEST(test_growth_scattered_keys) {
        enum { N = 100000 };
        struct mps__idmap m = {0};
        uint64_t *keys = malloc(N * sizeof(*keys));
        uint64_t state = 0x9e3779b97f4a7c15ull;

        ck_assert_ptr_nonnull(keys);
        for (size_t i = 0; i < N; i++) {
                /* Distinct by construction: the low 20 bits hold i. */
                keys[i] = (rng_next(&state) << 20) | (uint64_t)(i + 1);
                ck_assert_int_eq(mps__idmap_put(&m, keys[i], value_of(keys[i])), 0);
        }
        for (size_t i = 0; i < N; i += 2)
                ck_assert_ptr_eq(mps__idmap_remove(&m, keys[i]),
                                 value_of(keys[i]));
        ck_assert_uint_eq(m.count, N / 2);
        for (size_t i = 0; i < N; i++) {
                if (i % 2)
                        ck_assert_ptr_eq(mps__idmap_get(&m, keys[i]),
                                         value_of(keys[i]));
                else
                        ck_assert_ptr_null(mps__idmap_get(&m, keys[i]));
        }
        mps__idmap_free(&m);
        free(keys);
}
END_TEST

/*
 * Runs ops random operations over a pool of nkeys keys, checking every
 * result against ref (NULL: absent). A small pool keeps the table small and
 * its clusters long, so deletions shift entries across the wrap at the end.
 */
static void random_run(const uint64_t *keys, size_t nkeys, size_t ops,
                       uint64_t seed) {
        struct mps__idmap m = {0};
        void **ref = calloc(nkeys, sizeof(*ref));
        size_t count = 0;
        uint64_t state = seed;

        ck_assert_ptr_nonnull(ref);
        for (size_t op = 0; op < ops; op++) {
                uint64_t r = rng_next(&state);
                size_t i = (size_t)(r >> 8) % nkeys;
                uint64_t key = keys[i];

                switch (r % 10) {
                case 0: case 1: case 2: case 3: { /* put */
                        void *v = (void *)(uintptr_t)(((r >> 32) | 1) << 3);
                        int e = mps__idmap_put(&m, key, v);
                        if (ref[i]) {
                                ck_assert_msg(e == -EEXIST, "op %zu: put "
                                              "present key %zu gave %d", op, i, e);
                        } else {
                                ck_assert_msg(e == 0, "op %zu: put %d", op, e);
                                ref[i] = v;
                                count++;
                        }
                        break;
                }
                case 4: case 5: case 6: { /* remove */
                        void *got = mps__idmap_remove(&m, key);
                        ck_assert_msg(got == ref[i], "op %zu: remove key %zu",
                                      op, i);
                        if (ref[i]) {
                                ref[i] = NULL;
                                count--;
                        }
                        break;
                }
                default: /* get */
                        ck_assert_msg(mps__idmap_get(&m, key) == ref[i],
                                      "op %zu: get key %zu", op, i);
                        break;
                }
                ck_assert_uint_eq(m.count, count);
                /* A full sweep now and then catches a removal that lost an
                 * entry the random gets have not touched yet. */
                if (op % 4096 == 0)
                        for (size_t k = 0; k < nkeys; k++)
                                ck_assert_msg(mps__idmap_get(&m, keys[k]) ==
                                                      ref[k],
                                              "op %zu: sweep key %zu", op, k);
        }
        for (size_t k = 0; k < nkeys; k++)
                ck_assert_ptr_eq(mps__idmap_get(&m, keys[k]), ref[k]);
        mps__idmap_free(&m);
        free(ref);
}

START_TEST(test_random_against_reference_sequential_keys) {
        enum { NKEYS = 5000 };
        uint64_t keys[NKEYS];

        for (size_t i = 0; i < NKEYS; i++)
                keys[i] = i + 1;
        random_run(keys, NKEYS, 200000, 0x2545f4914f6cdd1dull);
}
END_TEST

START_TEST(test_random_against_reference_random_keys) {
        enum { NKEYS = 5000 };
        uint64_t keys[NKEYS];
        uint64_t state = 12345;

        for (size_t i = 0; i < NKEYS; i++)
                keys[i] = (rng_next(&state) << 16) | (uint64_t)(i + 1);
        random_run(keys, NKEYS, 200000, 0xdeadbeefcafef00dull);
}
END_TEST

START_TEST(test_random_against_reference_small_table) {
        enum { NKEYS = 24 };
        uint64_t keys[NKEYS];

        for (size_t i = 0; i < NKEYS; i++)
                keys[i] = i * 977 + 1;
        random_run(keys, NKEYS, 200000, 7);
}
END_TEST

START_TEST(test_any_drains_map) {
        enum { N = 1000 };
        struct mps__idmap m = {0};
        static unsigned char seen[N + 1];
        size_t drained = 0;
        uint64_t key;
        void *v;

        for (uint64_t k = 1; k <= N; k++)
                ck_assert_int_eq(mps__idmap_put(&m, k * 3, value_of(k * 3)), 0);
        while ((v = mps__idmap_any(&m, &key))) {
                ck_assert_uint_eq(key % 3, 0);
                ck_assert_uint_le(key / 3, N);
                ck_assert_ptr_eq(v, value_of(key));
                ck_assert_uint_eq(seen[key / 3], 0);
                seen[key / 3] = 1;
                ck_assert_ptr_eq(mps__idmap_remove(&m, key), v);
                drained++;
                ck_assert_uint_eq(m.count, N - drained);
        }
        ck_assert_uint_eq(drained, N);
        ck_assert_uint_eq(m.count, 0);
        /* ret_key may be NULL. */
        ck_assert_int_eq(mps__idmap_put(&m, 9, value_of(9)), 0);
        ck_assert_ptr_eq(mps__idmap_any(&m, NULL), value_of(9));
        mps__idmap_free(&m);
}
END_TEST

struct visit {
        unsigned char *seen;
        size_t n;
        size_t calls;
        void *data_check;
};

static void visit_one(uint64_t key, void *value, void *data) {
        struct visit *v = data;
        ck_assert_ptr_eq(v->data_check, v);
        ck_assert_uint_ge(key, 1);
        ck_assert_uint_le(key, v->n);
        ck_assert_ptr_eq(value, value_of(key));
        v->seen[key]++;
        v->calls++;
}

START_TEST(test_foreach_visits_each_entry_once) {
        enum { N = 20000 };
        struct mps__idmap m = {0};
        struct visit v = {.seen = calloc(N + 1, 1), .n = N};

        v.data_check = &v;
        ck_assert_ptr_nonnull(v.seen);
        mps__idmap_foreach(&m, visit_one, &v);
        ck_assert_uint_eq(v.calls, 0);

        for (uint64_t k = 1; k <= N; k++)
                ck_assert_int_eq(mps__idmap_put(&m, k, value_of(k)), 0);
        for (uint64_t k = 1; k <= N; k += 3)
                ck_assert_ptr_eq(mps__idmap_remove(&m, k), value_of(k));
        mps__idmap_foreach(&m, visit_one, &v);
        ck_assert_uint_eq(v.calls, m.count);
        for (uint64_t k = 1; k <= N; k++)
                ck_assert_uint_eq(v.seen[k], k % 3 == 1 ? 0 : 1);
        mps__idmap_free(&m);
        free(v.seen);
}
END_TEST

static Suite *idmap_suite(void) {
        Suite *s = suite_create("idmap");
        TCase *tc = tcase_create("idmap");

        tcase_set_timeout(tc, TIMEOUT_S);
        tcase_add_test(tc, test_empty_map);
        tcase_add_test(tc, test_put_get_remove);
        tcase_add_test(tc, test_null_value_is_stored);
        tcase_add_test(tc, test_duplicate_key_is_eexist);
        tcase_add_test(tc, test_duplicate_at_growth_boundary);
        tcase_add_test(tc, test_key_zero_is_einval);
        tcase_add_test(tc, test_growth_sequential_keys);
        tcase_add_test(tc, test_growth_scattered_keys);
        tcase_add_test(tc, test_random_against_reference_sequential_keys);
        tcase_add_test(tc, test_random_against_reference_random_keys);
        tcase_add_test(tc, test_random_against_reference_small_table);
        tcase_add_test(tc, test_any_drains_map);
        tcase_add_test(tc, test_foreach_visits_each_entry_once);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(idmap_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
