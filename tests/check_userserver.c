/* SPDX-License-Identifier: MIT */
/*
 * check_userserver.c: the per-user server that mpspawn starts for itself
 * (launcher/cli_server.c), end to end through the CLI, and the small fixes
 * of issue 14 that came with it:
 *
 *   start    `mpspawn true` starts one server, detached, with a context of
 *            its own (cwd /, stdio /dev/null, umask 077, its own session,
 *            raised soft limits, a short environment), and reuses it
 *   race     8 CLIs at once end with one server
 *   detach   --detach, then ps and wait find the job
 *   idle     the server exits once idle, but not while an exit record
 *            waits to be collected
 *   private  without XDG_RUNTIME_DIR, a private 0700 directory, refused
 *            when it is not ours, not 0700 or a symlink
 *   small    `mpspawn server --help`, the unknown-option message
 *
 * Each test gets its own XDG_RUNTIME_DIR and MPSPAWN_TMPDIR under one
 * directory of the suite; a system server, if one answers, is hidden in a
 * mount namespace of the test's own. Servers are killed by pid at the end
 * of each test and, for any a failed test left, of the suite.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../include/mpspawn.h"
#include "testutil.h"

#define SYSTEM_SOCKET "/run/mpspawn/forkserver.sock"

extern char **environ;

static char suite_dir[64];   /* all the tests' directories, made by the parent */
static char base[128];       /* this test's */
static char xdg[160], tmpdir[160], sock[200];
static char out[8192], err[8192];

/* ---- helpers ------------------------------------------------------------------------ */

/* The pids of the servers whose command line names a path under dir. */
static size_t find_servers(const char *dir, pid_t *pids, size_t max) {
        size_t n = 0;
        DIR *d = opendir("/proc");
        ck_assert_ptr_nonnull(d);
        struct dirent *e;
        while ((e = readdir(d)) && n < max) {
                char path[300], cmd[4096];
                pid_t pid = (pid_t)atoi(e->d_name);
                if (pid <= 0)
                        continue;
                snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                ssize_t len = read(fd, cmd, sizeof(cmd) - 1);
                close(fd);
                if (len <= 0)
                        continue;
                cmd[len] = '\0';
                /* argv[0], then "--socket" and the path. */
                size_t first = strlen(cmd);
                if ((size_t)len > first + 1 && strcmp(cmd + first + 1, "--socket") == 0 &&
                    strstr(cmd + first + 1 + sizeof("--socket"), dir) ==
                            cmd + first + 1 + sizeof("--socket"))
                        pids[n++] = pid;
        }
        closedir(d);
        return n;
}

/* Kills them by pid and waits for each to be gone (bounded). */
static void kill_servers(const char *dir) {
        pid_t pids[64];
        size_t n = find_servers(dir, pids, 64);
        for (size_t i = 0; i < n; i++) {
                int pidfd = pidfd_open(pids[i], 0);
                kill(pids[i], SIGKILL);
                if (pidfd >= 0) {
                        struct pollfd p = {.fd = pidfd, .events = POLLIN};
                        poll(&p, 1, 5000);
                        close(pidfd);
                }
        }
}

static void rm_rf(const char *dir) {
        const char *argv[] = {"/bin/rm", "-rf", dir, NULL};
        tu_run(argv, NULL, NULL, 0, NULL, 0);
}

