/* SPDX-License-Identifier: MIT */
/*
 * check_bigspec.c: command lines and descriptors past what one message
 * carries. Any argv and environment execve accepts (a spec in a sealed
 * memfd), E2BIG with the sizes past ARG_MAX, the server's refusal of a bad
 * spec memfd or fd bundle (and its serving on), and the CLI's fds as exec
 * passes them: `3<file`, `<(...)`, flock's fd 9, 300 fds, --close-fds,
 * --pass-fd, --preserve-fds, and never the CLI's own.
 */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../include/mpspawn.h"
#include "../launcher/fdutil.h"
#include "../launcher/wire.h"
#include "testutil.h"

extern char **environ;

static char out[1 << 16], err[1 << 14];

/* Runs a bash script with $0 the CLI under test; returns its exit status. */
static int bash(const char *script) {
        const char *argv[] = {"/bin/bash", "-c", script, tu_cli(), NULL};
        int st = tu_run(argv, NULL, out, sizeof(out), err, sizeof(err));
        ck_assert_msg(WIFEXITED(st), "bash did not exit (%#x)", st);
        return WEXITSTATUS(st);
}

/* The job prints its argument count, the total length of its arguments,
 * and its first and last: a checksum that tells a lost, cut or reordered
 * argument apart. */
#define ARGS_REPORT "n=0; for a; do n=$((n+${#a})); done; eval \"l=\\${$#}\"; echo $# $n $1 $l"

START_TEST(test_cli_20000_args) {
        ck_assert_int_eq(bash("d=$(sh -c '" ARGS_REPORT "' x $(seq 1 20000));"
                              "m=$(\"$0\" sh -c '" ARGS_REPORT "' x $(seq 1 20000)) || exit 9;"
                              "echo \"$d\"; echo \"$m\""), 0);
        ck_assert_str_eq(out, "20000 88894 1 20000\n20000 88894 1 20000\n");
}
END_TEST

START_TEST(test_cli_1_5_mib_command_line) {
        /* 1536 arguments of 1023 bytes: 1.5 MiB, in 64 KiB messages 24
         * times over. */
        ck_assert_int_eq(bash("a=$(head -c 1023 /dev/zero | tr '\\0' a);"
                              "set -- $(yes \"$a\" | head -n 1536);"
                              "\"$0\" sh -c 'echo $# $(printf %s \"$@\" | cksum)' x \"$@\";"
                              "echo $# $(printf %s \"$@\" | cksum)"), 0);
        char *nl = strchr(out, '\n');
        ck_assert_ptr_nonnull(nl);
        ck_assert_int_eq(strncmp(out, "1536 ", 5), 0);
        ck_assert_int_eq(strncmp(out, nl + 1, (size_t)(nl - out)), 0);
}
END_TEST

/* A library client of a server of our own; the job's stdout is a pipe
 * read into out. Returns the job's exit code. */
static int lib_run(mps_spec *spec, const char *const *argv, int *ret_start) {
        struct tu_server srv;
        mps_client *c;
        mps_process *p;
        int pfd[2];
        tu_server_start(&srv, NULL);
        ck_assert_int_eq(mps_client_open(srv.path, &c, NULL), 0);
        ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
        ck_assert_int_eq(mps_spec_set_exec(spec, argv[0], argv), 0);
        ck_assert_int_eq(mps_spec_map_fd(spec, 1, pfd[1]), 0);
        ck_assert_int_eq(mps_process_new(c, spec, &p), 0);
        int r = mps_start(p);
        *ret_start = r;
        close(pfd[1]);
        int code = MPS_EXITCODE_NONE;
        if (r == 0) {
                tu_read_all(pfd[0], out, sizeof(out), 20000);
                ck_assert_int_eq(mps_join(p, 20000), 0);
                code = mps_exitcode(p);
        } else {
                snprintf(err, sizeof(err), "%s|%s", mps_client_error(c),
                         mps_start_failed_stage(p) ? mps_start_failed_stage(p) : "");
        }
        close(pfd[0]);
        mps_process_close(p);
        mps_client_close(c);
        tu_server_stop(&srv);
        return code;
}

