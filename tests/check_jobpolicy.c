/* SPDX-License-Identifier: MIT */
/*
 * check_jobpolicy.c: what a job may do: seccomp policies end to end (errno,
 * kill-process, the compile cache, exact errors for bad files), nice, umask,
 * no_new_privs, the parent-death signal, whole-tree termination, and, for a
 * server running as root, a client's jobs running with that client's
 * credentials (an unprivileged test user, created with useradd). The binary
 * re-executes itself as a helper job (--try-socket, --status).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../include/mpspawn.h"
#include "testutil.h"

static char self_exe[PATH_MAX];
static char examples[PATH_MAX]; /* docs/policy-examples */
static struct tu_server srv;
static mps_client *client;

static int helper_try_socket(void) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        printf("%s\n", fd >= 0 ? "ok" : strerrorname_np(errno));
        return 0;
}

static void setup(void) {
        const char *extra[] = {"--socket-mode", "0666", NULL};
        tu_server_start(&srv, extra);
        ck_assert_int_eq(chmod(srv.dir, 0755), 0);
        char *msg = NULL;
        ck_assert_msg(mps_client_open(srv.path, &client, &msg) == 0, "%s", msg ? msg : "?");
}

static void teardown(void) {
        mps_client_close(client);
        tu_server_stop(&srv);
}

/* Runs spec to its end with stdout captured; returns the exit code, or the
 * negative start error. */
static int run(mps_spec *spec, char *out, size_t len) {
        int fds[2];
        mps_process *p;
        ck_assert_int_eq(mps_pipe(fds), 0);
        ck_assert_int_eq(mps_spec_map_fd(spec, 1, fds[1]), 0);
        ck_assert_int_eq(mps_process_new(client, spec, &p), 0);
        int r = mps_start(p);
        close(fds[1]);
        if (r < 0) {
                close(fds[0]);
                mps_process_close(p);
                return r;
        }
        tu_read_all(fds[0], out ? out : (char[8]){0}, out ? len : 8, 30000);
        close(fds[0]);
        ck_assert_int_eq(mps_join(p, -1), 0);
        int code = mps_exitcode(p);
        mps_process_close(p);
        return code;
}

static mps_spec *spec_of(const char *const *argv) {
        mps_spec *s;
        ck_assert_int_eq(mps_spec_new(&s), 0);
        ck_assert_int_eq(mps_spec_set_exec(s, argv[0], argv), 0);
        return s;
}

START_TEST(test_denied_syscall_fails_with_the_requested_errno) {
        char path[PATH_MAX + 32], out[64];
        snprintf(path, sizeof(path), "%s/deny-network.policy", examples);
        mps_spec *s = spec_of((const char *[]){self_exe, "--try-socket", NULL});
        ck_assert_int_eq(run(s, out, sizeof(out)), 0);
        ck_assert_str_eq(out, "ok\n");
        ck_assert_int_eq(mps_spec_set_seccomp_file(s, path), 0);
        ck_assert_int_eq(run(s, out, sizeof(out)), 0);
        ck_assert_str_eq(out, "EACCES\n");
        mps_spec_free(s);
}
END_TEST

/* A policy file that cannot be read is an error, never an empty (allow
 * everything) policy: a directory reads as EISDIR. Nor is a missing one. */
START_TEST(test_unreadable_policy_file_is_an_error) {
        mps_spec *s = spec_of((const char *[]){"/bin/true", NULL});
        ck_assert_int_eq(mps_spec_set_seccomp_file(s, examples), -EISDIR);
        ck_assert_int_eq(mps_spec_set_seccomp_file(s, "/nonexistent.policy"), -ENOENT);
        mps_spec_free(s);
}
END_TEST

