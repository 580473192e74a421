/* SPDX-License-Identifier: MIT */
/*
 * check_cli.c: the mpspawn command end to end, as a shell user runs it:
 * exit-status conventions, options, signal forwarding, the embedded default,
 * an explicit socket, and `mpspawn server`.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <pwd.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <pty.h>

#include "../include/mpspawn.h"
#include "testutil.h"

static char out[65536], err[4096];

/* Runs mpspawn with args (NULL-terminated) and returns its exit status. */
static int mpspawn(const char *const *args) {
        const char *argv[64];
        size_t n = 0;
        argv[n++] = tu_cli();
        for (size_t i = 0; args[i] && n < 63; i++)
                argv[n++] = args[i];
        argv[n] = NULL;
        int st = tu_run(argv, NULL, out, sizeof(out), err, sizeof(err));
        ck_assert_msg(WIFEXITED(st), "mpspawn did not exit normally (%#x)", st);
        return WEXITSTATUS(st);
}

START_TEST(test_exit_status_is_the_jobs) {
        ck_assert_int_eq(mpspawn((const char *[]){"--", "sh", "-c", "exit 3", NULL}), 3);
        ck_assert_int_eq(mpspawn((const char *[]){"true", NULL}), 0);
        ck_assert_int_eq(mpspawn((const char *[]){"false", NULL}), 1);
        ck_assert_str_eq(err, "");
}
END_TEST

/* Issue 14: a job killed by signal N kills mpspawn with N, as a direct
 * run would show to the shell (it used to exit 128+N). */
START_TEST(test_killed_by_signal_kills_mpspawn_with_it) {
        const char *kill9[] = {tu_cli(), "sh", "-c", "kill -KILL $$", NULL};
        const char *kill15[] = {tu_cli(), "sh", "-c", "kill -TERM $$", NULL};
        int st = tu_run(kill9, NULL, out, sizeof(out), err, sizeof(err));
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %#x", st);
        st = tu_run(kill15, NULL, out, sizeof(out), err, sizeof(err));
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "status %#x", st);
}
END_TEST

START_TEST(test_not_found_is_127_with_one_line) {
        ck_assert_int_eq(mpspawn((const char *[]){"mpspawn-no-such-program", "x", NULL}), 127);
        ck_assert_str_eq(err, "mpspawn: cannot execute 'mpspawn-no-such-program': "
                              "No such file or directory\n");
        ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(test_not_executable_is_126) {
        char dir[64], file[100], want[200];
        tu_tmpdir(dir, sizeof(dir));
        snprintf(file, sizeof(file), "%s/data", dir);
        int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        close(fd);
        ck_assert_int_eq(mpspawn((const char *[]){file, NULL}), 126);
        snprintf(want, sizeof(want), "mpspawn: cannot execute '%s': Permission denied\n", file);
        ck_assert_str_eq(err, want);
        ck_assert_int_eq(mpspawn((const char *[]){"/etc", NULL}), 126);
        unlink(file);
        rmdir(dir);
}
END_TEST

START_TEST(test_own_failures_are_125) {
        ck_assert_int_eq(mpspawn((const char *[]){"--no-such-option", "true", NULL}), 125);
        ck_assert_ptr_nonnull(strstr(err, "--no-such-option"));
        ck_assert_int_eq(mpspawn((const char *[]){NULL}), 125);
        ck_assert_ptr_nonnull(strstr(err, "no PROGRAM"));
        ck_assert_int_eq(mpspawn((const char *[]){"-e", "NOEQUALS", "true", NULL}), 125);
        ck_assert_ptr_nonnull(strstr(err, "NOEQUALS"));
        ck_assert_int_eq(mpspawn((const char *[]){"-C", "/nonexistent-dir", "true", NULL}), 125);
        ck_assert_str_eq(err, "mpspawn: cannot change directory to '/nonexistent-dir': "
                              "No such file or directory\n");
        ck_assert_int_eq(mpspawn((const char *[]){"-s", "/nonexistent/sock", "true", NULL}),
                         125);
        ck_assert_ptr_nonnull(strstr(err, "/nonexistent/sock"));
}
END_TEST

START_TEST(test_help_and_version) {
        ck_assert_int_eq(mpspawn((const char *[]){"--help", NULL}), 0);
        ck_assert_ptr_nonnull(strstr(out, "Usage: mpspawn"));
        ck_assert_ptr_nonnull(strstr(out, "Exit status"));
        ck_assert_ptr_nonnull(strstr(out, "--clear-env"));
        ck_assert_int_eq(mpspawn((const char *[]){"--version", NULL}), 0);
        char want[64];
        snprintf(want, sizeof(want), "mpspawn %s\n", mps_version());
        ck_assert_str_eq(out, want);
}
END_TEST

START_TEST(test_stdio_env_and_cwd) {
        ck_assert_int_eq(mpspawn((const char *[]){"-C", "/usr/share", "--clear-env", "-e",
                                                  "A=1", "-e", "B=two words", "sh", "-c",
                                                  "pwd; echo \"$A/$B\"; env | wc -l; "
                                                  "echo to-stderr >&2",
                                                  NULL}),
                         0);
        /* dash adds PWD to an empty environment: three variables. */
        ck_assert_str_eq(out, "/usr/share\n1/two words\n3\n");
        ck_assert_str_eq(err, "to-stderr\n");

        setenv("MPS_CLI_TEST", "inherited", 1);
        ck_assert_int_eq(mpspawn((const char *[]){"sh", "-c", "echo $MPS_CLI_TEST", NULL}), 0);
        ck_assert_str_eq(out, "inherited\n");
        ck_assert_int_eq(mpspawn((const char *[]){"-u", "MPS_CLI_TEST", "sh", "-c",
                                                  "echo \"[$MPS_CLI_TEST]\"", NULL}),
                         0);
        ck_assert_str_eq(out, "[]\n");
}
END_TEST

START_TEST(test_program_options_stay_the_programs) {
        /* Options after PROGRAM belong to it, without "--". */
        ck_assert_int_eq(mpspawn((const char *[]){"echo", "-e", "--help", NULL}), 0);
        ck_assert_str_eq(out, "--help\n");
}
END_TEST

/* Starts mpspawn with stdout on a pipe; returns its pid and the pipe. */
/* mpspawn ARGS with stdin from in_fd (or /dev/null if < 0) and stdout
 * into a pipe (*ret_out). */
static pid_t start_mpspawn_in(const char *const *args, int in_fd, int *ret_out) {
        const char *argv[32];
        size_t n = 0;
        int p[2];
        pid_t pid;
        posix_spawn_file_actions_t fa;
        argv[n++] = tu_cli();
        for (size_t i = 0; args[i] && n < 31; i++)
                argv[n++] = args[i];
        argv[n] = NULL;
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, p[1], 1);
        if (in_fd >= 0)
                posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
        else
                posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        extern char **environ;
        ck_assert_int_eq(posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ),
                         0);
        posix_spawn_file_actions_destroy(&fa);
        close(p[1]);
        *ret_out = p[0];
        return pid;
}

