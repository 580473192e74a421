/* SPDX-License-Identifier: MIT */
/*
 * preload_table.c: an example preload library for the tests and `make
 * bench`. Its init hook builds a large table once in the server
 * ($MPS_TEST_TABLE_MB MiB, 256 by default); call jobs read it in
 * copy-on-write children. Built as build/tests/preload_table.so; it uses
 * only the public header, not libmpspawn.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../include/mpspawn.h"

static unsigned char *table;
static size_t table_size;
static int init_count; /* stays 1 in every child: init ran once, here */
static int after_fork_ran;

static int init(void) {
        const char *fail = getenv("MPS_TEST_PRELOAD_FAIL");
        if (fail && *fail)
                return atoi(fail);
        const char *mb = getenv("MPS_TEST_TABLE_MB");
        table_size = (size_t)(mb && *mb ? atol(mb) : 256) << 20;
        table = malloc(table_size);
        if (!table)
                return 1;
        /* Expensive set-up done once: every byte written, so it is all
         * resident (and private) in the server. */
        for (size_t i = 0; i < table_size; i++)
                table[i] = (unsigned char)(i * 31 + 7);
        init_count++;
        /* As libraries do: a disposition of its own in the server (here,
         * SIGUSR1 ignored). Jobs must not inherit it (check_call). */
        signal(SIGUSR1, SIG_IGN);
        return 0;
}

static void after_fork(void) {
        after_fork_ran = 1;
}

/* Private_Dirty of this process, KiB, from /proc/self/smaps_rollup. */
static long private_dirty_kib(void) {
        FILE *f = fopen("/proc/self/smaps_rollup", "re");
        char line[256];
        long kib = -1;
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "Private_Dirty: %ld kB", &kib) == 1)
                        break;
        fclose(f);
        return kib;
}

/* The first fd passed beyond stdin, stdout and stderr, else stdout. */
static int first_extra_fd(const mps_call_context *ctx) {
        for (size_t i = 0; i < ctx->nfds; i++)
                if (ctx->fds[i] > 2)
                        return ctx->fds[i];
        return 1;
}

/* Reads one byte of every page of the table (all of it, shared) and says
 * what it saw on its first fd (or stdout). */
static int table_info(const mps_call_context *ctx) {
        unsigned long sum = 0;
        for (size_t i = 0; i < table_size; i += 4096)
                sum += table[i];
        unsigned long want = 0;
        for (size_t i = 0; i < table_size; i += 4096)
                want += (unsigned char)(i * 31 + 7);
        int fd = first_extra_fd(ctx);
        dprintf(fd, "init=%d after_fork=%d table_mib=%zu sum_ok=%d private_dirty_kib=%ld\n",
                init_count, after_fork_ran, table_size >> 20, sum == want,
                private_dirty_kib());
        return 0;
}

/* Exits with the number given as arguments. */
static int exit_with(const mps_call_context *ctx) {
        return atoi(ctx->args_json);
}

/* Does nothing: for benchmarks. */
static int noop(const mps_call_context *ctx) {
        (void)ctx;
        return 0;
}

/* args: {"iterations": N}; fd 3: a region from mps_shm_create holding eight
 * 64-bit counters, each incremented N times with atomic operations. */
static int add_counters(const mps_call_context *ctx) {
        long n = 0;
        const char *p = strstr(ctx->args_json, "\"iterations\":");
        if (p)
                n = atol(p + 13);
        struct stat st;
        if (fstat(3, &st) < 0 || st.st_size < 64)
                return 2;
        _Atomic uint64_t *c = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE,
                                   MAP_SHARED, 3, 0);
        if (c == MAP_FAILED)
                return 3;
        for (long i = 0; i < n; i++)
                for (int k = 0; k < 8; k++)
                        atomic_fetch_add(&c[k], 1);
        munmap((void *)c, (size_t)st.st_size);
        return 0;
}

/* args: N; writes lines "result 0" .. "result N-1" to its first fd. */
static int stream(const mps_call_context *ctx) {
        int n = atoi(ctx->args_json);
        int fd = first_extra_fd(ctx);
        for (int i = 0; i < n; i++)
                dprintf(fd, "result %d\n", i);
        return 0;
}

/* args: "NAME"; prints NAME=value of the job's environment and its cwd. */
static int show_env(const mps_call_context *ctx) {
        char name[128] = "";
        sscanf(ctx->args_json, "\"%127[^\"]\"", name);
        const char *v = getenv(name);
        char cwd[512];
        printf("%s=%s cwd=%s\n", name, v ? v : "(unset)",
               getcwd(cwd, sizeof(cwd)) ? cwd : "?");
        return 0;
}

MPS_MODULE(init, after_fork);
/* 0 when SIGUSR1 has its default disposition in this job, else 1. */
static int usr1_is_default(const mps_call_context *ctx) {
        struct sigaction sa;
        (void)ctx;
        if (sigaction(SIGUSR1, NULL, &sa) < 0)
                return 2;
        return sa.sa_handler == SIG_DFL ? 0 : 1;
}

MPS_ENTRY("table_info", table_info);
MPS_ENTRY("usr1_is_default", usr1_is_default);
MPS_ENTRY("exit_with", exit_with);
MPS_ENTRY("noop", noop);
MPS_ENTRY("add_counters", add_counters);
MPS_ENTRY("stream", stream);
MPS_ENTRY("show_env", show_env);
