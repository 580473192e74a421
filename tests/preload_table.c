/* SPDX-License-Identifier: MIT */
/*
 * preload_table.c: an example preload library for the tests and `make
 * bench`. Its init hook builds a large table once in the server
 * ($MPS_TEST_TABLE_MB MiB, 256 by default), from mps_preload_alloc (shared
 * with call jobs, read-only after init) or, with MPS_TEST_TABLE_PRIVATE=1
 * or a server that has no such function, from malloc (copy-on-write in
 * the jobs). Built as build/tests/preload_table.so; it uses only the public
 * header, not libmpspawn.
 */
#include <errno.h>
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
static int table_shared; /* 1: from mps_preload_alloc */
static int init_count; /* stays 1 in every child: init ran once, here */
static int after_fork_ran;

static int init(void) {
        const char *fail = getenv("MPS_TEST_PRELOAD_FAIL");
        if (fail && *fail)
                return atoi(fail);
        const char *mb = getenv("MPS_TEST_TABLE_MB");
        table_size = (size_t)(mb && *mb ? atol(mb) : 256) << 20;
        const char *private = getenv("MPS_TEST_TABLE_PRIVATE");
        if (!(private && strcmp(private, "1") == 0) && mps_preload_alloc)
                table = mps_preload_alloc(table_size);
        table_shared = table != NULL;
        if (!table && !(table = malloc(table_size)))
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

/* A field ("VmPTE:") of a /proc file of this process, KiB; -1 if none. */
static long proc_kib(const char *path, const char *field) {
        FILE *f = fopen(path, "re");
        char line[256];
        long kib = -1;
        size_t n = strlen(field);
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, field, n) == 0 && sscanf(line + n, "%ld", &kib) == 1)
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

/* Whether one byte of every page of the table reads as init wrote it. */
static int table_reads_back(void) {
        unsigned long sum = 0, want = 0;
        for (size_t i = 0; i < table_size; i += 4096)
                sum += table[i];
        for (size_t i = 0; i < table_size; i += 4096)
                want += (unsigned char)(i * 31 + 7);
        return sum == want;
}

/* Reads one byte of every page of the table (all of it, shared) and says
 * what it saw on its first fd (or stdout): pte_kib is the job's page
 * tables before it read anything (what its fork copied). */
static int table_info(const mps_call_context *ctx) {
        long pte_kib = proc_kib("/proc/self/status", "VmPTE:");
        int ok = table_reads_back();
        long dirty_kib = proc_kib("/proc/self/smaps_rollup", "Private_Dirty:");
        int fd = first_extra_fd(ctx);
        dprintf(fd,
                "init=%d after_fork=%d table_mib=%zu sum_ok=%d private_dirty_kib=%ld "
                "shared=%d pte_kib=%ld\n",
                init_count, after_fork_ran, table_size >> 20, ok, dirty_kib, table_shared,
                pte_kib);
        return 0;
}

/* Reads one byte of every page of the table: 0 if it is intact. For the
 * bench's reading rows. */
static int table_read(const mps_call_context *ctx) {
        (void)ctx;
        return table_reads_back() ? 0 : 1;
}

/* Writes to the table: killed by SIGSEGV when it is shared (read-only);
 * 0 after a write to the job's private copy. */
static int table_write(const mps_call_context *ctx) {
        (void)ctx;
        table[table_size / 2] ^= 1;
        return 0;
}

/* 0 when the kernel refuses to write to the table for the job (a read
 * into it fails with EFAULT), 1 when it wrote, 2 on another error. Unlike
 * table_write, no signal: AddressSanitizer would take it over. */
static int table_write_efault(const mps_call_context *ctx) {
        (void)ctx;
        int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 2;
        ssize_t n = read(fd, table + table_size / 2, 1);
        int e = errno;
        close(fd);
        if (n == 1)
                return 1;
        return n < 0 && e == EFAULT ? 0 : 2;
}

/* 0 when the page the table starts in cannot be made writable (EACCES),
 * 1 when it can, 2 on another error. */
static int table_mprotect(const mps_call_context *ctx) {
        (void)ctx;
        void *page = (void *)((uintptr_t)table & ~(uintptr_t)4095);
        if (mprotect(page, 4096, PROT_READ | PROT_WRITE) == 0)
                return 1;
        return errno == EACCES ? 0 : 2;
}

/* 0 when mps_preload_alloc refuses a job (NULL, EPERM); 1 if it gave
 * memory, 2 on another error, 3 when the server has no such function. */
