/* SPDX-License-Identifier: MIT */
/*
 * check_policy.c: the seccomp policy compiler and loader
 * (forkserver/policy.c). Parse errors with their exact messages and bounds;
 * policies applied in forked children, whose exit status says what the
 * filter did (errno, SIGSYS, trap, log); allow-lists that still exec real
 * programs; the filter surviving exec (this binary re-executes itself as a
 * helper that calls socket()); the compile cache; the examples and group
 * lists of docs/policy.md.
 *
 * Children never dump core (RLIMIT_CORE 0): SIGSYS would write one.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../forkserver/policy.h"

#define TIMEOUT_S 30
#define HELPER_ARG "--socket-helper"

/* si_code of a SIGSYS from SECCOMP_RET_TRAP (asm-generic/siginfo.h; glibc
 * does not define it). */
#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1
#endif

static char *const clean_env[] = {"PATH=/usr/bin:/bin", NULL};

/* ---- helpers ----------------------------------------------------------------- */

static struct policy *compile_ok(const char *text) {
        char err[512] = "";
        struct policy *p = NULL;
        int r = policy_compile(text, strlen(text), "t.policy", &p, err,
                               sizeof(err));
        ck_assert_msg(r == 0, "compile failed: %d %s\n--- text:\n%s", r, err,
                      text);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_gt(policy_instructions(p), 0);
        return p;
}

/* Compiles text of len bytes as "t.policy", expecting failure r and exactly
 * the message msg; *ret must stay untouched. */
static void check_error_len(const char *text, size_t len, int r,
                            const char *msg) {
        char err[1024] = "";
        int sentinel_storage;
        struct policy *sentinel = (struct policy *)&sentinel_storage;
        struct policy *p = sentinel;
        int got = policy_compile(text, len, "t.policy", &p, err, sizeof(err));
        ck_assert_msg(got == r, "want %d, got %d (%s) for:\n%.200s", r, got,
                      err, text);
        ck_assert_str_eq(err, msg);
        ck_assert_ptr_eq(p, sentinel);
}

static void check_error(const char *text, int r, const char *msg) {
        check_error_len(text, strlen(text), r, msg);
}

/* Runs fn(arg) in a forked child (no core dumps) and returns its wait
 * status. The exit code says which check failed. */
typedef int (*child_fn)(void *arg);

static int run_in_child(child_fn fn, void *arg) {
        int status;
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                struct rlimit no_core = {0, 0};
                setrlimit(RLIMIT_CORE, &no_core);
                _exit(fn(arg));
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        return status;
}

static void assert_exited(int status, int code) {
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == code,
                      "want exit %d, got %s %d", code,
                      WIFEXITED(status) ? "exit" : "signal",
                      WIFEXITED(status) ? WEXITSTATUS(status)
                                        : WTERMSIG(status));
}

static void assert_sigsys(int status) {
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS,
                      "want SIGSYS (31), got %s %d",
                      WIFEXITED(status) ? "exit" : "signal",
                      WIFEXITED(status) ? WEXITSTATUS(status)
                                        : WTERMSIG(status));
}

/* The top of the source tree: this binary is TOP/BUILD/tests/check_policy. */
static void top_dir(char *buf, size_t len) {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        ck_assert_int_gt(n, 0);
        exe[n] = '\0';
        for (int i = 0; i < 3; i++) {
                char *slash = strrchr(exe, '/');
                ck_assert_ptr_nonnull(slash);
                *slash = '\0';
        }
        ck_assert_uint_lt(strlen(exe), len);
        strcpy(buf, exe);
}

/* Reads TOP/rel into a malloc()ed, NUL-terminated buffer. */
static char *read_top_file(const char *rel) {
        char top[PATH_MAX], path[PATH_MAX + 64];
        top_dir(top, sizeof(top));
        snprintf(path, sizeof(path), "%s/%s", top, rel);
        FILE *f = fopen(path, "re");
        ck_assert_msg(f != NULL, "cannot open %s: %s", path, strerror(errno));
        char *buf = malloc(1 << 17);
        ck_assert_ptr_nonnull(buf);
        size_t n = fread(buf, 1, (1 << 17) - 1, f);
        ck_assert(ferror(f) == 0);
        fclose(f);
        buf[n] = '\0';
        return buf;
}

/* ---- parse errors -------------------------------------------------------------- */

START_TEST(test_error_unknown_syscall) {
        char err[256];
        struct policy *p = NULL;
        const char *text = "# deny the network\ndefault allow\n"
                           "errno(EPERM) socket sokcet\n";
        ck_assert_int_eq(policy_compile(text, strlen(text), "deny-net.policy",
                                        &p, err, sizeof(err)),
                         -EINVAL);
        ck_assert_str_eq(err, "deny-net.policy:3: unknown syscall 'sokcet'");
        ck_assert_ptr_null(p);
        check_error("errno(EPERM) read,write", -EINVAL,
                    "t.policy:1: unknown syscall 'read,write'");
        check_error("kill-process Read", -EINVAL,
                    "t.policy:1: unknown syscall 'Read'");
}
END_TEST

START_TEST(test_error_syscall_of_another_architecture) {
        /* socketcall is i386's; on architectures that have it, pick one
         * that the running one lacks in the same way. */
        int nr = seccomp_syscall_resolve_name("socketcall");
        if (nr >= 0)
                return; /* this architecture has socketcall */
        ck_assert_int_ne(nr, __NR_SCMP_ERROR);
        check_error("errno(EPERM) socketcall", -EINVAL,
                    "t.policy:1: syscall 'socketcall' does not exist on this "
                    "architecture");
}
END_TEST

