/* SPDX-License-Identifier: MIT */
/*
 * bench_policy.c: what a policy costs the server: compiling typical
 * policies, a cache hit, and loading the filter in a child. Run with
 * `make bench-policy`; prints one line per measurement. Not a test.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../forkserver/policy.h"
#include "../launcher/fdutil.h"

static const char deny_network[] = "# deny-network\n"
                                   "default allow\n"
                                   "errno(EACCES) @network-io\n";

static const char allow_list[] =
        "# cat: a typical allow-list made of groups\n"
        "default kill-process\n"
        "allow @exec @base @memory @basic-io @signal @io-event\n"
        "allow access openat newfstatat fadvise64\n"
        "errno(EACCES) @network-io\n";

static double per_op_us(uint64_t t0, uint64_t t1, unsigned n) {
        return (double)(t1 - t0) / 1e3 / n;
}

static void bench_compile(const char *label, const char *text) {
        enum { N = 2000 };
        char err[256];
        struct policy *p;
        size_t insns = 0;
        uint64_t t0 = mps__now_ns();
        for (unsigned i = 0; i < N; i++) {
                if (policy_compile(text, strlen(text), label, &p, err,
                                   sizeof(err)) < 0) {
                        fprintf(stderr, "%s\n", err);
                        exit(1);
                }
                insns = policy_instructions(p);
                policy_free(p);
        }
        uint64_t t1 = mps__now_ns();
        printf("compile %-13s %4zu bytes -> %3zu insns: %8.1f us\n", label,
               strlen(text), insns, per_op_us(t0, t1, N));
}

/*
 * A hit on the most recent entry (the same text again and again), and on
 * the least recent one: 64 texts asked for in turn, so that each request
 * walks the whole list before it finds its text.
 */
static void bench_hit(const char *label, const char *text) {
        enum { N = 1000000 };
        struct policy_cache c = {0};
        const struct policy *p;
        static char texts[POLICY_CACHE_MAX][256];
        bool hit;
        char err[256];

        for (int i = 0; i < POLICY_CACHE_MAX; i++) {
                snprintf(texts[i], sizeof(texts[i]), "%s# %02d\n", text, i); /* one length */
                policy_cache_get(&c, texts[i], strlen(texts[i]), label, &p,
                                 &hit, err, sizeof(err));
        }
        size_t len = strlen(texts[0]);
        uint64_t t0 = mps__now_ns();
        for (unsigned i = 0; i < N; i++)
                policy_cache_get(&c, texts[0], len, label, &p, &hit, err,
                                 sizeof(err));
        uint64_t t1 = mps__now_ns();
        for (unsigned i = 0; i < N; i++) {
                const char *t = texts[(i + 1) % POLICY_CACHE_MAX];
                policy_cache_get(&c, t, len, label, &p, &hit, err, sizeof(err));
        }
        uint64_t t2 = mps__now_ns();
        if (c.misses != POLICY_CACHE_MAX || c.hits != 2 * (uint64_t)N) {
                fprintf(stderr, "unexpected misses\n");
                exit(1);
        }
        printf("cache hit %-12s %4zu bytes: newest %6.3f us, oldest of %d "
               "%6.3f us\n",
               label, len, per_op_us(t0, t1, N), POLICY_CACHE_MAX,
               per_op_us(t1, t2, N));
        policy_cache_free(&c);
}

/* The child's cost: policy_apply(), timed inside forked children. */
static void bench_apply(const char *label, const char *text) {
        enum { N = 200 };
        char err[256];
        struct policy *p;
        uint64_t total = 0;
        if (policy_compile(text, strlen(text), label, &p, err, sizeof(err)) < 0)
                exit(1);
        for (unsigned i = 0; i < N; i++) {
                int pp[2];
                if (pipe(pp) < 0)
                        exit(1);
                pid_t pid = fork();
                if (pid == 0) {
                        uint64_t a = mps__now_ns();
                        int r = policy_apply(p);
                        uint64_t d = mps__now_ns() - a;
                        if (r < 0 || write(pp[1], &d, sizeof(d)) != sizeof(d))
                                _exit(1);
                        _exit(0);
                }
                uint64_t d = 0;
                close(pp[1]);
                if (read(pp[0], &d, sizeof(d)) != sizeof(d))
                        exit(1);
                close(pp[0]);
                waitpid(pid, NULL, 0);
                total += d;
        }
        printf("apply in child %-8s %3zu insns:  %8.1f us\n", label,
               policy_instructions(p), (double)total / 1e3 / N);
        policy_free(p);
}

int main(void) {
        bench_compile("deny-network", deny_network);
        bench_compile("allow-list", allow_list);
        bench_hit("deny-network", deny_network);
        bench_hit("allow-list", allow_list);
        bench_apply("deny-net", deny_network);
        bench_apply("allow", allow_list);
        return 0;
}