static int alloc_in_job(const mps_call_context *ctx) {
        (void)ctx;
        if (!mps_preload_alloc)
                return 3;
        errno = 0;
        if (mps_preload_alloc(64))
                return 1;
        return errno == EPERM ? 0 : 2;
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

/* ---- results (check_call) ------------------------------------------------ */

/* Hands its arguments back as its result: for tests and `make bench`. */
static int result_echo(const mps_call_context *ctx) {
        return -ctx->set_result(ctx, ctx->args_json);
}

/* Two results: the second, its arguments, is the one that counts. */
static int result_twice(const mps_call_context *ctx) {
        int r = ctx->set_result(ctx, "\"first\"");
        return r < 0 ? -r : -ctx->set_result(ctx, ctx->args_json);
}

/* args: N; a JSON string of N bytes, quotes included; exits with what
 * set_result returned, negated (0, or E2BIG past MPS_RESULT_MAX). */
static int result_of_size(const mps_call_context *ctx) {
        long n = atol(ctx->args_json);
        if (n < 2 || n > 4 * MPS_RESULT_MAX)
                return 100;
        char *text = malloc((size_t)n + 1);
        if (!text)
                return 101;
        memset(text, 'a', (size_t)n);
        text[0] = text[n - 1] = '"';
        text[n] = '\0';
        int r = ctx->set_result(ctx, text);
        free(text);
        return -r;
}

/* args: K; tries sample K of what is not a result (and the NULL pointer
 * past the last), and exits with what set_result returned, negated. */
static int result_invalid(const mps_call_context *ctx) {
        static const char *const samples[] = {
                "{not json", "1 2", "\"\xff\"", "[1e999]", "", "\"\xed\xa0\x80\"",
        };
        static char deep[2 * 600 + 1];
        int k = atoi(ctx->args_json);
        size_t nsamples = sizeof(samples) / sizeof(samples[0]);
        if (k >= 0 && (size_t)k < nsamples)
                return -ctx->set_result(ctx, samples[k]);
        if ((size_t)k == nsamples) {
                /* 600 arrays deep: past the 512 a result may nest. */
                for (int i = 0; i < 600; i++) {
                        deep[i] = '[';
                        deep[600 + i] = ']';
                }
                return -ctx->set_result(ctx, deep);
        }
        return -ctx->set_result(ctx, NULL);
}

/* A failure message, then exits with its arguments (a number). */
static int error_set(const mps_call_context *ctx) {
        int r = ctx->set_error(ctx, "bad input: \xc3\xbc");
        return r < 0 ? 100 : atoi(ctx->args_json);
}

/* 3000 two-byte characters (6000 bytes): cut to fit MPS_RESULT_ERROR_MAX.
 * Then a message that is not UTF-8, refused: exits 0 when both went so. */
static int error_long(const mps_call_context *ctx) {
        char msg[6001];
        for (int i = 0; i < 3000; i++)
                memcpy(msg + 2 * i, "\xc3\xa9", 2);
        msg[6000] = '\0';
        if (ctx->set_error(ctx, msg) != 0)
                return 1;
        return ctx->set_error(ctx, "\xc3(") == -EINVAL ? 0 : 2;
}

/* For mps_pool_map_call: args N; {"square": N*N}, except that 13 fails
 * with a message, 66 is killed by SIGKILL and 99 exits 3. */
static int square(const mps_call_context *ctx) {
        int n = atoi(ctx->args_json);
        char buf[64];
        if (n == 13) {
                ctx->set_error(ctx, "unlucky 13");
                return 0;
        }
        if (n == 66)
                raise(SIGKILL);
        if (n == 99)
                return 3;
        snprintf(buf, sizeof(buf), "{\"square\":%d}", n * n);
        return -ctx->set_result(ctx, buf);
}

/* args: MODE; damages its result channel, which it finds as its memfd
 * (the layout is the server's, forkserver/result.c): 0 garbage over the
 * header; 1 a result, then its text made invalid; 2 a failure message,
 * then its text made invalid UTF-8. Exits 5, or 1 when no channel. */
static int scribble(const mps_call_context *ctx) {
        int mode = atoi(ctx->args_json), found = 0;
        if (mode == 1)
                ctx->set_result(ctx, "[1,2,3]");
        if (mode == 2)
                ctx->set_error(ctx, "fine so far");
        for (int fd = 0; fd < 1024; fd++) {
                char link[64], target[128];
                snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
                ssize_t n = readlink(link, target, sizeof(target) - 1);
                if (n < 0)
                        continue;
                target[n] = '\0';
                if (strncmp(target, "/memfd:mps-result", 17) != 0)
                        continue;
                found = 1;
                if (mode == 0)
                        (void)!pwrite(fd, "\xde\xad\xbe\xef" "garbage-garbage!", 16, 0);
                else if (mode == 1)
                        (void)!pwrite(fd, "[1,", 3, 16 + 4);
                else
                        (void)!pwrite(fd, "\xff", 1, 16 + MPS_RESULT_MAX);
        }
        return found ? 5 : 1;
}

/* Reads its first extra fd until EOF: a call job that runs until told. */
static int wait_eof(const mps_call_context *ctx) {
        char buf[256];
        int fd = first_extra_fd(ctx);
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n == 0)
                        return 0;
                if (n < 0 && errno != EINTR)
                        return 1;
        }
}

/* Sets its arguments as its result, then runs until its fd 3 sees EOF. */
static int result_then_wait(const mps_call_context *ctx) {
        int r = ctx->set_result(ctx, ctx->args_json);
        return r < 0 ? -r : wait_eof(ctx);
}

MPS_ENTRY("wait_eof", wait_eof);
MPS_ENTRY("result_then_wait", result_then_wait);
MPS_ENTRY("result_echo", result_echo);
MPS_ENTRY("result_twice", result_twice);
MPS_ENTRY("result_of_size", result_of_size);
MPS_ENTRY("result_invalid", result_invalid);
MPS_ENTRY("error_set", error_set);
MPS_ENTRY("error_long", error_long);
MPS_ENTRY("square", square);
MPS_ENTRY("scribble", scribble);
MPS_ENTRY("table_info", table_info);
MPS_ENTRY("table_read", table_read);
MPS_ENTRY("table_write", table_write);
MPS_ENTRY("table_mprotect", table_mprotect);
MPS_ENTRY("table_write_efault", table_write_efault);
MPS_ENTRY("alloc_in_job", alloc_in_job);
MPS_ENTRY("usr1_is_default", usr1_is_default);
MPS_ENTRY("exit_with", exit_with);
MPS_ENTRY("noop", noop);
MPS_ENTRY("add_counters", add_counters);
MPS_ENTRY("stream", stream);
MPS_ENTRY("show_env", show_env);