/* Runs mpspawn args... and returns its exit status (-1 if killed). */
static int cli(const char *const *args) {
        const char *argv[32] = {tu_cli()};
        size_t n = 1;
        while (args[n - 1] && n < 31) {
                argv[n] = args[n - 1];
                n++;
        }
        argv[n] = NULL;
        int st = tu_run(argv, NULL, out, sizeof(out), err, sizeof(err));
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define CLI(...) cli((const char *const[]){__VA_ARGS__, NULL})

/* The pid of the server answering at path, or 0. */
static pid_t server_pid_at(const char *path) {
        mps_client *c = NULL;
        char *msg = NULL;
        pid_t pid = 0;
        if (mps_client_open(path, &c, &msg) == 0)
                pid = mps_client_server_pid(c);
        mps_client_close(c);
        free(msg);
        return pid;
}

/* Whether pid exits within timeout_ms (it is not our child: a pidfd). */
static bool exits_within(pid_t pid, int timeout_ms) {
        int pidfd = pidfd_open(pid, 0);
        if (pidfd < 0)
                return errno == ESRCH;
        struct pollfd p = {.fd = pidfd, .events = POLLIN};
        int r = poll(&p, 1, timeout_ms);
        close(pidfd);
        return r == 1;
}

static void read_proc(pid_t pid, const char *what, char *buf, size_t len) {
        char path[128];
        snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ssize_t n = read(fd, buf, len - 1);
        close(fd);
        ck_assert_int_gt(n, 0);
        buf[n] = '\0';
        for (ssize_t i = 0; i < n; i++)
                if (buf[i] == '\0')
                        buf[i] = '\n'; /* environ, cmdline: one per line */
}

static void link_of(pid_t pid, const char *what, char *buf, size_t len) {
        char path[128];
        snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
        ssize_t n = readlink(path, buf, len - 1);
        ck_assert_int_gt(n, 0);
        buf[n] = '\0';
}

/* "ID PID" of --detach: the ID. */
static unsigned long long detached_id(void) {
        unsigned long long id = 0;
        ck_assert_msg(sscanf(out, "%llu", &id) == 1, "no ID in '%s'", out);
        return id;
}

/* A system server would be found before ours: hide it, in a mount
 * namespace of this test process (and so of the CLIs it runs). */
static void hide_system_server(void) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX, .sun_path = SYSTEM_SOCKET};
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
        close(fd);
        if (r < 0)
                return;
        ck_assert_msg(unshare(CLONE_NEWNS) == 0 &&
                              mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
                              mount("tmpfs", "/run/mpspawn", "tmpfs", 0, "mode=0755") == 0,
                      "a system server answers at " SYSTEM_SOCKET " and cannot be hidden: %s",
                      strerror(errno));
}

/* ---- fixtures ----------------------------------------------------------------------- */

static void suite_setup(void) {
        snprintf(suite_dir, sizeof(suite_dir), "/tmp/mps-userserver-XXXXXX");
        if (!mkdtemp(suite_dir))
                abort();
}

static void suite_teardown(void) {
        kill_servers(suite_dir);
        rm_rf(suite_dir);
}

static void setup(void) {
        snprintf(base, sizeof(base), "%s/t-XXXXXX", suite_dir);
        ck_assert_ptr_nonnull(mkdtemp(base));
        snprintf(xdg, sizeof(xdg), "%s/run", base);
        snprintf(tmpdir, sizeof(tmpdir), "%s/tmp", base);
        snprintf(sock, sizeof(sock), "%s/mpspawn.sock", xdg);
        ck_assert_int_eq(mkdir(xdg, 0700), 0);
        ck_assert_int_eq(mkdir(tmpdir, 0755), 0);
        setenv("XDG_RUNTIME_DIR", xdg, 1);
        setenv("MPSPAWN_TMPDIR", tmpdir, 1);
        /* Short enough that a server a failed test left goes on its own. */
        setenv("MPSPAWN_USER_SERVER_IDLE", "30", 1);
        unsetenv("MPSPAWN_SOCKET");
        unsetenv("MPSPAWN_USER_SERVER");
        hide_system_server();
}

static void teardown(void) {
        kill_servers(base);
}

/* ---- start and reuse ---------------------------------------------------------------- */