static pid_t start_mpspawn(const char *const *args, int *ret_out) {
        return start_mpspawn_in(args, -1, ret_out);
}

/* Reads one line (up to \n) from fd, bounded. */
static void read_line(int fd, char *buf, size_t len) {
        size_t n = 0;
        while (n + 1 < len) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                ck_assert_int_eq(poll(&p, 1, 20000), 1);
                ssize_t k = read(fd, buf + n, 1);
                ck_assert_int_eq(k, 1);
                if (buf[n++] == '\n')
                        break;
        }
        buf[n] = '\0';
}

START_TEST(test_sigterm_is_forwarded_to_the_job) {
        int fd;
        char line[128];
        pid_t pid = start_mpspawn(
                (const char *[]){"sh", "-c",
                                 "trap 'echo got TERM; exit 7' TERM; echo ready; "
                                 "while :; do sleep 0.05; done",
                                 NULL},
                &fd);
        read_line(fd, line, sizeof(line));
        ck_assert_str_eq(line, "ready\n");
        ck_assert_int_eq(kill(pid, SIGTERM), 0);
        read_line(fd, line, sizeof(line));
        ck_assert_str_eq(line, "got TERM\n");
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert(WIFEXITED(st));
        ck_assert_int_eq(WEXITSTATUS(st), 7);
        close(fd);
}
END_TEST

START_TEST(test_sigint_and_usr1_are_forwarded) {
        int fd;
        char line[128];
        pid_t pid = start_mpspawn(
                (const char *[]){"sh", "-c",
                                 "trap 'echo got USR1' USR1; trap 'echo got INT; exit 3' INT; "
                                 "echo ready; while :; do sleep 0.05; done",
                                 NULL},
                &fd);
        read_line(fd, line, sizeof(line));
        ck_assert_str_eq(line, "ready\n");
        ck_assert_int_eq(kill(pid, SIGUSR1), 0);
        read_line(fd, line, sizeof(line));
        ck_assert_str_eq(line, "got USR1\n");
        ck_assert_int_eq(kill(pid, SIGINT), 0);
        read_line(fd, line, sizeof(line));
        ck_assert_str_eq(line, "got INT\n");
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert_int_eq(WEXITSTATUS(st), 3);
        close(fd);
}
END_TEST

START_TEST(test_killed_mpspawn_takes_its_job_along) {
        int fd;
        char line[128];
        pid_t pid = start_mpspawn(
                (const char *[]){"sh", "-c", "echo $$; exec sleep 60", NULL}, &fd);
        read_line(fd, line, sizeof(line));
        pid_t job = atoi(line);
        ck_assert_int_gt(job, 0);
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        waitpid(pid, NULL, 0);
        /* The embedded server sees its client go and ends the daemon job. */
        ck_assert_msg(tu_wait_reaped(job, 0, 30000), "job %d outlived mpspawn", (int)job);
        close(fd);
}
END_TEST

START_TEST(test_explicit_socket_and_server_subcommand) {
        char dir[64], path[100];
        tu_tmpdir(dir, sizeof(dir));
        snprintf(path, sizeof(path), "%s/s", dir);
        int fd;
        /* `mpspawn server` runs a forkserver in the foreground. */
        pid_t server = start_mpspawn((const char *[]){"server", "--socket", path, NULL}, &fd);
        int spfd = pidfd_open(server, 0);
        ck_assert_int_ge(spfd, 0);
        /* Bounded polling until it answers (no readiness channel here). */
        int st = 1;
        for (int i = 0; i < 4000; i++) {
                st = mpspawn((const char *[]){"-s", path, "true", NULL});
                if (st == 0)
                        break;
                struct pollfd p = {.fd = spfd, .events = POLLIN};
                ck_assert_int_eq(poll(&p, 1, 5), 0); /* server still alive */
        }
        ck_assert_int_eq(st, 0);
        /* $MPSPAWN_SOCKET does the same as -s. */
        const char *argv[] = {tu_cli(), "sh", "-c", "exit 4", NULL};
        char envs[160];
        snprintf(envs, sizeof(envs), "MPSPAWN_SOCKET=%s", path);
        st = tu_run(argv, (const char *[]){envs, NULL}, out, sizeof(out), err, sizeof(err));
        ck_assert_int_eq(WEXITSTATUS(st), 4);
        ck_assert_int_eq(kill(server, SIGTERM), 0);
        ck_assert_int_eq(waitpid(server, &st, 0), server);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        close(spfd);
        close(fd);
        rmdir(dir);
}
END_TEST


/* ---- issue 3: timeouts, limits, detach, subcommands, batch ------------------ */

START_TEST(test_timeout_is_124_and_recorded) {
        ck_assert_int_eq(mpspawn((const char *[]){"--json", "--timeout", "0.2", "sleep", "30",
                                                  NULL}),
                         124);
        ck_assert_ptr_nonnull(strstr(err, "\"timed_out\":true"));
        ck_assert_ptr_nonnull(strstr(err, "\"exitcode\":-15"));
        ck_assert_ptr_nonnull(strstr(err, "\"signal\":15"));
}
END_TEST

START_TEST(test_timeout_on_a_job_ignoring_sigterm_ends_with_sigkill) {
        /* The job says when its trap is set; only then can the timeout's
         * SIGTERM be ignored for sure (0.5 s is plenty on a loaded machine,
         * and a miss fails the exit code check, never passes it). */
        const char *argv[] = {tu_cli(), "--json", "--timeout", "1", "--kill-after", "0.2", "sh",
                              "-c", "trap '' TERM; echo trapped; while :; do sleep 0.05; done",
                              NULL};
        int st = tu_run(argv, NULL, out, sizeof(out), err, sizeof(err));
        /* Killed with its job, as timeout(1) is: the shell says 137. */
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %#x", st);
        ck_assert_str_eq(out, "trapped\n");
        ck_assert_ptr_nonnull(strstr(err, "\"timed_out\":true"));
        ck_assert_ptr_nonnull(strstr(err, "\"exitcode\":-9"));
}
END_TEST

START_TEST(test_bad_timeout_values_are_125) {
        ck_assert_int_eq(mpspawn((const char *[]){"--timeout", "soon", "true", NULL}), 125);
        ck_assert_ptr_nonnull(strstr(err, "--timeout 'soon'"));
        ck_assert_int_eq(mpspawn((const char *[]){"--timeout", "-1", "true", NULL}), 125);
        ck_assert_int_eq(mpspawn((const char *[]){"--kill-after", "1", "true", NULL}), 125);
        ck_assert_ptr_nonnull(strstr(err, "--kill-after needs --timeout"));
}
END_TEST

