/* SPDX-License-Identifier: MIT */
/*
 * check_child.c: the child's set-up (forkserver/child.c) on its own.
 *
 * The fd arrangement is checked through /proc/self/fd in a process forked
 * for each case: it closes every fd it is not told to keep, Check's own
 * included. Each source is a memfd, so that its inode says which one sits
 * at a number afterwards. The process writes what it found wrong to the
 * exec pipe (which the arrangement keeps) and exits 0 when nothing was.
 *
 * The signal cases run child_run itself, as the server would after a fork
 * with every signal blocked, in a process that has a handler and an
 * ignored signal of its own: the job must start with nothing blocked,
 * caught or ignored.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../forkserver/child.h"

#define MAX_SOURCES 8
#define CLOSED (-2)   /* expected: nothing open at this number */
#define DEVNULL (-1)  /* expected: /dev/null */
#define SOURCE_STAGING 500 /* sources are made here, then moved into place */
#define REPORT_STAGING 600

struct arrangement {
        int at[MAX_SOURCES]; /* where source i sits before the arrangement */
        size_t nsrc;
        struct mps__fd_map map[16];
        size_t nmap;
        int extra[8]; /* other fds open before: all must be closed after */
        size_t nextra;
        int errpipe_at;
};

struct ident {
        dev_t dev;
        ino_t ino;
};

static int ident_of(int fd, struct ident *ret) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        *ret = (struct ident){st.st_dev, st.st_ino};
        return 0;
}

static bool same(struct ident a, struct ident b) {
        return a.dev == b.dev && a.ino == b.ino;
}

/* What should be at each number after the arrangement, and hi. */
static int expected_fds(const struct arrangement *a, int *want, size_t nwant) {
        int hi = 3;
        for (size_t i = 0; i < nwant; i++)
                want[i] = i <= 2 ? DEVNULL : CLOSED;
        for (size_t i = 0; i < a->nmap; i++) {
                int t = a->map[i].target;
                want[t] = a->map[i].source >= 0 ? a->map[i].source
                                                : t <= 2 ? DEVNULL : CLOSED;
                if (t + 1 > hi)
                        hi = t + 1;
        }
        return hi;
}

/* Puts the sources, the extras and the exec pipe where the case says,
 * every other fd closed; records each source's identity. */
static int stage_fds(const struct arrangement *a, int report, struct ident *ids) {
        for (size_t i = 0; i < a->nsrc; i++) {
                int m = memfd_create("source", MFD_CLOEXEC);
                if (m < 0 || dup3(m, SOURCE_STAGING + (int)i, O_CLOEXEC) < 0 ||
                    ident_of(m, &ids[i]) < 0)
                        return -errno;
        }
        if (dup3(report, REPORT_STAGING, O_CLOEXEC) < 0)
                return -errno;
        close_range(0, SOURCE_STAGING - 1, 0);
        close_range(SOURCE_STAGING + (unsigned)a->nsrc, REPORT_STAGING - 1, 0);
        close_range(REPORT_STAGING + 1, ~0u, 0);
        for (size_t i = 0; i < a->nsrc; i++)
                if (dup3(SOURCE_STAGING + (int)i, a->at[i], O_CLOEXEC) < 0)
                        return -errno;
        if (dup3(REPORT_STAGING, a->errpipe_at, O_CLOEXEC) < 0)
                return -errno;
        close_range(SOURCE_STAGING, REPORT_STAGING, 0);
        /* Not CLOEXEC: the arrangement closes them all the same. */
        for (size_t i = 0; i < a->nextra; i++) {
                int null = open("/dev/null", O_RDONLY);
                if (null < 0 || dup2(null, a->extra[i]) < 0)
                        return -errno;
                if (null != a->extra[i])
                        close(null);
        }
        return 0;
}