START_TEST(test_kill_process_rule_ends_with_sigsys) {
        mps_spec *s = spec_of((const char *[]){self_exe, "--try-socket", NULL});
        ck_assert_int_eq(mps_spec_set_seccomp(s, "kill.policy",
                                              "default allow\nkill-process socket\n"),
                         0);
        ck_assert_int_eq(run(s, NULL, 0), -SIGSYS);
        mps_spec_free(s);
        /* From the CLI: killed by SIGSYS itself, as the job was (issue 14;
         * it used to exit 128 + 31). */
        char file[] = "/tmp/mpspawn-kill-XXXXXX";
        int fd = mkstemp(file);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, "default allow\nkill-process socket\n", 34), 34);
        close(fd);
        char sock[160];
        snprintf(sock, sizeof(sock), "%s", srv.path);
        const char *argv[] = {tu_cli(), "-s", sock, "--seccomp", file, self_exe,
                              "--try-socket", NULL};
        int st = tu_run(argv, NULL, NULL, 0, NULL, 0);
        unlink(file);
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "status %#x", st);
}
END_TEST

START_TEST(test_second_identical_policy_hits_the_cache) {
        mps_server_stats before, after;
        ck_assert_int_eq(mps_client_stats(client, &before), 0);
        mps_spec *s = spec_of((const char *[]){"/bin/true", NULL});
        ck_assert_int_eq(mps_spec_set_seccomp(s, "p", "default allow\nerrno(EPERM) ptrace\n"), 0);
        ck_assert_int_eq(run(s, NULL, 0), 0);
        ck_assert_int_eq(run(s, NULL, 0), 0);
        ck_assert_int_eq(run(s, NULL, 0), 0);
        ck_assert_int_eq(mps_client_stats(client, &after), 0);
        ck_assert_uint_eq(after.policy_compiles - before.policy_compiles, 1);
        ck_assert_uint_eq(after.policy_cache_hits - before.policy_cache_hits, 2);
        mps_spec_free(s);
}
END_TEST

START_TEST(test_bad_policy_gives_file_line_and_word_and_starts_nothing) {
        mps_server_stats before, after;
        ck_assert_int_eq(mps_client_stats(client, &before), 0);
        mps_spec *s = spec_of((const char *[]){"/bin/true", NULL});
        mps_process *p;
        ck_assert_int_eq(mps_spec_set_seccomp(s, "deny.policy",
                                              "# a comment\ndefault allow\nerrno(EPERM) sokcet\n"),
                         0);
        ck_assert_int_eq(mps_process_new(client, s, &p), 0);
        ck_assert_int_eq(mps_start(p), -EINVAL);
        ck_assert_str_eq(mps_start_failed_stage(p), "policy");
        ck_assert_str_eq(mps_client_error(client), "deny.policy:3: unknown syscall 'sokcet'");
        mps_process_close(p);
        ck_assert_int_eq(mps_spec_set_seccomp(s, "x.policy", "default allow\nzap read\n"), 0);
        ck_assert_int_eq(mps_process_new(client, s, &p), 0);
        ck_assert_int_eq(mps_start(p), -EINVAL);
        ck_assert_ptr_nonnull(strstr(mps_client_error(client), "x.policy:2:"));
        ck_assert_ptr_nonnull(strstr(mps_client_error(client), "'zap'"));
        mps_process_close(p);
        ck_assert_int_eq(mps_client_stats(client, &after), 0);
        ck_assert_uint_eq(after.jobs_started, before.jobs_started);
        ck_assert_uint_eq(after.jobs_failed_to_start, before.jobs_failed_to_start);
        mps_spec_free(s);
}
END_TEST

START_TEST(test_nice_umask_and_no_new_privs_are_visible) {
        char out[256];
        mps_spec *s = spec_of((const char *[]){"/bin/sh", "-c",
                                               "nice; umask; grep NoNewPrivs /proc/self/status",
                                               NULL});
        ck_assert_int_eq(mps_spec_set_nice(s, 7), 0);
        ck_assert_int_eq(mps_spec_set_umask(s, 027), 0);
        ck_assert_int_eq(mps_spec_set_no_new_privs(s, true), 0);
        ck_assert_int_eq(mps_spec_set_nice(s, 20), -EINVAL);
        ck_assert_int_eq(run(s, out, sizeof(out)), 0);
        ck_assert_str_eq(out, "7\n0027\nNoNewPrivs:\t1\n");
        mps_spec_free(s);
}
END_TEST

