/* SPDX-License-Identifier: MIT */
/*
 * fuzz_policy.c: the seccomp policy compiler (forkserver/policy.c) on any
 * text, as the server compiles what a spawn message carries. The policy is
 * compiled and never applied: loading a filter would sandbox the fuzzer.
 *
 * Invariants (a broken one aborts; see FUZZ_CHECK):
 *   - success gives a program of 1..BPF_MAXINSNS instructions;
 *   - failure is -EINVAL, -E2BIG or -ENOMEM with a one-line message that
 *     starts with the name given and ':', and a line number, when there is
 *     one, within the text; *ret is untouched;
 *   - the same text compiles the same way twice (the program's length);
 *   - through a small cache the same text misses and then hits, to the
 *     same policy, and a failed compile is not cached.
 */
#include <errno.h>
#include <linux/filter.h>
#include <stdbool.h>
#include <string.h>

#include "../forkserver/policy.h"
#include "fuzz.h"

#define NAME "fuzz.policy"

/* How many lines the text has, as the parser numbers them. */
static unsigned lines_in(const uint8_t *data, size_t size) {
        unsigned n = 0;
        for (size_t pos = 0; pos < size; n++) {
                const uint8_t *nl = memchr(data + pos, '\n', size - pos);
                pos = nl ? (size_t)(nl - data) + 1 : size;
        }
        return n;
}

static void check_error(int r, const char *err, const uint8_t *data,
                        size_t size) {
        size_t namelen = strlen(NAME);

        FUZZ_CHECK(r == -EINVAL || r == -E2BIG || r == -ENOMEM,
                   "policy_compile returned %d (%s)", r, err);
        FUZZ_CHECK(strncmp(err, NAME ":", namelen + 1) == 0,
                   "error message \"%s\" does not start with the name", err);
        FUZZ_CHECK(err[namelen + 1] != '\0', "error message \"%s\" says nothing",
                   err);
        FUZZ_CHECK(!strchr(err, '\n'), "error message of several lines: %s", err);
        /* "NAME:LINE: ..." names a line of the text. */
        const char *p = err + namelen + 1;
        if (*p >= '0' && *p <= '9') {
                unsigned long line = strtoul(p, NULL, 10);
                FUZZ_CHECK(line >= 1 && line <= lines_in(data, size),
                           "error on line %lu of %u: %s", line,
                           lines_in(data, size), err);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *text = (const char *)data;
        static char somewhere;
        struct policy *const sentinel = (struct policy *)&somewhere;
        struct policy *p = sentinel;
        char err[512] = "";

        int r = policy_compile(text, size, NAME, &p, err, sizeof(err));
        if (r < 0) {
                FUZZ_CHECK(p == sentinel, "policy_compile set *ret on failure");
                check_error(r, err, data, size);
        } else {
                FUZZ_CHECK(r == 0, "policy_compile returned %d", r);
                FUZZ_CHECK(p && p != sentinel, "policy_compile gave no policy");
                size_t n = policy_instructions(p);
                FUZZ_CHECK(n > 0 && n <= BPF_MAXINSNS, "%zu instructions", n);
        }

        /* Through the cache: a miss that compiles the same way, then a hit
         * on the very same policy. */
        struct policy_cache cache = {.max = 2};
        const struct policy *c1 = NULL, *c2 = NULL;
        bool hit = true;
        char err2[512] = "";
        int r1 = policy_cache_get(&cache, text, size, NAME, &c1, &hit, err2,
                                  sizeof(err2));
        FUZZ_CHECK(r1 == r, "compiled %d, through the cache %d", r, r1);
        if (r1 < 0) {
                FUZZ_CHECK(strcmp(err, err2) == 0,
                           "two messages for one text: \"%s\", \"%s\"", err, err2);
                FUZZ_CHECK(hit && !c1, "a failed get set its out-parameters");
                FUZZ_CHECK(cache.count == 0, "a failed compile was cached");
        } else {
                FUZZ_CHECK(!hit && c1, "the first get is not a miss");
                FUZZ_CHECK(policy_instructions(c1) == policy_instructions(p),
                           "the same text compiled to %zu and %zu instructions",
                           policy_instructions(p), policy_instructions(c1));
                r1 = policy_cache_get(&cache, text, size, NAME, &c2, &hit, err2,
                                      sizeof(err2));
                FUZZ_CHECK(r1 == 0 && hit && c2 == c1,
                           "the second get is not a hit on the same policy");
                FUZZ_CHECK(cache.hits == 1 && cache.misses == 1 && cache.count == 1,
                           "cache counters");
                policy_free(p);
        }
        policy_cache_free(&cache);
        FUZZ_CHECK(cache.count == 0 && !cache.lru.next && !cache.lru.prev,
                   "policy_cache_free left entries");
        return 0;
}