/* argv of n+3 words: sh -c REPORT x, then a1..an. */
static const char **report_argv(size_t n, size_t len) {
        const char **v = calloc(n + 5, sizeof(*v));
        ck_assert_ptr_nonnull(v);
        v[0] = "/bin/sh";
        v[1] = "-c";
        v[2] = ARGS_REPORT;
        v[3] = "x";
        for (size_t i = 0; i < n; i++) {
                char *s = malloc(len + 1);
                ck_assert_ptr_nonnull(s);
                memset(s, 'a' + (int)(i % 26), len);
                snprintf(s, len + 1, "%zu", i + 1); /* distinct, then cut */
                s[strlen(s)] = len > strlen(s) ? 'a' : '\0';
                s[len] = '\0';
                v[4 + i] = s;
        }
        return v;
}

static void report_argv_free(const char **v) {
        for (size_t i = 4; v[i]; i++)
                free((char *)v[i]);
        free(v);
}

START_TEST(test_library_20000_args) {
        mps_spec *spec;
        int r;
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        const char **v = report_argv(20000, 8);
        ck_assert_int_eq(lib_run(spec, v, &r), 0);
        ck_assert_int_eq(r, 0);
        char want[100];
        snprintf(want, sizeof(want), "20000 160000 %s %s\n", v[4], v[4 + 19999]);
        ck_assert_str_eq(out, want);
        report_argv_free(v);
        mps_spec_free(spec);
}
END_TEST

START_TEST(test_library_70k_env_var) {
        mps_spec *spec;
        int r;
        static char value[70001];
        memset(value, 'v', 70000);
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_env_set(spec, "BIG", value), 0);
        const char *argv[] = {"/bin/sh", "-c", "echo ${#BIG}", NULL};
        ck_assert_int_eq(lib_run(spec, argv, &r), 0);
        ck_assert_int_eq(r, 0);
        ck_assert_str_eq(out, "70000\n");
        mps_spec_free(spec);
}
END_TEST

START_TEST(test_library_past_arg_max_is_e2big) {
        long limit = sysconf(_SC_ARG_MAX);
        mps_spec *spec;
        int r;
        ck_assert_int_le(limit, 6 << 20);
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_env_clear(spec), 0);
        size_t n = (size_t)limit / 1000 + 10;
        const char **v = report_argv(n, 999);
        size_t total = 0;
        for (size_t i = 0; v[i]; i++)
                total += strlen(v[i]) + 1 + sizeof(void *);
        ck_assert_int_eq(lib_run(spec, v, &r), MPS_EXITCODE_NONE);
        ck_assert_int_eq(r, -E2BIG);
        char want[300];
        snprintf(want, sizeof(want),
                 "cannot execute '/bin/sh': Argument list too long: argument list and "
                 "environment are %zu bytes; the limit (ARG_MAX) is %ld|exec", total, limit);
        ck_assert_str_eq(err, want);
        report_argv_free(v);
        mps_spec_free(spec);
}
END_TEST

START_TEST(test_cli_past_arg_max_is_126) {
        /* The CLI can only be given what its own ARG_MAX allows: give it
         * twice as much, and the job a stack limit of 8 MiB (ARG_MAX 2 MiB). */
        int st = bash("ulimit -s 16384 || exit 77;"
                      "\"$0\" --rlimit stack=8388608 sh -c : $(seq 1 200000)");
        if (st == 77)
                return; /* no room to raise the stack limit here */
        ck_assert_int_eq(st, 126);
        ck_assert_msg(strstr(err, "mpspawn: cannot execute 'sh': Argument list too long: "
                                  "argument list and environment are ") == err &&
                      strstr(err, " bytes; the limit (ARG_MAX) is 2097152\n"),
                      "stderr: %s", err);
        ck_assert_ptr_null(strstr(err, "bad PROGRAM"));
}
END_TEST

/* A script without #! runs under /bin/sh with its arguments, as execvp
 * has it, but the server's child can pass on only 4096 of them: more are
 * refused, never cut. */
START_TEST(test_script_without_shebang_never_loses_arguments) {
        ck_assert_int_eq(bash("d=$(mktemp -d); printf 'echo $#\\n' >$d/s; chmod +x $d/s;"
                              "\"$0\" $d/s $(seq 1 4000); \"$0\" $d/s $(seq 1 5000);"
                              "r=$?; rm -r $d; exit $r"), 126);
        ck_assert_str_eq(out, "4000\n");
        ck_assert_ptr_nonnull(strstr(err, "Argument list too long"));
}
END_TEST

/* --- the server's side of spec_memfd and fd_bundle, spoken raw --------- */

static int raw_connect(const char *path) {
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        struct mps__hello h = {.protocol = MPS_PROTOCOL_VERSION, .client = "check_bigspec"};
        cJSON *j = mps__hello_encode(&h);
        ck_assert_int_eq(mps__wire_send(fd, j, NULL, 0), 0);
        cJSON_Delete(j);
        return fd;
}

