/* SPDX-License-Identifier: MIT */
/*
 * check_process.c: end-to-end tests of libmpspawn against a real
 * mpforkserver on a temporary socket (and the embedded default), launching
 * real programs. The binary re-executes itself as a helper job
 * (--list-fds) where a shell would add descriptors of its own.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../include/mpspawn.h"
#include "clientutil.h"
#include "testutil.h"

static char self_exe[4096];
static struct tu_server srv;

/* ---- helper job ---------------------------------------------------------- */

/* Prints the numbers of this process's open fds, space-separated, and writes
 * "via5" to fd 5 if it is open. */
static int helper_list_fds(void) {
        char line[1024] = "";
        size_t n = 0;
        DIR *d = opendir("/proc/self/fd");
        if (!d)
                return 99;
        int self = dirfd(d);
        int fds[256], k = 0;
        struct dirent *e;
        while ((e = readdir(d)) && k < 256) {
                if (e->d_name[0] == '.')
                        continue;
                int fd = atoi(e->d_name);
                if (fd != self)
                        fds[k++] = fd;
        }
        closedir(d);
        for (int i = 0; i < k; i++) /* readdir order is not numeric */
                for (int j = i + 1; j < k; j++)
                        if (fds[j] < fds[i]) {
                                int t = fds[i];
                                fds[i] = fds[j];
                                fds[j] = t;
                        }
        for (int i = 0; i < k; i++)
                n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%d", i ? " " : "",
                                      fds[i]);
        printf("%s\n", line);
        fflush(stdout);
        if (fcntl(5, F_GETFD) >= 0)
                (void)!write(5, "via5", 4);
        return 0;
}

/* ---- fixtures ------------------------------------------------------------ */

static void server_setup(void) {
        const char *extra[] = {"--grace", "1", NULL};
        tu_server_start(&srv, extra);
}

static void server_teardown(void) {
        int st = tu_server_stop(&srv);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "the server did not exit cleanly (status %#x)", st);
}


/* Runs argv to the end with stdout into a pipe; returns the exit code and
 * the output. */
static int run_job(mps_client *c, const char *const *argv, mps_spec *base,
                   char *out, size_t outlen) {
        mps_spec *spec = base;
        mps_process *p = NULL;
        int pfd[2];
        if (!spec)
                ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_set_exec(spec, argv[0], argv), 0);
        ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
        ck_assert_int_eq(mps_spec_map_fd(spec, 1, pfd[1]), 0);
        ck_assert_int_eq(mps_process_new(c, spec, &p), 0);
        int r = mps_start(p);
        ck_assert_msg(r == 0, "start failed: %s (%s)", mps_strerror(r), mps_client_error(c));
        close(pfd[1]);
        if (out)
                tu_read_all(pfd[0], out, outlen, 30000);
        close(pfd[0]);
        ck_assert_int_eq(mps_join(p, -1), 0);
        int code = mps_exitcode(p);
        ck_assert_int_eq(mps_is_alive(p), 0);
        ck_assert_int_eq(mps_process_close(p), 0);
        if (!base)
                mps_spec_free(spec);
        return code;
}

/* Starts argv and returns the running process. */
static mps_process *start_job(mps_client *c, const char *const *argv, bool daemon) {
        mps_spec *spec;
        mps_process *p;
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_set_exec(spec, argv[0], argv), 0);
        ck_assert_int_eq(mps_spec_set_daemon(spec, daemon), 0);
        ck_assert_int_eq(mps_process_new(c, spec, &p), 0);
        mps_spec_free(spec);
        int r = mps_start(p);
        ck_assert_msg(r == 0, "start failed: %s", mps_client_error(c));
        return p;
}

/* ---- exit codes and signals --------------------------------------------------- */

START_TEST(test_exit_code) {
        mps_client *c = cu_client_open(srv.path);
        const char *argv[] = {"/bin/sh", "-c", "exit 42", NULL};
        ck_assert_int_eq(run_job(c, argv, NULL, NULL, 0), 42);
        const char *zero[] = {"true", NULL}; /* found through PATH */
        ck_assert_int_eq(run_job(c, zero, NULL, NULL, 0), 0);
        mps_client_close(c);
}
END_TEST

START_TEST(test_killed_by_signal) {
        mps_client *c = cu_client_open(srv.path);
        const char *kill9[] = {"/bin/sh", "-c", "kill -KILL $$", NULL};
        ck_assert_int_eq(run_job(c, kill9, NULL, NULL, 0), -9);
        const char *term[] = {"/bin/sh", "-c", "kill -TERM $$", NULL};
        ck_assert_int_eq(run_job(c, term, NULL, NULL, 0), -15);
        mps_client_close(c);
}
END_TEST

START_TEST(test_exit_info) {
        mps_client *c = cu_client_open(srv.path);
        const char *argv[] = {"/bin/sh", "-c", "exit 7", NULL};
        mps_process *p = start_job(c, argv, false);
        mps_exit_info info;
        ck_assert_int_eq(mps_join(p, -1), 0);
        ck_assert_int_eq(mps_exit_info_get(p, &info), 0);
        ck_assert_int_eq(info.exitcode, 7);
        ck_assert(!info.core_dumped);
        ck_assert(!info.timed_out);
        ck_assert_int_gt(info.max_rss_kib, 0);
        ck_assert(info.wall_seconds > 0);
        ck_assert_int_gt(mps_job_id(p), 0);
        ck_assert_int_eq(mps_process_close(p), 0);
        mps_client_close(c);
}
END_TEST

/* ---- start failures ----------------------------------------------------------- */

START_TEST(test_exec_enoent_is_an_error_not_an_exit) {
        mps_client *c = cu_client_open(srv.path);
        mps_spec *spec;
        mps_process *p;
        const char *argv[] = {"mpspawn-no-such-program", NULL};
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_set_exec(spec, argv[0], argv), 0);
        ck_assert_int_eq(mps_process_new(c, spec, &p), 0);
        ck_assert_int_eq(mps_start(p), -ENOENT);
        ck_assert_str_eq(mps_start_failed_stage(p), "exec");
        ck_assert_ptr_nonnull(strstr(mps_client_error(c), "mpspawn-no-such-program"));
        ck_assert_int_eq(mps_exitcode(p), MPS_EXITCODE_NONE);
        ck_assert_int_eq(mps_is_alive(p), 0);
        ck_assert_int_eq(mps_join(p, 0), -EINVAL);
        ck_assert_int_eq(mps_start(p), -EALREADY);
        ck_assert_int_eq(mps_process_close(p), 0);
        mps_spec_free(spec);
        mps_client_close(c);
}
END_TEST

