/* SPDX-License-Identifier: MIT */
/*
 * check_call.c: call jobs against a server that preloaded
 * build/tests/preload_table.so (a 256 MiB table built once at init, in
 * mps_preload_alloc's memory or, in the "private" case, malloc's): entry
 * points, sharing, read-only preload memory, shared memory and pipes, and
 * a preload that fails.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../include/mpspawn.h"
#include "../launcher/wire.h"
#include "testutil.h"

static struct tu_server srv;
static mps_client *client;
static char preload[PATH_MAX];

static void find_preload(void) {
        tu_preload_table(preload, sizeof(preload));
}

static void setup(void) {
        find_preload();
        const char *extra[] = {"--preload", preload, NULL};
        tu_server_start(&srv, extra);
        char *msg = NULL;
        ck_assert_msg(mps_client_open(srv.path, &client, &msg) == 0, "%s", msg ? msg : "?");
}

static void teardown(void) {
        mps_client_close(client);
        int st = tu_server_stop(&srv);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* Starts a call job with fd 3 (if extra >= 0) and stdout (if out >= 0). */
static mps_process *start_call(const char *entry, const char *args, int extra, int out) {
        mps_spec *s;
        mps_process *p;
        ck_assert_int_eq(mps_spec_new(&s), 0);
        ck_assert_int_eq(mps_spec_set_call(s, entry, args), 0);
        if (extra >= 0)
                ck_assert_int_eq(mps_spec_map_fd(s, 3, extra), 0);
        if (out >= 0)
                ck_assert_int_eq(mps_spec_map_fd(s, 1, out), 0);
        ck_assert_int_eq(mps_process_new(client, s, &p), 0);
        mps_spec_free(s);
        int r = mps_start(p);
        ck_assert_msg(r == 0, "start of %s: %s", entry, mps_client_error(client));
        return p;
}

/* Joins p, and waits for its record too (a join may have taken the exit
 * from the pidfd at the reap, before the server took the result and sent
 * the record). */
static int finish(mps_process *p) {
        mps_exit_info info;
        ck_assert_int_eq(mps_join(p, -1), 0);
        ck_assert_int_eq(mps_exit_info_get(p, &info), 0);
        int code = mps_exitcode(p);
        ck_assert_int_eq(mps_process_close(p), 0);
        return code;
}

/* The preloaded library ignores SIGUSR1 in the server: an exec job must
 * not inherit that (exec keeps ignored signals), nor a call job. */
START_TEST(test_jobs_do_not_inherit_a_preloads_dispositions) {
        mps_spec *s;
        mps_process *p;
        int out[2];
        char buf[256] = "";
        const char *argv[] = {"/bin/sh", "-c", "grep '^SigIgn:' /proc/self/status", NULL};
        ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
        ck_assert_int_eq(mps_spec_new(&s), 0);
        ck_assert_int_eq(mps_spec_set_exec(s, argv[0], argv), 0);
        ck_assert_int_eq(mps_spec_map_fd(s, 1, out[1]), 0);
        ck_assert_int_eq(mps_process_new(client, s, &p), 0);
        mps_spec_free(s);
        ck_assert_int_eq(mps_start(p), 0);
        close(out[1]);
        tu_read_all(out[0], buf, sizeof(buf), 20000);
        close(out[0]);
        ck_assert_int_eq(finish(p), 0);
        unsigned long long ign = 0;
        ck_assert_int_eq(sscanf(buf, "SigIgn: %llx", &ign), 1);
        ck_assert_msg(!(ign & (1ull << (SIGUSR1 - 1))), "SIGUSR1 is ignored in the job: %s",
                      buf);
        ck_assert_int_eq(finish(start_call("usr1_is_default", NULL, -1, -1)), 0);
}
END_TEST

START_TEST(test_return_value_is_the_exit_code) {
        ck_assert_int_eq(finish(start_call("exit_with", "42", -1, -1)), 42);
        ck_assert_int_eq(finish(start_call("exit_with", "0", -1, -1)), 0);
}
END_TEST

START_TEST(test_only_registered_names_can_be_called) {
        mps_spec *s;
        mps_process *p;
        ck_assert_int_eq(mps_spec_new(&s), 0);
        /* Not an entry point, though a symbol of the library and of libc. */
        ck_assert_int_eq(mps_spec_set_call(s, "init", NULL), 0);
        ck_assert_int_eq(mps_process_new(client, s, &p), 0);
        ck_assert_int_eq(mps_start(p), -ENOENT);
        ck_assert_str_eq(mps_start_failed_stage(p), "call");
        ck_assert_ptr_nonnull(strstr(mps_client_error(client), "'init'"));
        mps_process_close(p);
        ck_assert_int_eq(mps_spec_set_call(s, "exit_with", "{not json"), -EINVAL);
        /* 1e999 would reach the entry point as null: refused here. */
        ck_assert_int_eq(mps_spec_set_call(s, "exit_with", "[1e999]"), -EINVAL);
        mps_spec_free(s);
}
END_TEST

/*
 * 100 call jobs read the whole table: init ran once (the counter each child
 * inherited is 1), the table is intact, and each child's private dirty
 * memory is a small fraction of it. The table is mps_preload_alloc's
 * (shared = 1) unless the server was started with MPS_TEST_TABLE_PRIVATE=1
 * (private_setup). A shared table's page tables are not copied at the fork:
 * the job starts with less than half of the 512 KiB of them a private one
 * takes (64 Ki pages of 8-byte entries).
 */
