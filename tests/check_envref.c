/* SPDX-License-Identifier: MIT */
/*
 * check_envref.c: environments stored on a connection (the env_ref
 * feature, issue 18): each job still gets exactly its own environment.
 *
 *   jobs      a job sees its env; jobs with different envs on one
 *             connection, more of them than the server has slots, each
 *             see their own; a changed environ between jobs is seen
 *   server    env_ref to an id nothing was stored under, a bad env
 *             request, and one past the user's memory bound are clear
 *             errors, and the server keeps serving
 *   wire      what the library sends: a server without the feature gets
 *             the full env in every spawn; one with it gets the env inline
 *             once, stored once, then only env_ref
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../include/mpspawn.h"
#include "../launcher/fdutil.h"
#include "../launcher/wire.h"
#include "clientutil.h"
#include "rawclient.h"
#include "testutil.h"

static struct tu_server srv;

static void server_setup(void) {
        char conf[80];
        snprintf(conf, sizeof(conf), "/tmp/mps-envref-%d.conf", (int)getpid());
        FILE *f = fopen(conf, "w");
        ck_assert_ptr_nonnull(f);
        /* The least a user may queue: three environments of 15 KB, each
         * held twice (its strings and its request), exceed it. */
        fprintf(f, "client_queue_bytes_per_uid = 65536\n");
        fclose(f);
        const char *extra[] = {"--config", conf, NULL};
        tu_server_start(&srv, extra);
        unlink(conf);
}

static void server_teardown(void) {
        tu_server_stop(&srv);
}


/* Runs sh -c script with spec's environment; its stdout into out. */
static void run_sh(mps_client *c, mps_spec *spec, const char *script, char *out,
                   size_t outlen) {
        const char *argv[] = {"/bin/sh", "-c", script, NULL};
        mps_process *p;
        int pfd[2];
        ck_assert_int_eq(mps_spec_set_exec(spec, argv[0], argv), 0);
        ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
        ck_assert_int_eq(mps_spec_map_fd(spec, 1, pfd[1]), 0);
        ck_assert_int_eq(mps_process_new(c, spec, &p), 0);
        int r = mps_start(p);
        ck_assert_msg(r == 0, "start failed: %s (%s)", mps_strerror(r), mps_client_error(c));
        close(pfd[1]);
        tu_read_all(pfd[0], out, outlen, 30000);
        close(pfd[0]);
        ck_assert_int_eq(mps_join(p, 30000), 0);
        ck_assert_int_eq(mps_exitcode(p), 0);
        mps_process_close(p);
}

/* ---- jobs ------------------------------------------------------------------------ */

START_TEST(test_jobs_see_their_env) {
        mps_client *c = cu_client_open(srv.path);
        mps_spec *spec;
        char out[256], want[64];
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        /* Six environments on one connection of four slots, twice round,
         * and the same one twice in a row. */
        for (int round = 0; round < 2; round++)
                for (int i = 0; i < 6; i++)
                        for (int twice = 0; twice < 2; twice++) {
                                char v[16];
                                snprintf(v, sizeof(v), "v%d", i);
                                ck_assert_int_eq(mps_spec_env_set(spec, "MPS_ENVREF_X", v), 0);
                                run_sh(c, spec, "echo \"$MPS_ENVREF_X\"; env | wc -l", out,
                                       sizeof(out));
                                snprintf(want, sizeof(want), "v%d\n", i);
                                ck_assert_msg(strncmp(out, want, strlen(want)) == 0,
                                              "job %d/%d saw %s", round, i, out);
                        }
        /* The whole environment, not only the one variable: the caller's
         * count of entries, plus MPS_ENVREF_X. */
        size_t n = 0;
        extern char **environ;
        for (char **e = environ; *e; e++)
                n += strncmp(*e, "MPS_ENVREF_X=", 13) != 0;
        snprintf(want, sizeof(want), "v5\n%zu\n", n + 1);
        ck_assert_str_eq(out, want);
        mps_spec_free(spec);
        mps_client_close(c);
}
END_TEST

START_TEST(test_changed_environ) {
        mps_client *c = cu_client_open(srv.path);
        mps_spec *spec;
        char out[256];
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        setenv("MPS_ENVREF_Y", "before", 1);
        run_sh(c, spec, "echo \"$MPS_ENVREF_Y\"", out, sizeof(out));
        ck_assert_str_eq(out, "before\n");
        setenv("MPS_ENVREF_Y", "after", 1);
        run_sh(c, spec, "echo \"$MPS_ENVREF_Y\"", out, sizeof(out));
        ck_assert_str_eq(out, "after\n");
        unsetenv("MPS_ENVREF_Y");
        run_sh(c, spec, "echo \"${MPS_ENVREF_Y-unset}\"", out, sizeof(out));
        ck_assert_str_eq(out, "unset\n");
        mps_spec_free(spec);
        mps_client_close(c);
}
END_TEST

/* ---- the server's answers, on a raw connection -------------------------------------- */