START_TEST(test_rlimits_are_visible_in_the_job) {
        if (getenv("MPSPAWN_FORKSERVER_UNDER_TEST"))
                return; /* valgrind changes the limits of the server it runs */
        ck_assert_int_eq(mpspawn((const char *[]){"--rlimit", "nofile=33:44", "--rlimit",
                                                  "RLIMIT_CORE=0", "--rlimit", "Stack=unlimited",
                                                  "sh", "-c",
                                                  "ulimit -n; ulimit -Hn; ulimit -c; ulimit -s",
                                                  NULL}),
                         0);
        ck_assert_str_eq(out, "33\n44\n0\nunlimited\n");
        ck_assert_int_eq(mpspawn((const char *[]){"--rlimit", "bogus=1", "true", NULL}), 125);
        ck_assert_ptr_nonnull(strstr(err, "'bogus=1'"));
        ck_assert_int_eq(mpspawn((const char *[]){"--rlimit", "nofile=9:3", "true", NULL}), 125);
        ck_assert_int_eq(mpspawn((const char *[]){"--rlimit", "nofile", "true", NULL}), 125);
}
END_TEST

START_TEST(test_help_lists_every_option) {
        static const char *const options[] = {
                "--socket", "--cwd", "--env", "--unset", "--clear-env", "--name",
                "--new-session", "--timeout", "--kill-after", "--rlimit", "--detach",
                "--json", "--jobs", "--halt-on-failure", "--keep-going", "--help",
                "--version", " ps ", "kill ID", "wait [--json] ID", "stats", "server", "124",
                "125", "126", "127", "128+N", "123",
                /* issue 14, items 7-9 */
                "--null", "--delimiter", "-I REPLACE", "--replace", "--progress",
                "--json-fd", "--signal", "--preserve-status", "0: one per CPU",
        };
        ck_assert_int_eq(mpspawn((const char *[]){"--help", NULL}), 0);
        for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
                ck_assert_msg(strstr(out, options[i]), "--help does not mention %s", options[i]);
}
END_TEST

/* A shared server for the subcommands, reachable through $MPSPAWN_SOCKET. */
static struct tu_server shared;

static void shared_setup(void) {
        const char *extra[] = {"--socket-mode", "0666", NULL};
        tu_server_start(&shared, extra);
        /* Other users must reach the socket in its private directory. */
        ck_assert_int_eq(chmod(shared.dir, 0755), 0);
        setenv("MPSPAWN_SOCKET", shared.path, 1);
}

static void shared_teardown(void) {
        unsetenv("MPSPAWN_SOCKET");
        tu_server_stop(&shared);
}

/* Starts a detached job; returns its id (and pid). Its stdio is closed at
 * once so that reading mpspawn's stdout to EOF does not wait for it. */
static unsigned long long detach(const char *name, const char *script, pid_t *ret_pid) {
        ck_assert_int_eq(mpspawn((const char *[]){"--detach", "--name", name, "sh", "-c",
                                                  script, NULL}),
                         0);
        unsigned long long id = 0;
        int pid = 0;
        ck_assert_int_eq(sscanf(out, "%llu %d", &id, &pid), 2);
        ck_assert(id > 0 && pid > 0);
        if (ret_pid)
                *ret_pid = pid;
        return id;
}

#define QUIET "exec </dev/null >/dev/null 2>&1; "

START_TEST(test_detached_job_waited_for_from_another_invocation) {
        pid_t pid;
        unsigned long long id = detach("waiter-test", QUIET "sleep 0.3; exit 6", &pid);
        char ids[32];
        snprintf(ids, sizeof(ids), "%llu", id);
        ck_assert_int_eq(mpspawn((const char *[]){"wait", ids, NULL}), 6);
        /* Collected once: a second wait finds nothing (127, like sh's wait). */
        ck_assert_int_eq(mpspawn((const char *[]){"wait", ids, NULL}), 127);
        ck_assert_ptr_nonnull(strstr(err, "no job"));
}
END_TEST

START_TEST(test_detached_job_killed_from_another_invocation) {
        pid_t pid;
        unsigned long long id = detach("kill-test", QUIET "exec sleep 60", &pid);
        char ids[32];
        snprintf(ids, sizeof(ids), "%llu", id);
        /* ps shows it, running, with its name and command. */
        ck_assert_int_eq(mpspawn((const char *[]){"ps", NULL}), 0);
        ck_assert_ptr_nonnull(strstr(out, "kill-test"));
        ck_assert_ptr_nonnull(strstr(out, "running"));
        ck_assert_int_eq(mpspawn((const char *[]){"ps", "--json", NULL}), 0);
        ck_assert_ptr_nonnull(strstr(out, "\"name\":\"kill-test\""));
        ck_assert_int_eq(mpspawn((const char *[]){"kill", ids, "KILL", NULL}), 0);
        ck_assert_int_eq(mpspawn((const char *[]){"wait", ids, NULL}), 137);
        ck_assert(tu_wait_reaped(pid, shared.pid, 20000));
        ck_assert_int_eq(mpspawn((const char *[]){"kill", ids, NULL}), 1);
        ck_assert_int_eq(mpspawn((const char *[]){"kill", ids, "NOSUCHSIG", NULL}), 125);
}
END_TEST