/* The next message, within 10 s. */
static void raw_recv(int fd, struct mps__msg *m) {
        char e[256];
        ck_assert_int_gt(mps__poll_one(fd, POLLIN, 10000), 0);
        ck_assert_int_eq(mps__wire_recv(fd, m, e, sizeof(e), NULL), 1);
}

/* Sends a spawn message naming fds[0] as its spec memfd (and, with
 * bundle >= 0, a bundle of count fds) and returns the reply's op, with an
 * error's text in err. */
static enum mps__op raw_spawn(int sock, uint64_t tag, int memfd, int bundle, size_t count) {
        struct mps__spawn_carrier k = {.has_memfd = memfd >= 0, .memfd = 0,
                                       .has_bundle = bundle >= 0,
                                       .bundle = memfd >= 0 ? 1 : 0,
                                       .bundle_nfds = count};
        cJSON *j;
        int fds[2];
        size_t n = 0;
        if (memfd >= 0) {
                fds[n++] = memfd;
                j = mps__spawn_carrier_encode(NULL, tag, &k);
        } else {
                struct mps__spawn sp = {.tag = tag, .path = "/bin/true",
                                        .argv = (const char *[]){"true", NULL}, .argc = 1,
                                        .envp = (const char *[]){NULL}, .umask = -1};
                j = mps__spawn_carrier_encode(mps__spawn_encode(&sp), tag, &k);
        }
        if (bundle >= 0)
                fds[n++] = bundle;
        ck_assert_ptr_nonnull(j);
        ck_assert_int_eq(mps__wire_send(sock, j, fds, n), 0);
        cJSON_Delete(j);
        for (;;) {
                struct mps__msg m;
                raw_recv(sock, &m);
                enum mps__op op = m.op;
                if (op == MPS_OP_WELCOME || m.tag != tag) { /* (an earlier job's end) */
                        mps__msg_release(&m);
                        continue;
                }
                err[0] = '\0';
                if (op == MPS_OP_ERROR) {
                        struct mps__error e;
                        ck_assert_int_eq(mps__error_decode(m.json, &e, err, sizeof(err)), 0);
                        snprintf(err, sizeof(err), "%s %s", mps__errno_name(e.err), e.message);
                }
                ck_assert_int_eq(m.tag, tag);
                mps__msg_release(&m);
                return op;
        }
}

/* A memfd holding a spawn of /bin/true with this tag, sealed with seals,
 * and made size bytes long (0: as long as its text). */
