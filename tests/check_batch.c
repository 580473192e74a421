/* SPDX-License-Identifier: MIT */
/*
 * check_batch.c: spawns in batches (the spawn_batch request, issue 18):
 * each job of a batch is what it would be alone.
 *
 *   library   a map sends its starts in batches, and every job gets its
 *             own exit code, descriptors, environment and directory; a
 *             job that cannot start fails alone; refills of a busy pool
 *             and MPSPAWN_NO_BATCH=1 give the same results; dispatch with
 *             nothing waiting still returns 0
 *   server    a hand-made batch is answered under each job's tag, with
 *             each job's own slice of the descriptors; bad batches (the
 *             counts wrong, too many jobs, a job that is no spawn, a bad
 *             job among good ones) are clear errors, start nothing that
 *             was not asked for, leak no descriptor, and the server keeps
 *             serving; call jobs of a batch go through pre-forked children
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../include/mpspawn.h"
#include "../launcher/fdutil.h"
#include "../launcher/lib.h"
#include "../launcher/wire.h"
#include "clientutil.h"
#include "rawclient.h"
#include "testutil.h"

static struct tu_server srv;

static void server_setup(void) {
        tu_server_start(&srv, NULL);
}

static void server_teardown(void) {
        tu_server_stop(&srv);
}

static mps_client *open_client(bool batches) {
        if (!batches)
                setenv("MPSPAWN_NO_BATCH", "1", 1);
        mps_client *c = cu_client_open(srv.path);
        unsetenv("MPSPAWN_NO_BATCH");
        return c;
}


/* ---- the library's batches ----------------------------------------------------- */

#define MAP_JOBS 40

/* MAP_JOBS jobs exiting i % 7, all at once (40 workers): in batches or
 * not, each exit code in its place. Returns the batches sent. */
static unsigned long map_exit_codes_on(mps_client *c) {
        mps_pool *pool;
        mps_spec *specs[MAP_JOBS];
        int codes[MAP_JOBS];
        for (int i = 0; i < MAP_JOBS; i++) {
                char script[32];
                snprintf(script, sizeof(script), "exit %d", i % 7);
                specs[i] = cu_sh_spec(script);
        }
        ck_assert_int_eq(mps_pool_new(c, MAP_JOBS, &pool), 0);
        ck_assert_int_eq(mps_pool_map(pool, (const mps_spec *const *)specs, MAP_JOBS, codes), 0);
        for (int i = 0; i < MAP_JOBS; i++)
                ck_assert_msg(codes[i] == i % 7, "job %d: exit code %d", i, codes[i]);
        mps_pool_close(pool);
        ck_assert_int_eq(mps_pool_join(pool, 30000), 0);
        ck_assert_int_eq(mps_pool_free(pool), 0);
        for (int i = 0; i < MAP_JOBS; i++)
                mps_spec_free(specs[i]);
        return mps__client_batches(c);
}

static unsigned long map_exit_codes(bool batches) {
        mps_client *c = open_client(batches);
        unsigned long n = map_exit_codes_on(c);
        mps_client_close(c);
        return n;
}

START_TEST(test_map_in_batches) {
        /* 40 starts at once: three requests of up to 16. */
        ck_assert_uint_eq(map_exit_codes(true), 3);
        ck_assert_uint_eq(map_exit_codes(false), 0);
}
END_TEST

/* Each job of one batch writes its index to its own pipe as fd 1, runs
 * in its own directory and sees its own variable. */
START_TEST(test_batch_jobs_have_their_own_fds_env_cwd) {
        enum { N = 16 };
        mps_client *c = open_client(true);
        mps_pool *pool;
        mps_spec *specs[N];
        int codes[N], pfd[N][2];
        char dirs[N][64];
        for (int i = 0; i < N; i++) {
                char v[16];
                specs[i] = cu_sh_spec("printf '%s %s' \"$MPS_BATCH_I\" \"$(basename \"$PWD\")\"");
                ck_assert_int_eq(pipe2(pfd[i], O_CLOEXEC), 0);
                ck_assert_int_eq(mps_spec_map_fd(specs[i], 1, pfd[i][1]), 0);
                snprintf(v, sizeof(v), "%d", i);
                ck_assert_int_eq(mps_spec_env_set(specs[i], "MPS_BATCH_I", v), 0);
                tu_tmpdir(dirs[i], sizeof(dirs[i]));
                ck_assert_int_eq(mps_spec_set_cwd(specs[i], dirs[i]), 0);
        }
        ck_assert_int_eq(mps_pool_new(c, N, &pool), 0);
        ck_assert_int_eq(mps_pool_map(pool, (const mps_spec *const *)specs, N, codes), 0);
        ck_assert_uint_eq(mps__client_batches(c), 1);
        for (int i = 0; i < N; i++) {
                char out[128], want[128];
                close(pfd[i][1]);
                tu_read_all(pfd[i][0], out, sizeof(out), 30000);
                close(pfd[i][0]);
                snprintf(want, sizeof(want), "%d %s", i, strrchr(dirs[i], '/') + 1);
                ck_assert_int_eq(codes[i], 0);
                ck_assert_str_eq(out, want);
                rmdir(dirs[i]);
                mps_spec_free(specs[i]);
        }
        mps_pool_close(pool);
        ck_assert_int_eq(mps_pool_join(pool, 30000), 0);
        mps_pool_free(pool);
        mps_client_close(c);
}
END_TEST