/* Runs mpspawn as the test user (created if absent); returns the status. */
static int mpspawn_as(uid_t uid, gid_t gid, const char *const *args) {
        const char *argv[16];
        size_t n = 0;
        int po[2], pe[2];
        argv[n++] = tu_cli();
        for (size_t i = 0; args[i] && n < 15; i++)
                argv[n++] = args[i];
        argv[n] = NULL;
        ck_assert_int_eq(pipe2(po, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(pe, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                dup2(po[1], 1);
                dup2(pe[1], 2);
                if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
                        _exit(99);
                execv(argv[0], (char *const *)argv);
                _exit(98);
        }
        close(po[1]);
        close(pe[1]);
        tu_read_all(po[0], out, sizeof(out), 30000);
        tu_read_all(pe[0], err, sizeof(err), 30000);
        close(po[0]);
        close(pe[0]);
        int st;
        waitpid(pid, &st, 0);
        ck_assert_msg(WIFEXITED(st), "status %#x", st);
        return WEXITSTATUS(st);
}

START_TEST(test_another_user_cannot_see_wait_for_or_kill_a_job) {
        bool created;
        struct passwd *pw = tu_test_user(&created);
        uid_t uid = pw->pw_uid;
        gid_t gid = pw->pw_gid;

        pid_t pid;
        unsigned long long id = detach("private", QUIET "exec sleep 60", &pid);
        char ids[32];
        snprintf(ids, sizeof(ids), "%llu", id);

        ck_assert_int_eq(mpspawn_as(uid, gid, (const char *[]){"ps", NULL}), 0);
        ck_assert_ptr_null(strstr(out, "private"));
        ck_assert_int_eq(mpspawn_as(uid, gid, (const char *[]){"kill", ids, "KILL", NULL}), 1);
        ck_assert_int_eq(mpspawn_as(uid, gid, (const char *[]){"wait", ids, NULL}), 127);
        /* Still alive, and still ours. */
        ck_assert_int_eq(kill(pid, 0), 0);
        ck_assert_int_eq(mpspawn((const char *[]){"kill", ids, NULL}), 0);
        ck_assert_int_eq(mpspawn((const char *[]){"wait", ids, NULL}), 143);

        tu_test_user_done(created);
}
END_TEST

START_TEST(test_stats_counts_jobs) {
        ck_assert_int_eq(mpspawn((const char *[]){"true", NULL}), 0);
        ck_assert_int_eq(mpspawn((const char *[]){"false", NULL}), 1);
        ck_assert_int_eq(mpspawn((const char *[]){"no-such-program-x", NULL}), 127);
        ck_assert_int_eq(mpspawn((const char *[]){"stats", "--json", NULL}), 0);
        ck_assert_ptr_nonnull(strstr(out, "\"jobs_started\":2,"));
        ck_assert_ptr_nonnull(strstr(out, "\"jobs_failed_to_start\":1,"));
        ck_assert_ptr_nonnull(strstr(out, "\"exits_zero\":1,"));
        ck_assert_ptr_nonnull(strstr(out, "\"exits_nonzero\":1,"));
        ck_assert_ptr_nonnull(strstr(out, "\"latency_samples\":2,"));
        ck_assert_int_eq(mpspawn((const char *[]){"stats", NULL}), 0);
        ck_assert_ptr_nonnull(strstr(out, "spawn latency"));
}
END_TEST

START_TEST(test_subcommands_need_a_shared_server) {
        unsetenv("MPSPAWN_SOCKET");
        ck_assert_int_eq(mpspawn((const char *[]){"ps", NULL}), 125);
        ck_assert_ptr_nonnull(strstr(err, "no forkserver is running"));
        ck_assert_int_eq(mpspawn((const char *[]){"wait", "notanumber", NULL}), 125);
}
END_TEST

/* Runs mpspawn with `input` on stdin. */
static int mpspawn_stdin(const char *const *args, const char *input) {
        char path[] = "/tmp/mpspawn-stdin-XXXXXX";
        int fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, input, strlen(input)), (ssize_t)strlen(input));
        close(fd);
        char script[4200];
        /* tu_run gives /dev/null as stdin: go through sh for the redirect. */
        size_t n = (size_t)snprintf(script, sizeof(script), "exec \"%s\"", tu_cli());
        for (size_t i = 0; args[i]; i++)
                n += (size_t)snprintf(script + n, sizeof(script) - n, " '%s'", args[i]);
        snprintf(script + n, sizeof(script) - n, " < %s", path);
        const char *argv[] = {"/bin/sh", "-c", script, NULL};
        int st = tu_run(argv, NULL, out, sizeof(out), err, sizeof(err));
        unlink(path);
        ck_assert(WIFEXITED(st));
        return WEXITSTATUS(st);
}

START_TEST(test_batch_200_lines_8_at_a_time_each_once) {
        char dir[64];
        tu_tmpdir(dir, sizeof(dir));
        static char input[200 * 128];
        size_t n = 0;
        for (int i = 0; i < 200; i++)
                n += (size_t)snprintf(input + n, sizeof(input) - n,
                                      "sh -c 'echo ran >> \"$0\"' %s/%d\n", dir, i);
        ck_assert_int_eq(mpspawn_stdin((const char *[]){"-j", "8", NULL}, input), 0);
        ck_assert_str_eq(err, "");
        for (int i = 0; i < 200; i++) {
                char path[128], buf[64];
                snprintf(path, sizeof(path), "%s/%d", dir, i);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                ck_assert_msg(fd >= 0, "line %d did not run", i);
                ssize_t k = read(fd, buf, sizeof(buf) - 1);
                close(fd);
                ck_assert_int_ge(k, 0);
                buf[k] = '\0';
                ck_assert_msg(strcmp(buf, "ran\n") == 0, "line %d ran %s", i, buf);
                unlink(path);
        }
        rmdir(dir);
}
END_TEST

START_TEST(test_batch_quoting_failures_and_123) {
        const char *input = "echo 'single  quoted' \"double $HOME\" back\\ slash\n"
                            "# a comment\n"
                            "\n"
                            "false\n"
                            "echo 'unterminated\n"
                            "no-such-program-y\n";
        ck_assert_int_eq(mpspawn_stdin((const char *[]){"-j", "1", NULL}, input), 123);
        ck_assert_str_eq(out, "single  quoted double $HOME back slash\n");
        ck_assert_ptr_nonnull(strstr(err, "line 4: exit status 1"));
        ck_assert_ptr_nonnull(strstr(err, "line 5: column 6: unterminated single quote"));
        ck_assert_ptr_nonnull(strstr(err, "line 6: cannot execute 'no-such-program-y'"));
}
END_TEST

START_TEST(test_batch_halt_on_failure_starts_nothing_more) {
        char dir[64], input[1024];
        tu_tmpdir(dir, sizeof(dir));
        snprintf(input, sizeof(input), "false\ntouch %s/after1\ntouch %s/after2\n", dir, dir);
        ck_assert_int_eq(mpspawn_stdin((const char *[]){"-j", "1", "--halt-on-failure", NULL},
                                       input),
                         123);
        char path[128];
        snprintf(path, sizeof(path), "%s/after1", dir);
        ck_assert_int_eq(access(path, F_OK), -1);
        /* --keep-going (the default) runs them all. */
        ck_assert_int_eq(mpspawn_stdin((const char *[]){"-j", "1", NULL}, input), 123);
        ck_assert_int_eq(access(path, F_OK), 0);
        unlink(path);
        snprintf(path, sizeof(path), "%s/after2", dir);
        unlink(path);
        rmdir(dir);
}
END_TEST

/* A stop signal reaches batch mode while it waits for its next line (it
 * used to sit in a blocking read until more input came), and the status
 * says it was stopped: 128+N, not 0. */
START_TEST(test_batch_stops_on_sigterm_while_waiting_for_input) {
        int in[2], fd;
        char line[128];
        ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
        pid_t pid = start_mpspawn_in((const char *[]){"-j", "2", NULL}, in[0], &fd);
        close(in[0]);
        ck_assert_int_eq(write(in[1], "echo started\n", 13), 13);
        read_line(fd, line, sizeof(line));
        ck_assert_str_eq(line, "started\n");
        /* No more input comes: mpspawn waits for it. */
        int pidfd = pidfd_open(pid, 0);
        ck_assert_int_ge(pidfd, 0);
        ck_assert_int_eq(kill(pid, SIGTERM), 0);
        struct pollfd p = {.fd = pidfd, .events = POLLIN};
        ck_assert_msg(poll(&p, 1, 20000) == 1, "mpspawn -j did not stop on SIGTERM");
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert(WIFEXITED(st));
        ck_assert_int_eq(WEXITSTATUS(st), 128 + SIGTERM);
        close(pidfd);
        close(in[1]);
        close(fd);
}
END_TEST