START_TEST(test_error_unknown_action) {
        check_error("default allow\nalow read\n", -EINVAL,
                    "t.policy:2: unknown action 'alow'");
        check_error("read write", -EINVAL, "t.policy:1: unknown action 'read'");
        check_error("ALLOW read", -EINVAL, "t.policy:1: unknown action 'ALLOW'");
        check_error("errno(EPERM socket", -EINVAL,
                    "t.policy:1: unknown action 'errno(EPERM'");
        check_error("errno( socket", -EINVAL,
                    "t.policy:1: unknown action 'errno('");
        check_error("errno EPERM socket", -EINVAL,
                    "t.policy:1: unknown action 'errno'");
}
END_TEST

START_TEST(test_error_bad_errno) {
        check_error("default allow\nerrno(EPRM) socket\n", -EINVAL,
                    "t.policy:2: unknown errno 'EPRM'");
        check_error("errno(eperm) socket", -EINVAL,
                    "t.policy:1: unknown errno 'eperm'");
        check_error("errno(0) socket", -EINVAL,
                    "t.policy:1: errno '0' is out of range 1..4095");
        check_error("errno(4096) socket", -EINVAL,
                    "t.policy:1: errno '4096' is out of range 1..4095");
        check_error("errno(99999999999999999999) socket", -EINVAL,
                    "t.policy:1: errno '99999999999999999999' is out of "
                    "range 1..4095");
        check_error("errno(13x) socket", -EINVAL,
                    "t.policy:1: unknown errno '13x'");
        check_error("errno(-1) socket", -EINVAL,
                    "t.policy:1: unknown errno '-1'");
        check_error("errno() socket", -EINVAL,
                    "t.policy:1: missing errno in 'errno()'");
        check_error("default errno(EPRM)", -EINVAL,
                    "t.policy:1: unknown errno 'EPRM'");
}
END_TEST

START_TEST(test_error_unknown_group) {
        check_error("default allow\n\nerrno(EPERM) @netwrk\n", -EINVAL,
                    "t.policy:3: unknown group '@netwrk'");
        /* A group is known only from the line that defines it on. */
        check_error("errno(EPERM) @later\ngroup @later socket\n", -EINVAL,
                    "t.policy:1: unknown group '@later'");
        check_error("group @self socket @self\n", -EINVAL,
                    "t.policy:1: unknown group '@self'");
        check_error("errno(EPERM) @", -EINVAL, "t.policy:1: unknown group '@'");
}
END_TEST

START_TEST(test_error_duplicate_default) {
        check_error("default allow\n# again:\ndefault kill-process\n", -EINVAL,
                    "t.policy:3: duplicate 'default' (first on line 1)");
        check_error("default allow\ndefault allow\n", -EINVAL,
                    "t.policy:2: duplicate 'default' (first on line 1)");
}
END_TEST

START_TEST(test_error_action_without_syscalls) {
        check_error("default kill-process\nallow\n", -EINVAL,
                    "t.policy:2: 'allow' names no syscall");
        check_error("errno(EACCES)   # nothing\n", -EINVAL,
                    "t.policy:1: 'errno(EACCES)' names no syscall");
        check_error("kill-process", -EINVAL,
                    "t.policy:1: 'kill-process' names no syscall");
}
END_TEST

START_TEST(test_error_default_forms) {
        check_error("default", -EINVAL, "t.policy:1: 'default' needs an action");
        check_error("default alow", -EINVAL, "t.policy:1: unknown action 'alow'");
        check_error("default allow read", -EINVAL,
                    "t.policy:1: unexpected 'read' after 'default allow'");
}
END_TEST

START_TEST(test_error_allow_without_default) {
        /* An allow-list that forgot its default line would allow
         * everything: refused, at the first allow rule. */
        check_error("# allow-list\nerrno(EPERM) socket\nallow read\nallow "
                    "write\n",
                    -EINVAL,
                    "t.policy:3: 'allow' without a 'default' line, whose "
                    "absence means allow; add one, e.g. 'default "
                    "kill-process'");
}
END_TEST

START_TEST(test_error_group_forms) {
        check_error("group", -EINVAL, "t.policy:1: 'group' needs a name");
        check_error("group net socket", -EINVAL,
                    "t.policy:1: bad group name 'net' (want '@' and then "
                    "a-z, 0-9, '-', '_')");
        check_error("group @Net socket", -EINVAL,
                    "t.policy:1: bad group name '@Net' (want '@' and then "
                    "a-z, 0-9, '-', '_')");
        check_error("group @ socket", -EINVAL,
                    "t.policy:1: bad group name '@' (want '@' and then a-z, "
                    "0-9, '-', '_')");
        check_error("group @net", -EINVAL,
                    "t.policy:1: group '@net' names no syscall");
        check_error("group @network-io socket", -EINVAL,
                    "t.policy:1: group '@network-io' is already defined");
        check_error("group @a read\ngroup @a write\n", -EINVAL,
                    "t.policy:2: group '@a' is already defined");
        check_error("group @a sokcet", -EINVAL,
                    "t.policy:1: unknown syscall 'sokcet'");
        char text[200], msg[300];
        char name[POLICY_NAME_MAX + 2];
        name[0] = '@';
        memset(name + 1, 'x', POLICY_NAME_MAX);
        name[POLICY_NAME_MAX + 1] = '\0';
        snprintf(text, sizeof(text), "group %s read", name);
        snprintf(msg, sizeof(msg),
                 "t.policy:1: group name '%s' is longer than 64 bytes", name);
        check_error(text, -E2BIG, msg);
        /* 64 bytes exactly is fine. */
        name[POLICY_NAME_MAX] = '\0';
        snprintf(text, sizeof(text), "group %s read\nerrno(EIO) %s\n", name,
                 name);
        policy_free(compile_ok(text));
}
END_TEST