#define SPAWN_ECHO(tag, envfield)                                                         \
        "{\"v\":1,\"op\":\"spawn\",\"tag\":" #tag ",\"path\":\"/bin/sh\",\"argv\":[\"sh\","  \
        "\"-c\",\"exit $E\"]," envfield ",\"fds\":[]}"

/* The job's exit code: $E from the environment it got. */
static int raw_exitcode(int fd) {
        cJSON_Delete(raw_expect(fd, MPS_OP_SPAWNED));
        cJSON *j = raw_expect(fd, MPS_OP_EXITED);
        struct mps__exited e;
        char why[256];
        ck_assert_int_eq(mps__exited_decode(j, &e, why, sizeof(why)), 0);
        cJSON_Delete(j);
        return e.exitcode;
}

START_TEST(test_server_env_ref) {
        unsigned features;
        int fd = raw_connect_hello(srv.path, &features);
        ck_assert(features & MPS_FEATURE_ENV_REF);
        /* Nothing stored under 3 yet. */
        raw_send(fd, SPAWN_ECHO(1, "\"env_ref\":3"));
        raw_expect_error(fd, 1, ENOENT, "env");
        /* Stored, used, replaced, used again. */
        raw_send(fd, "{\"v\":1,\"op\":\"env\",\"tag\":2,\"id\":3,\"env\":[\"E=7\"]}");
        raw_send(fd, SPAWN_ECHO(3, "\"env_ref\":3"));
        ck_assert_int_eq(raw_exitcode(fd), 7);
        raw_send(fd, "{\"v\":1,\"op\":\"env\",\"tag\":4,\"id\":3,\"env\":[\"E=9\"]}");
        raw_send(fd, SPAWN_ECHO(5, "\"env_ref\":3"));
        ck_assert_int_eq(raw_exitcode(fd), 9);
        /* Bad requests: an id out of range, env and env_ref at once. */
        raw_send(fd, "{\"v\":1,\"op\":\"env\",\"tag\":6,\"id\":5,\"env\":[]}");
        raw_expect_error(fd, 6, EINVAL, "request");
        raw_send(fd, SPAWN_ECHO(7, "\"env_ref\":3,\"env\":[\"E=1\"]"));
        raw_expect_error(fd, 7, EINVAL, "request");
        /* Past the user's bound (65536 bytes): the third is
         * refused, and its id then holds nothing, not what it held. */
        size_t big = 15000;
        char *msg = malloc(big + 200);
        for (int id = 1; id <= 3; id++) {
                int n = snprintf(msg, 200, "{\"v\":1,\"op\":\"env\",\"tag\":%d,\"id\":%d,"
                                 "\"env\":[\"E=3\",\"P=", 10 + id, id);
                memset(msg + n, 'x', big);
                strcpy(msg + n + big, "\"]}");
                raw_send(fd, msg);
        }
        free(msg);
        raw_expect_error(fd, 13, ENOBUFS, "env");
        raw_send(fd, SPAWN_ECHO(14, "\"env_ref\":3"));
        raw_expect_error(fd, 14, ENOENT, "env");
        raw_send(fd, SPAWN_ECHO(15, "\"env_ref\":1"));
        ck_assert_int_eq(raw_exitcode(fd), 3);
        /* Still serving, inline environments too. */
        raw_send(fd, SPAWN_ECHO(16, "\"env\":[\"E=5\"]"));
        ck_assert_int_eq(raw_exitcode(fd), 5);
        close(fd);
}
END_TEST

/* ---- call jobs through pre-forked children ---------------------------------------- */

static void prefork_setup(void) {
        char preload[PATH_MAX];
        snprintf(preload, sizeof(preload), "%s", tu_forkserver());
        char *slash = strrchr(preload, '/');
        ck_assert_ptr_nonnull(slash);
        snprintf(slash, sizeof(preload) - (size_t)(slash - preload), "/tests/preload_table.so");
        const char *extra[] = {"--preload", preload, "--prefork", "2", NULL};
        tu_server_start(&srv, extra);
}

/* A pre-forked child was forked before the environment was stored: the
 * server hands it over with the request. */
START_TEST(test_prefork_call_jobs_see_their_env) {
        mps_client *c = cu_client_open(srv.path);
        mps_spec *spec;
        char out[256], want[64];
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_set_call(spec, "show_env", "\"MPS_ENVREF_C\""), 0);
        for (int i = 0; i < 12; i++) {
                char v[16];
                snprintf(v, sizeof(v), "c%d", i % 3);
                ck_assert_int_eq(mps_spec_env_set(spec, "MPS_ENVREF_C", v), 0);
                int pfd[2];
                mps_process *p;
                ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
                ck_assert_int_eq(mps_spec_map_fd(spec, 1, pfd[1]), 0);
                ck_assert_int_eq(mps_process_new(c, spec, &p), 0);
                int r = mps_start(p);
                ck_assert_msg(r == 0, "start failed: %s (%s)", mps_strerror(r),
                              mps_client_error(c));
                close(pfd[1]);
                tu_read_all(pfd[0], out, sizeof(out), 30000);
                close(pfd[0]);
                ck_assert_int_eq(mps_join(p, 30000), 0);
                ck_assert_int_eq(mps_exitcode(p), 0);
                mps_process_close(p);
                snprintf(want, sizeof(want), "MPS_ENVREF_C=%s cwd=", v);
                ck_assert_msg(strncmp(out, want, strlen(want)) == 0, "job %d: %s", i, out);
        }
        mps_spec_free(spec);
        mps_client_close(c);
}
END_TEST