START_TEST(test_batch_with_a_program_prefix) {
        ck_assert_int_eq(mpspawn_stdin((const char *[]){"-j", "1", "echo", "n", NULL},
                                       "1\n2 'x y'\n"),
                         0);
        ck_assert_str_eq(out, "n 1\nn 2 x y\n");
}
END_TEST


START_TEST(test_relative_cwd_is_the_callers_not_the_servers) {
        char dir[64], sub[128], want[160];
        tu_tmpdir(dir, sizeof(dir));
        snprintf(sub, sizeof(sub), "%s/sub", dir);
        ck_assert_int_eq(mkdir(sub, 0755), 0);
        /* The shared server runs elsewhere (the test's start directory). */
        ck_assert_int_eq(chdir(dir), 0);
        ck_assert_int_eq(mpspawn((const char *[]){"-C", "sub", "pwd", NULL}), 0);
        snprintf(want, sizeof(want), "%s\n", sub);
        ck_assert_str_eq(out, want);
        rmdir(sub);
        rmdir(dir);
}
END_TEST


/* --- issue 14, items 7-9: xargs habits, JSON records, timeout(1) ------------- */

static char bout[65536], berr[65536];

/* Reads what a temporary file received, NUL-terminated, and removes it. */
static size_t slurp(int fd, char *buf, size_t len) {
        ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
        size_t n = 0;
        ssize_t k;
        while (n + 1 < len && (k = read(fd, buf + n, len - 1 - n)) > 0)
                n += (size_t)k;
        buf[n] = '\0';
        close(fd);
        return n;
}

static int tmpfile_fd(void) {
        char path[] = "/tmp/mpspawn-cli-XXXXXX";
        int fd = mkostemp(path, O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        unlink(path);
        return fd;
}

/* Runs `mpspawn args...` with input[0..len) on stdin, stdout into bout and
 * stderr into berr (or onto err_fd when >= 0, berr then empty), and fd 3
 * onto fd3 when >= 0. Returns the wait status. *ret_outlen: bytes in bout. */
static int run_argv_io(const char *const *argv, const char *input, size_t len, int err_fd,
                       int fd3, size_t *ret_outlen) {
        int in = tmpfile_fd(), o = tmpfile_fd(), e = tmpfile_fd();
        ck_assert_int_eq(write(in, input, len), (ssize_t)len);
        ck_assert_int_eq(lseek(in, 0, SEEK_SET), 0);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, in, 0);
        posix_spawn_file_actions_adddup2(&fa, o, 1);
        posix_spawn_file_actions_adddup2(&fa, err_fd >= 0 ? err_fd : e, 2);
        if (fd3 >= 0)
                posix_spawn_file_actions_adddup2(&fa, fd3, 3);
        extern char **environ;
        pid_t pid;
        ck_assert_int_eq(posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ),
                         0);
        posix_spawn_file_actions_destroy(&fa);
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        close(in);
        size_t outlen = slurp(o, bout, sizeof(bout));
        if (ret_outlen)
                *ret_outlen = outlen;
        slurp(e, berr, sizeof(berr));
        return st;
}

static int run_io(const char *const *args, const char *input, size_t len, int err_fd, int fd3,
                  size_t *ret_outlen) {
        const char *argv[64];
        size_t n = 0;
        argv[n++] = tu_cli();
        for (size_t i = 0; args[i] && n < 63; i++)
                argv[n++] = args[i];
        argv[n] = NULL;
        return run_argv_io(argv, input, len, err_fd, fd3, ret_outlen);
}

static int batch_status(const char *const *args, const char *input, size_t len) {
        int st = run_io(args, input, len, -1, -1, NULL);
        ck_assert_msg(WIFEXITED(st), "status %#x", st);
        return WEXITSTATUS(st);
}

/* Strict UTF-8 (what JSON text must be): no overlongs, surrogates, or
 * code points past U+10FFFF. */
static bool utf8_ok(const char *str) {
        const unsigned char *s = (const unsigned char *)str;
        while (*s) {
                unsigned n = *s < 0x80 ? 0 : *s >= 0xc2 && *s <= 0xdf ? 1 :
                             *s >= 0xe0 && *s <= 0xef ? 2 : *s >= 0xf0 && *s <= 0xf4 ? 3 : 9;
                if (n == 9)
                        return false;
                unsigned long cp = n == 0 ? *s : *s & (0x3f >> n);
                for (unsigned i = 1; i <= n; i++) {
                        if ((s[i] & 0xc0) != 0x80)
                                return false;
                        cp = cp << 6 | (s[i] & 0x3f);
                }
                if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
                    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
                        return false;
                s += n + 1;
        }
        return true;
}

/* Parses one JSON text that must be valid (UTF-8 included). */
static cJSON *parse_json(const char *text) {
        ck_assert_msg(utf8_ok(text), "not UTF-8: %s", text);
        cJSON *j = cJSON_Parse(text);
        ck_assert_msg(j != NULL, "not JSON: %s", text);
        return j;
}

/* A string that went through "<key>_latin1" coding back to its bytes. */
static void latin1_bytes(const char *utf8, char *buf, size_t len) {
        const unsigned char *s = (const unsigned char *)utf8;
        size_t n = 0;
        for (; *s && n + 1 < len; n++) {
                if (*s < 0x80) {
                        buf[n] = (char)*s++;
                } else {
                        ck_assert_msg(*s == 0xc2 || *s == 0xc3, "not Latin-1: %s", utf8);
                        buf[n] = (char)((*s & 0x03) << 6 | (s[1] & 0x3f));
                        s += 2;
                }
        }
        buf[n] = '\0';
}

START_TEST(test_batch_null_items_from_find_are_exact) {
        char dir[64], script[512];
        tu_tmpdir(dir, sizeof(dir));
        static const char *const names[] = {"a b", "q'uote", "dq\"uote", "back\\slash",
                                            "new\nline", "tab\there", "\xff\xfe", " lead",
                                            "-dash", "tr ail "};
        size_t nnames = sizeof(names) / sizeof(names[0]);
        for (size_t i = 0; i < nnames; i++) {
                char path[128];
                snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
                int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                ck_assert_int_ge(fd, 0);
                close(fd);
        }
        /* Each job prints its one argument back, NUL-terminated. */
        snprintf(script, sizeof(script),
                 "cd '%s' && find . -type f -print0 | \"%s\" -j 3 -0 sh -c "
                 "'printf \"%%s\\0\" \"$1\"' x",
                 dir, tu_cli());
        const char *argv[] = {"/bin/sh", "-c", script, NULL};
        size_t outlen;
        int st = run_argv_io(argv, "", 0, -1, -1, &outlen);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%#x: %s", st, berr);
        ck_assert_str_eq(berr, "");
        /* Exactly the names, each once, whatever order the jobs ran in. */
        bool seen[16] = {false};
        size_t items = 0;
        for (size_t at = 0; at < outlen; at += strlen(bout + at) + 1, items++) {
                ck_assert_msg(strncmp(bout + at, "./", 2) == 0, "item %s", bout + at);
                size_t i = 0;
                while (i < nnames && strcmp(bout + at + 2, names[i]) != 0)
                        i++;
                ck_assert_msg(i < nnames, "a job got '%s'", bout + at);
                ck_assert_msg(!seen[i], "'%s' ran twice", names[i]);
                seen[i] = true;
        }
        ck_assert_uint_eq(items, nnames);
        for (size_t i = 0; i < nnames; i++) {
                char path[128];
                snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
                unlink(path);
        }
        rmdir(dir);
}
END_TEST