/* A job that cannot exec fails alone: the others of its batch run. */
START_TEST(test_batch_start_failure_alone) {
        enum { N = 12, BAD = 5 };
        mps_client *c = open_client(true);
        mps_pool *pool;
        mps_spec *specs[N];
        int codes[N];
        for (int i = 0; i < N; i++) {
                char script[32];
                snprintf(script, sizeof(script), "exit %d", i);
                specs[i] = cu_sh_spec(script);
        }
        const char *argv[] = {"/nonexistent/mps-batch", NULL};
        ck_assert_int_eq(mps_spec_set_exec(specs[BAD], argv[0], argv), 0);
        ck_assert_int_eq(mps_pool_new(c, N, &pool), 0);
        int r = mps_pool_map(pool, (const mps_spec *const *)specs, N, codes);
        ck_assert_msg(r == -ENOENT, "map: %s", mps_strerror(r));
        ck_assert_uint_eq(mps__client_batches(c), 1);
        for (int i = 0; i < N; i++)
                ck_assert_int_eq(codes[i], i == BAD ? MPS_EXITCODE_NONE : i);
        mps_pool_close(pool);
        ck_assert_int_eq(mps_pool_join(pool, 30000), 0);
        mps_pool_free(pool);
        for (int i = 0; i < N; i++)
                mps_spec_free(specs[i]);
        mps_client_close(c);
}
END_TEST

struct tally {
        int codes[200];
        int ends;
};

static void on_end(mps_process *p, int exitcode, void *data) {
        (void)p;
        struct tally *t = data;
        t->codes[t->ends++] = exitcode;
}

static void on_fail(int err, const char *message, void *data) {
        (void)err;
        (void)data;
        ck_abort_msg("a task failed: %s", message);
}

/* 200 tasks through 8 workers, queued one by one: ends refill the pool
 * (in batches where ends come together), every task runs once, and the
 * client holds no descriptor more after. */
START_TEST(test_refills) {
        mps_client *c = open_client(true);
        mps_pool *pool;
        struct tally t = {.ends = 0};
        mps_spec *s = cu_sh_spec("exit 3");
        int fds = tu_count_fds();
        ck_assert_int_eq(mps_pool_new(c, 8, &pool), 0);
        for (int i = 0; i < 200; i++)
                ck_assert_int_eq(mps_pool_apply_async(pool, s, on_end, on_fail, &t), 0);
        mps_pool_close(pool);
        ck_assert_int_eq(mps_pool_join(pool, 60000), 0);
        ck_assert_int_eq(mps_pool_free(pool), 0);
        ck_assert_int_eq(t.ends, 200);
        for (int i = 0; i < 200; i++)
                ck_assert_int_eq(t.codes[i], 3);
        ck_assert_int_eq(tu_count_fds(), fds);
        mps_spec_free(s);
        mps_client_close(c);
}
END_TEST

/* The reader now runs hooks once a burst is read: with nothing waiting,
 * dispatch still handles nothing and says so (0), not -ENOTCONN; and
 * after a map's ends it has nothing more to do. */
START_TEST(test_dispatch_with_nothing_waiting) {
        mps_client *c = open_client(true);
        ck_assert_int_eq(mps_client_dispatch(c), 0);
        ck_assert_uint_eq(map_exit_codes_on(c), 3);
        ck_assert_int_eq(mps_client_dispatch(c), 0);
        mps_client_close(c);
}
END_TEST

/* ---- the server's answers to hand-made batches ----------------------------------------- */