START_TEST(test_exec_eacces) {
        char dir[64], file[128];
        tu_tmpdir(dir, sizeof(dir));
        snprintf(file, sizeof(file), "%s/not-executable", dir);
        int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, "#!/bin/sh\n", 10), 10);
        close(fd);

        mps_client *c = cu_client_open(srv.path);
        mps_spec *spec;
        mps_process *p;
        const char *argv[] = {file, NULL};
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_set_exec(spec, file, argv), 0);
        ck_assert_int_eq(mps_process_new(c, spec, &p), 0);
        ck_assert_int_eq(mps_start(p), -EACCES);
        ck_assert_str_eq(mps_start_failed_stage(p), "exec");
        ck_assert_ptr_nonnull(strstr(mps_client_error(c), "Permission denied"));
        mps_process_close(p);
        mps_spec_free(spec);
        mps_client_close(c);
        unlink(file);
        rmdir(dir);
}
END_TEST

START_TEST(test_bad_cwd_is_a_chdir_error) {
        mps_client *c = cu_client_open(srv.path);
        mps_spec *spec;
        mps_process *p;
        const char *argv[] = {"/bin/true", NULL};
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_set_exec(spec, argv[0], argv), 0);
        ck_assert_int_eq(mps_spec_set_cwd(spec, "/nonexistent-dir"), 0);
        ck_assert_int_eq(mps_process_new(c, spec, &p), 0);
        ck_assert_int_eq(mps_start(p), -ENOENT);
        ck_assert_str_eq(mps_start_failed_stage(p), "chdir");
        ck_assert_ptr_nonnull(strstr(mps_client_error(c), "/nonexistent-dir"));
        mps_process_close(p);
        mps_spec_free(spec);
        mps_client_close(c);
}
END_TEST

START_TEST(test_start_twice_and_close_running) {
        mps_client *c = cu_client_open(srv.path);
        const char *argv[] = {"/bin/sleep", "30", NULL};
        mps_process *p = start_job(c, argv, false);
        ck_assert_int_eq(mps_start(p), -EALREADY);
        ck_assert_int_eq(mps_process_close(p), -EBUSY);
        ck_assert_int_eq(mps_kill(p), 0);
        ck_assert_int_eq(mps_join(p, -1), 0);
        ck_assert_int_eq(mps_exitcode(p), -SIGKILL);
        ck_assert_int_eq(mps_process_close(p), 0);
        mps_client_close(c);
}
END_TEST

/* ---- fds, env, cwd ------------------------------------------------------------- */

START_TEST(test_fds_arrive_at_their_numbers_and_nothing_else) {
        mps_client *c = cu_client_open(srv.path);
        mps_spec *spec;
        char out[256], via[16];
        int side[2];
        /* Some noise in our own fd table that must not leak into the job. */
        int noise = open("/dev/null", O_RDONLY); /* deliberately not CLOEXEC */
        ck_assert_int_ge(noise, 0);
        ck_assert_int_eq(pipe2(side, O_CLOEXEC), 0);
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_map_fd(spec, 5, side[1]), 0);
        const char *argv[] = {self_exe, "--list-fds", NULL};
        ck_assert_int_eq(run_job(c, argv, spec, out, sizeof(out)), 0);
        ck_assert_str_eq(out, "0 1 2 5\n");
        close(side[1]);
        tu_read_all(side[0], via, sizeof(via), 10000);
        ck_assert_str_eq(via, "via5");
        close(side[0]);
        close(noise);
        mps_spec_free(spec);
        mps_client_close(c);
}
END_TEST

/* The server's pidfds (fdinfo has a "Pid:" line): how many, and the lowest. */
static int server_pidfds(pid_t server, int *lowest) {
        char dir[64], path[384], line[128];
        int n = 0;
        *lowest = INT_MAX;
        snprintf(dir, sizeof(dir), "/proc/%d/fdinfo", (int)server);
        DIR *d = opendir(dir);
        ck_assert_ptr_nonnull(d);
        for (struct dirent *e; (e = readdir(d));) {
                if (e->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
                FILE *f = fopen(path, "re");
                if (!f)
                        continue;
                while (fgets(line, sizeof(line), f))
                        if (strncmp(line, "Pid:", 4) == 0) {
                                n++;
                                if (atoi(e->d_name) < *lowest)
                                        *lowest = atoi(e->d_name);
                        }
                fclose(f);
        }
        closedir(d);
        return n;
}

/* The server's open fds, as "3 4 5 ..." in /proc order (ascending). */
static void server_fd_list(pid_t server, char *buf, size_t len) {
        char dir[64];
        size_t used = 0;
        snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)server);
        DIR *d = opendir(dir);
        ck_assert_ptr_nonnull(d);
        buf[0] = '\0';
        for (struct dirent *e; (e = readdir(d));)
                if (e->d_name[0] != '.' && used < len)
                        used += (size_t)snprintf(buf + used, len - used, "%s ", e->d_name);
        closedir(d);
        ck_assert_uint_lt(used, len);
}

/*
 * Exec jobs' clones share the server's fd table until the child keeps a
 * copy of the low fds it needs (CLOSE_RANGE_UNSHARE), with the server's
 * pidfds kept at 1024 and above: a job started while others are tracked
 * still sees exactly its own fds, the server's table is intact after, and
 * its pidfds sit above the floor (where the kernel has the flag and the
 * server's fd limit leaves room).
 */