static void expect_100_jobs_read_the_table(int want_shared) {
        int fds[2];
        char line[256];
        long worst = 0, worst_pte = 0;
        ck_assert_int_eq(mps_pipe(fds), 0);
        FILE *in = fdopen(fds[0], "r");
        ck_assert_ptr_nonnull(in);
        for (int i = 0; i < 100; i++) {
                mps_process *p = start_call("table_info", NULL, fds[1], -1);
                ck_assert_int_eq(finish(p), 0);
                ck_assert_ptr_nonnull(fgets(line, sizeof(line), in));
                int init = 0, after = 0, mib = 0, ok = 0, shared = -1;
                long dirty = -1, pte = -1;
                ck_assert_int_eq(sscanf(line,
                                        "init=%d after_fork=%d table_mib=%d sum_ok=%d "
                                        "private_dirty_kib=%ld shared=%d pte_kib=%ld",
                                        &init, &after, &mib, &ok, &dirty, &shared, &pte),
                                 7);
                ck_assert_int_eq(init, 1);
                ck_assert_int_eq(after, 1);
                ck_assert_int_eq(mib, 256);
                ck_assert_int_eq(ok, 1);
                ck_assert_int_eq(shared, want_shared);
                ck_assert_int_ge(dirty, 0);
                ck_assert_int_ge(pte, 0);
                if (dirty > worst)
                        worst = dirty;
                if (pte > worst_pte)
                        worst_pte = pte;
        }
        /* 256 MiB table: less than 1/32 of it dirtied in any child. */
        ck_assert_msg(worst < 256 * 1024 / 32, "a child dirtied %ld KiB", worst);
#ifndef __SANITIZE_ADDRESS__
        /* (AddressSanitizer's quarantine and shadow give every child page
         * tables of their own, many times that.) */
        if (want_shared)
                ck_assert_msg(worst_pte < 256, "a child started with %ld KiB of page tables",
                              worst_pte);
#endif
        close(fds[1]);
        fclose(in);
        mps_server_stats st;
        ck_assert_int_eq(mps_client_stats(client, &st), 0);
        ck_assert_uint_eq(st.preloaded, 1);
        ck_assert_uint_ge(st.preloaded_rss_kib, 200 * 1024);
}

START_TEST(test_100_call_jobs_share_the_table_copy_on_write) {
        expect_100_jobs_read_the_table(1);
}
END_TEST

START_TEST(test_100_call_jobs_share_a_private_table_copy_on_write) {
        expect_100_jobs_read_the_table(0);
}
END_TEST

/* A job's write to the table: SIGSEGV (want 0: read-only), else it must
 * succeed. Under AddressSanitizer, whose handler would take the signal
 * over and report it, only the write the kernel makes for it (EFAULT). */
static void expect_table_write(int want) {
#ifndef __SANITIZE_ADDRESS__
        ck_assert_int_eq(finish(start_call("table_write", NULL, -1, -1)), want ? 0 : -SIGSEGV);
#endif
        ck_assert_int_eq(finish(start_call("table_write_efault", NULL, -1, -1)), want);
}

/* mps_preload_alloc's memory is read-only in a job, for good: a write
 * kills the job (SIGSEGV) and the server serves the next; mprotect cannot
 * make it writable; the allocator itself refuses a job. */
START_TEST(test_the_shared_table_is_read_only_in_jobs) {
        expect_table_write(0);
        ck_assert_int_eq(finish(start_call("exit_with", "5", -1, -1)), 5);
        ck_assert_int_eq(finish(start_call("table_mprotect", NULL, -1, -1)), 0);
        expect_table_write(0);
        ck_assert_int_eq(finish(start_call("alloc_in_job", NULL, -1, -1)), 0);
}
END_TEST

/* A private (malloc) table is the job's copy to change, as before. */
START_TEST(test_a_private_table_is_the_jobs_to_change) {
        ck_assert_int_eq(finish(start_call("table_mprotect", NULL, -1, -1)), 1);
        expect_table_write(1);
}
END_TEST

START_TEST(test_8_concurrent_jobs_add_to_shared_counters) {
        int fd;
        void *addr;
        ck_assert_int_eq(mps_shm_create(4096, &fd, &addr), 0);
        /* Sealed: nobody may shrink it under us. */
        ck_assert_int_eq(ftruncate(fd, 100), -1);
        mps_process *p[8];
        for (int i = 0; i < 8; i++)
                p[i] = start_call("add_counters", "{\"iterations\":20000}", fd, -1);
        for (int i = 0; i < 8; i++)
                ck_assert_int_eq(finish(p[i]), 0);
        _Atomic uint64_t *c = addr;
        for (int k = 0; k < 8; k++)
                ck_assert_uint_eq(atomic_load(&c[k]), 8 * 20000);
        void *again;
        size_t size;
        ck_assert_int_eq(mps_shm_map(fd, &again, &size), 0);
        ck_assert_uint_eq(size, 4096);
        munmap(again, size);
        munmap(addr, 4096);
        close(fd);
}
END_TEST