START_TEST(test_error_bytes) {
        static const char nul[] = "errno(EPERM) socket\0";
        check_error_len(nul, sizeof(nul) - 1, -EINVAL,
                        "t.policy:1: unexpected byte 0x00");
        static const char nul_comment[] = "default allow # a\0b\n";
        check_error_len(nul_comment, sizeof(nul_comment) - 1, -EINVAL,
                        "t.policy:1: NUL byte");
        check_error("default allow\nerrno(EPERM) soc\x01ket\n", -EINVAL,
                    "t.policy:2: unexpected byte 0x01");
        check_error("errno(EPERM) caf\xc3\xa9", -EINVAL,
                    "t.policy:1: unexpected byte 0xc3");
        /* Anything but NUL may sit in a comment. */
        policy_free(compile_ok("# caf\xc3\xa9 \x01\x7f\nerrno(EPERM) socket "
                               "# \xe2\x9c\x93\n"));
}
END_TEST

START_TEST(test_error_bounds) {
        size_t big = POLICY_TEXT_MAX + 1;
        char *text = malloc(big + 1);
        ck_assert_ptr_nonnull(text);

        /* The whole text: 64 KiB of comment lines is fine, a byte more is
         * not. */
        for (size_t i = 0; i < big; i++)
                text[i] = (i % 1024 == 1023) ? '\n' : '#';
        text[big] = '\0';
        struct policy *p = NULL;
        char err[256];
        ck_assert_int_eq(policy_compile(text, POLICY_TEXT_MAX, "t.policy", &p,
                                        err, sizeof(err)),
                         0);
        policy_free(p);
        check_error_len(text, big, -E2BIG,
                        "t.policy: policy text is longer than 65536 bytes");

        /* One line: 1024 bytes is fine, 1025 is not. */
        memset(text, '#', POLICY_LINE_MAX + 1);
        text[POLICY_LINE_MAX + 1] = '\0';
        policy_free(compile_ok(text + 1));
        char buf[2048];
        snprintf(buf, sizeof(buf), "default allow\n%s\n", text);
        check_error(buf, -E2BIG, "t.policy:2: line is longer than 1024 bytes");

        /* Rules: 1024 are fine, the 1025th is not. Blank and comment lines
         * do not count. */
        size_t n = 0;
        for (int i = 0; i < POLICY_RULES_MAX; i++)
                n += (size_t)sprintf(text + n, "errno(EIO) read\n# c\n\n");
        policy_free(compile_ok(text));
        sprintf(text + n, "errno(EIO) read\n");
        check_error(text, -E2BIG, "t.policy:3073: more than 1024 rules");

        /* Groups: 64 are fine, the 65th is not. */
        n = 0;
        for (int i = 0; i < POLICY_GROUPS_MAX; i++)
                n += (size_t)sprintf(text + n, "group @g%d read\n", i);
        policy_free(compile_ok(text));
        sprintf(text + n, "group @g64 read\n");
        check_error(text, -E2BIG, "t.policy:65: more than 64 groups");

        /* Syscalls named, groups counted by their size. */
        n = 0;
        for (int line = 0; line < 64; line++) {
                n += (size_t)sprintf(text + n, "errno(EIO)");
                for (int i = 0; i < 40; i++)
                        n += (size_t)sprintf(text + n, " @file-system");
                n += (size_t)sprintf(text + n, "\n");
        }
        int r = policy_compile(text, n, "t.policy", &p, err, sizeof(err));
        ck_assert_int_eq(r, -E2BIG);
        ck_assert_msg(strncmp(err, "t.policy:", 9) == 0 &&
                              strstr(err, ": more than 16384 syscalls named "
                                          "(a group counts as its size)"),
                      "%s", err);
        free(text);
}
END_TEST

START_TEST(test_error_name_and_arguments) {
        char err[256];
        struct policy *p = NULL;
        ck_assert_int_eq(policy_compile("alow x", 6, NULL, &p, err, sizeof(err)),
                         -EINVAL);
        ck_assert_str_eq(err, "policy:1: unknown action 'alow'");
        ck_assert_int_eq(policy_compile(NULL, 3, "t", &p, err, sizeof(err)),
                         -EINVAL);
        ck_assert_str_eq(err, "t: no policy text");
        /* A short buffer gets a truncated, terminated message; none at all
         * is allowed too. */
        ck_assert_int_eq(policy_compile("alow x", 6, "t.policy", &p, err, 12),
                         -EINVAL);
        ck_assert_str_eq(err, "t.policy:1:");
        ck_assert_int_eq(policy_compile("alow x", 6, "t.policy", &p, NULL, 0),
                         -EINVAL);
        ck_assert_ptr_null(p);
        ck_assert_int_eq(policy_apply(NULL), -EINVAL);
        ck_assert_uint_eq(policy_instructions(NULL), 0);
        policy_free(NULL);
}
END_TEST

/* ---- accepted texts ---------------------------------------------------------------- */