START_TEST(test_fds_of_a_job_started_while_many_are_tracked) {
        mps_client *c = cu_client_open(srv.path);
        const char *sleeper[] = {"/bin/sleep", "600", NULL};
        const char *list[] = {self_exe, "--list-fds", NULL};
        mps_process *held[20];
        char out[256], before[1024], after[1024];
        for (size_t i = 0; i < 20; i++)
                held[i] = start_job(c, sleeper, true);
        /* "spawned" can come before the server has closed the fds that
         * came with the request; a reply to a later request cannot. */
        mps_server_stats stats;
        ck_assert_int_eq(mps_client_stats(c, &stats), 0);
        server_fd_list(srv.pid, before, sizeof(before));
        for (int round = 0; round < 3; round++) {
                mps_spec *spec;
                int side[2];
                ck_assert_int_eq(pipe2(side, O_CLOEXEC), 0);
                ck_assert_int_eq(mps_spec_new(&spec), 0);
                ck_assert_int_eq(mps_spec_map_fd(spec, 5, side[1]), 0);
                ck_assert_int_eq(run_job(c, list, spec, out, sizeof(out)), 0);
                ck_assert_str_eq(out, "0 1 2 5\n");
                close(side[0]);
                close(side[1]);
                mps_spec_free(spec);
        }
        /* The children shared the table for a while: it must be as it was. */
        ck_assert_int_eq(mps_client_stats(c, &stats), 0);
        server_fd_list(srv.pid, after, sizeof(after));
        ck_assert_str_eq(after, before);
        int lowest;
        int n = server_pidfds(srv.pid, &lowest);
        struct rlimit lim;
        ck_assert_int_eq(prlimit(srv.pid, RLIMIT_NOFILE, NULL, &lim), 0);
        bool floor = close_range(~0u, ~0u, CLOSE_RANGE_UNSHARE) == 0 && lim.rlim_cur >= 4096;
        /* No pidfds when the server tracks by SIGCHLD: forced, or under
         * valgrind (tests/valgrind.sh), which lacks pidfd_open. */
        const char *forced = getenv("MPSPAWN_SERVER_NO_PIDFD");
        if ((forced && *forced) || getenv("MPSPAWN_FORKSERVER_UNDER_TEST")) {
                ck_assert_int_eq(n, 0);
        } else {
                ck_assert_int_eq(n, 20); /* the held jobs', none of the others' */
                if (floor)
                        ck_assert_msg(lowest >= 1024, "a pidfd of the server is fd %d",
                                      lowest);
                else
                        fprintf(stderr, "pidfd floor not checked: no CLOSE_RANGE_UNSHARE "
                                        "or fd limit %llu < 4096\n",
                                (unsigned long long)lim.rlim_cur);
        }
        for (size_t i = 0; i < 20; i++) {
                ck_assert_int_eq(mps_kill(held[i]), 0);
                ck_assert_int_eq(mps_join(held[i], -1), 0);
                mps_process_close(held[i]);
        }
        mps_client_close(c);
}
END_TEST

/*
 * The highest target the protocol allows (1023), from a server started
 * with the usual soft fd limit of 1024: the child restores that limit for
 * the job, and must do so only after it has moved the fds into place
 * (it did so before, and the move to 1024 and up failed with EINVAL).
 */
START_TEST(test_fd_target_1023_under_a_soft_limit_of_1024) {
        struct rlimit saved, low;
        /* valgrind keeps the top fds under the limit for itself. */
        if (getenv("MPSPAWN_FORKSERVER_UNDER_TEST")) {
                fprintf(stderr, "skipped under valgrind: it emulates RLIMIT_NOFILE\n");
                return;
        }
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
        if (saved.rlim_max < 2048) {
                fprintf(stderr, "skipped: hard fd limit %llu < 2048\n",
                        (unsigned long long)saved.rlim_max);
                return;
        }
        low = (struct rlimit){1024, saved.rlim_max};
        struct tu_server s2;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
        tu_server_start(&s2, NULL);
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
        mps_client *c = NULL;
        ck_assert_int_eq(mps_client_open(s2.path, &c, NULL), 0);
        mps_spec *spec;
        int side[2];
        char out[64];
        ck_assert_int_eq(pipe2(side, O_CLOEXEC), 0);
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_map_fd(spec, 1023, side[1]), 0);
        const char *list[] = {self_exe, "--list-fds", NULL};
        ck_assert_int_eq(run_job(c, list, spec, out, sizeof(out)), 0);
        ck_assert_str_eq(out, "0 1 2 1023\n");
        close(side[0]);
        close(side[1]);
        mps_spec_free(spec);
        mps_client_close(c);
        int st = tu_server_stop(&s2);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
END_TEST

START_TEST(test_fd_map_swaps_stdout_and_stderr) {
        /* Targets that are each other's sources: the child must move them
         * out of the way before installing either. */
        mps_client *c = cu_client_open(srv.path);
        mps_spec *spec;
        int a[2], b[2];
        char outa[64], outb[64];
        ck_assert_int_eq(pipe2(a, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(b, O_CLOEXEC), 0);
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_map_fd(spec, 1, a[1]), 0);
        ck_assert_int_eq(mps_spec_map_fd(spec, 2, b[1]), 0);
        const char *argv[] = {"/bin/sh", "-c", "echo out; echo err >&2", NULL};
        ck_assert_int_eq(mps_spec_set_exec(spec, argv[0], argv), 0);
        mps_process *p;
        ck_assert_int_eq(mps_process_new(c, spec, &p), 0);
        ck_assert_int_eq(mps_start(p), 0);
        close(a[1]);
        close(b[1]);
        tu_read_all(a[0], outa, sizeof(outa), 10000);
        tu_read_all(b[0], outb, sizeof(outb), 10000);
        ck_assert_str_eq(outa, "out\n");
        ck_assert_str_eq(outb, "err\n");
        ck_assert_int_eq(mps_join(p, -1), 0);
        ck_assert_int_eq(mps_exitcode(p), 0);
        mps_process_close(p);
        close(a[0]);
        close(b[0]);
        mps_spec_free(spec);
        mps_client_close(c);
}
END_TEST