/* One fd found open: is it what should be there? Number of problems. */
static int check_one(int fd, int errpipe, int hi, const int *want, const struct ident *ids,
                     struct ident devnull) {
        int flags = fcntl(fd, F_GETFD);
        struct ident id = {0, 0};
        if (fd == errpipe) {
                if (fd < hi || !(flags & FD_CLOEXEC)) {
                        dprintf(errpipe, "exec pipe at %d (hi %d), flags %d; ", fd, hi, flags);
                        return 1;
                }
                return 0;
        }
        if (fd > MPS_WIRE_TARGET_FD_MAX || want[fd] == CLOSED) {
                dprintf(errpipe, "fd %d is open; ", fd);
                return 1;
        }
        struct ident expect = want[fd] == DEVNULL ? devnull : ids[want[fd]];
        if (ident_of(fd, &id) < 0 || !same(id, expect)) {
                dprintf(errpipe, "fd %d is not %s %d; ", fd,
                        want[fd] == DEVNULL ? "/dev/null" : "source", want[fd]);
                return 1;
        }
        if (flags & FD_CLOEXEC) {
                dprintf(errpipe, "fd %d is close-on-exec; ", fd);
                return 1;
        }
        return 0;
}

/* In the forked process: arrange, then compare /proc/self/fd with want. */
static _Noreturn void arrange_and_check(const struct arrangement *a, int report) {
        struct ident ids[MAX_SOURCES], devnull;
        int want[MPS_WIRE_TARGET_FD_MAX + 1];
        int hi = expected_fds(a, want, MPS_WIRE_TARGET_FD_MAX + 1);
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null < 0 || ident_of(null, &devnull) < 0 || stage_fds(a, report, ids) < 0)
                _exit(2);
        int fds[MAX_SOURCES];
        memcpy(fds, a->at, sizeof(fds));
        struct mps__spawn spec = {.fdmap = (struct mps__fd_map *)a->map, .nfdmap = a->nmap};
        int errpipe = a->errpipe_at;
        int r = child_arrange_fds(&spec, fds, a->nsrc, &errpipe);
        if (r < 0) {
                dprintf(errpipe, "child_arrange_fds: %s", strerror(-r));
                _exit(1);
        }
        int problems = 0, seen = 0, targets = 0;
        for (int t = 0; t <= MPS_WIRE_TARGET_FD_MAX; t++)
                targets += want[t] != CLOSED;
        DIR *d = opendir("/proc/self/fd");
        if (!d)
                _exit(2);
        struct dirent *e;
        while ((e = readdir(d))) {
                int fd = atoi(e->d_name);
                if (e->d_name[0] == '.' || fd == dirfd(d))
                        continue;
                problems += check_one(fd, errpipe, hi, want, ids, devnull);
                seen += fd != errpipe;
        }
        if (seen != targets)
                dprintf(errpipe, "%d fds open besides the exec pipe, %d expected", seen,
                        targets);
        _exit(problems == 0 && seen == targets ? 0 : 1);
}

static void run_case(const struct arrangement *a) {
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
                arrange_and_check(a, p[1]);
        close(p[1]);
        char buf[2048] = "";
        size_t n = 0;
        ssize_t k;
        while (n < sizeof(buf) - 1 && (k = read(p[0], buf + n, sizeof(buf) - 1 - n)) > 0)
                n += (size_t)k;
        buf[n] = '\0';
        close(p[0]);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "status 0x%x: %s", status, buf);
}

START_TEST(test_identity) {
        run_case(&(struct arrangement){.at = {0, 1, 2}, .nsrc = 3,
                                       .map = {{0, 0}, {1, 1}, {2, 2}}, .nmap = 3,
                                       .errpipe_at = 3});
}
END_TEST

START_TEST(test_permutation_of_0_and_1) {
        /* Source 0 sits at fd 0 and goes to 1; source 1 the other way. */
        run_case(&(struct arrangement){.at = {0, 1}, .nsrc = 2,
                                       .map = {{0, 1}, {1, 0}}, .nmap = 2,
                                       .errpipe_at = 5});
}
END_TEST

START_TEST(test_cycle) {
        run_case(&(struct arrangement){.at = {0, 1, 2}, .nsrc = 3,
                                       .map = {{0, 1}, {1, 2}, {2, 0}}, .nmap = 3,
                                       .errpipe_at = 4});
}
END_TEST

START_TEST(test_swap_above_stdio) {
        run_case(&(struct arrangement){.at = {3, 4}, .nsrc = 2,
                                       .map = {{3, 1}, {4, 0}}, .nmap = 2,
                                       .errpipe_at = 6});
}
END_TEST