START_TEST(test_comments_blank_lines_and_spacing) {
        struct policy *a = compile_ok("default allow\nerrno(EPERM) socket "
                                      "connect\n");
        struct policy *b = compile_ok(
                "# leading comment\r\n"
                "\n"
                "   \t \n"
                "\tdefault   allow   # trailing comment\r\n"
                "#errno(EPERM) bind\n"
                "errno(EPERM)\tsocket\n"
                "errno(EPERM) connect # the last line has no newline");
        ck_assert_uint_eq(policy_instructions(a), policy_instructions(b));
        policy_free(a);
        policy_free(b);
}
END_TEST

START_TEST(test_empty_policy_allows_everything) {
        struct policy *p = compile_ok("");
        struct policy *q = compile_ok("# nothing but a comment\n\n");
        ck_assert_uint_eq(policy_instructions(p), policy_instructions(q));
        policy_free(p);
        policy_free(q);
}
END_TEST

START_TEST(test_builtin_groups) {
        size_t ngroups = 0;
        for (const struct policy_group *g; (g = policy_builtin_group(ngroups));
             ngroups++) {
                size_t native = 0;
                ck_assert_msg(g->name[0] == '@', "%s", g->name);
                for (const char *const *s = g->syscalls; *s; s++) {
                        int nr = seccomp_syscall_resolve_name(*s);
                        /* Known to libseccomp, on some architecture. */
                        ck_assert_msg(nr != __NR_SCMP_ERROR, "%s: '%s'",
                                      g->name, *s);
                        if (nr >= 0)
                                native++;
                        for (const char *const *t = g->syscalls; t < s; t++)
                                ck_assert_msg(strcmp(*s, *t) != 0,
                                              "%s: '%s' twice", g->name, *s);
                }
                ck_assert_msg(native > 0, "%s: nothing here", g->name);

                char text[128];
                snprintf(text, sizeof(text), "default allow\nerrno(EPERM) %s\n",
                         g->name);
                policy_free(compile_ok(text));
        }
        ck_assert_uint_eq(ngroups, 11);
        ck_assert_ptr_null(policy_builtin_group(ngroups));
        ck_assert_ptr_null(policy_builtin_group(SIZE_MAX));
}
END_TEST

START_TEST(test_every_group_in_one_allow_list) {
        char text[1024] = "default kill-process\nallow";
        for (size_t i = 0; policy_builtin_group(i); i++) {
                strcat(text, " ");
                strcat(text, policy_builtin_group(i)->name);
        }
        struct policy *p = compile_ok(text);
        ck_assert_uint_le(policy_instructions(p), 4096);
        policy_free(p);
}
END_TEST

/* ---- policies applied in a child ------------------------------------------------------ */

/* A child that applies the policy and checks socket() against want_errno
 * (0: it works), then that ordinary syscalls still do. Exit 0 or the number
 * of the failed check. */
struct socket_check {
        const struct policy *p;
        int want_errno;
};

static int child_socket_check(void *arg) {
        const struct socket_check *sc = arg;
        int pp[2];
        char c = 0;

        if (policy_apply(sc->p) < 0)
                return 10;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (sc->want_errno == 0 ? fd < 0 : (fd >= 0 || errno != sc->want_errno))
                return 11;
        if (pipe2(pp, O_CLOEXEC) < 0)
                return 12;
        if (write(pp[1], "x", 1) != 1 || read(pp[0], &c, 1) != 1 || c != 'x')
                return 13;
        if (getpid() <= 0)
                return 14;
        return 0;
}

static void expect_socket(const char *text, int want_errno) {
        struct policy *p = compile_ok(text);
        struct socket_check sc = {p, want_errno};
        assert_exited(run_in_child(child_socket_check, &sc), 0);
        policy_free(p);
}

START_TEST(test_errno_action) {
        expect_socket("errno(EACCES) socket", EACCES);
        expect_socket("errno(13) socket", EACCES);
        expect_socket("default allow\nerrno(EAFNOSUPPORT) @network-io\n",
                      EAFNOSUPPORT);
        /* The control: a policy about something else leaves socket() be. */
        expect_socket("errno(EACCES) bind", 0);
}
END_TEST

START_TEST(test_last_rule_wins) {
        expect_socket("errno(EPERM) socket\nerrno(EACCES) socket\n", EACCES);
        expect_socket("default allow\nerrno(EPERM) @network-io\nallow socket\n",
                      0);
        expect_socket("default allow\nallow socket\nerrno(EPERM) "
                      "@network-io\n",
                      EPERM);
}
END_TEST

/* bind(-1, NULL, 0) fails with EBADF unless a filter answers first. */
static int child_bind_errno(void *arg) {
        if (policy_apply(arg) < 0)
                return 10;
        if (bind(-1, NULL, 0) == 0)
                return 11;
        return errno == EACCES ? 0 : errno == EBADF ? 12 : 13;
}

START_TEST(test_user_groups) {
        struct policy *p = compile_ok("group @net socket connect\n"
                                      "group @more @net bind\n"
                                      "errno(EACCES) @more\n");
        struct socket_check sc = {p, EACCES};
        assert_exited(run_in_child(child_socket_check, &sc), 0);
        assert_exited(run_in_child(child_bind_errno, p), 0);
        policy_free(p);

        /* The control: without the group, bind reaches the kernel. */
        p = compile_ok("errno(EACCES) socket");
        assert_exited(run_in_child(child_bind_errno, p), 12);
        policy_free(p);
}
END_TEST