START_TEST(test_env_clear_set_unset) {
        mps_client *c = cu_client_open(srv.path);
        mps_spec *spec;
        char out[65536];
        const char *argv[] = {"/usr/bin/env", NULL};

        ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_env_clear(spec), 0);
        ck_assert_int_eq(mps_spec_env_set(spec, "FOO", "bar baz"), 0);
        ck_assert_int_eq(mps_spec_env_set(spec, "GONE", "x"), 0);
        ck_assert_int_eq(mps_spec_env_unset(spec, "GONE"), 0);
        ck_assert_int_eq(run_job(c, argv, spec, out, sizeof(out)), 0);
        ck_assert_str_eq(out, "FOO=bar baz\n");
        mps_spec_free(spec);

        /* Inherit: our variables arrive, set overrides, unset removes. */
        setenv("MPS_TEST_INHERITED", "yes", 1);
        setenv("MPS_TEST_REMOVED", "no", 1);
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_env_set(spec, "MPS_TEST_SET", "1"), 0);
        ck_assert_int_eq(mps_spec_env_unset(spec, "MPS_TEST_REMOVED"), 0);
        ck_assert_int_eq(run_job(c, argv, spec, out, sizeof(out)), 0);
        ck_assert_ptr_nonnull(strstr(out, "MPS_TEST_INHERITED=yes\n"));
        ck_assert_ptr_nonnull(strstr(out, "MPS_TEST_SET=1\n"));
        ck_assert_ptr_null(strstr(out, "MPS_TEST_REMOVED"));
        mps_spec_free(spec);
        mps_client_close(c);
}
END_TEST

START_TEST(test_cwd) {
        mps_client *c = cu_client_open(srv.path);
        mps_spec *spec;
        char out[256], here[1024];
        const char *argv[] = {"/bin/pwd", NULL};
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_set_cwd(spec, "/usr/share"), 0);
        ck_assert_int_eq(run_job(c, argv, spec, out, sizeof(out)), 0);
        ck_assert_str_eq(out, "/usr/share\n");
        mps_spec_free(spec);
        /* Default: the caller's working directory. */
        ck_assert_int_eq(chdir("/usr/lib"), 0);
        ck_assert_int_eq(run_job(c, argv, NULL, out, sizeof(out)), 0);
        ck_assert_ptr_nonnull(getcwd(here, sizeof(here)));
        strcat(here, "\n");
        ck_assert_str_eq(out, here);
        mps_client_close(c);
}
END_TEST

/* ---- join, terminate, kill, sentinel ----------------------------------------------- */

START_TEST(test_join_timeout_returns_while_alive) {
        mps_client *c = cu_client_open(srv.path);
        const char *argv[] = {"/bin/sleep", "30", NULL};
        mps_process *p = start_job(c, argv, false);
        ck_assert_int_gt(mps_pid(p), 0);
        ck_assert_int_eq(mps_join(p, 50), 0);
        ck_assert_int_eq(mps_is_alive(p), 1);
        ck_assert_int_eq(mps_exitcode(p), MPS_EXITCODE_NONE);
        ck_assert_int_eq(mps_terminate(p), 0);
        ck_assert_int_eq(mps_join(p, -1), 0);
        ck_assert_int_eq(mps_is_alive(p), 0);
        ck_assert_int_eq(mps_exitcode(p), -SIGTERM);
        /* Signalling an ended process is a no-op, as in Python. */
        ck_assert_int_eq(mps_kill(p), 0);
        mps_process_close(p);
        mps_client_close(c);
}
END_TEST

START_TEST(test_kill) {
        mps_client *c = cu_client_open(srv.path);
        /* Ignores SIGTERM: only SIGKILL ends it. */
        const char *argv[] = {"/bin/sh", "-c", "trap '' TERM; exec sleep 30", NULL};
        mps_process *p = start_job(c, argv, false);
        ck_assert_int_eq(mps_kill(p), 0);
        ck_assert_int_eq(mps_join(p, -1), 0);
        ck_assert_int_eq(mps_exitcode(p), -SIGKILL);
        mps_process_close(p);
        mps_client_close(c);
}
END_TEST

START_TEST(test_sentinel_becomes_readable) {
        mps_client *c = cu_client_open(srv.path);
        const char *argv[] = {"/bin/sleep", "30", NULL};
        mps_process *p = start_job(c, argv, false);
        int s = mps_sentinel(p);
        ck_assert_int_ge(s, 0);
        struct pollfd pfd = {.fd = s, .events = POLLIN};
        ck_assert_int_eq(poll(&pfd, 1, 0), 0);
        ck_assert_int_eq(mps_kill(p), 0);
        ck_assert_int_eq(poll(&pfd, 1, 20000), 1);
        /* Without a join: the end is known as soon as the sentinel says so. */
        ck_assert_int_eq(mps_is_alive(p), 0);
        ck_assert_int_eq(mps_exitcode(p), -SIGKILL);
        mps_process_close(p);
        mps_client_close(c);
}
END_TEST

START_TEST(test_dispatch_from_an_event_loop) {
        mps_client *c = cu_client_open(srv.path);
        const char *argv[] = {"/bin/sh", "-c", "exit 3", NULL};
        mps_process *p = start_job(c, argv, false);
        /* Poll the connection as an event loop would, never blocking in the
         * library. */
        for (int i = 0; i < 1000 && mps_exitcode(p) == MPS_EXITCODE_NONE; i++) {
                struct pollfd pfd = {.fd = mps_client_fd(c), .events = POLLIN};
                ck_assert_int_ge(poll(&pfd, 1, 10000), 0);
                ck_assert_int_ge(mps_client_dispatch(c), 0);
        }
        ck_assert_int_eq(mps_exitcode(p), 3);
        mps_process_close(p);
        mps_client_close(c);
}
END_TEST

/* ---- many clients ------------------------------------------------------------------------ */

#define CLIENTS 4
#define JOBS_PER_CLIENT 50
#define BATCH 10