START_TEST(test_batch_delimiter_items_are_literal) {
        /* -d: every byte up to the delimiter, quotes and backslashes too;
         * empty items are empty arguments; a final delimiter ends the last. */
        static const char input[] = "a b,'q',x\\y,,\"d\",";
        ck_assert_int_eq(batch_status((const char *[]){"-j", "1", "-d", ",", "printf", "[%s]\\n",
                                                       NULL},
                                      input, sizeof(input) - 1),
                         0);
        ck_assert_str_eq(bout, "[a b]\n['q']\n[x\\y]\n[]\n[\"d\"]\n");
        ck_assert_str_eq(berr, "");
        /* -d '\n': whole lines, literally (no quote removal, no comments). */
        static const char lines[] = "  it's\n# not a comment\n";
        ck_assert_int_eq(batch_status((const char *[]){"-j", "1", "-d", "\\n", "printf",
                                                       "[%s]\\n", NULL},
                                      lines, sizeof(lines) - 1),
                         0);
        ck_assert_str_eq(bout, "[  it's]\n[# not a comment]\n");
        /* -0 input that does not end with a NUL: the last item still runs. */
        static const char nul[] = "one\0two";
        ck_assert_int_eq(batch_status((const char *[]){"-j", "1", "-0", "printf", "[%s]\\n",
                                                       NULL},
                                      nul, sizeof(nul) - 1),
                         0);
        ck_assert_str_eq(bout, "[one]\n[two]\n");
}
END_TEST

START_TEST(test_batch_replace_places_the_item) {
        static const char input[] = "  one 'two  three'\n\n   \nfour\n";
        ck_assert_int_eq(batch_status((const char *[]){"-j", "1", "-I", "{}", "sh", "-c",
                                                       "echo \"[$1|$2]\"", "x", "pre-{}",
                                                       "{}-post{}", NULL},
                                      input, sizeof(input) - 1),
                         0);
        /* Leading blanks go, quotes are removed, blank lines have no item. */
        ck_assert_str_eq(bout, "[pre-one two  three|one two  three-postone two  three]\n"
                               "[pre-four|four-postfour]\n");
        /* -i is -I {}; with -0 the item is taken literally. */
        static const char nul[] = " 'a' \0b";
        ck_assert_int_eq(batch_status((const char *[]){"-j", "2", "-0", "-i", "printf",
                                                       "<{}>\\n", NULL},
                                      nul, sizeof(nul) - 1),
                         0);
        ck_assert(strcmp(bout, "< 'a' >\n<b>\n") == 0 || strcmp(bout, "<b>\n< 'a' >\n") == 0);
        /* A bad line is reported with its number and does not run. */
        ck_assert_int_eq(batch_status((const char *[]){"-j", "1", "-I", "@", "echo", "@",
                                                       NULL},
                                      "ok\n'open\n", 9),
                         123);
        ck_assert_str_eq(bout, "ok\n");
        ck_assert_str_eq(berr, "mpspawn: line 2: column 1: unterminated single quote\n");
}
END_TEST

START_TEST(test_batch_jobs_zero_runs_everything) {
        static const char input[] = "echo 1\necho 2\necho 3\necho 4\necho 5\n";
        ck_assert_int_eq(batch_status((const char *[]){"-j", "0", NULL}, input,
                                      sizeof(input) - 1),
                         0);
        ck_assert_uint_eq(strlen(bout), 10);
        for (char c = '1'; c <= '5'; c++)
                ck_assert_ptr_nonnull(strchr(bout, c));
}
END_TEST

START_TEST(test_batch_progress_only_on_a_terminal) {
        static const char input[] = "true\ntrue\nsh -c 'sleep 1'\n";
        /* A pipe or file: not one byte of it. */
        ck_assert_int_eq(batch_status((const char *[]){"-j", "1", "--progress", NULL}, input,
                                      sizeof(input) - 1),
                         0);
        ck_assert_str_eq(berr, "");
        /* A terminal: a line redrawn with \r, cleared at the end. */
        int master, slave;
        ck_assert_int_eq(openpty(&master, &slave, NULL, NULL, NULL), 0);
        fcntl(master, F_SETFD, FD_CLOEXEC);
        fcntl(slave, F_SETFD, FD_CLOEXEC);
        int st = run_io((const char *[]){"-j", "1", "--progress", NULL}, input,
                        sizeof(input) - 1, slave, -1, NULL);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        static char tty[8192];
        size_t n = 0;
        struct pollfd p = {.fd = master, .events = POLLIN};
        while (n + 1 < sizeof(tty) && poll(&p, 1, 0) == 1) {
                ssize_t k = read(master, tty + n, sizeof(tty) - 1 - n);
                if (k <= 0)
                        break;
                n += (size_t)k;
        }
        tty[n] = '\0';
        close(slave);
        close(master);
        ck_assert_msg(strstr(tty, "\r\033[Kmpspawn: 0 done, 0 running, 0 failed") != NULL,
                      "%s", tty);
        /* Redrawn while the last job runs, at most ten times a second. */
        ck_assert_msg(strstr(tty, "\r\033[Kmpspawn: 2 done, 1 running, 0 failed, ") != NULL,
                      "%s", tty);
        ck_assert_msg(strstr(tty, "/s") != NULL, "%s", tty);
        size_t draws = 0;
        for (const char *q = tty; (q = strstr(q, "mpspawn: ")); q++)
                draws++;
        ck_assert_msg(draws <= 40, "%zu redraws in about a second", draws);
        ck_assert_uint_ge(n, 4);
        ck_assert_str_eq(tty + n - 4, "\r\033[K");
}
END_TEST