/* Writes 'a', makes the syscall the policy kills, writes 'b'. */
struct kill_check {
        const struct policy *p;
        int wfd;
};

static int child_mark_getppid_mark(void *arg) {
        const struct kill_check *kc = arg;
        if (policy_apply(kc->p) < 0)
                return 10;
        if (write(kc->wfd, "a", 1) != 1)
                return 11;
        syscall(SYS_getppid);
        if (write(kc->wfd, "b", 1) != 1)
                return 12;
        return 0;
}

/* Runs the child under text and returns its status; out gets what it
 * wrote. */
static int run_marked(const char *text, char *out, size_t outlen) {
        int pp[2];
        struct policy *p = compile_ok(text);
        ck_assert_int_eq(pipe2(pp, O_CLOEXEC), 0);
        struct kill_check kc = {p, pp[1]};
        int status = run_in_child(child_mark_getppid_mark, &kc);
        close(pp[1]);
        ssize_t n = read(pp[0], out, outlen - 1);
        ck_assert_int_ge(n, 0);
        out[n] = '\0';
        close(pp[0]);
        policy_free(p);
        return status;
}

START_TEST(test_kill_process_is_sigsys) {
        char out[8];
        int status = run_marked("kill-process getppid", out, sizeof(out));
        assert_sigsys(status);
        ck_assert_int_eq(WTERMSIG(status), 31);
        ck_assert_str_eq(out, "a"); /* killed at getppid, not before */

        status = run_marked("kill-process getpgrp", out, sizeof(out));
        assert_exited(status, 0);
        ck_assert_str_eq(out, "ab");
}
END_TEST

START_TEST(test_kill_thread_is_sigsys) {
        char out[8];
        int status = run_marked("kill-thread getppid", out, sizeof(out));
        assert_sigsys(status);
        ck_assert_str_eq(out, "a");
}
END_TEST

static volatile sig_atomic_t trap_syscall = -1, trap_code = -1;

static void on_sigsys(int sig, siginfo_t *si, void *uc) {
        (void)sig;
        (void)uc;
        trap_syscall = si->si_syscall;
        trap_code = si->si_code;
}

static int child_trap(void *arg) {
        struct sigaction sa = {.sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO};
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGSYS, &sa, NULL) < 0)
                return 10;
        if (policy_apply(arg) < 0)
                return 11;
        syscall(SYS_getppid);
        if (trap_code != SYS_SECCOMP)
                return 12;
        if (trap_syscall != SYS_getppid)
                return 13;
        return 0;
}

START_TEST(test_trap_delivers_sigsys) {
        struct policy *p = compile_ok("trap getppid");
        assert_exited(run_in_child(child_trap, p), 0);
        policy_free(p);
        /* The control: a trap on another syscall never fires. */
        p = compile_ok("trap getpgrp");
        assert_exited(run_in_child(child_trap, p), 12);
        policy_free(p);
}
END_TEST

struct log_check {
        const struct policy *p;
        pid_t parent;
};

static int child_log(void *arg) {
        const struct log_check *lc = arg;
        if (policy_apply(lc->p) < 0)
                return 10;
        return syscall(SYS_getppid) == lc->parent ? 0 : 11;
}

START_TEST(test_log_allows) {
        struct policy *p = compile_ok("log getppid");
        struct log_check lc = {p, getpid()};
        assert_exited(run_in_child(child_log, &lc), 0);
        policy_free(p);
        /* And "default log" logs, but allows, everything. */
        p = compile_ok("default log\nerrno(EACCES) socket\n");
        struct socket_check sc = {p, EACCES};
        assert_exited(run_in_child(child_socket_check, &sc), 0);
        policy_free(p);
}
END_TEST

static int child_nnp(void *arg) {
        if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 0)
                return 10;
        if (policy_apply(arg) < 0)
                return 11;
        if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
                return 12;
        /* A second policy stacks on the first. */
        if (policy_apply(arg) < 0)
                return 13;
        return 0;
}

START_TEST(test_apply_sets_no_new_privs) {
        struct policy *p = compile_ok("errno(EACCES) socket");
        assert_exited(run_in_child(child_nnp, p), 0);
        policy_free(p);
}
END_TEST

#if defined(__x86_64__)
/* socket() through the x32 ABI: the same number with bit 30 set. A filter
 * for x86_64 must not let it through unchecked. */
static int child_x32_socket(void *arg) {
        if (policy_apply(arg) < 0)
                return 10;
        long fd = syscall(0x40000000L | SYS_socket, AF_UNIX, SOCK_STREAM, 0);
        return fd >= 0 ? 11 : 12;
}

START_TEST(test_other_abi_is_killed) {
        struct policy *p = compile_ok("errno(EACCES) @network-io");
        assert_sigsys(run_in_child(child_x32_socket, p));
        policy_free(p);
}
END_TEST
#endif

/* ---- across exec ------------------------------------------------------------------------ */

struct exec_check {
        const struct policy *p; /* NULL: none */
        const char *path;
        char *const *argv;
        int stdout_fd; /* -1: keep */
};

static int child_exec(void *arg) {
        const struct exec_check *ec = arg;
        if (ec->stdout_fd >= 0 && dup2(ec->stdout_fd, 1) < 0)
                return 120;
        /* Last before execve, as the server will do it. */
        if (ec->p && policy_apply(ec->p) < 0)
                return 121;
        execve(ec->path, ec->argv, clean_env);
        return 127;
}