static void *client_thread(void *arg) {
        int base = (int)(intptr_t)arg;
        mps_client *c = NULL;
        char *msg = NULL;
        intptr_t bad = 0;
        if (mps_client_open(srv.path, &c, &msg) < 0) {
                free(msg);
                return (void *)1;
        }
        for (int done = 0; done < JOBS_PER_CLIENT; done += BATCH) {
                mps_process *p[BATCH];
                char script[64];
                for (int i = 0; i < BATCH; i++) {
                        mps_spec *spec;
                        snprintf(script, sizeof(script), "exit %d", base + done + i);
                        const char *argv[] = {"/bin/sh", "-c", script, NULL};
                        if (mps_spec_new(&spec) < 0 ||
                            mps_spec_set_exec(spec, argv[0], argv) < 0 ||
                            mps_process_new(c, spec, &p[i]) < 0 || mps_start(p[i]) < 0)
                                return (void *)2;
                        mps_spec_free(spec);
                }
                for (int i = 0; i < BATCH; i++) {
                        if (mps_join(p[i], -1) < 0 || mps_exitcode(p[i]) != base + done + i)
                                bad++;
                        mps_process_close(p[i]);
                }
        }
        mps_client_close(c);
        return (void *)bad;
}

START_TEST(test_200_jobs_from_4_clients_get_their_own_exits) {
        pthread_t t[CLIENTS];
        for (int i = 0; i < CLIENTS; i++)
                ck_assert_int_eq(pthread_create(&t[i], NULL, client_thread,
                                                (void *)(intptr_t)(i * JOBS_PER_CLIENT)),
                                 0);
        for (int i = 0; i < CLIENTS; i++) {
                void *res;
                pthread_join(t[i], &res);
                ck_assert_msg(res == NULL, "client %d: %ld wrong or failed jobs", i,
                              (long)(intptr_t)res);
        }
}
END_TEST

/* ---- a client that dies ------------------------------------------------------------------ */

START_TEST(test_killed_client_leaves_no_zombie_and_server_serves_on) {
        int pfd[2];
        ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
        pid_t child = fork();
        ck_assert_int_ge(child, 0);
        if (child == 0) {
                /* A client that starts a daemon job and a plain one, reports
                 * their pids, and waits to be killed. */
                mps_client *c = NULL;
                if (mps_client_open(srv.path, &c, NULL) < 0)
                        _exit(1);
                const char *argv[] = {"/bin/sleep", "60", NULL};
                mps_spec *spec;
                mps_process *d, *n;
                mps_spec_new(&spec);
                mps_spec_set_exec(spec, argv[0], argv);
                mps_spec_set_daemon(spec, true);
                if (mps_process_new(c, spec, &d) < 0 || mps_start(d) < 0)
                        _exit(2);
                mps_spec_set_daemon(spec, false);
                if (mps_process_new(c, spec, &n) < 0 || mps_start(n) < 0)
                        _exit(3);
                pid_t pids[2] = {mps_pid(d), mps_pid(n)};
                (void)!write(pfd[1], pids, sizeof(pids));
                for (;;)
                        pause();
        }
        close(pfd[1]);
        pid_t pids[2];
        char buf[sizeof(pids) + 1];
        ck_assert_int_eq(tu_read_all(pfd[0], buf, sizeof(buf), 20000), sizeof(pids));
        memcpy(pids, buf, sizeof(pids));
        close(pfd[0]);
        ck_assert_int_eq(kill(child, SIGKILL), 0);
        waitpid(child, NULL, 0);

        /* The daemon job is ended by policy and reaped by the server. */
        ck_assert_msg(tu_wait_reaped(pids[0], srv.pid, 20000),
                      "daemon job %d not ended and reaped", (int)pids[0]);
        /* The other job runs on, still the server's child. */
        pid_t ppid = 0;
        char st = tu_proc_state(pids[1], &ppid);
        ck_assert_msg(st == 'S' || st == 'R', "plain job state %c", st ? st : '0');
        ck_assert_int_eq(ppid, srv.pid);
        /* And when it ends, the server reaps it although nobody listens. */
        ck_assert_int_eq(kill(pids[1], SIGKILL), 0);
        ck_assert_msg(tu_wait_reaped(pids[1], srv.pid, 20000), "orphaned job left a zombie");

        mps_client *c = cu_client_open(srv.path);
        const char *argv[] = {"/bin/sh", "-c", "exit 5", NULL};
        ck_assert_int_eq(run_job(c, argv, NULL, NULL, 0), 5);
        mps_client_close(c);
}
END_TEST

/* ---- malformed requests ---------------------------------------------------------------- */

static int raw_connect(void) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", srv.path);
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        return fd;
}

/* Sends text, returns the reply (NUL-terminated). */
static void raw_exchange(int fd, const char *text, char *reply, size_t len) {
        ck_assert_int_eq(send(fd, text, strlen(text), 0), (ssize_t)strlen(text));
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ck_assert_int_eq(poll(&p, 1, 20000), 1);
        ssize_t n = recv(fd, reply, len - 1, 0);
        ck_assert_int_gt(n, 0);
        reply[n] = '\0';
}