/* The records of a batch: one per line, with its number and words. */
START_TEST(test_batch_records_carry_line_and_command) {
        static const char input[] = "# skipped\nsh -c 'exit 3' 'a b'\nno-such-program-z x\n";
        ck_assert_int_eq(batch_status((const char *[]){"-j", "1", "--json", NULL}, input,
                                      sizeof(input) - 1),
                         123);
        char *second = strstr(berr, "\n{");
        ck_assert_ptr_nonnull(second);
        char *nl = strchr(berr, '\n');
        *nl = '\0';
        cJSON *r = parse_json(strstr(berr, "{"));
        ck_assert_int_eq(cJSON_GetObjectItem(r, "line")->valueint, 2);
        cJSON *cmd = cJSON_GetObjectItem(r, "command");
        ck_assert_int_eq(cJSON_GetArraySize(cmd), 4);
        ck_assert_str_eq(cJSON_GetArrayItem(cmd, 0)->valuestring, "sh");
        ck_assert_str_eq(cJSON_GetArrayItem(cmd, 2)->valuestring, "exit 3");
        ck_assert_str_eq(cJSON_GetArrayItem(cmd, 3)->valuestring, "a b");
        ck_assert_int_eq(cJSON_GetObjectItem(r, "exitcode")->valueint, 3);
        ck_assert_ptr_null(cJSON_GetObjectItem(r, "command_latin1"));
        cJSON_Delete(r);
        /* The start failure has a record too. */
        char *third = strstr(second + 1, "{");
        ck_assert_ptr_nonnull(third);
        *strchr(third, '\n') = '\0';
        r = parse_json(third);
        ck_assert_int_eq(cJSON_GetObjectItem(r, "line")->valueint, 3);
        cmd = cJSON_GetObjectItem(r, "command");
        ck_assert_int_eq(cJSON_GetArraySize(cmd), 2);
        ck_assert_str_eq(cJSON_GetArrayItem(cmd, 0)->valuestring, "no-such-program-z");
        ck_assert_str_eq(cJSON_GetObjectItem(r, "stage")->valuestring, "exec");
        ck_assert_int_eq(cJSON_GetObjectItem(r, "errno")->valueint, ENOENT);
        ck_assert_int_eq(cJSON_GetObjectItem(r, "exitcode")->valueint, 127);
        ck_assert_ptr_nonnull(strstr(cJSON_GetObjectItem(r, "error")->valuestring,
                                     "no-such-program-z"));
        cJSON_Delete(r);
}
END_TEST

START_TEST(test_start_failure_record_of_one_run) {
        ck_assert_int_eq(batch_status((const char *[]){"--json", "no-such-program-w", "\xff",
                                                       NULL},
                                      "", 0),
                         127);
        char *rec = strstr(berr, "{");
        ck_assert_ptr_nonnull(rec);
        *strchr(rec, '\n') = '\0';
        cJSON *r = parse_json(rec);
        ck_assert_ptr_null(cJSON_GetObjectItem(r, "line"));
        ck_assert_str_eq(cJSON_GetObjectItem(r, "stage")->valuestring, "exec");
        ck_assert_int_eq(cJSON_GetObjectItem(r, "errno")->valueint, ENOENT);
        ck_assert_int_eq(cJSON_GetObjectItem(r, "exitcode")->valueint, 127);
        /* A non-UTF-8 argument: the whole command is Latin-1 coded. */
        ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "command_latin1")));
        char bytes[16];
        latin1_bytes(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "command"), 1)->valuestring,
                     bytes, sizeof(bytes));
        ck_assert_str_eq(bytes, "\xff");
        cJSON_Delete(r);
        /* 126 for a file that is not executable. */
        ck_assert_int_eq(batch_status((const char *[]){"--json", "/etc/passwd", NULL}, "", 0),
                         126);
        ck_assert_ptr_nonnull(strstr(berr, "\"stage\":\"exec\",\"errno\":13,\"exitcode\":126}"));
}
END_TEST

START_TEST(test_json_fd_keeps_records_off_stderr) {
        int rec = tmpfile_fd();
        int st = run_io((const char *[]){"--json-fd", "3", "sh", "-c",
                                         "[ -e /proc/self/fd/3 ] && echo job-has-fd-3; "
                                         "echo job-err >&2; exit 4",
                                         NULL},
                        "", 0, -1, rec, NULL);
        ck_assert(WIFEXITED(st));
        ck_assert_int_eq(WEXITSTATUS(st), 4);
        ck_assert_str_eq(berr, "job-err\n");
        ck_assert_str_eq(bout, ""); /* the job did not get fd 3 */
        static char text[4096];
        slurp(rec, text, sizeof(text));
        ck_assert_ptr_nonnull(strchr(text, '\n'));
        *strchr(text, '\n') = '\0';
        cJSON *r = parse_json(text);
        ck_assert_int_eq(cJSON_GetObjectItem(r, "exitcode")->valueint, 4);
        cJSON_Delete(r);
        /* Batch mode too, and an fd that is not open is refused. */
        rec = tmpfile_fd();
        st = run_io((const char *[]){"-j", "2", "--json-fd", "3", NULL}, "true\nfalse\n", 11,
                    -1, rec, NULL);
        ck_assert(WIFEXITED(st));
        ck_assert_int_eq(WEXITSTATUS(st), 123);
        ck_assert_str_eq(berr, "mpspawn: line 2: exit status 1\n");
        slurp(rec, text, sizeof(text));
        ck_assert_ptr_nonnull(strstr(text, "\"line\":1,"));
        ck_assert_ptr_nonnull(strstr(text, "\"line\":2,"));
        ck_assert_int_eq(batch_status((const char *[]){"--json-fd", "9", "true", NULL}, "", 0),
                         125);
        ck_assert_str_eq(berr, "mpspawn: bad --json-fd '9' (not an fd open for writing)\n"
                               "Try 'mpspawn --help' for more information.\n");
}
END_TEST

START_TEST(test_timeout_suffixes_run) {
        ck_assert_int_eq(batch_status((const char *[]){"--timeout", "2m", "--kill-after",
                                                       "1.5s", "true", NULL},
                                      "", 0),
                         0);
        ck_assert_int_eq(batch_status((const char *[]){"--timeout", "0.1s", "sleep", "10", NULL},
                                      "", 0),
                         124);
}
END_TEST