/* "exit N" as a whole spawn message of tag T, fds as given (JSON). */
#define JOB(tag, code, fds)                                                                \
        "{\"v\":1,\"op\":\"spawn\",\"tag\":" #tag ",\"path\":\"/bin/sh\",\"argv\":[\"sh\"," \
        "\"-c\",\"exit " #code "\"],\"env\":[],\"cwd\":\"/\",\"fds\":" fds "}"

static int server_fds(void) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/fd", (int)srv.pid);
        DIR *d = opendir(path);
        int n = 0;
        ck_assert_ptr_nonnull(d);
        for (struct dirent *e; (e = readdir(d));)
                n += e->d_name[0] != '.';
        closedir(d);
        return n;
}

/* The server's descriptors back to n, within 10 s (some close after the
 * reply, through its closer). */
static void server_fds_back_to(int n) {
        int now = server_fds();
        for (int i = 0; i < 1000 && now != n; i++) {
                mps__poll_one(-1, 0, 10);
                now = server_fds();
        }
        ck_assert_int_eq(now, n);
}

/* Messages until `n` jobs have ended (exited) or failed (error, only
 * where errs is given): each tag's exit code, or errno (tags 1..63). */
static void collect_ends(int fd, int n, int *codes, int *errs) {
        for (int seen = 0; seen < n;) {
                struct mps__msg msg;
                char err[256];
                ck_assert_int_eq(mps__poll_one(fd, POLLIN, 30000), 1);
                ck_assert_int_eq(mps__wire_recv(fd, &msg, err, sizeof(err), NULL), 1);
                ck_assert_msg(msg.op == MPS_OP_SPAWNED || msg.op == MPS_OP_EXITED ||
                                      (errs && msg.op == MPS_OP_ERROR),
                              "got %s", mps__op_name(msg.op));
                ck_assert_uint_lt(msg.tag, 64);
                if (msg.op == MPS_OP_EXITED) {
                        struct mps__exited e;
                        ck_assert_int_eq(mps__exited_decode(msg.json, &e, err, sizeof(err)), 0);
                        codes[msg.tag] = e.exitcode;
                        seen++;
                } else if (msg.op == MPS_OP_ERROR) {
                        struct mps__error e;
                        ck_assert_int_eq(mps__error_decode(msg.json, &e, err, sizeof(err)), 0);
                        errs[msg.tag] = e.err;
                        seen++;
                }
                mps__msg_release(&msg);
        }
}

static void collect_exits(int fd, int n, int *codes) {
        collect_ends(fd, n, codes, NULL);
}

START_TEST(test_server_answers_each_tag) {
        unsigned features;
        int fd = raw_connect_hello(srv.path, &features);
        int codes[64];
        ck_assert(features & MPS_FEATURE_SPAWN_BATCH);
        memset(codes, 0xff, sizeof(codes));
        raw_send(fd, "{\"v\":1,\"op\":\"spawn_batch\",\"tag\":9,\"nfds\":[0,0,0],\"jobs\":["
                     JOB(1, 3, "[]") "," JOB(2, 4, "[]") "," JOB(3, 5, "[]") "]}");
        collect_exits(fd, 3, codes);
        ck_assert_int_eq(codes[1], 3);
        ck_assert_int_eq(codes[2], 4);
        ck_assert_int_eq(codes[3], 5);
        ck_assert_int_eq(codes[9], -1); /* the batch's own tag: no job */
        close(fd);
}
END_TEST

/* Three jobs of one message with 1, 0 and 2 descriptors: each writes to
 * what is its own fd 1 (and the third to its fd 4 too). */