START_TEST(test_targets_above_the_highest_source) {
        run_case(&(struct arrangement){.at = {3, 4}, .nsrc = 2,
                                       .map = {{10, 0}, {200, 1}, {1023, 0}}, .nmap = 3,
                                       .errpipe_at = 5});
}
END_TEST

START_TEST(test_one_source_for_several_targets) {
        run_case(&(struct arrangement){.at = {5}, .nsrc = 1,
                                       .map = {{1, 0}, {2, 0}, {7, 0}}, .nmap = 3,
                                       .errpipe_at = 3});
}
END_TEST

START_TEST(test_closed_sources) {
        /* -1 on 0-2 is /dev/null; above, the number is closed, even where
         * something was open there before (fd 5 here). */
        run_case(&(struct arrangement){.at = {3}, .nsrc = 1,
                                       .map = {{0, -1}, {1, 0}, {5, -1}, {6, -1}},
                                       .nmap = 4, .extra = {5}, .nextra = 1,
                                       .errpipe_at = 4});
}
END_TEST

START_TEST(test_fds_not_named_are_closed) {
        run_case(&(struct arrangement){.at = {4}, .nsrc = 1, .map = {{1, 0}}, .nmap = 1,
                                       .extra = {0, 2, 3, 8, 50, 300}, .nextra = 6,
                                       .errpipe_at = 9});
}
END_TEST

START_TEST(test_exec_pipe_on_a_target) {
        /* The exec pipe sits where a source must go: it moves first. */
        run_case(&(struct arrangement){.at = {4, 1}, .nsrc = 2,
                                       .map = {{3, 0}, {0, 1}}, .nmap = 2,
                                       .errpipe_at = 3});
}
END_TEST

START_TEST(test_source_on_its_own_target_and_another) {
        /* A source at 2 that is both 2 and 0; another from 0 to 9. */
        run_case(&(struct arrangement){.at = {2, 0}, .nsrc = 2,
                                       .map = {{2, 0}, {0, 0}, {9, 1}}, .nmap = 3,
                                       .errpipe_at = 1});
}
END_TEST

/* --- signals --------------------------------------------------------------- */

static volatile sig_atomic_t handled;

static void on_usr2(int sig) {
        (void)sig;
        handled = 1;
}

/* The signals libc keeps for itself (sigaction refuses them, as main.c
 * notes): whatever the test was started with stays with them, in the
 * server's jobs as here. */
static unsigned long long libc_own(void) {
        unsigned long long own = 0;
        for (int sig = 1; sig < NSIG && sig <= 64; sig++) {
                struct sigaction now;
                if (sig != SIGKILL && sig != SIGSTOP && sigaction(sig, NULL, &now) < 0)
                        own |= 1ull << (sig - 1);
        }
        return own;
}

/* "SigBlk:\t0000..." of /proc/self/status, or ~0 when it is not there. */
static unsigned long long status_mask(const char *text, const char *key) {
        const char *p = strstr(text, key);
        unsigned long long v = ~0ull;
        if (p)
                sscanf(p + strlen(key), " %llx", &v);
        return v & ~libc_own();
}

/* 0 when nothing is blocked, caught or ignored in this process; prints
 * the three masks on stdout either way. */
static int masks_are_clear(const mps_call_context *ctx) {
        char text[8192];
        (void)ctx;
        int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;
        if (n < 0)
                return 2;
        text[n] = '\0';
        unsigned long long blk = status_mask(text, "SigBlk:"),
                           cgt = status_mask(text, "SigCgt:"),
                           ign = status_mask(text, "SigIgn:");
        printf("SigBlk: %llx SigCgt: %llx SigIgn: %llx\n", blk, cgt, ign);
        return blk == 0 && cgt == 0 && ign == 0 ? 0 : 1;
}

/* As main.c: a server with dispositions of its own (a handler, as a
 * preloaded library might install, and SIGPIPE ignored), child_reset
 * naming every one not at the default, SIGTERM and SIGINT in its mask. */