/* shared-server: ps --json and wait --json are valid for any bytes. */
START_TEST(test_ps_json_is_valid_for_any_bytes) {
        pid_t pid;
        unsigned long long id = detach("n\xff\xfe", QUIET "exec sleep 60 # \xe9t\xe9", &pid);
        ck_assert_int_eq(mpspawn((const char *[]){"ps", "--json", NULL}), 0);
        cJSON *arr = parse_json(out);
        ck_assert_int_eq(cJSON_GetArraySize(arr), 1);
        cJSON *job = cJSON_GetArrayItem(arr, 0);
        ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(job, "name_latin1")));
        ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(job, "command_latin1")));
        char bytes[512];
        latin1_bytes(cJSON_GetObjectItem(job, "name")->valuestring, bytes, sizeof(bytes));
        ck_assert_str_eq(bytes, "n\xff\xfe");
        latin1_bytes(cJSON_GetObjectItem(job, "command")->valuestring, bytes, sizeof(bytes));
        ck_assert_ptr_nonnull(strstr(bytes, "sleep 60 # \xe9t\xe9"));
        cJSON_Delete(arr);
        char ids[32];
        snprintf(ids, sizeof(ids), "%llu", id);
        ck_assert_int_eq(mpspawn((const char *[]){"kill", ids, NULL}), 0);
        /* wait --json: pid 0 (the server's record has none), as mpspawn(1). */
        ck_assert_int_eq(mpspawn((const char *[]){"wait", "--json", ids, NULL}), 143);
        cJSON *r = parse_json(err);
        ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(r, "pid")));
        ck_assert_int_eq(cJSON_GetObjectItem(r, "pid")->valueint, 0);
        ck_assert_int_eq(cJSON_GetObjectItem(r, "signal")->valueint, SIGTERM);
        cJSON_Delete(r);
        /* A valid UTF-8 name goes as it is, without a flag. */
        id = detach("caf\xc3\xa9", QUIET "exec sleep 60", &pid);
        ck_assert_int_eq(mpspawn((const char *[]){"ps", "--json", NULL}), 0);
        arr = parse_json(out);
        job = cJSON_GetArrayItem(arr, 0);
        ck_assert_str_eq(cJSON_GetObjectItem(job, "name")->valuestring, "caf\xc3\xa9");
        ck_assert_ptr_null(cJSON_GetObjectItem(job, "name_latin1"));
        cJSON_Delete(arr);
        snprintf(ids, sizeof(ids), "%llu", id);
        ck_assert_int_eq(mpspawn((const char *[]){"kill", ids, "KILL", NULL}), 0);
        ck_assert_int_eq(mpspawn((const char *[]){"wait", ids, NULL}), 137);
}
END_TEST

/* shared-server: --signal is what the server sends at the timeout. */
START_TEST(test_timeout_signal_and_preserve_status) {
        ck_assert_int_eq(batch_status((const char *[]){"--json", "--timeout", "0.1s", "--signal",
                                                       "INT", "sleep", "10", NULL},
                                      "", 0),
                         124);
        cJSON *r = parse_json(berr);
        ck_assert_int_eq(cJSON_GetObjectItem(r, "signal")->valueint, SIGINT);
        ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "timed_out")));
        cJSON_Delete(r);
        /* --preserve-status: the job's own status, 128+N, as timeout(1). */
        ck_assert_int_eq(batch_status((const char *[]){"--timeout", "0.1s", "--signal", "INT",
                                                       "--preserve-status", "sleep", "10",
                                                       NULL},
                                      "", 0),
                         128 + SIGINT);
        /* A job that handles the signal and exits 3: 3, not 124. */
        const char *trap = "trap 'exit 3' USR1; echo ready; while :; do sleep 0.05; done";
        ck_assert_int_eq(batch_status((const char *[]){"--timeout", "0.3", "--signal", "USR1",
                                                       "--preserve-status", "sh", "-c", trap,
                                                       NULL},
                                      "", 0),
                         3);
        ck_assert_int_eq(batch_status((const char *[]){"--timeout", "0.3", "--signal", "USR1",
                                                       "sh", "-c", trap, NULL},
                                      "", 0),
                         124);
        /* SIGKILL after --kill-after kills mpspawn too, either way, as
         * timeout(1) is killed with its group (the shell says 137). */
        int st = run_io((const char *[]){"--timeout", "0.1", "--signal", "USR2", "--kill-after",
                                         "0.1", "--preserve-status", "sh", "-c",
                                         "trap '' USR2; while :; do sleep 0.05; done", NULL},
                        "", 0, -1, -1, NULL);
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %#x", st);
}
END_TEST

static Suite *cli_suite(void) {
        Suite *s = suite_create("cli");
        TCase *t = tcase_create("cli");
        tcase_set_timeout(t, 120);
        tcase_add_test(t, test_exit_status_is_the_jobs);
        tcase_add_test(t, test_killed_by_signal_kills_mpspawn_with_it);
        tcase_add_test(t, test_not_found_is_127_with_one_line);
        tcase_add_test(t, test_not_executable_is_126);
        tcase_add_test(t, test_own_failures_are_125);
        tcase_add_test(t, test_help_and_version);
        tcase_add_test(t, test_stdio_env_and_cwd);
        tcase_add_test(t, test_program_options_stay_the_programs);
        tcase_add_test(t, test_sigterm_is_forwarded_to_the_job);
        tcase_add_test(t, test_sigint_and_usr1_are_forwarded);
        tcase_add_test(t, test_killed_mpspawn_takes_its_job_along);
        tcase_add_test(t, test_explicit_socket_and_server_subcommand);
        tcase_add_test(t, test_timeout_is_124_and_recorded);
        tcase_add_test(t, test_timeout_on_a_job_ignoring_sigterm_ends_with_sigkill);
        tcase_add_test(t, test_bad_timeout_values_are_125);
        tcase_add_test(t, test_rlimits_are_visible_in_the_job);
        tcase_add_test(t, test_help_lists_every_option);
        tcase_add_test(t, test_batch_200_lines_8_at_a_time_each_once);
        tcase_add_test(t, test_batch_quoting_failures_and_123);
        tcase_add_test(t, test_batch_halt_on_failure_starts_nothing_more);
        tcase_add_test(t, test_batch_with_a_program_prefix);
        tcase_add_test(t, test_batch_stops_on_sigterm_while_waiting_for_input);
        tcase_add_test(t, test_batch_null_items_from_find_are_exact);
        tcase_add_test(t, test_batch_delimiter_items_are_literal);
        tcase_add_test(t, test_batch_replace_places_the_item);
        tcase_add_test(t, test_batch_jobs_zero_runs_everything);
        tcase_add_test(t, test_batch_progress_only_on_a_terminal);
        tcase_add_test(t, test_batch_records_carry_line_and_command);
        tcase_add_test(t, test_start_failure_record_of_one_run);
        tcase_add_test(t, test_json_fd_keeps_records_off_stderr);
        tcase_add_test(t, test_timeout_suffixes_run);
        suite_add_tcase(s, t);

        TCase *sh = tcase_create("shared-server");
        tcase_set_timeout(sh, 120);
        tcase_add_checked_fixture(sh, shared_setup, shared_teardown);
        tcase_add_test(sh, test_detached_job_waited_for_from_another_invocation);
        tcase_add_test(sh, test_detached_job_killed_from_another_invocation);
        tcase_add_test(sh, test_another_user_cannot_see_wait_for_or_kill_a_job);
        tcase_add_test(sh, test_stats_counts_jobs);
        tcase_add_test(sh, test_subcommands_need_a_shared_server);
        tcase_add_test(sh, test_relative_cwd_is_the_callers_not_the_servers);
        tcase_add_test(sh, test_ps_json_is_valid_for_any_bytes);
        tcase_add_test(sh, test_timeout_signal_and_preserve_status);
        suite_add_tcase(s, sh);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(cli_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