/* ---- what the library sends ----------------------------------------------------------- */

/* A pretend server on its own socket: it welcomes with features, then
 * reads njobs spawns (and any env requests), answering each spawn with an
 * error. Its exit status: 0 when what came matched with_ref. */
static int fake_server_run(int lfd, unsigned features, int njobs) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        struct mps__msg msg;
        char err[256];
        int envs = 0, refs = 0, inline_envs = 0;
        if (fd < 0 || mps__poll_one(fd, POLLIN, 30000) != 1 ||
            mps__wire_recv(fd, &msg, err, sizeof(err), NULL) != 1 || msg.op != MPS_OP_HELLO)
                return 10;
        mps__msg_release(&msg);
        struct mps__welcome w = {.protocol = 1, .version = "old", .pid = getpid(),
                                 .features = features};
        cJSON *j = mps__welcome_encode(&w);
        mps__wire_send(fd, j, NULL, 0);
        cJSON_Delete(j);
        for (int jobs = 0; jobs < njobs;) {
                if (mps__poll_one(fd, POLLIN, 30000) != 1 ||
                    mps__wire_recv(fd, &msg, err, sizeof(err), NULL) != 1)
                        return 11;
                if (msg.op == MPS_OP_ENV) {
                        envs++;
                } else if (msg.op == MPS_OP_SPAWN) {
                        jobs++;
                        refs += cJSON_GetObjectItem(msg.json, "env_ref") != NULL;
                        cJSON *env = cJSON_GetObjectItem(msg.json, "env");
                        inline_envs += cJSON_GetArraySize(env) > 1;
                        struct mps__error e = {.tag = msg.tag, .err = ENOSYS,
                                               .stage = "request", .message = "pretend"};
                        j = mps__error_encode(&e);
                        mps__wire_send(fd, j, NULL, 0);
                        cJSON_Delete(j);
                }
                mps__msg_release(&msg);
        }
        close(fd);
        /* Inline the first time, stored at the second, named from then on. */
        if (features & MPS_FEATURE_ENV_REF)
                return envs == 1 && refs == njobs - 1 && inline_envs == 1 ? 0 : 20;
        return envs == 0 && refs == 0 && inline_envs == njobs ? 0 : 21;
}

static void library_sends(unsigned features) {
        char dir[64], path[100];
        tu_tmpdir(dir, sizeof(dir));
        snprintf(path, sizeof(path), "%s/sock", dir);
        int lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
        ck_assert_int_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
        ck_assert_int_eq(listen(lfd, 1), 0);
        pid_t pid = fork();
        if (pid == 0)
                _exit(fake_server_run(lfd, features, 3));
        close(lfd);
        mps_client *c = NULL;
        char *msg = NULL;
        ck_assert_msg(mps_client_open(path, &c, &msg) == 0, "%s", msg ? msg : "?");
        mps_spec *spec;
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_env_set(spec, "MPS_ENVREF_Z", "1"), 0);
        const char *argv[] = {"/bin/true", NULL};
        ck_assert_int_eq(mps_spec_set_exec(spec, argv[0], argv), 0);
        for (int i = 0; i < 3; i++) {
                mps_process *p;
                ck_assert_int_eq(mps_process_new(c, spec, &p), 0);
                ck_assert_int_eq(mps_start(p), -ENOSYS);
                mps_process_close(p);
        }
        mps_spec_free(spec);
        mps_client_close(c);
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the pretend server saw %#x", st);
        unlink(path);
        rmdir(dir);
}

START_TEST(test_old_server_gets_full_env) {
        library_sends(MPS_FEATURES_ALL & ~MPS_FEATURE_ENV_REF & ~MPS_FEATURE_ADOPT);
}
END_TEST

START_TEST(test_new_server_gets_env_once) {
        library_sends(MPS_FEATURES_ALL & ~MPS_FEATURE_ADOPT);
}
END_TEST

static Suite *envref_suite(void) {
        Suite *s = suite_create("envref");
        TCase *tc = tcase_create("jobs");
        tcase_add_checked_fixture(tc, server_setup, server_teardown);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_jobs_see_their_env);
        tcase_add_test(tc, test_changed_environ);
        tcase_add_test(tc, test_server_env_ref);
        suite_add_tcase(s, tc);
        tc = tcase_create("prefork");
        tcase_add_checked_fixture(tc, prefork_setup, server_teardown);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_prefork_call_jobs_see_their_env);
        suite_add_tcase(s, tc);
        tc = tcase_create("wire");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_old_server_gets_full_env);
        tcase_add_test(tc, test_new_server_gets_env_once);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(envref_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