START_TEST(test_starts_one_server_and_reuses_it) {
        /* What the first CLI's context must not give the server. */
        struct rlimit cpu;
        ck_assert_int_eq(getrlimit(RLIMIT_CPU, &cpu), 0);
        if (cpu.rlim_max == RLIM_INFINITY || cpu.rlim_max > 7200) {
                cpu.rlim_cur = 3600;
                ck_assert_int_eq(setrlimit(RLIMIT_CPU, &cpu), 0);
        }
        umask(0);
        ck_assert_int_eq(chdir(base), 0);
        setenv("MPS_USERSERVER_MARKER", "from-the-first-cli", 1);

        ck_assert_int_eq(CLI("sh", "-c", "echo ran"), 0);
        ck_assert_str_eq(out, "ran\n");
        pid_t pid = server_pid_at(sock);
        ck_assert_int_gt(pid, 0);

        char buf[16384];
        link_of(pid, "cwd", buf, sizeof(buf));
        ck_assert_str_eq(buf, "/");
        link_of(pid, "fd/0", buf, sizeof(buf));
        ck_assert_str_eq(buf, "/dev/null");
        link_of(pid, "fd/1", buf, sizeof(buf));
        ck_assert_str_eq(buf, "/dev/null");
        char logpath[256];
        snprintf(logpath, sizeof(logpath), "%s/mpspawn.log", xdg);
        link_of(pid, "fd/2", buf, sizeof(buf));
        ck_assert_str_eq(buf, logpath);
        struct stat st;
        ck_assert_int_eq(stat(logpath, &st), 0);
        ck_assert_uint_eq(st.st_mode & 0777, 0600);
        read_proc(pid, "environ", buf, sizeof(buf));
        ck_assert_msg(!strstr(buf, "MPS_USERSERVER_MARKER"), "environment leaked:\n%s", buf);
        ck_assert_ptr_nonnull(strstr(buf, "XDG_RUNTIME_DIR="));
        read_proc(pid, "status", buf, sizeof(buf));
        ck_assert_msg(strstr(buf, "Umask:\t0077\n"), "%s", buf);
        read_proc(pid, "limits", buf, sizeof(buf));
        if (cpu.rlim_cur == 3600)
                ck_assert_msg(strstr(buf, "Max cpu time              unlimited"), "%s", buf);
        /* Its own session, left by the process the CLI started, which
         * was reaped: not our child, nor a zombie of the CLI. */
        read_proc(pid, "stat", buf, sizeof(buf));
        int ppid = 0, pgrp = 0, sid = 0;
        ck_assert_int_eq(sscanf(strrchr(buf, ')') + 2, "%*c %d %d %d", &ppid, &pgrp, &sid), 3);
        ck_assert_int_ne(sid, getsid(0));
        ck_assert_int_ne(ppid, getpid());

        /* A second run reuses it. */
        ck_assert_int_eq(CLI("true"), 0);
        ck_assert_int_eq(server_pid_at(sock), pid);
        pid_t pids[8];
        ck_assert_uint_eq(find_servers(base, pids, 8), 1);
        ck_assert_int_eq(pids[0], pid);
}
END_TEST

/* A server that died without removing its socket is replaced. */
START_TEST(test_a_dead_servers_socket_is_replaced) {
        ck_assert_int_eq(CLI("true"), 0);
        pid_t pid = server_pid_at(sock);
        ck_assert_int_gt(pid, 0);
        kill(pid, SIGKILL);
        ck_assert(exits_within(pid, 5000));
        ck_assert_int_eq(access(sock, F_OK), 0);
        ck_assert_int_eq(CLI("true"), 0);
        pid_t again = server_pid_at(sock);
        ck_assert_int_gt(again, 0);
        ck_assert_int_ne(again, pid);
}
END_TEST

/* A relative $MPSPAWN_FORKSERVER (make demo's build/mpforkserver) is
 * the one next to our cwd, although the server starts in "/". */
START_TEST(test_a_relative_server_path_works) {
        const char *abs = getenv("MPSPAWN_FORKSERVER");
        ck_assert_ptr_nonnull(abs);
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", abs);
        char *slash = strrchr(dir, '/');
        ck_assert_ptr_nonnull(slash);
        *slash = '\0';
        ck_assert_int_eq(chdir(dir), 0);
        setenv("MPSPAWN_FORKSERVER", "./mpforkserver", 1);
        ck_assert_msg(CLI("true") == 0, "%s", err);
        ck_assert_int_gt(server_pid_at(sock), 0);
}
END_TEST

/* A server binary that does not start gives a clear, bounded error. */
START_TEST(test_a_failed_start_is_reported) {
        setenv("MPSPAWN_FORKSERVER", "/bin/false", 1);
        ck_assert_int_eq(CLI("true"), 125);
        ck_assert_msg(strstr(err, "per-user forkserver '/bin/false' failed to start"), "%s", err);
}
END_TEST

START_TEST(test_racing_clis_start_one_server) {
        enum { N = 8 };
        pid_t kids[N];
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        char *argv[] = {(char *)tu_cli(), "true", NULL};
        for (int i = 0; i < N; i++)
                ck_assert_int_eq(posix_spawn(&kids[i], argv[0], &fa, NULL, argv, environ), 0);
        posix_spawn_file_actions_destroy(&fa);
        for (int i = 0; i < N; i++) {
                int st;
                ck_assert_int_eq(waitpid(kids[i], &st, 0), kids[i]);
                ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "CLI %d: status %#x", i, st);
        }
        pid_t pids[16];
        ck_assert_uint_eq(find_servers(base, pids, 16), 1);
        ck_assert_int_eq(server_pid_at(sock), pids[0]);
}
END_TEST

/* ---- --detach, ps, wait -------------------------------------------------------------- */