START_TEST(test_malformed_messages_get_errors_and_server_serves_on) {
        int fd = raw_connect();
        char reply[2048];
        raw_exchange(fd, "this is not json", reply, sizeof(reply));
        ck_assert_ptr_nonnull(strstr(reply, "\"op\":\"error\""));
        ck_assert_ptr_nonnull(strstr(reply, "\"errno\":\"EBADMSG\""));

        raw_exchange(fd, "{\"v\":1,\"op\":\"launch-missiles\",\"tag\":9}", reply, sizeof(reply));
        ck_assert_ptr_nonnull(strstr(reply, "\"errno\":\"EBADMSG\""));
        ck_assert_ptr_nonnull(strstr(reply, "\"tag\":9"));

        raw_exchange(fd, "{\"v\":2,\"op\":\"hello\",\"protocol\":2}", reply, sizeof(reply));
        ck_assert_ptr_nonnull(strstr(reply, "\"errno\":\"EPROTO\""));

        raw_exchange(fd, "{\"v\":1,\"op\":\"spawn\",\"tag\":4,\"path\":\"/bin/true\","
                         "\"argv\":[\"true\",7]}", reply, sizeof(reply));
        ck_assert_ptr_nonnull(strstr(reply, "\"errno\":\"EINVAL\""));
        ck_assert_ptr_nonnull(strstr(reply, "\"tag\":4"));
        ck_assert_ptr_nonnull(strstr(reply, "argv"));

        raw_exchange(fd, "{\"v\":1,\"op\":\"spawn\",\"tag\":5,\"path\":\"/bin/true\","
                         "\"argv\":[\"true\"],\"fds\":[[0,3]]}", reply, sizeof(reply));
        ck_assert_ptr_nonnull(strstr(reply, "\"errno\":\"EINVAL\""));
        ck_assert_ptr_nonnull(strstr(reply, "\"tag\":5"));

        raw_exchange(fd, "{\"v\":1,\"op\":\"exited\",\"tag\":6}", reply, sizeof(reply));
        ck_assert_ptr_nonnull(strstr(reply, "\"errno\":\"EOPNOTSUPP\""));

        /* Someone else's job, or none at all: the same answer. */
        raw_exchange(fd, "{\"v\":1,\"op\":\"signal\",\"tag\":8,\"id\":999999,\"signal\":9}",
                     reply, sizeof(reply));
        ck_assert_ptr_nonnull(strstr(reply, "\"errno\":\"ESRCH\""));

        /* The same connection still works. */
        raw_exchange(fd, "{\"v\":1,\"op\":\"hello\",\"protocol\":1}", reply, sizeof(reply));
        ck_assert_ptr_nonnull(strstr(reply, "\"op\":\"welcome\""));

        /* An oversized message is refused, and its fds are not kept. */
        size_t big = 70000;
        char *huge = malloc(big);
        ck_assert_ptr_nonnull(huge);
        memset(huge, ' ', big);
        huge[0] = '{';
        huge[big - 1] = '}';
        int pp[2];
        ck_assert_int_eq(pipe2(pp, O_CLOEXEC), 0);
        struct iovec iov = {.iov_base = huge, .iov_len = big};
        union {
                struct cmsghdr h;
                char b[CMSG_SPACE(sizeof(int))];
        } ctl = {0};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                            .msg_controllen = sizeof(ctl.b)};
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &pp[0], sizeof(int));
        ck_assert_int_eq(sendmsg(fd, &mh, 0), (ssize_t)big);
        free(huge);
        close(pp[0]);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ck_assert_int_eq(poll(&p, 1, 20000), 1);
        ssize_t n = recv(fd, reply, sizeof(reply) - 1, 0);
        ck_assert_int_gt(n, 0);
        reply[n] = '\0';
        ck_assert_ptr_nonnull(strstr(reply, "longer than"));
        /* The server closed its copy of the read end: writing now fails. */
        signal(SIGPIPE, SIG_IGN);
        ck_assert_int_eq(write(pp[1], "x", 1), -1);
        ck_assert_int_eq(errno, EPIPE);
        close(pp[1]);
        close(fd);

        mps_client *c = cu_client_open(srv.path);
        const char *argv[] = {"/bin/sh", "-c", "exit 9", NULL};
        ck_assert_int_eq(run_job(c, argv, NULL, NULL, 0), 9);
        mps_client_close(c);
}
END_TEST

/* ---- the server's socket ----------------------------------------------------------------- */

START_TEST(test_socket_is_owner_only_and_not_taken_over) {
        struct stat st;
        ck_assert_int_eq(stat(srv.path, &st), 0);
        ck_assert_int_eq(st.st_mode & 0777, 0600);
        char err[512];
        const char *argv[] = {tu_forkserver(), "--socket", srv.path, NULL};
        int status = tu_run(argv, NULL, NULL, 0, err, sizeof(err));
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
        ck_assert_msg(strstr(err, "already listening"), "stderr: %s", err);
        /* The first server still answers. */
        mps_client *c = cu_client_open(srv.path);
        mps_client_close(c);
}
END_TEST

START_TEST(test_stale_socket_is_replaced) {
        char dir[64], path[100];
        tu_tmpdir(dir, sizeof(dir));
        snprintf(path, sizeof(path), "%s/sock", dir);
        /* A socket file nobody listens on, as a crashed server leaves it. */
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        close(fd);
        struct stat st;
        ck_assert_int_eq(stat(path, &st), 0);

        const char *argv[] = {tu_forkserver(), "--socket", path, NULL};
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        mps_client *c = NULL;
        for (int i = 0; i < 4000 && mps_client_open(path, &c, NULL) < 0; i++) {
                struct timespec ts = {0, 5 * 1000 * 1000};
                nanosleep(&ts, NULL); /* bounded polling: 20 s at most */
        }
        ck_assert_ptr_nonnull(c);
        mps_client_close(c);
        kill(pid, SIGTERM);
        int status;
        waitpid(pid, &status, 0);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        /* A clean stop removes the socket. */
        ck_assert_int_eq(stat(path, &st), -1);
        rmdir(dir);
}
END_TEST

/* ---- stopping --------------------------------------------------------------------------- */

START_TEST(test_sigterm_ends_daemon_jobs_and_exits_0) {
        struct tu_server s;
        const char *extra[] = {"--grace", "1", NULL};
        tu_server_start(&s, extra);
        mps_client *c = NULL;
        ck_assert_int_eq(mps_client_open(s.path, &c, NULL), 0);
        /* Ignores SIGTERM, so the grace period and SIGKILL are needed. It
         * says when the trap is set, so the test does not race it. */
        const char *argv[] = {"/bin/sh", "-c",
                              "trap '' TERM; echo ready; while :; do sleep 1; done", NULL};
        mps_spec *spec;
        mps_process *p;
        int out[2];
        char ready[16];
        ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_set_exec(spec, argv[0], argv), 0);
        ck_assert_int_eq(mps_spec_set_daemon(spec, true), 0);
        ck_assert_int_eq(mps_spec_map_fd(spec, 1, out[1]), 0);
        ck_assert_int_eq(mps_process_new(c, spec, &p), 0);
        mps_spec_free(spec);
        ck_assert_int_eq(mps_start(p), 0);
        close(out[1]);
        ck_assert_int_eq(tu_read_all(out[0], ready, 7, 20000), 6);
        ck_assert_str_eq(ready, "ready\n");
        pid_t pid = mps_pid(p);
        int st = tu_server_stop(&s);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
        ck_assert_msg(tu_wait_reaped(pid, 0, 20000), "daemon job survived the server");
        /* The server reported the kill before it went: its record is
         * there (a join may have read the exit from the pidfd). */
        ck_assert_int_eq(mps_join(p, 10000), 0);
        ck_assert_int_eq(mps_exitcode(p), -SIGKILL);
        mps_exit_info info;
        ck_assert_int_eq(mps_exit_info_get(p, &info), 0);
        ck_assert_int_eq(info.exitcode, -SIGKILL);
        /* And then the connection is gone. */
        ck_assert_int_eq(mps_client_dispatch(c), -ENOTCONN);
        close(out[0]);
        mps_process_close(p);
        mps_client_close(c);
}
END_TEST