static int spec_memfd(uint64_t tag, unsigned seals, off_t size) {
        struct mps__spawn sp = {.tag = tag, .path = "/bin/true",
                                .argv = (const char *[]){"true", NULL}, .argc = 1,
                                .envp = (const char *[]){NULL}, .umask = -1};
        cJSON *j = mps__spawn_encode(&sp);
        char *text = cJSON_PrintUnformatted(j);
        int fd = memfd_create("check", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        if (size)
                ck_assert_int_eq(ftruncate(fd, size), 0);
        if (seals)
                ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
        cJSON_free(text);
        cJSON_Delete(j);
        return fd;
}

#define ALL_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)

START_TEST(test_server_refuses_bad_spec_memfds_and_serves_on) {
        struct tu_server srv;
        tu_server_start(&srv, NULL);
        int sock = raw_connect(srv.path);
        /* A sealed memfd of our own first: the path works raw. */
        int fd = spec_memfd(1, ALL_SEALS, 0);
        ck_assert_int_eq(raw_spawn(sock, 1, fd, -1, 0), MPS_OP_SPAWNED);
        close(fd);
        fd = spec_memfd(2, 0, 0);
        ck_assert_int_eq(raw_spawn(sock, 2, fd, -1, 0), MPS_OP_ERROR);
        ck_assert_msg(strstr(err, "EBADMSG") == err && strstr(err, "not sealed"), "%s", err);
        close(fd);
        fd = spec_memfd(3, F_SEAL_SHRINK | F_SEAL_GROW, 0); /* still writable */
        ck_assert_int_eq(raw_spawn(sock, 3, fd, -1, 0), MPS_OP_ERROR);
        ck_assert_msg(strstr(err, "not sealed"), "%s", err);
        close(fd);
        /* Sparse: costs nothing here, and its size alone is refused. */
        fd = spec_memfd(4, ALL_SEALS, (off_t)MPS_WIRE_SPEC_MAX + 1);
        ck_assert_int_eq(raw_spawn(sock, 4, fd, -1, 0), MPS_OP_ERROR);
        ck_assert_msg(strstr(err, "E2BIG") == err && strstr(err, "the limit is"), "%s", err);
        close(fd);
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        ck_assert_int_eq(raw_spawn(sock, 5, p[0], -1, 0), MPS_OP_ERROR);
        ck_assert_msg(strstr(err, "not a memfd"), "%s", err);
        close(p[0]);
        close(p[1]);
        /* And it serves on, on this connection. */
        fd = spec_memfd(6, ALL_SEALS, 0);
        ck_assert_int_eq(raw_spawn(sock, 6, fd, -1, 0), MPS_OP_SPAWNED);
        close(fd);
        close(sock);
        tu_server_stop(&srv);
}
END_TEST

START_TEST(test_server_refuses_bad_fd_bundles_and_serves_on) {
        struct tu_server srv;
        tu_server_start(&srv, NULL);
        int sock = raw_connect(srv.path);
        int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        int fds[3] = {devnull, devnull, devnull};
        /* Announces 3, holds 2. */
        int b = mps__wire_bundle_make(fds, 2);
        ck_assert_int_ge(b, 0);
        ck_assert_int_eq(raw_spawn(sock, 1, -1, b, 3), MPS_OP_ERROR);
        ck_assert_msg(strstr(err, "fewer descriptors than the 3 announced"), "%s", err);
        close(b);
        b = mps__wire_bundle_make(fds, 3);
        ck_assert_int_eq(raw_spawn(sock, 2, -1, b, 2), MPS_OP_ERROR);
        ck_assert_msg(strstr(err, "more descriptors than the 2 announced"), "%s", err);
        close(b);
        ck_assert_int_eq(raw_spawn(sock, 3, -1, devnull, 1), MPS_OP_ERROR);
        ck_assert_msg(strstr(err, "not an AF_UNIX SOCK_SEQPACKET socket"), "%s", err);
        b = mps__wire_bundle_make(fds, 3);
        ck_assert_int_eq(raw_spawn(sock, 4, -1, b, 3), MPS_OP_SPAWNED);
        close(b);
        close(devnull);
        close(sock);
        tu_server_stop(&srv);
}
END_TEST

/* --- the CLI's descriptors -------------------------------------------- */

/* The job's fd numbers, in order, as its shell has them: looked up one by
 * one, since listing the directory would add the listing's own fd. */
#define FD_NUMBERS "l=; for i in $(seq 0 1100); do [ -e /proc/$$/fd/$i ] && l=\"$l $i\"; done"
#define FD_LIST "sh -c '" FD_NUMBERS "; echo $l'"

START_TEST(test_cli_fd_3_from_a_file) {
        ck_assert_int_eq(bash("f=$(mktemp); echo from-fd-3 >$f;"
                              "\"$0\" sh -c 'cat <&3' 3<$f; rm -f $f"), 0);
        ck_assert_str_eq(out, "from-fd-3\n");
}
END_TEST

START_TEST(test_cli_process_substitution) {
        ck_assert_int_eq(bash("\"$0\" cat <(echo hi)"), 0);
        ck_assert_str_eq(out, "hi\n");
}
END_TEST

START_TEST(test_cli_flock_fd_9) {
        ck_assert_int_eq(bash("command -v flock >/dev/null || exit 77; f=$(mktemp);"
                              "\"$0\" sh -c 'flock -n 9 && echo locked; flock -n -u 9' 9>$f;"
                              "exec 9>$f; flock -n 9 && echo relocked; rm -f $f"), 0);
        ck_assert_str_eq(out, "locked\nrelocked\n");
}
END_TEST

START_TEST(test_cli_300_fds_at_their_numbers) {
        ck_assert_int_eq(bash("for i in $(seq 10 309); do eval \"exec $i</dev/null\"; done;"
                              FD_LIST "; \"$0\" " FD_LIST), 0);
        char *nl = strchr(out, '\n');
        ck_assert_ptr_nonnull(nl);
        *nl = '\0';
        ck_assert_msg(strstr(out, " 10 11 12 ") && strstr(out, " 308 309"), "%s", out);
        ck_assert_int_eq(strlen(nl + 1), strlen(out) + 1);
        ck_assert_int_eq(strncmp(nl + 1, out, strlen(out)), 0);
}
END_TEST

START_TEST(test_cli_fd_options_pass_exactly_what_they_say) {
        ck_assert_int_eq(bash("exec 3</dev/null 4</dev/null 5</dev/null 9</dev/null;"
                              "\"$0\" --close-fds " FD_LIST ";"
                              "\"$0\" --pass-fd 9 " FD_LIST ";"
                              "\"$0\" --pass-fd 9 --pass-fd 4 " FD_LIST ";"
                              "\"$0\" --preserve-fds 2 " FD_LIST ";"
                              "\"$0\" --preserve-fds 1 --pass-fd 9 " FD_LIST ";"
                              "\"$0\" " FD_LIST), 0);
        ck_assert_str_eq(out, "0 1 2\n"
                              "0 1 2 9\n"
                              "0 1 2 4 9\n"
                              "0 1 2 3 4\n"
                              "0 1 2 3 9\n"
                              "0 1 2 3 4 5 9\n");
        ck_assert_int_eq(bash("\"$0\" --pass-fd 7 true"), 125);
        ck_assert_str_eq(err, "mpspawn: --pass-fd 7: fd 7 is not open\n");
        ck_assert_int_eq(bash("\"$0\" --pass-fd 1024 true"), 125);
        ck_assert_ptr_nonnull(strstr(err, "bad --pass-fd '1024'"));
}
END_TEST

START_TEST(test_cli_fd_above_1023_is_a_warning) {
        /* (Whatever else the test's caller left open is passed as well.) */
        ck_assert_int_eq(bash(FD_LIST "; exec 1500</dev/null; \"$0\" " FD_LIST), 0);
        char *nl = strchr(out, '\n');
        ck_assert_ptr_nonnull(nl);
        /* The same fds as the caller's, 1500 aside, and a warning for it. */
        ck_assert_int_eq(strlen(nl + 1), (size_t)(nl - out + 1));
        ck_assert_int_eq(strncmp(nl + 1, out, (size_t)(nl - out + 1)), 0);
        ck_assert_str_eq(err, "mpspawn: warning: fd 1500 is open, but a job's fds go up to "
                              "1023: the job does not get it\n");
}
END_TEST

/* What the job's fds are, by target: none may be a socket, a signalfd or
 * any other descriptor of mpspawn's. */
static void assert_no_cli_fds(const char *socket_opt) {
        char script[600];
        snprintf(script, sizeof(script),
                 "\"$0\" %s sh -c '" FD_NUMBERS "; for i in $l; do readlink /proc/$$/fd/$i; "
                 "done'", socket_opt);
        ck_assert_int_eq(bash(script), 0);
        ck_assert_msg(!strstr(out, "socket:") && !strstr(out, "anon_inode") &&
                      !strstr(out, "memfd") && !strstr(out, "pidfd"),
                      "the job sees: %s", out);
        ck_assert_ptr_nonnull(strstr(out, "pipe:")); /* (the captured stdout) */
}

START_TEST(test_cli_own_fds_never_reach_the_job) {
        struct tu_server srv;
        char opt[200];
        assert_no_cli_fds(""); /* the embedded server */
        tu_server_start(&srv, NULL);
        snprintf(opt, sizeof(opt), "--socket %s", srv.path);
        assert_no_cli_fds(opt);
        tu_server_stop(&srv);
}
END_TEST

static Suite *bigspec_suite(void) {
        Suite *s = suite_create("bigspec");
        TCase *tc = tcase_create("args");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_cli_20000_args);
        tcase_add_test(tc, test_cli_1_5_mib_command_line);
        tcase_add_test(tc, test_library_20000_args);
        tcase_add_test(tc, test_library_70k_env_var);
        tcase_add_test(tc, test_library_past_arg_max_is_e2big);
        tcase_add_test(tc, test_cli_past_arg_max_is_126);
        tcase_add_test(tc, test_script_without_shebang_never_loses_arguments);
        suite_add_tcase(s, tc);
        tc = tcase_create("server");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_server_refuses_bad_spec_memfds_and_serves_on);
        tcase_add_test(tc, test_server_refuses_bad_fd_bundles_and_serves_on);
        suite_add_tcase(s, tc);
        tc = tcase_create("fds");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_cli_fd_3_from_a_file);
        tcase_add_test(tc, test_cli_process_substitution);
        tcase_add_test(tc, test_cli_flock_fd_9);
        tcase_add_test(tc, test_cli_300_fds_at_their_numbers);
        tcase_add_test(tc, test_cli_fd_options_pass_exactly_what_they_say);
        tcase_add_test(tc, test_cli_fd_above_1023_is_a_warning);
        tcase_add_test(tc, test_cli_own_fds_never_reach_the_job);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(bigspec_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