START_TEST(test_detach_then_ps_and_wait) {
        ck_assert_int_eq(CLI("--detach", "sleep", "1"), 0);
        unsigned long long id = detached_id();
        ck_assert_int_eq(CLI("--detach", "sh", "-c", "exit 3"), 0);
        unsigned long long id3 = detached_id();
        ck_assert_int_eq(CLI("ps"), 0);
        char want[64];
        snprintf(want, sizeof(want), "\n%-8llu ", id);
        ck_assert_msg(strstr(out, want) && strstr(out, "sleep 1"), "ps:\n%s", out);
        char idbuf[32];
        snprintf(idbuf, sizeof(idbuf), "%llu", id);
        ck_assert_int_eq(CLI("wait", idbuf), 0);
        snprintf(idbuf, sizeof(idbuf), "%llu", id3);
        ck_assert_int_eq(CLI("wait", idbuf), 3);
        /* Collected once. */
        ck_assert_int_eq(CLI("wait", idbuf), 127);
}
END_TEST

/* ---- idle exit ----------------------------------------------------------------------- */

START_TEST(test_idle_exit) {
        setenv("MPSPAWN_USER_SERVER_IDLE", "1", 1);
        ck_assert_int_eq(CLI("true"), 0);
        pid_t pid = server_pid_at(sock);
        ck_assert_int_gt(pid, 0);
        ck_assert(exits_within(pid, 15000));
        ck_assert_int_eq(access(sock, F_OK), -1);
        /* And the next run starts a new one. */
        ck_assert_int_eq(CLI("true"), 0);
        ck_assert_int_gt(server_pid_at(sock), 0);
}
END_TEST

/* A detached job's exit record keeps the server up until it is collected:
 * through the CLI's own server, and through any idle_exit server. */
static void record_holds_idle_exit(const char *const *socket_opt, const char *path) {
        const char *args[8];
        size_t n = 0;
        for (; socket_opt[n]; n++)
                args[n] = socket_opt[n];
        args[n] = "--detach", args[n + 1] = "sh", args[n + 2] = "-c", args[n + 3] = "exit 5";
        args[n + 4] = NULL;
        ck_assert_int_eq(cli(args), 0);
        char idbuf[32];
        snprintf(idbuf, sizeof(idbuf), "%llu", detached_id());
        pid_t pid = server_pid_at(path);
        ck_assert_int_gt(pid, 0);
        /* Well past idle_exit (1 s) with nothing but the record. */
        ck_assert_msg(!exits_within(pid, 3000), "the server left with the record");
        args[n] = "wait", args[n + 1] = idbuf, args[n + 2] = NULL;
        ck_assert_int_eq(cli(args), 5);
        ck_assert(exits_within(pid, 15000));
}

START_TEST(test_exit_record_holds_idle_exit) {
        setenv("MPSPAWN_USER_SERVER_IDLE", "1", 1);
        record_holds_idle_exit((const char *const[]){NULL}, sock);
}
END_TEST

START_TEST(test_exit_record_holds_idle_exit_of_any_server) {
        struct tu_server s;
        tu_server_start(&s, (const char *const[]){"--idle-exit", "1", NULL});
        record_holds_idle_exit((const char *const[]){"-s", s.path, NULL}, s.path);
        tu_server_stop(&s);
}
END_TEST

/* ---- the private directory ----------------------------------------------------------- */

static char private_dir[256];

static void no_xdg(void) {
        unsetenv("XDG_RUNTIME_DIR");
        snprintf(private_dir, sizeof(private_dir), "%s/mpspawn-%u", tmpdir, (unsigned)geteuid());
}

START_TEST(test_private_dir_without_xdg) {
        no_xdg();
        ck_assert_int_eq(CLI("true"), 0);
        struct stat st;
        ck_assert_int_eq(lstat(private_dir, &st), 0);
        ck_assert(S_ISDIR(st.st_mode));
        ck_assert_uint_eq(st.st_mode & 07777, 0700);
        ck_assert_uint_eq(st.st_uid, geteuid());
        char path[300];
        snprintf(path, sizeof(path), "%s/mpspawn.sock", private_dir);
        pid_t pid = server_pid_at(path);
        ck_assert_int_gt(pid, 0);
        /* The library's default search (and so ps) finds it there. */
        ck_assert_int_eq(CLI("ps"), 0);
        ck_assert_int_eq(CLI("--detach", "sh", "-c", "exit 4"), 0);
        char idbuf[32];
        snprintf(idbuf, sizeof(idbuf), "%llu", detached_id());
        ck_assert_int_eq(CLI("wait", idbuf), 4);
        ck_assert_int_eq(server_pid_at(path), pid);
}
END_TEST