/* ---- the embedded default ----------------------------------------------------------------- */

START_TEST(test_embedded_default_needs_no_server) {
        unsetenv("MPSPAWN_SOCKET");
        unsetenv("XDG_RUNTIME_DIR");
        int before = tu_count_fds();
        mps_client *c = NULL;
        char *msg = NULL;
        int r = mps_client_open(NULL, &c, &msg);
        ck_assert_msg(r == 0, "embedded open failed: %s", msg ? msg : "?");
        pid_t server = mps_client_server_pid(c);
        ck_assert_int_gt(server, 0);
        ck_assert_int_ne(server, getpid());
        int spfd = pidfd_open(server, 0);
        ck_assert_int_ge(spfd, 0);

        const char *argv[] = {"/bin/sh", "-c", "exit 12", NULL};
        ck_assert_int_eq(run_job(c, argv, NULL, NULL, 0), 12);
        mps_client_close(c);
        /* The private server goes with its client. */
        struct pollfd p = {.fd = spfd, .events = POLLIN};
        ck_assert_int_eq(poll(&p, 1, 20000), 1);
        close(spfd);
        /* Not our child: nothing for us to reap, and no fd left behind. */
        ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
        ck_assert_int_eq(tu_count_fds(), before);
}
END_TEST

START_TEST(test_no_fd_leaks_in_the_client) {
        mps_client *c = cu_client_open(srv.path);
        int before = tu_count_fds();
        for (int i = 0; i < 20; i++) {
                const char *argv[] = {"/bin/true", NULL};
                ck_assert_int_eq(run_job(c, argv, NULL, NULL, 0), 0);
                const char *bad[] = {"/nonexistent/x", NULL};
                mps_spec *spec;
                mps_process *p;
                mps_spec_new(&spec);
                mps_spec_set_exec(spec, bad[0], bad);
                mps_process_new(c, spec, &p);
                ck_assert_int_eq(mps_start(p), -ENOENT);
                mps_process_close(p);
                mps_spec_free(spec);
        }
        ck_assert_int_eq(tu_count_fds(), before);
        mps_client_close(c);
        ck_assert_int_eq(tu_count_fds(), before - 1);
}
END_TEST


/* ---- timeouts, limits, jobs by id ------------------------------------------------ */

START_TEST(test_timeout_through_the_library) {
        mps_client *c = cu_client_open(srv.path);
        mps_spec *spec;
        mps_process *p;
        const char *argv[] = {"/bin/sleep", "30", NULL};
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_set_exec(spec, argv[0], argv), 0);
        ck_assert_int_eq(mps_spec_set_timeout(spec, -1, 0), -EINVAL);
        ck_assert_int_eq(mps_spec_set_timeout(spec, 0.1, -1), 0);
        ck_assert_int_eq(mps_process_new(c, spec, &p), 0);
        ck_assert_int_eq(mps_start(p), 0);
        ck_assert_int_eq(mps_join(p, -1), 0);
        mps_exit_info info;
        ck_assert_int_eq(mps_exit_info_get(p, &info), 0);
        ck_assert(info.timed_out);
        ck_assert_int_eq(info.exitcode, -SIGTERM);
        mps_process_close(p);
        mps_spec_free(spec);
        mps_client_close(c);
}
END_TEST

START_TEST(test_rlimit_through_the_library) {
        mps_client *c = cu_client_open(srv.path);
        mps_spec *spec;
        char out[128];
        const char *argv[] = {"/bin/sh", "-c", "ulimit -n; ulimit -Hn", NULL};
        struct rlimit mine;
        getrlimit(RLIMIT_NOFILE, &mine);
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_set_rlimit(spec, RLIMIT_NOFILE, 20, 10), -EINVAL);
        ck_assert_int_eq(mps_spec_set_rlimit(spec, 4242, 1, 1), -EINVAL);
        ck_assert_int_eq(mps_spec_set_rlimit(spec, RLIMIT_NOFILE, 20, MPS_RLIM_KEEP), 0);
        if (getenv("MPSPAWN_FORKSERVER_UNDER_TEST")) {
                /* valgrind emulates RLIMIT_NOFILE in the server it runs (its
                 * own descriptors sit above the limit), so a child forked
                 * there execs with valgrind's limit, not ours: check one
                 * that valgrind passes through to the kernel instead. */
                const char *core_argv[] = {"/bin/grep", "^Max core file size",
                                           "/proc/self/limits", NULL};
                ck_assert_int_eq(mps_spec_set_rlimit(spec, RLIMIT_CORE, 20480,
                                                     MPS_RLIM_KEEP), 0);
                ck_assert_int_eq(run_job(c, core_argv, spec, out, sizeof(out)), 0);
                ck_assert_msg(strstr(out, " 20480 "), "limits: %s", out);
                mps_spec_free(spec);
                mps_client_close(c);
                return;
        }
        ck_assert_int_eq(run_job(c, argv, spec, out, sizeof(out)), 0);
        char want[64];
        /* The server restores its own starting limits in children, which
         * are ours here (it inherited them). */
        if (mine.rlim_max == RLIM_INFINITY)
                snprintf(want, sizeof(want), "20\nunlimited\n");
        else
                snprintf(want, sizeof(want), "20\n%llu\n", (unsigned long long)mine.rlim_max);
        ck_assert_str_eq(out, want);
        mps_spec_free(spec);
        mps_client_close(c);
}
END_TEST