static int run_exec(const struct policy *p, const char *path,
                    char *const *argv) {
        struct exec_check ec = {p, path, argv, -1};
        return run_in_child(child_exec, &ec);
}

/* The helper this binary turns into: exits with socket()'s errno (0 if it
 * worked), or 100 when a pipe cannot be made. */
static int socket_helper(void) {
        int pp[2];
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int e = fd < 0 ? errno : 0;
        if (pipe2(pp, O_CLOEXEC) < 0)
                return 100;
        return e;
}

START_TEST(test_filter_survives_exec) {
        char *const argv[] = {"check_policy", HELPER_ARG, NULL};
        struct policy *p = compile_ok("errno(EACCES) socket");

        assert_exited(run_exec(NULL, "/proc/self/exe", argv), 0);
        assert_exited(run_exec(p, "/proc/self/exe", argv), EACCES);
        policy_free(p);
}
END_TEST

START_TEST(test_example_deny_network) {
        char *const argv[] = {"check_policy", HELPER_ARG, NULL};
        char *text = read_top_file("docs/policy-examples/deny-network.policy");
        struct policy *p = compile_ok(text);
        assert_exited(run_exec(p, "/proc/self/exe", argv), EACCES);
        struct socket_check sc = {p, EACCES};
        assert_exited(run_in_child(child_socket_check, &sc), 0);
        policy_free(p);
        free(text);
}
END_TEST

/* The syscalls of the allow lines of a policy file, comments removed. */
static size_t allow_list_words(char *text, char words[][32], size_t max) {
        size_t n = 0;
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
                char *hash = strchr(line, '#');
                if (hash)
                        *hash = '\0';
                char *save, *w = strtok_r(line, " \t", &save);
                if (!w || strcmp(w, "allow") != 0)
                        continue;
                while ((w = strtok_r(NULL, " \t", &save))) {
                        ck_assert_uint_lt(n, max);
                        ck_assert_uint_lt(strlen(w), 32);
                        strcpy(words[n++], w);
                }
        }
        return n;
}

START_TEST(test_example_true_allow_list) {
        char *const argv[] = {"/bin/true", NULL};
        char *text = read_top_file("docs/policy-examples/true.policy");
        struct policy *p = compile_ok(text);
        ck_assert(strstr(text, "default kill-process\n"));
        assert_exited(run_exec(p, "/bin/true", argv), 0);
        policy_free(p);

        /* Honest: without any one of its syscalls, /bin/true dies. */
        char words[64][32];
        size_t n = allow_list_words(text, words, 64);
        ck_assert_uint_ge(n, 10);
        for (size_t skip = 0; skip < n; skip++) {
                char policy[2048] = "default kill-process\nallow";
                for (size_t i = 0; i < n; i++) {
                        if (i == skip)
                                continue;
                        strcat(policy, " ");
                        strcat(policy, words[i]);
                }
                p = compile_ok(policy);
                int status = run_exec(p, "/bin/true", argv);
                ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS,
                              "/bin/true without '%s': status %#x",
                              words[skip], status);
                policy_free(p);
        }
        free(text);
}
END_TEST

START_TEST(test_example_cat_allow_list) {
        char path[] = "/tmp/check_policy.XXXXXX";
        int fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, "through the filter\n", 19), 19);
        close(fd);

        char *text = read_top_file("docs/policy-examples/cat.policy");
        struct policy *p = compile_ok(text);
        char *const argv[] = {"/bin/cat", path, NULL};
        int pp[2];
        ck_assert_int_eq(pipe2(pp, O_CLOEXEC), 0);
        struct exec_check ec = {p, "/bin/cat", argv, pp[1]};
        int status = run_in_child(child_exec, &ec);
        close(pp[1]);
        char out[64];
        ssize_t n = read(pp[0], out, sizeof(out) - 1);
        close(pp[0]);
        unlink(path);
        assert_exited(status, 0);
        ck_assert_int_eq(n, 19);
        out[n] = '\0';
        ck_assert_str_eq(out, "through the filter\n");

        /* A program that needs more than the list (a shell) is ended. */
        char *const sh[] = {"/bin/sh", "-c", "/bin/true; exit 0", NULL};
        ec = (struct exec_check){p, "/bin/sh", sh, -1};
        assert_sigsys(run_in_child(child_exec, &ec));
        policy_free(p);
        free(text);
}
END_TEST

/* ---- docs/policy.md ---------------------------------------------------------------------- */

START_TEST(test_docs_show_the_examples) {
        static const char *const examples[] = {
                "docs/policy-examples/deny-network.policy",
                "docs/policy-examples/true.policy",
                "docs/policy-examples/cat.policy",
        };
        char *doc = read_top_file("docs/policy.md");
        for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++) {
                char *ex = read_top_file(examples[i]);
                ck_assert_msg(strstr(doc, ex), "docs/policy.md does not show "
                                               "%s as it is",
                              examples[i]);
                free(ex);
        }
        free(doc);
}
END_TEST

/* Between the markers, "@name:" starts a group and the words after it
 * are its syscalls, in the order of the code. */