/* Refused, with what is wrong; nothing started, and ps does not go there. */
static void refused(const char *why) {
        ck_assert_int_eq(CLI("true"), 125);
        ck_assert_msg(strstr(err, "refusing") && strstr(err, why), "stderr: %s", err);
        ck_assert_msg(strstr(err, private_dir), "stderr: %s", err);
        ck_assert_int_eq(CLI("ps"), 125);
        pid_t pids[4];
        ck_assert_uint_eq(find_servers(base, pids, 4), 0);
}

START_TEST(test_private_dir_refused_when_open_to_others) {
        no_xdg();
        ck_assert_int_eq(mkdir(private_dir, 0700), 0);
        ck_assert_int_eq(chmod(private_dir, 0777), 0);
        refused("mode is 0777");
}
END_TEST

START_TEST(test_private_dir_refused_when_a_symlink) {
        no_xdg();
        char target[300];
        snprintf(target, sizeof(target), "%s/elsewhere", tmpdir);
        ck_assert_int_eq(mkdir(target, 0700), 0);
        ck_assert_int_eq(symlink(target, private_dir), 0);
        refused("symbolic link");
}
END_TEST

START_TEST(test_private_dir_refused_when_someone_elses) {
        if (geteuid() != 0)
                return; /* only root can give a directory away */
        no_xdg();
        ck_assert_int_eq(mkdir(private_dir, 0700), 0);
        ck_assert_int_eq(chown(private_dir, 65534, 65534), 0);
        refused("belongs to uid 65534");
}
END_TEST

/* $MPSPAWN_USER_SERVER=0: a private embedded server, as before. */
START_TEST(test_user_server_can_be_turned_off) {
        setenv("MPSPAWN_USER_SERVER", "0", 1);
        ck_assert_int_eq(CLI("true"), 0);
        ck_assert_int_eq(access(sock, F_OK), -1);
        pid_t pids[4];
        ck_assert_uint_eq(find_servers(base, pids, 4), 0);
}
END_TEST

/* ---- the small ones ------------------------------------------------------------------ */

START_TEST(test_server_help_names_mpspawn_server) {
        ck_assert_int_eq(CLI("server", "--help"), 0);
        ck_assert_msg(strncmp(out, "Usage: mpspawn server [OPTIONS]\n", 32) == 0, "%s", out);
        ck_assert_int_eq(CLI("server", "--bogus"), 2);
        ck_assert_msg(strstr(err, "mpspawn server: ") && strstr(err, "Try 'mpspawn server --help'"),
                      "%s", err);
}
END_TEST

START_TEST(test_unknown_option_says_which) {
        ck_assert_int_eq(CLI("--bogus", "true"), 125);
        ck_assert_msg(strstr(err, "mpspawn: unknown option '--bogus'\n"), "%s", err);
        ck_assert_int_eq(CLI("--timeout"), 125);
        ck_assert_msg(strstr(err, "mpspawn: option '--timeout' needs a value\n"), "%s", err);
        ck_assert_int_eq(CLI("ps", "--bogus"), 125);
        ck_assert_msg(strstr(err, "mpspawn: unknown option '--bogus'\n"), "%s", err);
}
END_TEST

static Suite *userserver_suite(void) {
        Suite *s = suite_create("userserver");
        TCase *tc = tcase_create("userserver");
        tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_starts_one_server_and_reuses_it);
        tcase_add_test(tc, test_a_dead_servers_socket_is_replaced);
        tcase_add_test(tc, test_a_failed_start_is_reported);
        tcase_add_test(tc, test_a_relative_server_path_works);
        tcase_add_test(tc, test_racing_clis_start_one_server);
        tcase_add_test(tc, test_detach_then_ps_and_wait);
        tcase_add_test(tc, test_idle_exit);
        tcase_add_test(tc, test_exit_record_holds_idle_exit);
        tcase_add_test(tc, test_exit_record_holds_idle_exit_of_any_server);
        tcase_add_test(tc, test_private_dir_without_xdg);
        tcase_add_test(tc, test_private_dir_refused_when_open_to_others);
        tcase_add_test(tc, test_private_dir_refused_when_a_symlink);
        tcase_add_test(tc, test_private_dir_refused_when_someone_elses);
        tcase_add_test(tc, test_user_server_can_be_turned_off);
        tcase_add_test(tc, test_server_help_names_mpspawn_server);
        tcase_add_test(tc, test_unknown_option_says_which);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(userserver_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