START_TEST(test_jobs_by_id_list_wait_signal_stats) {
        mps_client *a = cu_client_open(srv.path);
        mps_client *b = cu_client_open(srv.path);
        const char *argv[] = {"/bin/sleep", "30", NULL};
        mps_spec *spec;
        mps_process *p;
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_set_exec(spec, argv[0], argv), 0);
        ck_assert_int_eq(mps_spec_set_name(spec, "by-id"), 0);
        ck_assert_int_eq(mps_spec_set_detached(spec, true), 0);
        ck_assert_int_eq(mps_process_new(a, spec, &p), 0);
        ck_assert_int_eq(mps_start(p), 0);
        uint64_t id = mps_job_id(p);
        ck_assert_int_eq(mps_is_alive(p), 1);
        ck_assert_int_eq(mps_join(p, 0), -EINVAL);
        /* a lets go of the handle at once and goes away; the job runs on. */
        ck_assert_int_eq(mps_process_close(p), 0);
        mps_client_close(a);

        mps_job_info *jobs = NULL;
        size_t n = 0;
        ck_assert_int_eq(mps_client_list_jobs(b, &jobs, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_uint_eq(jobs[0].id, id);
        ck_assert_str_eq(jobs[0].name, "by-id");
        ck_assert_str_eq(jobs[0].state, "running");
        ck_assert_str_eq(jobs[0].command, "/bin/sleep 30");
        free(jobs);

        mps_exit_info info;
        ck_assert_int_eq(mps_client_wait_job(b, id, 50, &info), -ETIMEDOUT);
        ck_assert_int_eq(mps_client_signal_job(b, id, SIGUSR1), 0);
        ck_assert_int_eq(mps_client_wait_job(b, id, -1, &info), 0);
        ck_assert_int_eq(info.exitcode, -SIGUSR1);
        ck_assert_int_eq(mps_client_wait_job(b, id, -1, &info), -ESRCH);
        ck_assert_int_eq(mps_client_signal_job(b, id, SIGKILL), -ESRCH);

        mps_server_stats st;
        ck_assert_int_eq(mps_client_stats(b, &st), 0);
        ck_assert_uint_eq(st.jobs_started, 1);
        ck_assert_uint_eq(st.killed_by_signal, 1);
        ck_assert_uint_eq(st.clients, 1);
        ck_assert_uint_eq(st.latency_samples, 1);
        ck_assert(st.latency_p50 > 0 && st.latency_p50 <= st.latency_max);
        mps_spec_free(spec);
        mps_client_close(b);
}
END_TEST

START_TEST(test_exit_of_a_vanished_client_is_kept_for_wait) {
        mps_client *a = cu_client_open(srv.path);
        const char *argv[] = {"/bin/sh", "-c", "exit 17", NULL};
        mps_spec *spec;
        mps_process *p;
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_set_exec(spec, argv[0], argv), 0);
        ck_assert_int_eq(mps_spec_set_detached(spec, true), 0);
        ck_assert_int_eq(mps_process_new(a, spec, &p), 0);
        mps_spec_free(spec);
        ck_assert_int_eq(mps_start(p), 0);
        uint64_t id = mps_job_id(p);
        pid_t pid = mps_pid(p);
        /* The job ends while a is still connected: its exit must still be
         * kept for someone else's wait, not sent to a. */
        ck_assert(tu_wait_reaped(pid, srv.pid, 20000));
        ck_assert_int_eq(mps_process_close(p), 0);
        mps_client_close(a);
        mps_client *b = cu_client_open(srv.path);
        mps_exit_info info;
        ck_assert_int_eq(mps_client_wait_job(b, id, -1, &info), 0);
        ck_assert_int_eq(info.exitcode, 17);
        mps_client_close(b);
}
END_TEST

static Suite *process_suite(void) {
        Suite *s = suite_create("process");
        TCase *t = tcase_create("server");
        tcase_add_checked_fixture(t, server_setup, server_teardown);
        tcase_set_timeout(t, 120);
        tcase_add_test(t, test_exit_code);
        tcase_add_test(t, test_fds_of_a_job_started_while_many_are_tracked);
        tcase_add_test(t, test_fd_target_1023_under_a_soft_limit_of_1024);
        tcase_add_test(t, test_killed_by_signal);
        tcase_add_test(t, test_exit_info);
        tcase_add_test(t, test_exec_enoent_is_an_error_not_an_exit);
        tcase_add_test(t, test_exec_eacces);
        tcase_add_test(t, test_bad_cwd_is_a_chdir_error);
        tcase_add_test(t, test_start_twice_and_close_running);
        tcase_add_test(t, test_fds_arrive_at_their_numbers_and_nothing_else);
        tcase_add_test(t, test_fd_map_swaps_stdout_and_stderr);
        tcase_add_test(t, test_env_clear_set_unset);
        tcase_add_test(t, test_cwd);
        tcase_add_test(t, test_join_timeout_returns_while_alive);
        tcase_add_test(t, test_kill);
        tcase_add_test(t, test_sentinel_becomes_readable);
        tcase_add_test(t, test_dispatch_from_an_event_loop);
        tcase_add_test(t, test_200_jobs_from_4_clients_get_their_own_exits);
        tcase_add_test(t, test_killed_client_leaves_no_zombie_and_server_serves_on);
        tcase_add_test(t, test_malformed_messages_get_errors_and_server_serves_on);
        tcase_add_test(t, test_socket_is_owner_only_and_not_taken_over);
        tcase_add_test(t, test_no_fd_leaks_in_the_client);
        tcase_add_test(t, test_timeout_through_the_library);
        tcase_add_test(t, test_rlimit_through_the_library);
        tcase_add_test(t, test_jobs_by_id_list_wait_signal_stats);
        tcase_add_test(t, test_exit_of_a_vanished_client_is_kept_for_wait);
        suite_add_tcase(s, t);

        TCase *alone = tcase_create("standalone");
        tcase_set_timeout(alone, 120);
        tcase_add_test(alone, test_stale_socket_is_replaced);
        tcase_add_test(alone, test_sigterm_ends_daemon_jobs_and_exits_0);
        tcase_add_test(alone, test_embedded_default_needs_no_server);
        suite_add_tcase(s, alone);
        return s;
}

int main(int argc, char **argv) {
        if (argc == 2 && strcmp(argv[1], "--list-fds") == 0)
                return helper_list_fds();
        ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
        if (n <= 0)
                return 99;
        self_exe[n] = '\0';
        SRunner *sr = srunner_create(process_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