START_TEST(test_docs_list_the_groups) {
        char *doc = read_top_file("docs/policy.md");
        char *begin = strstr(doc, "<!-- groups:begin -->");
        char *end = strstr(doc, "<!-- groups:end -->");
        ck_assert_ptr_nonnull(begin);
        ck_assert_ptr_nonnull(end);
        *end = '\0';
        begin += strlen("<!-- groups:begin -->");

        const struct policy_group *g = NULL;
        const char *const *next = NULL;
        size_t gi = 0;
        char *save;
        for (char *w = strtok_r(begin, " \t\n`", &save); w;
             w = strtok_r(NULL, " \t\n`", &save)) {
                size_t len = strlen(w);
                if (w[0] == '@' && w[len - 1] == ':') {
                        if (g)
                                ck_assert_msg(*next == NULL,
                                              "docs: %s lacks '%s'", g->name,
                                              *next);
                        w[len - 1] = '\0';
                        g = policy_builtin_group(gi++);
                        ck_assert_msg(g != NULL, "docs: extra group %s", w);
                        ck_assert_str_eq(w, g->name);
                        next = g->syscalls;
                        continue;
                }
                if (strcmp(w, "```") == 0 || strcmp(w, "text") == 0 ||
                    strcmp(w, "```text") == 0)
                        continue;
                ck_assert_msg(g != NULL, "docs: '%s' before any group", w);
                ck_assert_msg(*next && strcmp(w, *next) == 0,
                              "docs: %s has '%s' where the code has '%s'",
                              g->name, w, *next ? *next : "(end)");
                next++;
        }
        ck_assert_ptr_nonnull(g);
        ck_assert_msg(*next == NULL, "docs: %s lacks '%s'", g->name, *next);
        ck_assert_ptr_null(policy_builtin_group(gi));
        free(doc);
}
END_TEST

/* ---- cache ----------------------------------------------------------------------------- */

static const struct policy *cache_get(struct policy_cache *c, const char *text,
                                      bool want_hit) {
        const struct policy *p = NULL;
        bool hit = !want_hit;
        char err[256] = "";
        int r = policy_cache_get(c, text, strlen(text), "t.policy", &p, &hit,
                                 err, sizeof(err));
        ck_assert_msg(r == 0, "%d %s", r, err);
        ck_assert_ptr_nonnull(p);
        ck_assert_msg(hit == want_hit, "'%s': want %s", text,
                      want_hit ? "a hit" : "a miss");
        return p;
}

START_TEST(test_cache_hit_and_miss) {
        struct policy_cache c = {0};
        const struct policy *a = cache_get(&c, "errno(EACCES) socket", false);
        ck_assert_ptr_eq(cache_get(&c, "errno(EACCES) socket", true), a);
        const struct policy *b = cache_get(&c, "errno(EPERM) socket", false);
        ck_assert_ptr_ne(a, b);
        ck_assert_ptr_eq(cache_get(&c, "errno(EACCES) socket", true), a);
        /* Equal text, not equal meaning, is the key. */
        cache_get(&c, "errno(EACCES)  socket", false);
        ck_assert_uint_eq(c.hits, 2);
        ck_assert_uint_eq(c.misses, 3);
        ck_assert_uint_eq(c.count, 3);
        ck_assert_uint_eq(c.evictions, 0);

        /* The cached policy works. */
        struct socket_check sc = {a, EACCES};
        assert_exited(run_in_child(child_socket_check, &sc), 0);

        /* ret_hit may be NULL. */
        const struct policy *p = NULL;
        ck_assert_int_eq(policy_cache_get(&c, "errno(EACCES) socket", 20, "t",
                                          &p, NULL, NULL, 0),
                         0);
        ck_assert_ptr_eq(p, a);
        policy_cache_free(&c);
        ck_assert_uint_eq(c.count, 0);
        ck_assert_ptr_null(c.lru.next);
        /* Usable again after free; the counters stay. */
        cache_get(&c, "errno(EACCES) socket", false);
        ck_assert_uint_eq(c.misses, 4);
        policy_cache_free(&c);
}
END_TEST

START_TEST(test_cache_lru_eviction) {
        struct policy_cache c = {.max = 4};
        char text[8][32];
        for (int i = 0; i < 8; i++)
                snprintf(text[i], sizeof(text[i]), "errno(%d) socket", i + 1);

        for (int i = 0; i < 4; i++)
                cache_get(&c, text[i], false);
        cache_get(&c, text[0], true); /* 0 is now the most recent */
        cache_get(&c, text[4], false); /* evicts 1, the least recent */
        ck_assert_uint_eq(c.count, 4);
        ck_assert_uint_eq(c.evictions, 1);
        cache_get(&c, text[0], true);
        cache_get(&c, text[2], true);
        cache_get(&c, text[3], true);
        cache_get(&c, text[4], true);
        cache_get(&c, text[1], false); /* back, evicting 0 */
        cache_get(&c, text[0], false);
        ck_assert_uint_eq(c.evictions, 3);
        ck_assert_uint_eq(c.count, 4);
        policy_cache_free(&c);
}
END_TEST

START_TEST(test_cache_default_bound) {
        struct policy_cache c = {0};
        char text[32];
        for (int i = 1; i <= POLICY_CACHE_MAX + 1; i++) {
                snprintf(text, sizeof(text), "errno(%d) socket", i);
                cache_get(&c, text, false);
        }
        ck_assert_uint_eq(c.count, POLICY_CACHE_MAX);
        ck_assert_uint_eq(c.evictions, 1);
        cache_get(&c, text, true);
        cache_get(&c, "errno(2) socket", true);
        cache_get(&c, "errno(1) socket", false); /* the first one went */
        ck_assert_uint_eq(c.count, POLICY_CACHE_MAX);
        policy_cache_free(&c);
}
END_TEST

static uint64_t same_hash(const char *text, size_t len) {
        (void)text;
        (void)len;
        return 42;
}