static void become_server(struct server *srv, sigset_t *ret_mask) {
        struct sigaction sa = {.sa_handler = on_usr2};
        sigemptyset(&sa.sa_mask);
        ck_assert_int_eq(sigaction(SIGUSR2, &sa, NULL), 0);
        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&srv->launch.child_reset);
        for (int sig = 1; sig < NSIG; sig++) {
                struct sigaction now;
                if (sig != SIGKILL && sig != SIGSTOP && sigaction(sig, NULL, &now) == 0 &&
                    now.sa_handler != SIG_DFL)
                        sigaddset(&srv->launch.child_reset, sig);
        }
        getrlimit(RLIMIT_NOFILE, &srv->launch.orig_nofile);
        sigemptyset(ret_mask);
        sigaddset(ret_mask, SIGTERM);
        sigaddset(ret_mask, SIGINT);
        sigprocmask(SIG_SETMASK, ret_mask, NULL);
}

/* Runs child_run in a forked child as the server would (every signal
 * blocked across the fork); returns its exit status and stdout. */
static int run_child(const struct mps__spawn *base, const struct child_call *call,
                     char *out, size_t outlen) {
        int o[2], e[2];
        ck_assert_int_eq(pipe2(o, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(e, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                static struct server srv;
                struct child_plan plan = {.call = call, .server_pid = getppid()};
                become_server(&srv, &plan.setup_mask);
                sigset_t all;
                sigfillset(&all);
                sigprocmask(SIG_SETMASK, &all, NULL);
                struct mps__fd_map map[] = {{1, 0}};
                int fds[] = {o[1]};
                struct mps__spawn spec = *base;
                spec.fdmap = map;
                spec.nfdmap = 1;
                child_run(&srv, &spec, fds, 1, e[1], &plan);
        }
        close(o[1]);
        close(e[1]);
        ssize_t n = read(o[0], out, outlen - 1);
        out[n > 0 ? n : 0] = '\0';
        struct child_failure f;
        ck_assert_int_eq(read(e[0], &f, sizeof(f)), 0); /* set up, no failure */
        close(o[0]);
        close(e[0]);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        return status;
}

static const char *const no_env[] = {"PATH=/usr/bin:/bin", NULL};

START_TEST(test_exec_job_starts_with_no_signal_blocked_or_ignored) {
        const char *argv[] = {"sh", "-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status", NULL};
        struct mps__spawn spec = {.path = "/bin/sh", .argv = argv, .argc = 3,
                                  .envp = (const char **)no_env, .umask = -1};
        char out[512];
        int status = run_child(&spec, NULL, out, sizeof(out));
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x", status);
        ck_assert_msg(status_mask(out, "SigBlk:") == 0 && status_mask(out, "SigIgn:") == 0,
                      "the job has: %s", out);
}
END_TEST

START_TEST(test_call_job_has_none_of_the_servers_handlers) {
        /* No exec: a handler the server had would still be installed. */
        struct child_call call = {masks_are_clear, "masks_are_clear", "null"};
        struct mps__spawn spec = {.call_entry = "masks_are_clear",
                                  .envp = (const char **)no_env, .umask = -1};
        char out[512];
        int status = run_child(&spec, &call, out, sizeof(out));
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x: %s",
                      status, out);
        ck_assert_msg(strstr(out, "SigBlk: 0 SigCgt: 0 SigIgn: 0"), "%s", out);
}
END_TEST

static Suite *child_suite(void) {
        Suite *s = suite_create("child");
        TCase *t = tcase_create("fds");
        tcase_add_test(t, test_identity);
        tcase_add_test(t, test_permutation_of_0_and_1);
        tcase_add_test(t, test_cycle);
        tcase_add_test(t, test_swap_above_stdio);
        tcase_add_test(t, test_targets_above_the_highest_source);
        tcase_add_test(t, test_one_source_for_several_targets);
        tcase_add_test(t, test_closed_sources);
        tcase_add_test(t, test_fds_not_named_are_closed);
        tcase_add_test(t, test_exec_pipe_on_a_target);
        tcase_add_test(t, test_source_on_its_own_target_and_another);
        suite_add_tcase(s, t);
        t = tcase_create("signals");
        tcase_add_test(t, test_exec_job_starts_with_no_signal_blocked_or_ignored);
        tcase_add_test(t, test_call_job_has_none_of_the_servers_handlers);
        suite_add_tcase(s, t);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(child_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