START_TEST(test_server_fd_slices) {
        unsigned features;
        int fd = raw_connect_hello(srv.path, &features);
        int a[2], b[2], c[2], codes[64];
        ck_assert_int_eq(pipe2(a, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(b, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(c, O_CLOEXEC), 0);
        const char *text =
                "{\"v\":1,\"op\":\"spawn_batch\",\"tag\":20,\"nfds\":[1,0,2],\"jobs\":["
                "{\"v\":1,\"op\":\"spawn\",\"tag\":1,\"path\":\"/bin/sh\",\"argv\":[\"sh\",\"-c\","
                "\"echo one\"],\"env\":[],\"cwd\":\"/\",\"fds\":[[1,0]]},"
                "{\"v\":1,\"op\":\"spawn\",\"tag\":2,\"path\":\"/bin/sh\",\"argv\":[\"sh\",\"-c\","
                "\"exit 0\"],\"env\":[],\"cwd\":\"/\",\"fds\":[]},"
                "{\"v\":1,\"op\":\"spawn\",\"tag\":3,\"path\":\"/bin/sh\",\"argv\":[\"sh\",\"-c\","
                "\"echo three; echo four >&4\"],\"env\":[],\"cwd\":\"/\",\"fds\":["
                "[1,0],[4,1]]}]}";
        cJSON *j = cJSON_Parse(text);
        int fds[3] = {a[1], b[1], c[1]};
        ck_assert_ptr_nonnull(j);
        ck_assert_int_eq(mps__wire_send(fd, j, fds, 3), 0);
        cJSON_Delete(j);
        close(a[1]);
        close(b[1]);
        close(c[1]);
        collect_exits(fd, 3, codes);
        char out[64];
        tu_read_all(a[0], out, sizeof(out), 30000);
        ck_assert_str_eq(out, "one\n");
        tu_read_all(b[0], out, sizeof(out), 30000);
        ck_assert_str_eq(out, "three\n");
        tu_read_all(c[0], out, sizeof(out), 30000);
        ck_assert_str_eq(out, "four\n");
        ck_assert_int_eq(codes[1] | codes[2] | codes[3], 0);
        close(a[0]);
        close(b[0]);
        close(c[0]);
        close(fd);
}
END_TEST

/* Sends text with two /dev/null descriptors attached. */
static void send_with_two_fds(int fd, const char *text) {
        int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
        int fds[2] = {nul, nul};
        cJSON *j = cJSON_Parse(text);
        ck_assert_ptr_nonnull(j);
        ck_assert_int_eq(mps__wire_send(fd, j, fds, 2), 0);
        cJSON_Delete(j);
        close(nul);
}

START_TEST(test_server_bad_batches) {
        unsigned features;
        int fd = raw_connect_hello(srv.path, &features);
        int base = server_fds();
        /* Counts that do not add up to the descriptors sent: each job is
         * told, none runs. */
        send_with_two_fds(fd, "{\"v\":1,\"op\":\"spawn_batch\",\"tag\":30,\"nfds\":[1,0],"
                              "\"jobs\":[" JOB(1, 0, "[]") "," JOB(2, 0, "[]") "]}");
        raw_expect_error(fd, 1, EINVAL, "request");
        raw_expect_error(fd, 2, EINVAL, "request");
        /* More than 16 jobs. */
        char *big = malloc(32768);
        int n = snprintf(big, 32768, "{\"v\":1,\"op\":\"spawn_batch\",\"tag\":31,\"nfds\":[");
        for (int i = 0; i < 17; i++)
                n += snprintf(big + n, 32768 - n, "%s0", i ? "," : "");
        n += snprintf(big + n, 32768 - n, "],\"jobs\":[");
        for (int i = 0; i < 17; i++)
                n += snprintf(big + n, 32768 - n,
                              "%s{\"v\":1,\"op\":\"spawn\",\"tag\":%d,\"path\":\"/bin/true\","
                              "\"argv\":[\"true\"],\"env\":[],\"cwd\":\"/\",\"fds\":[]}",
                              i ? "," : "", 40 + i);
        snprintf(big + n, 32768 - n, "]}");
        raw_send(fd, big);
        free(big);
        for (int i = 0; i < 16; i++)
                raw_expect_error(fd, 40 + i, EINVAL, "request");
        /* No jobs array: the request's own tag is told. */
        raw_send(fd, "{\"v\":1,\"op\":\"spawn_batch\",\"tag\":32,\"nfds\":[],\"jobs\":{}}");
        raw_expect_error(fd, 32, EINVAL, "request");
        raw_send(fd, "{\"v\":1,\"op\":\"spawn_batch\",\"tag\":33,\"nfds\":[],\"jobs\":[]}");
        raw_expect_error(fd, 33, EINVAL, "request");
        /* A job that is no spawn, or of no protocol version. */
        raw_send(fd, "{\"v\":1,\"op\":\"spawn_batch\",\"tag\":34,\"nfds\":[0,0],\"jobs\":["
                     "{\"v\":1,\"op\":\"signal\",\"tag\":3,\"id\":1,\"signal\":9},"
                     JOB(4, 0, "[]") "]}");
        raw_expect_error(fd, 3, EINVAL, "request");
        raw_expect_error(fd, 4, EINVAL, "request");
        raw_send(fd, "{\"v\":1,\"op\":\"spawn_batch\",\"tag\":35,\"nfds\":[0],\"jobs\":["
                     "{\"op\":\"spawn\",\"tag\":5,\"path\":\"/bin/true\",\"argv\":[\"true\"],"
                     "\"fds\":[]}]}");
        raw_expect_error(fd, 5, EINVAL, "request");
        /* A bad job among good ones: it alone is refused. */
        int codes[64], errs[64];
        memset(codes, 0xff, sizeof(codes));
        memset(errs, 0, sizeof(errs));
        send_with_two_fds(fd, "{\"v\":1,\"op\":\"spawn_batch\",\"tag\":36,\"nfds\":[1,0,1],"
                              "\"jobs\":[" JOB(6, 6, "[[0,0]]") ","
                              "{\"v\":1,\"op\":\"spawn\",\"tag\":7,\"argv\":[\"x\"],\"fds\":[]},"
                              JOB(8, 8, "[[0,0]]") "]}");
        collect_ends(fd, 3, codes, errs);
        ck_assert_int_eq(codes[6], 6);
        ck_assert_int_eq(errs[7], EINVAL);
        ck_assert_int_eq(codes[7], -1);
        ck_assert_int_eq(codes[8], 8);
        /* Still serving, alone and in batches, and nothing held. */
        raw_send(fd, JOB(10, 2, "[]"));
        raw_send(fd, "{\"v\":1,\"op\":\"spawn_batch\",\"tag\":37,\"nfds\":[0,0],\"jobs\":["
                     JOB(11, 3, "[]") "," JOB(12, 4, "[]") "]}");
        collect_exits(fd, 3, codes);
        ck_assert_int_eq(codes[10], 2);
        ck_assert_int_eq(codes[11], 3);
        ck_assert_int_eq(codes[12], 4);
        server_fds_back_to(base);
        close(fd);
}
END_TEST

/* ---- call jobs through pre-forked children ------------------------------------------ */

static void prefork_setup(void) {
        static char so[4096];
        tu_preload_table(so, sizeof(so));
        const char *extra[] = {"--preload", so, "--prefork", "2", NULL};
        tu_server_start(&srv, extra);
}

/* A batch's call jobs have no datagram of their own: the server prints
 * one for the pre-forked child that takes each. Each job's result is its
 * own arguments (result_echo), so a child given the wrong request, or
 * none it can read, shows. Both children are idle before the batch. */
START_TEST(test_prefork_call_jobs) {
        enum { N = 6 };
        mps_client *c = open_client(true);
        mps_server_stats st;
        mps_pool *pool;
        mps_spec *spec;
        mps_call_result res[N];
        const char *args[N] = {"0", "[1]", "{\"two\":2}", "\"three\"", "4.5", "null"};
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        for (int i = 0; i < 1000; i++) {
                ck_assert_int_eq(mps_client_stats(c, &st), 0);
                if (st.prefork_idle == 2)
                        break;
                mps__poll_one(-1, 0, 10);
        }
        ck_assert_uint_eq(st.prefork_idle, 2);
        ck_assert_int_eq(mps_pool_new(c, N, &pool), 0);
        ck_assert_int_eq(mps_pool_map_call(pool, spec, "result_echo", args, N, res), 0);
        ck_assert_uint_eq(mps__client_batches(c), 1);
        for (int i = 0; i < N; i++) {
                ck_assert_int_eq(res[i].exitcode, 0);
                ck_assert_ptr_nonnull(res[i].result);
                ck_assert_str_eq(res[i].result, args[i]);
        }
        mps_call_results_free(res, N);
        mps_spec_free(spec);
        mps_pool_close(pool);
        ck_assert_int_eq(mps_pool_join(pool, 30000), 0);
        mps_pool_free(pool);
        mps_client_close(c);
}
END_TEST

static Suite *batch_suite(void) {
        Suite *s = suite_create("batch");
        TCase *tc = tcase_create("library");
        tcase_add_checked_fixture(tc, server_setup, server_teardown);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_map_in_batches);
        tcase_add_test(tc, test_batch_jobs_have_their_own_fds_env_cwd);
        tcase_add_test(tc, test_batch_start_failure_alone);
        tcase_add_test(tc, test_refills);
        tcase_add_test(tc, test_dispatch_with_nothing_waiting);
        suite_add_tcase(s, tc);
        tc = tcase_create("server");
        tcase_add_checked_fixture(tc, server_setup, server_teardown);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_server_answers_each_tag);
        tcase_add_test(tc, test_server_fd_slices);
        tcase_add_test(tc, test_server_bad_batches);
        suite_add_tcase(s, tc);
        tc = tcase_create("prefork");
        tcase_add_checked_fixture(tc, prefork_setup, server_teardown);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_prefork_call_jobs);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(batch_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