START_TEST(test_cache_collision_compares_text) {
        struct policy_cache c = {.hash = same_hash};
        const struct policy *a = cache_get(&c, "errno(EACCES) socket", false);
        const struct policy *b = cache_get(&c, "errno(EPERM) socket", false);
        const struct policy *e = cache_get(&c, "", false);
        ck_assert_ptr_ne(a, b);
        ck_assert_ptr_eq(cache_get(&c, "errno(EACCES) socket", true), a);
        ck_assert_ptr_eq(cache_get(&c, "errno(EPERM) socket", true), b);
        ck_assert_ptr_eq(cache_get(&c, "", true), e);
        /* Same length, same hash, other text. */
        cache_get(&c, "errno(EACCES) accept", false);
        ck_assert_uint_eq(c.misses, 4);

        struct socket_check sc = {b, EPERM};
        assert_exited(run_in_child(child_socket_check, &sc), 0);
        policy_cache_free(&c);
}
END_TEST

START_TEST(test_cache_errors_not_cached) {
        struct policy_cache c = {0};
        const struct policy *sentinel = (const struct policy *)&c, *p = sentinel;
        bool hit = true;
        char err[256];
        for (int i = 0; i < 2; i++) {
                ck_assert_int_eq(policy_cache_get(&c, "alow read", 9, "x.policy",
                                                  &p, &hit, err, sizeof(err)),
                                 -EINVAL);
                ck_assert_str_eq(err, "x.policy:1: unknown action 'alow'");
        }
        ck_assert_ptr_eq(p, sentinel);
        ck_assert(hit);
        ck_assert_uint_eq(c.misses, 2);
        ck_assert_uint_eq(c.count, 0);
        char *big = calloc(1, POLICY_TEXT_MAX + 2);
        ck_assert_int_eq(policy_cache_get(&c, big, POLICY_TEXT_MAX + 1, "b", &p,
                                          &hit, err, sizeof(err)),
                         -E2BIG);
        ck_assert_str_eq(err, "b: policy text is longer than 65536 bytes");
        free(big);
        policy_cache_free(&c);
}
END_TEST

static Suite *policy_suite(void) {
        Suite *s = suite_create("policy");
        TCase *parse = tcase_create("parse");
        TCase *apply = tcase_create("apply");
        TCase *exec = tcase_create("exec");
        TCase *docs = tcase_create("docs");
        TCase *cache = tcase_create("cache");

        tcase_set_timeout(parse, TIMEOUT_S);
        tcase_add_test(parse, test_error_unknown_syscall);
        tcase_add_test(parse, test_error_syscall_of_another_architecture);
        tcase_add_test(parse, test_error_unknown_action);
        tcase_add_test(parse, test_error_bad_errno);
        tcase_add_test(parse, test_error_unknown_group);
        tcase_add_test(parse, test_error_duplicate_default);
        tcase_add_test(parse, test_error_action_without_syscalls);
        tcase_add_test(parse, test_error_default_forms);
        tcase_add_test(parse, test_error_allow_without_default);
        tcase_add_test(parse, test_error_group_forms);
        tcase_add_test(parse, test_error_bytes);
        tcase_add_test(parse, test_error_bounds);
        tcase_add_test(parse, test_error_name_and_arguments);
        tcase_add_test(parse, test_comments_blank_lines_and_spacing);
        tcase_add_test(parse, test_empty_policy_allows_everything);
        tcase_add_test(parse, test_builtin_groups);
        tcase_add_test(parse, test_every_group_in_one_allow_list);
        suite_add_tcase(s, parse);

        tcase_set_timeout(apply, TIMEOUT_S);
        tcase_add_test(apply, test_errno_action);
        tcase_add_test(apply, test_last_rule_wins);
        tcase_add_test(apply, test_user_groups);
        tcase_add_test(apply, test_kill_process_is_sigsys);
        tcase_add_test(apply, test_kill_thread_is_sigsys);
        tcase_add_test(apply, test_trap_delivers_sigsys);
        tcase_add_test(apply, test_log_allows);
        tcase_add_test(apply, test_apply_sets_no_new_privs);
#if defined(__x86_64__)
        tcase_add_test(apply, test_other_abi_is_killed);
#endif
        suite_add_tcase(s, apply);

        tcase_set_timeout(exec, TIMEOUT_S);
        tcase_add_test(exec, test_filter_survives_exec);
        tcase_add_test(exec, test_example_deny_network);
        tcase_add_test(exec, test_example_true_allow_list);
        tcase_add_test(exec, test_example_cat_allow_list);
        suite_add_tcase(s, exec);

        tcase_set_timeout(docs, TIMEOUT_S);
        tcase_add_test(docs, test_docs_show_the_examples);
        tcase_add_test(docs, test_docs_list_the_groups);
        suite_add_tcase(s, docs);

        tcase_set_timeout(cache, TIMEOUT_S);
        tcase_add_test(cache, test_cache_hit_and_miss);
        tcase_add_test(cache, test_cache_lru_eviction);
        tcase_add_test(cache, test_cache_default_bound);
        tcase_add_test(cache, test_cache_collision_compares_text);
        tcase_add_test(cache, test_cache_errors_not_cached);
        suite_add_tcase(s, cache);
        return s;
}

int main(int argc, char **argv) {
        if (argc == 2 && strcmp(argv[1], HELPER_ARG) == 0)
                return socket_helper();
        SRunner *sr = srunner_create(policy_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