START_TEST(test_a_call_job_streams_results_over_a_pipe) {
        int fds[2];
        ck_assert_int_eq(mps_pipe(fds), 0);
        ck_assert(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
        mps_process *p = start_call("stream", "5000", fds[1], -1);
        close(fds[1]);
        FILE *in = fdopen(fds[0], "r");
        char line[64], want[64];
        int n = 0;
        while (fgets(line, sizeof(line), in)) {
                snprintf(want, sizeof(want), "result %d\n", n);
                ck_assert_str_eq(line, want);
                n++;
        }
        fclose(in);
        ck_assert_int_eq(n, 5000);
        ck_assert_int_eq(finish(p), 0);
}
END_TEST

START_TEST(test_env_cwd_and_socketpair_apply_to_call_jobs) {
        int sv[2];
        char buf[256];
        ck_assert_int_eq(mps_socketpair(sv), 0);
        mps_spec *s;
        mps_process *p;
        ck_assert_int_eq(mps_spec_new(&s), 0);
        ck_assert_int_eq(mps_spec_set_call(s, "show_env", "\"GREETING\""), 0);
        ck_assert_int_eq(mps_spec_env_set(s, "GREETING", "hi"), 0);
        ck_assert_int_eq(mps_spec_set_cwd(s, "/usr"), 0);
        ck_assert_int_eq(mps_spec_map_fd(s, 1, sv[1]), 0);
        ck_assert_int_eq(mps_process_new(client, s, &p), 0);
        mps_spec_free(s);
        ck_assert_int_eq(mps_start(p), 0);
        close(sv[1]);
        tu_read_all(sv[0], buf, sizeof(buf), 20000);
        ck_assert_str_eq(buf, "GREETING=hi cwd=/usr\n");
        ck_assert_int_eq(finish(p), 0);
        close(sv[0]);
}
END_TEST

START_TEST(test_cli_call) {
        char out[256], err[256], sock[160];
        snprintf(sock, sizeof(sock), "%s", srv.path);
        const char *argv[] = {tu_cli(), "-s", sock, "--call", "exit_with", "--args", "7", NULL};
        int st = tu_run(argv, NULL, out, sizeof(out), err, sizeof(err));
        ck_assert(WIFEXITED(st));
        ck_assert_int_eq(WEXITSTATUS(st), 7);
        const char *bad[] = {tu_cli(), "-s", sock, "--call", "nope", NULL};
        st = tu_run(bad, NULL, out, sizeof(out), err, sizeof(err));
        ck_assert_int_eq(WEXITSTATUS(st), 125);
        ck_assert_ptr_nonnull(strstr(err, "no entry point 'nope'"));
}
END_TEST

START_TEST(test_failed_preload_stops_the_server_with_a_message) {
        char err[1024];
        find_preload();
        const char *missing[] = {tu_forkserver(), "--socket", "/tmp/mpspawn-never.sock",
                                 "--preload", "/nonexistent/lib.so", NULL};
        int st = tu_run(missing, NULL, NULL, 0, err, sizeof(err));
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
        ck_assert_ptr_nonnull(strstr(err, "cannot preload '/nonexistent/lib.so'"));
        const char *failing[] = {tu_forkserver(), "--socket", "/tmp/mpspawn-never.sock",
                                 "--preload", preload, NULL};
        st = tu_run(failing, (const char *[]){"MPS_TEST_PRELOAD_FAIL=7", NULL}, NULL, 0, err,
                    sizeof(err));
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
        ck_assert_ptr_nonnull(strstr(err, "its init hook returned 7"));
        /* Not a module at all. */
        const char *notmod[] = {tu_forkserver(), "--socket", "/tmp/mpspawn-never.sock",
                                "--preload", "libm.so.6", NULL};
        st = tu_run(notmod, NULL, NULL, 0, err, sizeof(err));
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
        ck_assert_ptr_nonnull(strstr(err, "no MPS_MODULE"));
}
END_TEST

/* The same server with the table from malloc (MPS_TEST_TABLE_PRIVATE=1);
 * Check's fork mode keeps the variable to this test's process. */
static void private_setup(void) {
        setenv("MPS_TEST_TABLE_PRIVATE", "1", 1);
        setup();
}

/* The same jobs through pre-forked children. */
static void prefork_setup(void) {
        find_preload();
        const char *extra[] = {"--preload", preload, "--prefork", "2", NULL};
        tu_server_start(&srv, extra);
        char *msg = NULL;
        ck_assert_msg(mps_client_open(srv.path, &client, &msg) == 0, "%s", msg ? msg : "?");
}

/* Bounded polling until the server has `want` idle pre-forked children. */
static void wait_prefork_idle(uint64_t want) {
        mps_server_stats st = {0};
        for (int i = 0; i < 2000; i++) {
                ck_assert_int_eq(mps_client_stats(client, &st), 0);
                if (st.prefork_idle == want)
                        return;
                struct timespec ts = {0, 5 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        ck_abort_msg("prefork_idle stayed %llu, not %llu",
                     (unsigned long long)st.prefork_idle, (unsigned long long)want);
}

START_TEST(test_prefork_runs_call_and_exec_jobs_and_refills) {
        wait_prefork_idle(2);
        for (int i = 0; i < 10; i++) {
                char args[16];
                snprintf(args, sizeof(args), "%d", i);
                ck_assert_int_eq(finish(start_call("exit_with", args, -1, -1)), i);
        }
        /* Exec jobs (which vfork, not use them) work beside them. */
        int fds[2];
        char buf[64];
        ck_assert_int_eq(mps_pipe(fds), 0);
        mps_spec *s;
        mps_process *p;
        const char *argv[] = {"/bin/sh", "-c", "echo via prefork; exit 3", NULL};
        ck_assert_int_eq(mps_spec_new(&s), 0);
        ck_assert_int_eq(mps_spec_set_exec(s, argv[0], argv), 0);
        ck_assert_int_eq(mps_spec_map_fd(s, 1, fds[1]), 0);
        ck_assert_int_eq(mps_process_new(client, s, &p), 0);
        ck_assert_int_eq(mps_start(p), 0);
        close(fds[1]);
        tu_read_all(fds[0], buf, sizeof(buf), 20000);
        ck_assert_str_eq(buf, "via prefork\n");
        ck_assert_int_eq(finish(p), 3);
        close(fds[0]);
        /* Exec failures still come back as errors. */
        const char *bad[] = {"no-such-program-p", NULL};
        ck_assert_int_eq(mps_spec_set_exec(s, bad[0], bad), 0);
        ck_assert_int_eq(mps_spec_map_fd(s, 1, -1), 0); /* fds[1] is closed now */
        ck_assert_int_eq(mps_process_new(client, s, &p), 0);
        ck_assert_int_eq(mps_start(p), -ENOENT);
        mps_process_close(p);
        mps_spec_free(s);
        /* COW holds through them as well. */
        ck_assert_int_eq(mps_pipe(fds), 0);
        ck_assert_int_eq(finish(start_call("table_info", NULL, fds[1], -1)), 0);
        close(fds[1]);
        tu_read_all(fds[0], buf, sizeof(buf), 20000);
        close(fds[0]);
        ck_assert_msg(strncmp(buf, "init=1 after_fork=1 table_mib=256 sum_ok=1", 42) == 0,
                      "%s", buf);
        /* Forked before any job, they hold the table read-only as well. */
        ck_assert_int_eq(finish(start_call("table_mprotect", NULL, -1, -1)), 0);
        expect_table_write(0);
        wait_prefork_idle(2);
}
END_TEST

/* ---- results ------------------------------------------------------------------ */

/* A finished call job: its exit code in *ret_code, the process still open
 * for its result (the caller closes it). */
static mps_process *run_call(const char *entry, const char *args, int *ret_code) {
        mps_process *p = start_call(entry, args, -1, -1);
        ck_assert_int_eq(mps_join(p, -1), 0);
        *ret_code = mps_exitcode(p);
        return p;
}

/* The result of entry(args) with exit code 0 and no failure, as text. */
static void expect_result(const char *entry, const char *args, const char *want) {
        int code;
        mps_process *p = run_call(entry, args, &code);
        ck_assert_int_eq(code, 0);
        ck_assert_ptr_null(mps_result_error(p));
        ck_assert_ptr_nonnull(mps_result(p));
        ck_assert_str_eq(mps_result(p), want);
        ck_assert_int_eq(mps_process_close(p), 0);
}

START_TEST(test_a_call_job_returns_its_result) {
        expect_result("result_echo", "{\"a\":{\"b\":[1,2,{\"c\":null}]},\"ok\":true}",
                      "{\"a\":{\"b\":[1,2,{\"c\":null}]},\"ok\":true}");
        /* Escapes and UTF-8 (two, three and four bytes) survive both ways. */
        expect_result("result_echo", "\"tab\\t quote\\\" back\\\\ \xc3\xa9 \xe2\x9c\x93 \xf0\x9d\x84\x9e\"",
                      "\"tab\\t quote\\\" back\\\\ \xc3\xa9 \xe2\x9c\x93 \xf0\x9d\x84\x9e\"");
        expect_result("result_echo", "42", "42");
        expect_result("result_echo", "-3.5", "-3.5");
        expect_result("result_echo", "null", "null");
        /* The last set_result wins. */
        expect_result("result_twice", "[\"second\"]", "[\"second\"]");
        /* A call job that sets nothing has no result. */
        int code;
        mps_process *p = run_call("exit_with", "0", &code);
        ck_assert_int_eq(code, 0);
        ck_assert_ptr_null(mps_result(p));
        ck_assert_ptr_null(mps_result_error(p));
        ck_assert_int_eq(mps_process_close(p), 0);
}
END_TEST

START_TEST(test_results_are_bounded_and_checked_in_the_job) {
        char args[16];
        int code;
        /* MPS_RESULT_MAX bytes fit; one more is -E2BIG, and no result. */
        snprintf(args, sizeof(args), "%d", MPS_RESULT_MAX);
        mps_process *p = run_call("result_of_size", args, &code);
        ck_assert_int_eq(code, 0);
        ck_assert_ptr_nonnull(mps_result(p));
        ck_assert_uint_eq(strlen(mps_result(p)), MPS_RESULT_MAX);
        ck_assert_int_eq(mps_process_close(p), 0);
        snprintf(args, sizeof(args), "%d", MPS_RESULT_MAX + 1);
        p = run_call("result_of_size", args, &code);
        ck_assert_int_eq(code, E2BIG);
        ck_assert_ptr_null(mps_result(p));
        ck_assert_ptr_null(mps_result_error(p));
        ck_assert_int_eq(mps_process_close(p), 0);
        /* Not JSON, two values, not UTF-8, an infinity, empty, a
         * surrogate, too deep, NULL: each -EINVAL, and no result. */
        for (int k = 0; k <= 7; k++) {
                snprintf(args, sizeof(args), "%d", k);
                p = run_call("result_invalid", args, &code);
                ck_assert_msg(code == EINVAL, "sample %d: exit %d", k, code);
                ck_assert_ptr_null(mps_result(p));
                ck_assert_int_eq(mps_process_close(p), 0);
        }
}
END_TEST

START_TEST(test_set_error_gives_the_caller_its_message) {
        int code;
        mps_process *p = run_call("error_set", "4", &code);
        ck_assert_int_eq(code, 4); /* still the entry point's return value */
        ck_assert_ptr_nonnull(mps_result_error(p));
        ck_assert_str_eq(mps_result_error(p), "bad input: \xc3\xbc");
        ck_assert_ptr_null(mps_result(p));
        ck_assert_int_eq(mps_process_close(p), 0);
        p = run_call("error_set", "0", &code);
        ck_assert_int_eq(code, 0);
        ck_assert_str_eq(mps_result_error(p), "bad input: \xc3\xbc");
        ck_assert_int_eq(mps_process_close(p), 0);
        /* 6000 bytes of two-byte characters: cut to 4096, whole ones. */
        p = run_call("error_long", NULL, &code);
        ck_assert_int_eq(code, 0);
        const char *m = mps_result_error(p);
        ck_assert_ptr_nonnull(m);
        ck_assert_uint_eq(strlen(m), MPS_RESULT_ERROR_MAX);
        ck_assert_int_eq(strncmp(m + MPS_RESULT_ERROR_MAX - 2, "\xc3\xa9", 2), 0);
        ck_assert_int_eq(mps_process_close(p), 0);
}
END_TEST

/* A job that damages its channel gets a failure message saying so; the
 * server serves on. */
static void scribbled(const char *mode, const char *want) {
        int code;
        mps_process *p = run_call("scribble", mode, &code);
        ck_assert_int_eq(code, 5);
        ck_assert_ptr_null(mps_result(p));
        ck_assert_ptr_nonnull(mps_result_error(p));
        ck_assert_msg(strstr(mps_result_error(p), want), "mode %s: %s", mode,
                      mps_result_error(p));
        ck_assert_int_eq(mps_process_close(p), 0);
}

START_TEST(test_a_damaged_result_channel_is_a_failure_not_a_server_error) {
        scribbled("0", "overwrote its result channel");
        scribbled("1", "result is not valid JSON");
        scribbled("2", "failure message is not UTF-8");
        ck_assert_int_eq(finish(start_call("exit_with", "6", -1, -1)), 6);
        expect_result("result_echo", "[1]", "[1]");
}
END_TEST

START_TEST(test_an_exec_job_has_no_result) {
        mps_spec *s;
        mps_process *p;
        const char *argv[] = {"/bin/sh", "-c", "exit 0", NULL};
        ck_assert_int_eq(mps_spec_new(&s), 0);
        ck_assert_int_eq(mps_spec_set_exec(s, argv[0], argv), 0);
        ck_assert_int_eq(mps_process_new(client, s, &p), 0);
        mps_spec_free(s);
        /* Before a start, and after its end, there is nothing to read. */
        ck_assert_ptr_null(mps_result(p));
        ck_assert_int_eq(mps_start(p), 0);
        ck_assert_int_eq(mps_join(p, -1), 0);
        ck_assert_int_eq(mps_exitcode(p), 0);
        ck_assert_ptr_null(mps_result(p));
        ck_assert_ptr_null(mps_result_error(p));
        ck_assert_int_eq(mps_process_close(p), 0);
        ck_assert_ptr_null(mps_result(NULL));
        ck_assert_ptr_null(mps_result_error(NULL));
}
END_TEST

/* The result channels the server holds now. */
static int server_result_channels(void) {
        char dir[64], link[320], target[128];
        int n = 0;
        snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)mps_client_server_pid(client));
        DIR *d = opendir(dir);
        ck_assert_ptr_nonnull(d);
        struct dirent *e;
        while ((e = readdir(d))) {
                snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
                ssize_t len = readlink(link, target, sizeof(target) - 1);
                if (len < 0)
                        continue;
                target[len] = '\0';
                n += strncmp(target, "/memfd:mps-result", 17) == 0;
        }
        closedir(d);
        return n;
}

/* Each call job's channel is the server's while the job runs, and closed
 * at its reap, whether it set anything or not. */
START_TEST(test_result_channels_are_closed_at_the_reap) {
        int fds[2];
        ck_assert_int_eq(server_result_channels(), 0);
        ck_assert_int_eq(mps_pipe(fds), 0);
        /* Runs until its fd 3, the read end, sees EOF. */
        mps_process *p = start_call("wait_eof", NULL, fds[0], -1);
        close(fds[0]);
        mps_process *q = start_call("result_echo", "1", -1, -1);
        ck_assert_int_eq(finish(q), 0);
        ck_assert_int_eq(server_result_channels(), 1);
        close(fds[1]);
        ck_assert_int_eq(finish(p), 0);
        for (int i = 0; i < 20; i++)
                ck_assert_int_eq(finish(start_call(i % 2 ? "result_echo" : "exit_with", "0", -1,
                                                   -1)),
                                 0);
        ck_assert_int_eq(server_result_channels(), 0);
}
END_TEST

/*
 * Bounded polling of the job list: until job id is listed as exited (its
 * record kept), or with gone, until it is not listed at all (its end was
 * sent to the wait of ours the server held, before the reply to that list).
 */
static void wait_listing(uint64_t id, bool gone) {
        for (int i = 0; i < 2000; i++) {
                mps_job_info *jobs;
                size_t n;
                bool listed = false, exited = false;
                ck_assert_int_ge(mps_client_list_jobs(client, &jobs, &n), 0);
                for (size_t k = 0; k < n; k++)
                        if (jobs[k].id == id) {
                                listed = true;
                                exited = strcmp(jobs[k].state, "exited") == 0;
                        }
                free(jobs);
                if (gone ? !listed : exited)
                        return;
                struct timespec ts = {0, 5 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        ck_abort_msg("job %llu %s", (unsigned long long)id,
                     gone ? "is still listed" : "was never listed as exited");
}

static void wait_listed_exited(uint64_t id) {
        wait_listing(id, false);
}

/* A wait that timed out stays registered in the server; its late answer,
 * read while the client did something else (a list), is kept for the next
 * wait, and a call job's result with it (it was dropped before: only the
 * exit info was kept). */
START_TEST(test_a_late_answer_to_a_timed_out_wait_keeps_the_result) {
        int fds[2];
        mps_spec *s;
        mps_process *p;
        ck_assert_int_eq(mps_pipe(fds), 0);
        ck_assert_int_eq(mps_spec_new(&s), 0);
        ck_assert_int_eq(mps_spec_set_call(s, "result_then_wait", "[\"late\"]"), 0);
        ck_assert_int_eq(mps_spec_map_fd(s, 3, fds[0]), 0);
        ck_assert_int_eq(mps_spec_set_detached(s, true), 0);
        ck_assert_int_eq(mps_process_new(client, s, &p), 0);
        ck_assert_int_eq(mps_start(p), 0);
        mps_spec_free(s);
        close(fds[0]);
        uint64_t id = mps_job_id(p);
        ck_assert_int_eq(mps_process_close(p), 0);
        char *result = NULL, *error = NULL;
        ck_assert_int_eq(mps_client_wait_job_result(client, id, 20, NULL, &result, &error),
                         -ETIMEDOUT);
        close(fds[1]);
        /* The list requests read the late answer as it comes. */
        wait_listing(id, true);
        mps_exit_info info;
        ck_assert_int_eq(mps_client_wait_job_result(client, id, 10000, &info, &result, &error),
                         0);
        ck_assert_int_eq(info.exitcode, 0);
        ck_assert_ptr_nonnull(result);
        ck_assert_str_eq(result, "[\"late\"]");
        ck_assert_ptr_null(error);
        free(result);
        ck_assert_int_eq(mps_client_wait_job_result(client, id, 1000, &info, &result, &error),
                         -ESRCH);
}
END_TEST

START_TEST(test_a_detached_call_jobs_result_is_kept_with_its_exit) {
        mps_spec *s;
        mps_process *p;
        ck_assert_int_eq(mps_spec_new(&s), 0);
        ck_assert_int_eq(mps_spec_set_call(s, "error_set", "7"), 0);
        ck_assert_int_eq(mps_spec_set_detached(s, true), 0);
        ck_assert_int_eq(mps_process_new(client, s, &p), 0);
        ck_assert_int_eq(mps_start(p), 0);
        uint64_t failing = mps_job_id(p);
        ck_assert_int_eq(mps_process_close(p), 0);
        ck_assert_int_eq(mps_spec_set_call(s, "result_echo", "{\"kept\":[1,2]}"), 0);
        ck_assert_int_eq(mps_process_new(client, s, &p), 0);
        ck_assert_int_eq(mps_start(p), 0);
        uint64_t id = mps_job_id(p);
        ck_assert_int_eq(mps_process_close(p), 0);
        mps_spec_free(s);

        wait_listed_exited(id);
        mps_exit_info info;
        char *result = NULL, *error = (char *)"unset";
        ck_assert_int_eq(mps_client_wait_job_result(client, id, 10000, &info, &result, &error),
                         0);
        ck_assert_int_eq(info.exitcode, 0);
        ck_assert_ptr_nonnull(result);
        ck_assert_str_eq(result, "{\"kept\":[1,2]}");
        ck_assert_ptr_null(error);
        free(result);
        /* Once: the record went with the first wait. */
        ck_assert_int_eq(mps_client_wait_job_result(client, id, 10000, &info, &result, &error),
                         -ESRCH);

        wait_listed_exited(failing);
        ck_assert_int_eq(mps_client_wait_job_result(client, failing, 10000, &info, NULL,
                                                    &error),
                         0);
        ck_assert_int_eq(info.exitcode, 7);
        ck_assert_ptr_nonnull(error);
        ck_assert_str_eq(error, "bad input: \xc3\xbc");
        free(error);
}
END_TEST

/* Kept results are bounded in bytes per user (8 MiB): past that a kept
 * exit says its result was not kept, and the exits are all there. */
START_TEST(test_kept_results_are_bounded_per_user) {
        enum { N = 300 };
        uint64_t ids[N];
        char args[16];
        mps_spec *s;
        mps_process *p;
        ck_assert_int_eq(mps_spec_new(&s), 0);
        snprintf(args, sizeof(args), "%d", MPS_RESULT_MAX);
        ck_assert_int_eq(mps_spec_set_call(s, "result_of_size", args), 0);
        ck_assert_int_eq(mps_spec_set_detached(s, true), 0);
        for (int i = 0; i < N; i++) {
                ck_assert_int_eq(mps_process_new(client, s, &p), 0);
                ck_assert_int_eq(mps_start(p), 0);
                ids[i] = mps_job_id(p);
                ck_assert_int_eq(mps_process_close(p), 0);
        }
        mps_spec_free(s);
        /* Bounded polling until every one has been reaped (and kept). */
        mps_server_stats st = {0};
        for (int i = 0; i < 4000; i++) {
                ck_assert_int_eq(mps_client_stats(client, &st), 0);
                if (st.jobs_running == 0)
                        break;
                struct timespec ts = {0, 5 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        ck_assert_uint_eq(st.jobs_running, 0);
        int kept = 0, dropped = 0;
        for (int i = 0; i < N; i++) {
                mps_exit_info info;
                char *result = NULL, *error = NULL;
                ck_assert_int_eq(mps_client_wait_job_result(client, ids[i], 10000, &info,
                                                            &result, &error),
                                 0);
                ck_assert_int_eq(info.exitcode, 0);
                if (result) {
                        ck_assert_uint_eq(strlen(result), MPS_RESULT_MAX);
                        ck_assert_ptr_null(error);
                        kept++;
                } else {
                        ck_assert_ptr_nonnull(error);
                        ck_assert_ptr_nonnull(strstr(error, "result was not kept"));
                        dropped++;
                }
                free(result);
                free(error);
        }
        ck_assert_int_eq(kept, (8 << 20) / MPS_RESULT_MAX);
        ck_assert_int_eq(dropped, N - kept);
        /* Collected, they make room again. */
        ck_assert_int_eq(mps_spec_new(&s), 0);
        ck_assert_int_eq(mps_spec_set_call(s, "result_echo", "[7]"), 0);
        ck_assert_int_eq(mps_spec_set_detached(s, true), 0);
        ck_assert_int_eq(mps_process_new(client, s, &p), 0);
        ck_assert_int_eq(mps_start(p), 0);
        uint64_t id = mps_job_id(p);
        ck_assert_int_eq(mps_process_close(p), 0);
        mps_spec_free(s);
        wait_listed_exited(id);
        char *result = NULL;
        ck_assert_int_eq(mps_client_wait_job_result(client, id, 10000, NULL, &result, NULL), 0);
        ck_assert_ptr_nonnull(result);
        ck_assert_str_eq(result, "[7]");
        free(result);
}
END_TEST

START_TEST(test_pool_map_call_returns_results_in_input_order) {
        enum { N = 200 };
        const char *args[N];
        char bufs[N][16];
        mps_call_result res[N];
        mps_pool *pool;
        mps_spec *s;
        for (int i = 0; i < N; i++) {
                snprintf(bufs[i], sizeof(bufs[i]), "%d", i);
                args[i] = bufs[i];
        }
        ck_assert_int_eq(mps_spec_new(&s), 0);
        /* The spec's own program is replaced by the call. */
        const char *argv[] = {"/bin/false", NULL};
        ck_assert_int_eq(mps_spec_set_exec(s, argv[0], argv), 0);
        ck_assert_int_eq(mps_pool_new(client, 8, &pool), 0);
        int r = mps_pool_map_call(pool, s, "square", args, N, res);
        ck_assert_msg(r == 3, "%d failed: %s", r, mps_client_error(client));
        ck_assert_str_eq(mps_client_error(client), "task 13: unlucky 13");
        for (int i = 0; i < N; i++) {
                char want[32];
                if (i == 13 || i == 66 || i == 99)
                        continue;
                snprintf(want, sizeof(want), "{\"square\":%d}", i * i);
                ck_assert_int_eq(res[i].exitcode, 0);
                ck_assert_ptr_nonnull(res[i].result);
                ck_assert_str_eq(res[i].result, want);
                ck_assert_ptr_null(res[i].error);
        }
        ck_assert_int_eq(res[13].exitcode, 0);
        ck_assert_str_eq(res[13].error, "unlucky 13");
        ck_assert_int_eq(res[66].exitcode, -9);
        ck_assert_str_eq(res[66].error, "killed by signal 9 (Killed)");
        ck_assert_int_eq(res[99].exitcode, 3);
        ck_assert_str_eq(res[99].error, "exited with status 3");
        mps_call_results_free(res, N);
        ck_assert_ptr_null(res[0].result);

        /* Arguments that are not JSON: nothing runs, results untouched. */
        const char *bad[] = {"1", "{oops"};
        res[0].exitcode = 12345;
        ck_assert_int_eq(mps_pool_map_call(pool, s, "square", bad, 2, res), -EINVAL);
        ck_assert_int_eq(res[0].exitcode, 12345);
        ck_assert_ptr_nonnull(strstr(mps_client_error(client), "task 1:"));
        /* A task that cannot start: its start error, in place. */
        const char *one[] = {"1", "2"};
        ck_assert_int_eq(mps_pool_map_call(pool, s, "no_such_entry", one, 2, res), 2);
        ck_assert_int_eq(res[1].exitcode, MPS_EXITCODE_NONE);
        ck_assert_ptr_nonnull(res[1].error);
        ck_assert_ptr_nonnull(strstr(res[1].error, "no_such_entry"));
        ck_assert_ptr_nonnull(strstr(mps_client_error(client), "task 0: "));
        mps_call_results_free(res, 2);
        ck_assert_int_eq(mps_pool_map_call(pool, s, "square", NULL, 0, NULL), 0);
        mps_spec_free(s);
        ck_assert_int_eq(mps_pool_free(pool), 0);
}
END_TEST

/* What works with any server, one without results too: exit codes in
 * order, failures counted, no result. */
START_TEST(test_pool_map_call_without_results) {
        const char *args[] = {"0", "2", "0"};
        mps_call_result res[3];
        mps_pool *pool;
        mps_spec *s;
        ck_assert_int_eq(mps_spec_new(&s), 0);
        ck_assert_int_eq(mps_pool_new(client, 2, &pool), 0);
        ck_assert_int_eq(mps_pool_map_call(pool, s, "exit_with", args, 3, res), 1);
        ck_assert_str_eq(mps_client_error(client), "task 1: exited with status 2");
        ck_assert_int_eq(res[0].exitcode, 0);
        ck_assert_int_eq(res[1].exitcode, 2);
        ck_assert_int_eq(res[2].exitcode, 0);
        for (int i = 0; i < 3; i++)
                ck_assert_ptr_null(res[i].result);
        ck_assert_ptr_null(res[0].error);
        mps_call_results_free(res, 3);
        ck_assert_int_eq(mps_spec_set_detached(s, true), 0);
        ck_assert_int_eq(mps_pool_map_call(pool, s, "exit_with", args, 3, res), -EINVAL);
        mps_spec_free(s);
        ck_assert_int_eq(mps_pool_free(pool), 0);
}
END_TEST

/* A task's end, seen by its callback. */
static void note_end(mps_process *proc, int exitcode, void *userdata) {
        (void)proc;
        *(int *)userdata = exitcode;
}

/* mps_pool_map_call waits for its own tasks only, as mps_pool_map does: a
 * task queued on the same pool before it (here one that runs until told)
 * does not hold it. It waited for the whole pool before: that hung. */
START_TEST(test_pool_map_call_waits_for_its_own_tasks_only) {
        const char *args[] = {"1", "2", "3"};
        mps_call_result res[3];
        int fds[2], other = MPS_EXITCODE_NONE;
        mps_pool *pool;
        mps_spec *s;
        ck_assert_int_eq(mps_pipe(fds), 0);
        ck_assert_int_eq(mps_spec_new(&s), 0);
        ck_assert_int_eq(mps_spec_set_call(s, "wait_eof", NULL), 0);
        ck_assert_int_eq(mps_spec_map_fd(s, 3, fds[0]), 0);
        ck_assert_int_eq(mps_pool_new(client, 2, &pool), 0);
        ck_assert_int_eq(mps_pool_apply_async(pool, s, note_end, NULL, &other), 0);
        mps_spec_free(s);
        ck_assert_int_eq(mps_spec_new(&s), 0);
        ck_assert_int_eq(mps_pool_map_call(pool, s, "result_echo", args, 3, res), 0);
        mps_spec_free(s);
        for (int i = 0; i < 3; i++)
                ck_assert_str_eq(res[i].result, args[i]);
        mps_call_results_free(res, 3);
        ck_assert_int_eq(other, MPS_EXITCODE_NONE); /* still running */
        close(fds[0]);
        close(fds[1]);
        ck_assert_int_eq(mps_pool_close(pool), 0);
        ck_assert_int_eq(mps_pool_join(pool, -1), 0);
        ck_assert_int_eq(other, 0);
        ck_assert_int_eq(mps_pool_free(pool), 0);
}
END_TEST

/* A Pool callback reads the result of its task's process. */
static void read_result(mps_process *proc, int exitcode, void *userdata) {
        char *out = userdata;
        const char *r = mps_result(proc);
        snprintf(out, 64, "%d %s", exitcode, r ? r : "(none)");
}

START_TEST(test_a_pool_callback_reads_the_result) {
        char seen[64] = "";
        mps_pool *pool;
        mps_spec *s;
        ck_assert_int_eq(mps_spec_new(&s), 0);
        ck_assert_int_eq(mps_spec_set_call(s, "result_echo", "[\"cb\"]"), 0);
        ck_assert_int_eq(mps_pool_new(client, 1, &pool), 0);
        ck_assert_int_eq(mps_pool_apply_async(pool, s, read_result, NULL, seen), 0);
        mps_spec_free(s);
        ck_assert_int_eq(mps_pool_close(pool), 0);
        ck_assert_int_eq(mps_pool_join(pool, -1), 0);
        ck_assert_str_eq(seen, "0 [\"cb\"]");
        ck_assert_int_eq(mps_pool_free(pool), 0);
}
END_TEST

START_TEST(test_prefork_call_jobs_return_results) {
        wait_prefork_idle(2);
        for (int i = 0; i < 4; i++)
                expect_result("result_echo", "{\"via\":\"prefork\"}", "{\"via\":\"prefork\"}");
        scribbled("0", "overwrote its result channel");
        int code;
        mps_process *p = run_call("error_set", "9", &code);
        ck_assert_int_eq(code, 9);
        ck_assert_str_eq(mps_result_error(p), "bad input: \xc3\xbc");
        ck_assert_int_eq(mps_process_close(p), 0);
        mps_server_stats st;
        ck_assert_int_eq(mps_client_stats(client, &st), 0);
        /* These went through pre-forked children: none was forked for
         * them (the refills are forked between batches). */
        wait_prefork_idle(2);
}
END_TEST

/* ---- the result checker against cJSON ------------------------------------------ */

/* What the client will do with the text: cJSON parses all of it (but
 * white space), every number finite. */
static bool cjson_takes(const char *text, size_t len) {
        const char *end = NULL;
        cJSON *v = cJSON_ParseWithLengthOpts(text, len, &end, false);
        bool ok = v && mps__wire_numbers_finite(v);
        cJSON_Delete(v);
        if (!ok || !end)
                return false;
        for (; end < text + len; end++)
                if (!strchr(" \t\n\r", *end))
                        return false;
        return true;
}

static unsigned rng_state = 12345;
static unsigned rnd(unsigned n) {
        rng_state = rng_state * 1103515245u + 12345u;
        return (rng_state >> 8) % n;
}

/* Pieces that sit on the edge of what either side accepts. */
static const char *const atoms[] = {
        "0", "-0", "1", "-12.5e-3", "1E+2", "01", "1.", ".5", "+1", "-", "1e", "0x10",
        "1.7976931348623157e308", "1.7976931348623159e308", "17976931348623158e292",
        "1e308", "9e308", "1e999", "-1e999", "1e-999", "0e99999", "0.0000001e315",
        "123456789012345678901234567890123456789012345678901234567890",
        "1234567890123456789012345678901234567890123456789012345678901234",
        "true", "false", "null", "nul", "True", "\"\"", "\"a\\\"b\"", "\"\\u00e9\"",
        "\"\\ud834\\udd1e\"", "\"\\ud834\"", "\"\\udd1e\"", "\"\\u0000\"", "\"\\x\"",
        "\"\x01\"", "\"\xc3\xa9\"", "\"\xff\"", "\"\t\"", "\"\\/\\b\\f\\n\\r\\t\"",
        "\"\\u12\"", "\"\\uD834\\uDD1E\"",
};

static void gen(char *buf, size_t *n, size_t cap, int depth) {
        static const char *const ws[] = {"", "", " ", "\n", "\t", "\r", "\v", "\f"};
        const char *w = ws[rnd(8)];
        if (*n + strlen(w) < cap) {
                memcpy(buf + *n, w, strlen(w));
                *n += strlen(w);
        }
        unsigned k = rnd(depth > 6 ? 1 : 4);
        if (k == 0) {
                const char *a = atoms[rnd(sizeof(atoms) / sizeof(atoms[0]))];
                size_t l = strlen(a);
                if (*n + l < cap) {
                        memcpy(buf + *n, a, l);
                        *n += l;
                }
                return;
        }
        bool obj = k == 1;
        if (*n + 1 < cap)
                buf[(*n)++] = obj ? '{' : '[';
        unsigned items = rnd(4);
        for (unsigned i = 0; i < items; i++) {
                if (i > 0 && *n + 1 < cap)
                        buf[(*n)++] = ',';
                if (obj && *n + 4 < cap) {
                        memcpy(buf + *n, "\"k\":", 4);
                        *n += 4;
                }
                gen(buf, n, cap, depth + 1);
        }
        if (*n + 1 < cap)
                buf[(*n)++] = obj ? '}' : ']';
}

/* Everything the checker lets through, cJSON takes; and it lets enough
 * through for that to mean something. Then the cases each side must see. */
START_TEST(test_the_result_checker_accepts_only_what_cjson_takes) {
        char buf[4096];
        unsigned accepted = 0, total = 20000;
        for (unsigned i = 0; i < total; i++) {
                size_t n = 0;
                gen(buf, &n, sizeof(buf) - 1, 0);
                /* Now and then a byte changed, dropped or cut short. */
                unsigned m = rnd(8);
                if (m == 0 && n > 0)
                        buf[rnd((unsigned)n)] = "[]{},:\"\\0e.-\x01"[rnd(14)];
                else if (m == 1 && n > 1)
                        n = rnd((unsigned)n);
                buf[n] = '\0';
                if (mps__wire_result_check(buf, n) == 0) {
                        accepted++;
                        ck_assert_msg(cjson_takes(buf, n), "accepted, but cJSON refuses: %s",
                                      buf);
                }
        }
        ck_assert_msg(accepted > total / 10, "only %u of %u accepted", accepted, total);

        static const char *const good[] = {
                "0", "-0.5e-3", "{\"a\":[1,2,{\"b\":null}],\"c\":\"\\ud834\\udd1e\"}", " [ ] ",
                "1.7976931348623157e308", "\"\xf0\x9d\x84\x9e\"", "1e-999", "[true,false]",
        };
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
                ck_assert_msg(mps__wire_result_check(good[i], strlen(good[i])) == 0, "%s",
                              good[i]);
        static const char *const bad[] = {
                "1.7976931348623159e308", "1e309", "-1e999", "01", "1.", "[1,]", "{\"a\"}",
                "\"\\ud834\"", "\"\\u0000\"", "\"\x01\"", "1 2", "", "nul", "\"\xc0\xaf\"",
                "1234567890123456789012345678901234567890123456789012345678901234",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                ck_assert_msg(mps__wire_result_check(bad[i], strlen(bad[i])) == -EINVAL, "%s",
                              bad[i]);
        char big[MPS_RESULT_MAX + 2];
        memset(big, '1', sizeof(big));
        ck_assert_int_eq(mps__wire_result_check(big, MPS_RESULT_MAX + 1), -E2BIG);
}
END_TEST

static Suite *call_suite(void) {
        Suite *s = suite_create("call");
        TCase *t = tcase_create("call");
        tcase_add_checked_fixture(t, setup, teardown);
        tcase_set_timeout(t, 240);
        tcase_add_test(t, test_return_value_is_the_exit_code);
        tcase_add_test(t, test_jobs_do_not_inherit_a_preloads_dispositions);
        tcase_add_test(t, test_only_registered_names_can_be_called);
        tcase_add_test(t, test_100_call_jobs_share_the_table_copy_on_write);
        tcase_add_test(t, test_the_shared_table_is_read_only_in_jobs);
        tcase_add_test(t, test_8_concurrent_jobs_add_to_shared_counters);
        tcase_add_test(t, test_a_call_job_streams_results_over_a_pipe);
        tcase_add_test(t, test_env_cwd_and_socketpair_apply_to_call_jobs);
        tcase_add_test(t, test_cli_call);
        tcase_add_test(t, test_a_call_job_returns_its_result);
        tcase_add_test(t, test_results_are_bounded_and_checked_in_the_job);
        tcase_add_test(t, test_set_error_gives_the_caller_its_message);
        tcase_add_test(t, test_a_damaged_result_channel_is_a_failure_not_a_server_error);
        tcase_add_test(t, test_an_exec_job_has_no_result);
        tcase_add_test(t, test_result_channels_are_closed_at_the_reap);
        tcase_add_test(t, test_a_detached_call_jobs_result_is_kept_with_its_exit);
        tcase_add_test(t, test_a_late_answer_to_a_timed_out_wait_keeps_the_result);
        tcase_add_test(t, test_kept_results_are_bounded_per_user);
        tcase_add_test(t, test_pool_map_call_returns_results_in_input_order);
        tcase_add_test(t, test_pool_map_call_without_results);
        tcase_add_test(t, test_pool_map_call_waits_for_its_own_tasks_only);
        tcase_add_test(t, test_a_pool_callback_reads_the_result);
        suite_add_tcase(s, t);
        TCase *pv = tcase_create("private");
        tcase_add_checked_fixture(pv, private_setup, teardown);
        tcase_set_timeout(pv, 240);
        tcase_add_test(pv, test_100_call_jobs_share_a_private_table_copy_on_write);
        tcase_add_test(pv, test_a_private_table_is_the_jobs_to_change);
        suite_add_tcase(s, pv);
        TCase *pf = tcase_create("prefork");
        tcase_add_checked_fixture(pf, prefork_setup, teardown);
        tcase_set_timeout(pf, 240);
        tcase_add_test(pf, test_prefork_runs_call_and_exec_jobs_and_refills);
        tcase_add_test(pf, test_prefork_call_jobs_return_results);
        suite_add_tcase(s, pf);
        TCase *u = tcase_create("checker");
        tcase_set_timeout(u, 60);
        tcase_add_test(u, test_the_result_checker_accepts_only_what_cjson_takes);
        suite_add_tcase(s, u);
        TCase *f = tcase_create("failing");
        tcase_set_timeout(f, 60);
        tcase_add_test(f, test_failed_preload_stops_the_server_with_a_message);
        suite_add_tcase(s, f);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(call_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