/* Gone, or a zombie nobody reaps: either way it runs no more. */
static bool dead(pid_t pid, int timeout_ms) {
        for (int waited = 0;; waited += 2) {
                char st = tu_proc_state(pid, NULL);
                if (st == 0 || st == 'Z' || st == 'X')
                        return true;
                if (waited >= timeout_ms)
                        return false;
                struct timespec ts = {0, 2 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
}

START_TEST(test_whole_tree_kill_leaves_no_grandchild) {
        mps_spec *s = spec_of((const char *[]){"/bin/sh", "-c",
                                               "sleep 100 & sleep 100 & echo $!; "
                                               "sleep 100 | sleep 100 & wait",
                                               NULL});
        int fds[2];
        char line[32];
        mps_process *p;
        ck_assert_int_eq(mps_spec_set_kill_tree(s, true), 0);
        ck_assert_int_eq(mps_pipe(fds), 0);
        ck_assert_int_eq(mps_spec_map_fd(s, 1, fds[1]), 0);
        ck_assert_int_eq(mps_process_new(client, s, &p), 0);
        ck_assert_int_eq(mps_start(p), 0);
        close(fds[1]);
        size_t n = 0;
        while (n + 1 < sizeof(line)) {
                struct pollfd pf = {.fd = fds[0], .events = POLLIN};
                ck_assert_int_eq(poll(&pf, 1, 20000), 1);
                ck_assert_int_eq(read(fds[0], line + n, 1), 1);
                if (line[n++] == '\n')
                        break;
        }
        line[n] = '\0';
        pid_t grandchild = atoi(line);
        ck_assert_int_gt(grandchild, 0);
        ck_assert(!dead(grandchild, 0));
        ck_assert_int_eq(mps_terminate(p), 0);
        ck_assert_int_eq(mps_join(p, -1), 0);
        ck_assert_int_eq(mps_exitcode(p), -SIGTERM);
        ck_assert_msg(dead(grandchild, 20000), "grandchild %d survived", (int)grandchild);
        mps_process_close(p);
        close(fds[0]);
        mps_spec_free(s);
}
END_TEST

/* With kill_tree, what the leader leaves behind in its group when it
 * exits on its own is killed (before the leader is reaped, while the group
 * is still its), on the pidfd path and on the SIGCHLD one alike. */
START_TEST(test_tree_leftovers_die_with_the_leader) {
        mps_spec *s = spec_of((const char *[]){"/bin/sh", "-c", "sleep 100 & echo $!", NULL});
        int fds[2];
        char line[32] = "";
        mps_process *p;
        ck_assert_int_eq(mps_spec_set_kill_tree(s, true), 0);
        ck_assert_int_eq(mps_pipe(fds), 0);
        ck_assert_int_eq(mps_spec_map_fd(s, 1, fds[1]), 0);
        ck_assert_int_eq(mps_process_new(client, s, &p), 0);
        ck_assert_int_eq(mps_start(p), 0);
        close(fds[1]);
        size_t n = 0;
        while (n + 1 < sizeof(line)) {
                struct pollfd pf = {.fd = fds[0], .events = POLLIN};
                ck_assert_int_eq(poll(&pf, 1, 20000), 1);
                ck_assert_int_eq(read(fds[0], line + n, 1), 1);
                if (line[n++] == '\n')
                        break;
        }
        pid_t left = atoi(line);
        ck_assert_int_gt(left, 0);
        ck_assert_int_eq(mps_join(p, -1), 0);
        ck_assert_int_eq(mps_exitcode(p), 0);
        ck_assert_msg(dead(left, 20000), "the leader's background sleep %d survived",
                      (int)left);
        mps_process_close(p);
        close(fds[0]);
        mps_spec_free(s);
}
END_TEST

START_TEST(test_parent_death_signal_reaches_the_job) {
        struct tu_server own;
        tu_server_start(&own, NULL);
        mps_client *c = NULL;
        ck_assert_int_eq(mps_client_open(own.path, &c, NULL), 0);
        mps_spec *s = spec_of((const char *[]){"/bin/sleep", "100", NULL});
        ck_assert_int_eq(mps_spec_set_pdeathsig(s, SIGKILL), 0);
        mps_process *p;
        ck_assert_int_eq(mps_process_new(c, s, &p), 0);
        ck_assert_int_eq(mps_start(p), 0);
        pid_t pid = mps_pid(p);
        int pfd = pidfd_open(pid, 0);
        ck_assert_int_ge(pfd, 0);
        /* The server dies outright: no policy of its own can run. */
        ck_assert_int_eq(kill(own.pid, SIGKILL), 0);
        struct pollfd pf = {.fd = pfd, .events = POLLIN};
        ck_assert_int_eq(poll(&pf, 1, 20000), 1);
        close(pfd);
        mps_process_close(p);
        mps_client_close(c);
        mps_spec_free(s);
        tu_server_stop(&own);
}
END_TEST

/* ---- credentials ------------------------------------------------------------ */




/* In a child running as uid/gid: runs spec's script through a fresh
 * connection and writes "code:output" to fd. */
static void run_as(uid_t uid, gid_t gid, int out_fd, const char *script,
                   const char *rlimit_hard_above) {
        if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
                _exit(90);
        mps_client *c = NULL;
        if (mps_client_open(srv.path, &c, NULL) < 0)
                _exit(91);
        mps_spec *s;
        const char *argv[] = {"/bin/sh", "-c", script, NULL};
        mps_spec_new(&s);
        mps_spec_set_exec(s, argv[0], argv);
        mps_spec_set_cwd(s, "/");
        int fds[2];
        mps_pipe(fds);
        mps_spec_map_fd(s, 1, fds[1]);
        if (rlimit_hard_above) {
                struct rlimit rl;
                getrlimit(RLIMIT_NOFILE, &rl);
                mps_spec_set_rlimit(s, RLIMIT_NOFILE, rl.rlim_cur, rl.rlim_max + 1);
        }
        mps_process *p;
        mps_process_new(c, s, &p);
        int r = mps_start(p);
        close(fds[1]);
        char buf[256] = "";
        if (r == 0) {
                tu_read_all(fds[0], buf, sizeof(buf), 20000);
                mps_join(p, -1);
                dprintf(out_fd, "%d:%s", mps_exitcode(p), buf);
        } else {
                dprintf(out_fd, "start %s %s", strerrorname_np(-r), mps_start_failed_stage(p));
        }
        _exit(0);
}

static void as_user(uid_t uid, gid_t gid, const char *script, const char *limit, char *out,
                    size_t len) {
        int fds[2];
        ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
                run_as(uid, gid, fds[1], script, limit);
        close(fds[1]);
        tu_read_all(fds[0], out, len, 30000);
        close(fds[0]);
        int st;
        waitpid(pid, &st, 0);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "helper status %#x", st);
}

START_TEST(test_root_server_runs_jobs_with_the_clients_credentials) {
        if (geteuid() != 0) {
                fprintf(stderr, "skipping: the server is not root\n");
                return;
        }
        bool created;
        struct passwd *pw = tu_test_user(&created);
        char out[256], want[128];
        as_user(pw->pw_uid, pw->pw_gid, "id -u; id -g; id -G", NULL, out, sizeof(out));
        snprintf(want, sizeof(want), "0:%u\n%u\n%u\n", (unsigned)pw->pw_uid,
                 (unsigned)pw->pw_gid, (unsigned)pw->pw_gid);
        ck_assert_str_eq(out, want);
        /* It cannot get more than it has: no hard limit above its own. */
        as_user(pw->pw_uid, pw->pw_gid, "true", "above", out, sizeof(out));
        ck_assert_str_eq(out, "start EPERM rlimit");
        tu_test_user_done(created);
}
END_TEST


/* The administrator's default policy applies to every job, and a client's
 * own policy can add to it but never loosen it. */
START_TEST(test_admin_policy_applies_and_cannot_be_loosened) {
        char dir[64], conf[128], pol[128], out[64];
        tu_tmpdir(dir, sizeof(dir));
        snprintf(pol, sizeof(pol), "%s/admin.policy", dir);
        snprintf(conf, sizeof(conf), "%s/forkserver.conf", dir);
        FILE *f = fopen(pol, "w");
        ck_assert_ptr_nonnull(f);
        fputs("default allow\nerrno(EACCES) socket\n", f);
        fclose(f);
        f = fopen(conf, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "default_seccomp_policy = %s\n", pol);
        fclose(f);
        struct tu_server own;
        tu_server_start(&own, (const char *[]){"--config", conf, NULL});
        mps_client *saved = client;
        ck_assert_int_eq(mps_client_open(own.path, &client, NULL), 0);
        mps_spec *s = spec_of((const char *[]){self_exe, "--try-socket", NULL});
        ck_assert_int_eq(run(s, out, sizeof(out)), 0);
        ck_assert_str_eq(out, "EACCES\n");
        /* "allow everything" from the client changes nothing. */
        ck_assert_int_eq(mps_spec_set_seccomp(s, "loose", "default allow\nallow socket\n"), 0);
        ck_assert_int_eq(run(s, out, sizeof(out)), 0);
        ck_assert_str_eq(out, "EACCES\n");
        /* Adding a restriction of its own works. */
        ck_assert_int_eq(mps_spec_set_seccomp(s, "strict",
                                              "default allow\nkill-process socket\n"),
                         0);
        ck_assert_int_eq(run(s, NULL, 0), -SIGSYS);
        mps_spec_free(s);
        mps_client_close(client);
        client = saved;
        tu_server_stop(&own);
        unlink(pol);
        unlink(conf);
        rmdir(dir);
}
END_TEST

static Suite *jobpolicy_suite(void) {
        Suite *s = suite_create("jobpolicy");
        TCase *t = tcase_create("jobpolicy");
        tcase_add_checked_fixture(t, setup, teardown);
        tcase_set_timeout(t, 120);
        tcase_add_test(t, test_denied_syscall_fails_with_the_requested_errno);
        tcase_add_test(t, test_kill_process_rule_ends_with_sigsys);
        tcase_add_test(t, test_unreadable_policy_file_is_an_error);
        tcase_add_test(t, test_second_identical_policy_hits_the_cache);
        tcase_add_test(t, test_bad_policy_gives_file_line_and_word_and_starts_nothing);
        tcase_add_test(t, test_nice_umask_and_no_new_privs_are_visible);
        tcase_add_test(t, test_whole_tree_kill_leaves_no_grandchild);
        tcase_add_test(t, test_tree_leftovers_die_with_the_leader);
        tcase_add_test(t, test_parent_death_signal_reaches_the_job);
        tcase_add_test(t, test_root_server_runs_jobs_with_the_clients_credentials);
        tcase_add_test(t, test_admin_policy_applies_and_cannot_be_loosened);
        suite_add_tcase(s, t);
        return s;
}

int main(int argc, char **argv) {
        if (argc == 2 && strcmp(argv[1], "--try-socket") == 0)
                return helper_try_socket();
        ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
        if (n <= 0)
                return 99;
        self_exe[n] = '\0';
        /* BUILD/tests/check_jobpolicy -> the source tree's docs. */
        const char *top = getenv("MPSPAWN_TOP");
        snprintf(examples, sizeof(examples), "%s/docs/policy-examples", top ? top : ".");
        SRunner *sr = srunner_create(jobpolicy_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
