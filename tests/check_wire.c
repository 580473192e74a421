/* SPDX-License-Identifier: MIT */
/*
 * check_wire.c: the wire codec (launcher/wire.c, launcher/transport.c).
 * Every message type makes a round trip encode -> send -> recv -> decode
 * over a real SOCK_SEQPACKET socketpair; descriptors travel as SCM_RIGHTS;
 * malformed datagrams are sent raw and must be rejected with their
 * descriptors closed; the spawn decoder rejects every out-of-bounds field
 * by name.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../launcher/wire.h"

#define TIMEOUT_S 30

/* ---- helpers -------------------------------------------------------------- */

static void open_pair(int sv[2]) {
        ck_assert_int_eq(
                socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
}

static void close_pair(int sv[2]) {
        close(sv[0]);
        close(sv[1]);
}

/* Open descriptors of this process, not counting the directory's own. */
static int count_open_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        ck_assert_ptr_nonnull(d);
        int n = 0;
        struct dirent *e;
        while ((e = readdir(d)))
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1;
}

/* True once every read end of the pipe whose write end is wfd is closed. */
static bool pipe_has_no_reader(int wfd) {
        struct pollfd p = {.fd = wfd, .events = POLLOUT};
        ck_assert_int_eq(poll(&p, 1, 0), 1);
        return (p.revents & POLLERR) != 0;
}

/* Sends json (consumed) with fds through a fresh socketpair and receives it
 * into msg, which must then be released. */
static void round_trip(cJSON *json, const int *fds, size_t nfds,
                       struct mps__msg *msg) {
        int sv[2];
        char err[256] = "";
        uint64_t tag = 0;

        ck_assert_ptr_nonnull(json);
        open_pair(sv);
        ck_assert_int_eq(mps__wire_send(sv[0], json, fds, nfds), 0);
        cJSON_Delete(json);
        ck_assert_int_eq(mps__wire_recv(sv[1], msg, err, sizeof(err), &tag), 1);
        ck_assert_str_eq(err, "");
        ck_assert_uint_eq(tag, msg->tag);
        close_pair(sv);
}

/* Sends len bytes with fds attached through plain sendmsg(), bypassing every
 * check of mps__wire_send, and returns what mps__wire_recv makes of them. */
static int recv_raw(const void *data, size_t len, const int *fds, size_t nfds,
                    char *err, size_t errlen, uint64_t *ret_tag) {
        int sv[2];
        struct mps__msg msg;
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * 128)];
        } control;
        struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

        ck_assert_uint_le(nfds, 128);
        if (nfds > 0) {
                memset(&control, 0, sizeof(control));
                mh.msg_control = control.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
        }
        open_pair(sv);
        ck_assert_int_eq(sendmsg(sv[0], &mh, 0), (ssize_t)len);
        int r = mps__wire_recv(sv[1], &msg, err, errlen, ret_tag);
        if (r == 1)
                mps__msg_release(&msg);
        close_pair(sv);
        return r;
}

static int recv_text(const char *text, char *err, size_t errlen,
                     uint64_t *ret_tag) {
        return recv_raw(text, strlen(text), NULL, 0, err, errlen, ret_tag);
}

/* A string of n copies of c, malloc()ed. */
static char *repeat(char c, size_t n) {
        char *s = malloc(n + 1);
        ck_assert_ptr_nonnull(s);
        memset(s, c, n);
        s[n] = '\0';
        return s;
}

/* ---- round trips ------------------------------------------------------------ */

START_TEST(test_hello_round_trip) {
        struct mps__hello in = {.protocol = MPS_PROTOCOL_VERSION,
                                .client = "libmpspawn 0.1.0"};
        struct mps__msg msg;
        struct mps__hello out;
        char err[256] = "";

        round_trip(mps__hello_encode(&in), NULL, 0, &msg);
        ck_assert_int_eq(msg.op, MPS_OP_HELLO);
        ck_assert_uint_eq(msg.nfds, 0);
        ck_assert_int_eq(mps__hello_decode(msg.json, &out, err, sizeof(err)), 0);
        ck_assert_int_eq(out.protocol, MPS_PROTOCOL_VERSION);
        ck_assert_str_eq(out.client, "libmpspawn 0.1.0");
        mps__msg_release(&msg);
}
END_TEST

START_TEST(test_welcome_round_trip_with_pidfd_feature) {
        struct mps__welcome in = {.protocol = MPS_PROTOCOL_VERSION,
                                  .version = "0.1.0",
                                  .pid = 4242,
                                  .pidfd = true};
        struct mps__msg msg;
        struct mps__welcome out;
        char err[256] = "";

        round_trip(mps__welcome_encode(&in), NULL, 0, &msg);
        ck_assert_int_eq(msg.op, MPS_OP_WELCOME);
        ck_assert_int_eq(mps__welcome_decode(msg.json, &out, err, sizeof(err)), 0);
        ck_assert_int_eq(out.protocol, MPS_PROTOCOL_VERSION);
        ck_assert_str_eq(out.version, "0.1.0");
        ck_assert_int_eq(out.pid, 4242);
        ck_assert(out.pidfd);
        mps__msg_release(&msg);
}
END_TEST

START_TEST(test_welcome_round_trip_without_pidfd_feature) {
        struct mps__welcome in = {.protocol = MPS_PROTOCOL_VERSION,
                                  .version = "0.1.0",
                                  .pid = 1};
        struct mps__msg msg;
        struct mps__welcome out;
        char err[256] = "";

        round_trip(mps__welcome_encode(&in), NULL, 0, &msg);
        ck_assert_int_eq(mps__welcome_decode(msg.json, &out, err, sizeof(err)), 0);
        ck_assert_int_eq(out.pid, 1);
        ck_assert(!out.pidfd);
        mps__msg_release(&msg);
}
END_TEST

START_TEST(test_spawn_round_trip_all_fields) {
        const char *argv[] = {"sh", "-c", "echo \"$X\"", ""};
        const char *envp[] = {"X=1", "PATH=/usr/bin:/bin", "EMPTY="};
        struct mps__fd_map map[] = {{0, 0}, {1, -1}, {7, 1}, {2, 0}};
        /* The largest tag the protocol allows must come back exactly (cJSON's
         * own number printing would round it). */
        struct mps__spawn in = {.tag = 9007199254740991ull,
                                .path = "/bin/sh",
                                .argv = argv,
                                .argc = 4,
                                .envp = envp,
                                .envc = 3,
                                .cwd = "/tmp",
                                .name = "job \"one\"",
                                .fdmap = map,
                                .nfdmap = 4,
                                .daemon = true,
                                .new_session = true,
                                .want_pidfd = true};
        int p[2];
        struct mps__msg msg;
        struct mps__spawn out;
        char err[256] = "";

        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        round_trip(mps__spawn_encode(&in), p, 2, &msg);
        ck_assert_int_eq(msg.op, MPS_OP_SPAWN);
        ck_assert_uint_eq(msg.tag, 9007199254740991ull);
        ck_assert_uint_eq(msg.nfds, 2);
        ck_assert_int_eq(mps__spawn_decode(msg.json, msg.nfds, &out, err,
                                           sizeof(err)), 0);
        ck_assert_uint_eq(out.tag, 9007199254740991ull);
        ck_assert_str_eq(out.path, "/bin/sh");
        ck_assert_uint_eq(out.argc, 4);
        for (size_t i = 0; i < 4; i++)
                ck_assert_str_eq(out.argv[i], argv[i]);
        ck_assert_ptr_null(out.argv[4]);
        ck_assert_uint_eq(out.envc, 3);
        for (size_t i = 0; i < 3; i++)
                ck_assert_str_eq(out.envp[i], envp[i]);
        ck_assert_ptr_null(out.envp[3]);
        ck_assert_str_eq(out.cwd, "/tmp");
        ck_assert_str_eq(out.name, "job \"one\"");
        ck_assert_uint_eq(out.nfdmap, 4);
        for (size_t i = 0; i < 4; i++) {
                ck_assert_int_eq(out.fdmap[i].target, map[i].target);
                ck_assert_int_eq(out.fdmap[i].source, map[i].source);
        }
        ck_assert(out.daemon);
        ck_assert(out.new_session);
        ck_assert(out.want_pidfd);
        mps__spawn_done(&out);
        ck_assert_ptr_null(out.argv);
        ck_assert_ptr_null(out.envp);
        ck_assert_ptr_null(out.fdmap);
        mps__msg_release(&msg);
        close(p[0]);
        close(p[1]);
}
END_TEST

START_TEST(test_spawn_round_trip_defaults) {
        const char *argv[] = {"true"};
        struct mps__spawn in = {.tag = 1, .path = "/bin/true", .argv = argv,
                                .argc = 1};
        struct mps__msg msg;
        struct mps__spawn out;
        char err[256] = "";

        round_trip(mps__spawn_encode(&in), NULL, 0, &msg);
        ck_assert_int_eq(mps__spawn_decode(msg.json, 0, &out, err, sizeof(err)),
                         0);
        ck_assert_uint_eq(out.tag, 1);
        ck_assert_uint_eq(out.argc, 1);
        ck_assert_ptr_null(out.cwd);
        ck_assert_ptr_null(out.name);
        ck_assert_uint_eq(out.nfdmap, 0);
        ck_assert(!out.daemon);
        ck_assert(!out.new_session);
        ck_assert(!out.want_pidfd);
        /* No env sent means an empty environment, never the server's. */
        ck_assert_ptr_nonnull(out.envp);
        ck_assert_uint_eq(out.envc, 0);
        ck_assert_ptr_null(out.envp[0]);
        mps__spawn_done(&out);
        mps__msg_release(&msg);
}
END_TEST

START_TEST(test_spawned_round_trip) {
        struct mps__spawned in = {.tag = 17, .id = 3, .pid = 31337,
                                  .has_pidfd = true};
        struct mps__msg msg;
        struct mps__spawned out;
        char err[256] = "";

        round_trip(mps__spawned_encode(&in), NULL, 0, &msg);
        ck_assert_int_eq(msg.op, MPS_OP_SPAWNED);
        ck_assert_int_eq(mps__spawned_decode(msg.json, &out, err, sizeof(err)), 0);
        ck_assert_uint_eq(out.tag, 17);
        ck_assert_uint_eq(out.id, 3);
        ck_assert_int_eq(out.pid, 31337);
        ck_assert(out.has_pidfd);
        mps__msg_release(&msg);
}
END_TEST

START_TEST(test_exited_round_trip_normal_exit) {
        struct mps__exited in = {.tag = 2, .id = 5, .pid = 100, .exitcode = 42,
                                 .utime = 0.5, .stime = 0.25, .wall = 1.125,
                                 .maxrss_kib = 2048};
        struct mps__msg msg;
        struct mps__exited out;
        char err[256] = "";

        round_trip(mps__exited_encode(&in), NULL, 0, &msg);
        ck_assert_int_eq(msg.op, MPS_OP_EXITED);
        /* A "signal" field appears only for deaths by signal. */
        ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(msg.json, "signal"));
        ck_assert_int_eq(mps__exited_decode(msg.json, &out, err, sizeof(err)), 0);
        ck_assert_uint_eq(out.tag, 2);
        ck_assert_uint_eq(out.id, 5);
        ck_assert_int_eq(out.pid, 100);
        ck_assert_int_eq(out.exitcode, 42);
        ck_assert(!out.core_dumped);
        ck_assert(!out.timed_out);
        ck_assert_double_eq(out.utime, 0.5);
        ck_assert_double_eq(out.stime, 0.25);
        ck_assert_double_eq(out.wall, 1.125);
        ck_assert_int_eq(out.maxrss_kib, 2048);
        mps__msg_release(&msg);
}
END_TEST

START_TEST(test_exited_round_trip_killed_by_signal) {
        struct mps__exited in = {.tag = 0, .id = 4503599627370501ull,
                                 .pid = 2147483647, .exitcode = -9,
                                 .core_dumped = true, .timed_out = true,
                                 .utime = 0.1, .stime = 12.75, .wall = 30.0,
                                 .maxrss_kib = 123456789};
        struct mps__msg msg;
        struct mps__exited out;
        char err[256] = "";

        round_trip(mps__exited_encode(&in), NULL, 0, &msg);
        const cJSON *sig = cJSON_GetObjectItemCaseSensitive(msg.json, "signal");
        ck_assert(cJSON_IsNumber(sig));
        ck_assert_double_eq(sig->valuedouble, 9);
        ck_assert_int_eq(mps__exited_decode(msg.json, &out, err, sizeof(err)), 0);
        ck_assert_uint_eq(out.tag, 0);
        ck_assert_uint_eq(out.id, 4503599627370501ull);
        ck_assert_int_eq(out.pid, 2147483647);
        ck_assert_int_eq(out.exitcode, -9);
        ck_assert(out.core_dumped);
        ck_assert(out.timed_out);
        ck_assert_double_eq(out.utime, 0.1);
        ck_assert_double_eq(out.stime, 12.75);
        ck_assert_double_eq(out.wall, 30.0);
        ck_assert_int_eq(out.maxrss_kib, 123456789);
        mps__msg_release(&msg);
}
END_TEST

START_TEST(test_signal_round_trip) {
        struct mps__signal in = {.tag = 11, .id = 4, .signo = 15};
        struct mps__msg msg;
        struct mps__signal out;
        char err[256] = "";

        round_trip(mps__signal_encode(&in), NULL, 0, &msg);
        ck_assert_int_eq(msg.op, MPS_OP_SIGNAL);
        ck_assert_int_eq(mps__signal_decode(msg.json, &out, err, sizeof(err)), 0);
        ck_assert_uint_eq(out.tag, 11);
        ck_assert_uint_eq(out.id, 4);
        ck_assert_int_eq(out.signo, 15);
        mps__msg_release(&msg);
}
END_TEST

START_TEST(test_signaled_round_trip) {
        struct mps__msg msg;
        uint64_t tag = 0, id = 0;
        char err[256] = "";

        round_trip(mps__signaled_encode(12, 4), NULL, 0, &msg);
        ck_assert_int_eq(msg.op, MPS_OP_SIGNALED);
        ck_assert_int_eq(mps__signaled_decode(msg.json, &tag, &id, err,
                                              sizeof(err)), 0);
        ck_assert_uint_eq(tag, 12);
        ck_assert_uint_eq(id, 4);
        mps__msg_release(&msg);
}
END_TEST

START_TEST(test_error_round_trip_by_errno_name) {
        static const struct {
                int err;
                const char *name;
        } cases[] = {{ENOENT, "ENOENT"}, {EACCES, "EACCES"},
                     {E2BIG, "E2BIG"},   {EMFILE, "EMFILE"},
                     {ENOEXEC, "ENOEXEC"}};
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct mps__error in = {.tag = 77 + i, .err = cases[i].err,
                                        .stage = "exec",
                                        .message = "cannot execute /nope"};
                struct mps__msg msg;
                struct mps__error out;
                char err[256] = "";

                round_trip(mps__error_encode(&in), NULL, 0, &msg);
                ck_assert_int_eq(msg.op, MPS_OP_ERROR);
                const cJSON *name =
                        cJSON_GetObjectItemCaseSensitive(msg.json, "errno");
                ck_assert(cJSON_IsString(name));
                ck_assert_str_eq(name->valuestring, cases[i].name);
                ck_assert_int_eq(mps__error_decode(msg.json, &out, err,
                                                   sizeof(err)), 0);
                ck_assert_uint_eq(out.tag, 77 + i);
                ck_assert_int_eq(out.err, cases[i].err);
                ck_assert_str_eq(out.stage, "exec");
                ck_assert_str_eq(out.message, "cannot execute /nope");
                mps__msg_release(&msg);
        }
        ck_assert_int_eq(ENOENT, 2); /* the brief's example, on Linux */
}
END_TEST

START_TEST(test_error_defaults) {
        struct mps__error in = {.err = 0}; /* no name for 0: sent as EIO */
        struct mps__msg msg;
        struct mps__error out;
        char err[256] = "";

        round_trip(mps__error_encode(&in), NULL, 0, &msg);
        ck_assert_int_eq(mps__error_decode(msg.json, &out, err, sizeof(err)), 0);
        ck_assert_uint_eq(out.tag, 0);
        ck_assert_int_eq(out.err, EIO);
        ck_assert_str_eq(out.stage, "request");
        ck_assert_str_eq(out.message, "");
        mps__msg_release(&msg);
}
END_TEST

/* Decodes an error message given as JSON text; returns the decoder's result
 * and the errno it settled on in *ret_err. */
static int decode_error_text(const char *text, int *ret_err) {
        struct mps__error out = {.err = -1};
        char err[256] = "";
        cJSON *j = cJSON_Parse(text);

        ck_assert_ptr_nonnull(j);
        int r = mps__error_decode(j, &out, err, sizeof(err));
        if (r < 0)
                ck_assert_msg(strstr(err, "\"code\""), "reason '%s'", err);
        *ret_err = out.err;
        cJSON_Delete(j);
        return r;
}

START_TEST(test_error_name_wins_over_code) {
        int e = 0;
        /* Numbers differ between architectures; the name is authoritative. */
        ck_assert_int_eq(decode_error_text("{\"errno\":\"ENOENT\",\"code\":13}",
                                           &e), 0);
        ck_assert_int_eq(e, ENOENT);
}
END_TEST

START_TEST(test_error_unknown_name_falls_back_to_code) {
        int e = 0;
        ck_assert_int_eq(decode_error_text("{\"errno\":\"EBOGUS\",\"code\":2}",
                                           &e), 0);
        ck_assert_int_eq(e, 2);
        ck_assert_int_eq(decode_error_text("{\"errno\":\"EBOGUS\"}", &e), 0);
        ck_assert_int_eq(e, EIO);
        ck_assert_int_eq(decode_error_text("{\"errno\":\"EBOGUS\",\"code\":0}",
                                           &e), 0);
        ck_assert_int_eq(e, EIO);
        /* A code out of range costs the number, never the message. */
        ck_assert_int_eq(decode_error_text("{\"errno\":\"EBOGUS\",\"code\":4096}",
                                           &e), 0);
        ck_assert_int_eq(e, EIO);
        ck_assert_int_eq(decode_error_text("{\"errno\":\"EBOGUS\",\"code\":-5}",
                                           &e), 0);
        ck_assert_int_eq(e, EIO);
}
END_TEST

/* ---- descriptors ---------------------------------------------------------------- */

START_TEST(test_fd_arrives_as_new_cloexec_fd_of_same_pipe) {
        const char *argv[] = {"cat"};
        struct mps__fd_map map[] = {{0, 0}};
        struct mps__spawn in = {.tag = 1, .path = "/bin/cat", .argv = argv,
                                .argc = 1, .fdmap = map, .nfdmap = 1};
        int p[2];
        struct mps__msg msg;
        char buf[16] = "";

        /* Without O_CLOEXEC here, so that FD_CLOEXEC on the received fd can
         * only come from MSG_CMSG_CLOEXEC. */
        ck_assert_int_eq(pipe(p), 0);
        ck_assert_int_eq(fcntl(p[0], F_GETFD) & FD_CLOEXEC, 0);
        round_trip(mps__spawn_encode(&in), &p[0], 1, &msg);
        ck_assert_uint_eq(msg.nfds, 1);
        int fd = msg.fds[0];
        ck_assert_int_ge(fd, 0);
        ck_assert_int_ne(fd, p[0]);
        ck_assert_int_ne(fd, p[1]);
        ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);

        ck_assert_int_eq(write(p[1], "ping", 4), 4);
        ck_assert_int_eq(read(fd, buf, sizeof(buf)), 4);
        ck_assert_mem_eq(buf, "ping", 4);

        /* Closing our own read end leaves the received one as the reader. */
        close(p[0]);
        ck_assert(!pipe_has_no_reader(p[1]));
        mps__msg_release(&msg);
        ck_assert_uint_eq(msg.nfds, 0);
        ck_assert(pipe_has_no_reader(p[1]));
        close(p[1]);
}
END_TEST

START_TEST(test_send_fds_max_is_accepted) {
        int p[2], fds[MPS_WIRE_FDS_MAX];
        struct mps__msg msg;
        cJSON *json = mps__signaled_encode(1, 1);

        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        for (size_t i = 0; i < MPS_WIRE_FDS_MAX; i++)
                fds[i] = p[0];
        int before = count_open_fds();
        round_trip(json, fds, MPS_WIRE_FDS_MAX, &msg);
        ck_assert_uint_eq(msg.nfds, MPS_WIRE_FDS_MAX);
        ck_assert_int_eq(count_open_fds(), before + MPS_WIRE_FDS_MAX);
        mps__msg_release(&msg);
        ck_assert_int_eq(count_open_fds(), before);
        close(p[0]);
        close(p[1]);
}
END_TEST

START_TEST(test_send_more_than_fds_max_is_emsgsize) {
        int sv[2], p[2], fds[MPS_WIRE_FDS_MAX + 1];
        cJSON *json = mps__signaled_encode(1, 1);

        ck_assert_ptr_nonnull(json);
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        for (size_t i = 0; i < MPS_WIRE_FDS_MAX + 1; i++)
                fds[i] = p[0];
        open_pair(sv);
        ck_assert_int_eq(mps__wire_send(sv[0], json, fds, MPS_WIRE_FDS_MAX + 1),
                         -EMSGSIZE);
        /* Nothing was sent. */
        struct mps__msg msg;
        ck_assert_int_eq(mps__wire_recv(sv[1], &msg, NULL, 0, NULL), -EAGAIN);
        cJSON_Delete(json);
        close_pair(sv);
        close(p[0]);
        close(p[1]);
}
END_TEST

START_TEST(test_send_oversized_encoding_is_emsgsize) {
        int sv[2];
        struct mps__hello in = {.protocol = 1};
        cJSON *json = mps__hello_encode(&in);
        char *big = repeat('x', MPS_WIRE_MSG_MAX);
        size_t len = 1;

        ck_assert_ptr_nonnull(json);
        ck_assert_ptr_nonnull(cJSON_AddStringToObject(json, "client", big));
        errno = 0;
        ck_assert_ptr_null(mps__wire_encode(json, &len));
        ck_assert_int_eq(errno, EMSGSIZE);
        ck_assert_uint_eq(len, 1);
        open_pair(sv);
        ck_assert_int_eq(mps__wire_send(sv[0], json, NULL, 0), -EMSGSIZE);
        close_pair(sv);
        cJSON_Delete(json);
        free(big);
}
END_TEST

/* ---- end of stream, nothing waiting -------------------------------------------- */

START_TEST(test_recv_end_of_stream_returns_zero) {
        int sv[2];
        struct mps__msg msg;
        char err[64] = "";

        open_pair(sv);
        close(sv[0]);
        ck_assert_int_eq(mps__wire_recv(sv[1], &msg, err, sizeof(err), NULL), 0);
        ck_assert_ptr_null(msg.json);
        ck_assert_uint_eq(msg.nfds, 0);
        close(sv[1]);
}
END_TEST

START_TEST(test_recv_nothing_waiting_returns_eagain) {
        int sv[2];
        struct mps__msg msg;
        char err[64] = "";
        uint64_t tag = 99;

        open_pair(sv);
        ck_assert_int_eq(mps__wire_recv(sv[1], &msg, err, sizeof(err), &tag),
                         -EAGAIN);
        ck_assert_uint_eq(tag, 99);
        mps__msg_release(&msg); /* harmless on an empty message */
        close_pair(sv);
}
END_TEST

/* ---- malformed messages ------------------------------------------------------------ */

/* Each of these must be refused with -EBADMSG and a reason. */
static const char *const bad_messages[] = {
        "not json at all",
        "{\"v\":1,\"op\":\"hello\"",
        "[1,2,3]",
        "\"a string\"",
        "{\"op\":\"hello\",\"protocol\":1}",
        "{\"v\":\"1\",\"op\":\"hello\"}",
        "{\"v\":1,\"protocol\":1}",
        "{\"v\":1,\"op\":7}",
        "{\"v\":1,\"op\":\"launch\"}",
        "{\"v\":1,\"op\":\"unknown\"}",
        "{\"v\":1,\"op\":\"Hello\"}",
        "",
};

START_TEST(test_recv_rejects_malformed_with_ebadmsg) {
        for (size_t i = 0; i < sizeof(bad_messages) / sizeof(bad_messages[0]);
             i++) {
                char err[256] = "";
                int r = recv_text(bad_messages[i], err, sizeof(err), NULL);
                /* An empty datagram without fds reads as end of stream. */
                if (bad_messages[i][0] == '\0') {
                        ck_assert_int_eq(r, 0);
                        continue;
                }
                ck_assert_msg(r == -EBADMSG, "message %zu '%s': got %d", i,
                              bad_messages[i], r);
                ck_assert_msg(err[0] != '\0', "message %zu: no reason", i);
        }
}
END_TEST

START_TEST(test_recv_not_json_reason) {
        char err[256] = "";
        ck_assert_int_eq(recv_text("{nope", err, sizeof(err), NULL), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(err, "not a JSON object"));
}
END_TEST

START_TEST(test_recv_json_array_is_not_an_object) {
        char err[256] = "";
        ck_assert_int_eq(recv_text("[{\"v\":1,\"op\":\"hello\"}]", err,
                                   sizeof(err), NULL), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(err, "not a JSON object"));
}
END_TEST

START_TEST(test_recv_missing_version) {
        char err[256] = "";
        ck_assert_int_eq(recv_text("{\"op\":\"hello\",\"protocol\":1}", err,
                                   sizeof(err), NULL), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(err, "\"v\""));
}
END_TEST

START_TEST(test_recv_wrong_version_is_eproto) {
        char err[256] = "";
        ck_assert_int_eq(recv_text("{\"v\":2,\"op\":\"hello\",\"protocol\":2}",
                                   err, sizeof(err), NULL), -EPROTO);
        ck_assert_ptr_nonnull(strstr(err, "version 2"));
        err[0] = '\0';
        ck_assert_int_eq(recv_text("{\"v\":0,\"op\":\"hello\"}", err,
                                   sizeof(err), NULL), -EPROTO);
        ck_assert_str_ne(err, "");
}
END_TEST

START_TEST(test_recv_missing_op) {
        char err[256] = "";
        ck_assert_int_eq(recv_text("{\"v\":1,\"tag\":3}", err, sizeof(err), NULL),
                         -EBADMSG);
        ck_assert_ptr_nonnull(strstr(err, "\"op\""));
}
END_TEST

START_TEST(test_recv_unknown_op) {
        char err[256] = "";
        ck_assert_int_eq(recv_text("{\"v\":1,\"op\":\"launch\"}", err,
                                   sizeof(err), NULL), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(err, "unknown op \"launch\""));
        /* "unknown" is the name of MPS_OP_UNKNOWN, not a valid op. */
        err[0] = '\0';
        ck_assert_int_eq(recv_text("{\"v\":1,\"op\":\"unknown\"}", err,
                                   sizeof(err), NULL), -EBADMSG);
        ck_assert_str_ne(err, "");
}
END_TEST

/* A valid hello of exactly len bytes, malloc()ed. */
static char *hello_of_length(size_t len) {
        static const char head[] = "{\"v\":1,\"op\":\"hello\",\"protocol\":1,"
                                   "\"client\":\"";
        static const char tail[] = "\"}";
        size_t fixed = sizeof(head) - 1 + sizeof(tail) - 1;
        ck_assert_uint_gt(len, fixed);
        char *s = repeat('c', len);
        memcpy(s, head, sizeof(head) - 1);
        memcpy(s + len - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
        return s;
}

START_TEST(test_recv_message_of_exactly_msg_max_is_accepted) {
        char *s = hello_of_length(MPS_WIRE_MSG_MAX);
        char err[256] = "";
        int sv[2];
        struct mps__msg msg;

        open_pair(sv);
        ck_assert_int_eq(send(sv[0], s, MPS_WIRE_MSG_MAX, 0), MPS_WIRE_MSG_MAX);
        ck_assert_int_eq(mps__wire_recv(sv[1], &msg, err, sizeof(err), NULL), 1);
        ck_assert_int_eq(msg.op, MPS_OP_HELLO);
        mps__msg_release(&msg);
        close_pair(sv);
        free(s);
}
END_TEST

START_TEST(test_recv_message_longer_than_msg_max) {
        char *s = hello_of_length(MPS_WIRE_MSG_MAX + 1);
        char err[256] = "";

        ck_assert_int_eq(recv_raw(s, MPS_WIRE_MSG_MAX + 1, NULL, 0, err,
                                  sizeof(err), NULL), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(err, "longer than"));
        free(s);
}
END_TEST

START_TEST(test_recv_more_than_fds_max_attached) {
        int p[2], fds[MPS_WIRE_FDS_MAX + 1];
        char err[256] = "";
        static const char text[] = "{\"v\":1,\"op\":\"signaled\",\"tag\":1,\"id\":1}";

        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        for (size_t i = 0; i < MPS_WIRE_FDS_MAX + 1; i++)
                fds[i] = p[0];
        int before = count_open_fds();
        ck_assert_int_eq(recv_raw(text, strlen(text), fds, MPS_WIRE_FDS_MAX + 1,
                                  err, sizeof(err), NULL), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(err, "descriptors"));
        ck_assert_int_eq(count_open_fds(), before);
        close(p[0]);
        ck_assert(pipe_has_no_reader(p[1]));
        close(p[1]);
}
END_TEST

START_TEST(test_recv_closes_fds_of_malformed_message) {
        char *oversized = hello_of_length(MPS_WIRE_MSG_MAX + 1);
        const struct {
                const char *data;
                size_t len;
                int expect;
        } cases[] = {
                {"not json", 8, -EBADMSG},
                {"[]", 2, -EBADMSG},
                {"{\"op\":\"spawn\"}", 14, -EBADMSG},
                {"{\"v\":2,\"op\":\"spawn\"}", 20, -EPROTO},
                {"{\"v\":1}", 7, -EBADMSG},
                {"{\"v\":1,\"op\":\"nope\"}", 19, -EBADMSG},
                {"", 0, -EBADMSG}, /* empty, but fds make it no EOF */
                {oversized, MPS_WIRE_MSG_MAX + 1, -EBADMSG},
        };
        int start = count_open_fds();

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                int p[2], q[2];
                char err[256] = "";

                ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
                ck_assert_int_eq(pipe2(q, O_CLOEXEC), 0);
                int fds[] = {p[0], q[0]};
                int before = count_open_fds();
                int r = recv_raw(cases[i].data, cases[i].len, fds, 2, err,
                                 sizeof(err), NULL);
                ck_assert_msg(r == cases[i].expect, "case %zu: got %d", i, r);
                ck_assert_msg(err[0] != '\0', "case %zu: no reason", i);
                ck_assert_msg(count_open_fds() == before,
                              "case %zu: %d fds leaked", i,
                              count_open_fds() - before);
                close(p[0]);
                close(q[0]);
                ck_assert_msg(pipe_has_no_reader(p[1]), "case %zu", i);
                ck_assert_msg(pipe_has_no_reader(q[1]), "case %zu", i);
                close(p[1]);
                close(q[1]);
        }
        ck_assert_int_eq(count_open_fds(), start);
        free(oversized);
}
END_TEST

START_TEST(test_recv_reports_tag_of_bad_message) {
        static const struct {
                const char *text;
                int expect;
                uint64_t tag;
        } cases[] = {
                {"{\"tag\":42,\"op\":\"spawn\"}", -EBADMSG, 42},
                {"{\"v\":2,\"tag\":7,\"op\":\"spawn\"}", -EPROTO, 7},
                {"{\"v\":1,\"tag\":9007199254740991}", -EBADMSG,
                 9007199254740991ull},
                {"{\"v\":1,\"op\":\"launch\",\"tag\":0}", -EBADMSG, 0},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char err[256] = "";
                uint64_t tag = 12345;
                ck_assert_int_eq(recv_text(cases[i].text, err, sizeof(err), &tag),
                                 cases[i].expect);
                ck_assert_uint_eq(tag, cases[i].tag);
        }
}
END_TEST

START_TEST(test_recv_tag_is_zero_when_not_a_valid_integer) {
        static const char *const texts[] = {
                "{\"v\":3,\"op\":\"spawn\"}",
                "{\"tag\":-1}",
                "{\"tag\":\"5\"}",
                "{\"tag\":1.5}",
                "{\"tag\":1e300}",
                "{\"tag\":9007199254740992}",
        };
        for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
                char err[256] = "";
                uint64_t tag = 12345;
                ck_assert_int_lt(recv_text(texts[i], err, sizeof(err), &tag), 0);
                ck_assert_msg(tag == 0, "text %zu set tag %llu", i,
                              (unsigned long long)tag);
        }
}
END_TEST

START_TEST(test_recv_leaves_tag_alone_when_not_an_object) {
        static const char *const texts[] = {"{\"tag\":", "[{\"tag\":5}]", "5"};
        for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
                char err[256] = "";
                uint64_t tag = 12345;
                ck_assert_int_eq(recv_text(texts[i], err, sizeof(err), &tag),
                                 -EBADMSG);
                ck_assert_msg(tag == 12345, "text %zu set tag %llu", i,
                              (unsigned long long)tag);
        }
}
END_TEST

START_TEST(test_wire_tag) {
        static const struct {
                const char *text;
                uint64_t tag;
        } cases[] = {
                {"{\"tag\":7}", 7},
                {"{\"tag\":3.0}", 3},
                {"{\"tag\":0}", 0},
                {"{\"tag\":9007199254740991}", 9007199254740991ull},
                {"{\"tag\":9007199254740992}", 0},
                {"{\"tag\":2.5}", 0},
                {"{\"tag\":-3}", 0},
                {"{\"tag\":true}", 0},
                {"{\"tag\":null}", 0},
                {"{}", 0},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                cJSON *j = cJSON_Parse(cases[i].text);
                ck_assert_ptr_nonnull(j);
                ck_assert_msg(mps__wire_tag(j) == cases[i].tag, "case %zu: %s", i,
                              cases[i].text);
                cJSON_Delete(j);
        }
}
END_TEST

/* The receive buffer is reused: a short datagram must not be completed with
 * bytes left over from a longer one before it. */
START_TEST(test_recv_does_not_read_past_datagram) {
        static const char whole[] = "{\"v\":1,\"op\":\"hello\",\"protocol\":1}";
        size_t prefix = strlen("{\"v\":1,\"op\":\"hello\"");
        int sv[2];
        struct mps__msg msg;
        char err[256] = "";

        open_pair(sv);
        ck_assert_int_eq(send(sv[0], whole, strlen(whole), 0),
                         (ssize_t)strlen(whole));
        ck_assert_int_eq(send(sv[0], whole, prefix, 0), (ssize_t)prefix);
        ck_assert_int_eq(mps__wire_recv(sv[1], &msg, err, sizeof(err), NULL), 1);
        mps__msg_release(&msg);
        ck_assert_int_eq(mps__wire_recv(sv[1], &msg, err, sizeof(err), NULL),
                         -EBADMSG);
        close_pair(sv);
}
END_TEST

/* ---- spawn decoder validation ---------------------------------------------------------- */

static cJSON *valid_spawn(void) {
        cJSON *j = cJSON_Parse("{\"v\":1,\"op\":\"spawn\",\"tag\":5,"
                               "\"path\":\"/bin/true\",\"argv\":[\"true\"]}");
        ck_assert_ptr_nonnull(j);
        return j;
}

static cJSON *spawn_with(const char *key, cJSON *value) {
        cJSON *j = valid_spawn();
        ck_assert_ptr_nonnull(value);
        cJSON_DeleteItemFromObjectCaseSensitive(j, key);
        cJSON_AddItemToObject(j, key, value);
        return j;
}

static cJSON *spawn_with_json(const char *key, const char *value_text) {
        return spawn_with(key, cJSON_Parse(value_text));
}

/* Decoding json (consumed) must fail with -EINVAL, name field in the reason,
 * and leave the output untouched. */
static void expect_spawn_invalid(cJSON *json, size_t nfds, const char *field) {
        struct mps__spawn out = {.tag = 0xdead, .path = "untouched"};
        char err[512] = "";
        char quoted[64];

        snprintf(quoted, sizeof(quoted), "\"%s\"", field);
        ck_assert_int_eq(mps__spawn_decode(json, nfds, &out, err, sizeof(err)),
                         -EINVAL);
        ck_assert_msg(strstr(err, quoted), "reason '%s' does not name %s", err,
                      quoted);
        ck_assert_uint_eq(out.tag, 0xdead);
        ck_assert_str_eq(out.path, "untouched");
        ck_assert_ptr_null(out.argv);
        cJSON_Delete(json);
}

/* Decoding json (consumed) must succeed; returns argc for a closer look. */
static size_t expect_spawn_valid(cJSON *json, size_t nfds) {
        struct mps__spawn out;
        char err[512] = "";

        int r = mps__spawn_decode(json, nfds, &out, err, sizeof(err));
        ck_assert_msg(r == 0, "decode failed: %d %s", r, err);
        size_t argc = out.argc;
        mps__spawn_done(&out);
        cJSON_Delete(json);
        return argc;
}

START_TEST(test_spawn_valid_base) {
        ck_assert_uint_eq(expect_spawn_valid(valid_spawn(), 0), 1);
}
END_TEST

START_TEST(test_spawn_missing_path) {
        cJSON *j = valid_spawn();
        cJSON_DeleteItemFromObjectCaseSensitive(j, "path");
        expect_spawn_invalid(j, 0, "path");
        expect_spawn_invalid(spawn_with("path", cJSON_CreateNull()), 0, "path");
}
END_TEST

START_TEST(test_spawn_empty_path) {
        expect_spawn_invalid(spawn_with("path", cJSON_CreateString("")), 0,
                             "path");
}
END_TEST

/* cJSON reads 1e999 as an infinity and prints it as null: call arguments
 * holding one would reach the entry point changed (found by fuzz_wire). */
START_TEST(test_spawn_call_args_beyond_double) {
        expect_spawn_invalid(
                spawn_with_json("call", "{\"entry\":\"e\",\"args\":{\"n\":[1,-2e400]}}"),
                0, "call.args");
        expect_spawn_invalid(spawn_with_json("call", "{\"entry\":\"e\",\"args\":1e999}"),
                             0, "call.args");
        ck_assert_uint_eq(
                expect_spawn_valid(spawn_with_json("call", "{\"entry\":\"e\",\"args\":"
                                                           "[1.7976931348623157e308,-0,1e-320]}"),
                                   0),
                1);
}
END_TEST

START_TEST(test_spawn_path_not_string) {
        expect_spawn_invalid(spawn_with_json("path", "[\"/bin/true\"]"), 0,
                             "path");
}
END_TEST

START_TEST(test_spawn_argv_empty) {
        expect_spawn_invalid(spawn_with_json("argv", "[]"), 0, "argv");
}
END_TEST

START_TEST(test_spawn_argv_missing) {
        cJSON *j = valid_spawn();
        cJSON_DeleteItemFromObjectCaseSensitive(j, "argv");
        expect_spawn_invalid(j, 0, "argv");
}
END_TEST

START_TEST(test_spawn_argv_not_array) {
        expect_spawn_invalid(spawn_with_json("argv", "\"true\""), 0, "argv");
        expect_spawn_invalid(spawn_with_json("argv", "{\"0\":\"true\"}"), 0,
                             "argv");
}
END_TEST

START_TEST(test_spawn_argv_entry_not_string) {
        expect_spawn_invalid(spawn_with_json("argv", "[\"true\",3]"), 0, "argv");
        expect_spawn_invalid(spawn_with_json("argv", "[\"true\",null]"), 0,
                             "argv");
}
END_TEST

static cJSON *string_array(size_t n) {
        cJSON *a = cJSON_CreateArray();
        ck_assert_ptr_nonnull(a);
        for (size_t i = 0; i < n; i++)
                ck_assert(cJSON_AddItemToArray(a, cJSON_CreateString("a")));
        return a;
}

START_TEST(test_spawn_argv_count_bound) {
        ck_assert_uint_eq(expect_spawn_valid(spawn_with("argv", string_array(
                                                    MPS_WIRE_SPAWN_ARGV_MAX)), 0),
                          MPS_WIRE_SPAWN_ARGV_MAX);
        expect_spawn_invalid(spawn_with("argv",
                                        string_array(MPS_WIRE_SPAWN_ARGV_MAX + 1)),
                             0, "argv");
}
END_TEST

START_TEST(test_spawn_env_count_bound) {
        expect_spawn_valid(spawn_with("env", string_array(MPS_WIRE_ENV_MAX)), 0);
        expect_spawn_invalid(spawn_with("env",
                                        string_array(MPS_WIRE_ENV_MAX + 1)),
                             0, "env");
        expect_spawn_invalid(spawn_with_json("env", "[\"A=1\",false]"), 0, "env");
        expect_spawn_invalid(spawn_with_json("env", "\"A=1\""), 0, "env");
}
END_TEST

START_TEST(test_spawn_string_length_bound) {
        char *s = repeat('p', MPS_WIRE_STR_MAX + 1);

        s[0] = '/';
        expect_spawn_invalid(spawn_with("path", cJSON_CreateString(s)), 0,
                             "path");
        expect_spawn_invalid(spawn_with("cwd", cJSON_CreateString(s)), 0, "cwd");

        s[MPS_WIRE_STR_MAX] = '\0';
        expect_spawn_valid(spawn_with("path", cJSON_CreateString(s)), 0);
        free(s);
}
END_TEST

/* argv and env strings are bounded as execve bounds them (MAX_ARG_STRLEN,
 * with the NUL), not by the 16 KiB of other strings. */
START_TEST(test_spawn_arg_string_length_bound) {
        char *s = repeat('a', MPS_WIRE_ARG_STRLEN_MAX);
        for (int env = 0; env < 2; env++) {
                const char *key = env ? "env" : "argv";
                memset(s, 'a', MPS_WIRE_ARG_STRLEN_MAX);
                cJSON *v = cJSON_CreateArray();
                cJSON_AddItemToArray(v, cJSON_CreateString("x"));
                cJSON_AddItemToArray(v, cJSON_CreateString(s));
                expect_spawn_invalid(spawn_with(key, v), 0, key);
                s[MPS_WIRE_ARG_STRLEN_MAX - 1] = '\0';
                v = cJSON_CreateArray();
                cJSON_AddItemToArray(v, cJSON_CreateString("x"));
                cJSON_AddItemToArray(v, cJSON_CreateString(s));
                expect_spawn_valid(spawn_with(key, v), 0);
        }
        free(s);
}
END_TEST

START_TEST(test_spawn_name_length_bound) {
        char *s = repeat('n', MPS_WIRE_NAME_MAX + 1);

        expect_spawn_invalid(spawn_with("name", cJSON_CreateString(s)), 0,
                             "name");
        s[MPS_WIRE_NAME_MAX] = '\0';
        expect_spawn_valid(spawn_with("name", cJSON_CreateString(s)), 0);
        free(s);
}
END_TEST

START_TEST(test_spawn_fd_index_beyond_nfds) {
        expect_spawn_invalid(spawn_with_json("fds", "[[0,0]]"), 0, "fds");
        expect_spawn_invalid(spawn_with_json("fds", "[[0,0],[1,2]]"), 2, "fds");
        expect_spawn_invalid(spawn_with_json("fds", "[[0,-3]]"), 1, "fds");
        expect_spawn_invalid(spawn_with_json("fds", "[[0,0.5]]"), 1, "fds");
        expect_spawn_valid(spawn_with_json("fds", "[[0,1],[1,-1],[2,0]]"), 2);
        expect_spawn_valid(spawn_with_json("fds", "[[3,-1]]"), 0);
        /* -2 is MPS_WIRE_FD_CLOSED: the target stays closed. */
        expect_spawn_valid(spawn_with_json("fds", "[[0,-2]]"), 0);
}
END_TEST

START_TEST(test_spawn_fd_target_bound) {
        expect_spawn_invalid(spawn_with_json("fds", "[[1024,0]]"), 1, "fds");
        expect_spawn_invalid(spawn_with_json("fds", "[[-1,0]]"), 1, "fds");
        expect_spawn_invalid(spawn_with_json("fds", "[[2.5,0]]"), 1, "fds");
        expect_spawn_valid(spawn_with_json("fds", "[[1023,0]]"), 1);
}
END_TEST

START_TEST(test_spawn_fd_map_shape) {
        expect_spawn_invalid(spawn_with_json("fds", "[[0]]"), 1, "fds");
        expect_spawn_invalid(spawn_with_json("fds", "[[0,0,0]]"), 1, "fds");
        expect_spawn_invalid(spawn_with_json("fds", "[0]"), 1, "fds");
        expect_spawn_invalid(spawn_with_json("fds", "[[\"0\",0]]"), 1, "fds");
        expect_spawn_invalid(spawn_with_json("fds", "{\"0\":[0,0]}"), 1, "fds");
}
END_TEST

START_TEST(test_spawn_fd_map_count_bound) {
        cJSON *map = cJSON_CreateArray();
        for (int i = 0; i <= MPS_WIRE_FDMAP_MAX; i++)
                cJSON_AddItemToArray(map, cJSON_CreateIntArray(
                                                  (const int[]){i, -1}, 2));
        expect_spawn_invalid(spawn_with("fds", map), 0, "fds");
}
END_TEST

START_TEST(test_spawn_duplicate_fd_target) {
        char err[512] = "";
        struct mps__spawn out;
        cJSON *j = spawn_with_json("fds", "[[3,0],[4,0],[3,-1]]");

        ck_assert_int_eq(mps__spawn_decode(j, 1, &out, err, sizeof(err)),
                         -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "\"fds\""));
        ck_assert_ptr_nonnull(strstr(err, "fd 3 twice"));
        cJSON_Delete(j);
}
END_TEST

START_TEST(test_spawn_negative_tag) {
        expect_spawn_invalid(spawn_with_json("tag", "-1"), 0, "tag");
}
END_TEST

START_TEST(test_spawn_non_integer_tag) {
        expect_spawn_invalid(spawn_with_json("tag", "1.5"), 0, "tag");
        expect_spawn_invalid(spawn_with_json("tag", "\"5\""), 0, "tag");
        expect_spawn_invalid(spawn_with_json("tag", "9007199254740993"), 0,
                             "tag");
}
END_TEST

START_TEST(test_spawn_missing_tag) {
        cJSON *j = valid_spawn();
        cJSON_DeleteItemFromObjectCaseSensitive(j, "tag");
        expect_spawn_invalid(j, 0, "tag");
}
END_TEST

START_TEST(test_spawn_flags_must_be_bool) {
        expect_spawn_invalid(spawn_with_json("daemon", "1"), 0, "daemon");
        expect_spawn_invalid(spawn_with_json("daemon", "\"true\""), 0, "daemon");
        expect_spawn_invalid(spawn_with_json("new_session", "0"), 0,
                             "new_session");
        expect_spawn_invalid(spawn_with_json("pidfd", "[]"), 0, "pidfd");
}
END_TEST

START_TEST(test_spawn_absent_env_is_empty) {
        struct mps__spawn out;
        char err[256] = "";
        cJSON *j = valid_spawn();

        ck_assert_int_eq(mps__spawn_decode(j, 0, &out, err, sizeof(err)), 0);
        ck_assert_ptr_nonnull(out.envp);
        ck_assert_ptr_null(out.envp[0]);
        ck_assert_uint_eq(out.envc, 0);
        ck_assert_ptr_null(out.argv[1]);
        mps__spawn_done(&out);

        /* An explicit null is the same as absent. */
        cJSON_AddItemToObject(j, "env", cJSON_CreateNull());
        ck_assert_int_eq(mps__spawn_decode(j, 0, &out, err, sizeof(err)), 0);
        ck_assert_ptr_nonnull(out.envp);
        ck_assert_uint_eq(out.envc, 0);
        mps__spawn_done(&out);
        mps__spawn_done(NULL);
        cJSON_Delete(j);
}
END_TEST

/* ---- errno names, op names --------------------------------------------------------------- */

START_TEST(test_errno_name_round_trip) {
        static const int errs[] = {EPERM, ENOENT, EACCES, EAGAIN, EPIPE,
                                   ETIMEDOUT, EPROTO, ENOSYS};
        for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
                const char *name = mps__errno_name(errs[i]);
                ck_assert_ptr_nonnull(name);
                ck_assert_int_eq(mps__errno_from_name(name), errs[i]);
        }
        ck_assert_str_eq(mps__errno_name(ENOENT), "ENOENT");
        ck_assert_str_eq(mps__errno_name(EACCES), "EACCES");
        ck_assert_int_eq(mps__errno_from_name("ENOENT"), 2);
        ck_assert_int_eq(mps__errno_from_name("EMFILE"), EMFILE);
}
END_TEST

START_TEST(test_errno_name_unknown) {
        ck_assert_ptr_null(mps__errno_name(0));
        ck_assert_ptr_null(mps__errno_name(-ENOENT));
        ck_assert_ptr_null(mps__errno_name(100000));
        ck_assert_int_eq(mps__errno_from_name("EBOGUS"), 0);
        ck_assert_int_eq(mps__errno_from_name(""), 0);
        ck_assert_int_eq(mps__errno_from_name("enoent"), 0);
        ck_assert_int_eq(mps__errno_from_name(NULL), 0);
}
END_TEST

START_TEST(test_op_names) {
        ck_assert_str_eq(mps__op_name(MPS_OP_HELLO), "hello");
        ck_assert_str_eq(mps__op_name(MPS_OP_SIGNALED), "signaled");
        ck_assert_str_eq(mps__op_name(MPS_OP_ERROR), "error");
        ck_assert_str_eq(mps__op_name((enum mps__op)1000), "unknown");
}
END_TEST


/* ---- spec_memfd and fd_bundle ------------------------------------------------------------------ */

START_TEST(test_carrier_round_trip) {
        struct mps__spawn_carrier k = {.has_memfd = true, .memfd = 3, .has_bundle = true,
                                       .bundle = 4, .bundle_nfds = 700};
        cJSON *e = mps__spawn_carrier_encode(NULL, 42, &k);
        struct mps__spawn_carrier out;
        char err[256] = "";
        ck_assert_ptr_nonnull(e);
        /* (Encoders write numbers as raw text: read them back as sent.) */
        char *text = cJSON_PrintUnformatted(e);
        cJSON *j = cJSON_Parse(text);
        cJSON_free(text);
        cJSON_Delete(e);
        ck_assert_ptr_nonnull(j);
        ck_assert_uint_eq(mps__wire_tag(j), 42);
        ck_assert_int_eq(mps__spawn_carrier_decode(j, 5, &out, err, sizeof(err)), 0);
        ck_assert(out.has_memfd && out.has_bundle);
        ck_assert_int_eq(out.memfd, 3);
        ck_assert_int_eq(out.bundle, 4);
        ck_assert_uint_eq(out.bundle_nfds, 700);
        ck_assert_uint_eq(out.own_nfds, 3);
        cJSON_Delete(j);
}
END_TEST

START_TEST(test_carrier_absent_is_every_fd_the_jobs) {
        cJSON *j = spawn_with_json("fds", "[[0,0]]");
        struct mps__spawn_carrier out;
        char err[256] = "";
        ck_assert_int_eq(mps__spawn_carrier_decode(j, 7, &out, err, sizeof(err)), 0);
        ck_assert(!out.has_memfd && !out.has_bundle);
        ck_assert_uint_eq(out.own_nfds, 7);
        cJSON_Delete(j);
}
END_TEST

/* Refused with -EINVAL and a reason naming what. */
static void expect_carrier_invalid(const char *text, size_t nfds, const char *what) {
        cJSON *j = cJSON_Parse(text);
        struct mps__spawn_carrier out = {.own_nfds = 99};
        char err[256] = "";
        ck_assert_ptr_nonnull(j);
        ck_assert_int_eq(mps__spawn_carrier_decode(j, nfds, &out, err, sizeof(err)), -EINVAL);
        ck_assert_msg(strstr(err, what), "reason '%s' does not name %s", err, what);
        ck_assert_uint_eq(out.own_nfds, 99);
        cJSON_Delete(j);
}

START_TEST(test_carrier_bounds) {
        /* The descriptors named come last, memfd first. */
        expect_carrier_invalid("{\"spec_memfd\":0}", 2, "spec_memfd");
        expect_carrier_invalid("{\"spec_memfd\":0}", 0, "spec_memfd");
        expect_carrier_invalid("{\"spec_memfd\":1,\"fd_bundle\":{\"fd\":1,\"count\":1}}", 2,
                               "spec_memfd");
        expect_carrier_invalid("{\"fd_bundle\":{\"fd\":0,\"count\":0}}", 1, "count");
        expect_carrier_invalid("{\"fd_bundle\":{\"fd\":0,\"count\":1026}}", 1, "count");
        expect_carrier_invalid("{\"fd_bundle\":{\"fd\":0,\"count\":1.5}}", 1, "count");
        expect_carrier_invalid("{\"fd_bundle\":[0,1]}", 1, "fd_bundle");
        expect_carrier_invalid("{\"fd_bundle\":{\"count\":1}}", 1, "fd");
}
END_TEST

START_TEST(test_spec_memfd_round_trip) {
        const char text[] = "{\"v\":1,\"op\":\"spawn\"}";
        int fd = mps__wire_spec_memfd(text, strlen(text));
        char *buf, err[256] = "";
        size_t len;
        ck_assert_int_ge(fd, 0);
        ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
        /* Sealed: it cannot be changed any more. */
        ck_assert_int_lt(write(fd, "x", 1), 0);
        ck_assert_int_lt(ftruncate(fd, 1), 0);
        ck_assert_int_eq(mps__wire_spec_memfd_read(fd, 100, &buf, &len, err, sizeof(err)), 0);
        ck_assert_uint_eq(len, strlen(text));
        ck_assert_str_eq(buf, text);
        free(buf);
        ck_assert_int_eq(mps__wire_spec_memfd_read(fd, len - 1, &buf, &len, err, sizeof(err)),
                         -E2BIG);
        close(fd);
}
END_TEST

START_TEST(test_fd_bundle_round_trip) {
        /* 600 descriptors: three datagrams of up to SCM_MAX_FD. */
        enum { N = 600 };
        static int fds[N], got[N + 1];
        int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        size_t n;
        char err[256] = "";
        ck_assert_int_ge(devnull, 0);
        for (size_t i = 0; i < N; i++)
                fds[i] = devnull;
        int b = mps__wire_bundle_make(fds, N);
        ck_assert_int_ge(b, 0);
        int before = fcntl(0, F_DUPFD_CLOEXEC, 0);
        close(before);
        ck_assert_int_eq(mps__wire_bundle_recv(b, N, got, N, &n, err, sizeof(err)), 0);
        ck_assert_uint_eq(n, N);
        for (size_t i = 0; i < N; i++) {
                ck_assert_int_ge(got[i], 0);
                ck_assert_int_ne(fcntl(got[i], F_GETFD) & FD_CLOEXEC, 0);
        }
        mps__wire_release_fds(got, n);
        ck_assert_int_eq(got[0], -1);
        /* Drained: nothing more comes, and what came is all closed. */
        ck_assert_int_eq(mps__wire_bundle_recv(b, 1, got, 1, &n, err, sizeof(err)), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(err, "fewer"));
        int after = fcntl(0, F_DUPFD_CLOEXEC, 0);
        close(after);
        ck_assert_int_eq(after, before);
        close(b);
        close(devnull);
}
END_TEST

/* ---- suite ---------------------------------------------------------------------------------- */

static TCase *new_tcase(Suite *s, const char *name) {
        TCase *tc = tcase_create(name);
        tcase_set_timeout(tc, TIMEOUT_S);
        suite_add_tcase(s, tc);
        return tc;
}



/* The decoder's key index (wire.c) finds what cJSON would: the first of
 * duplicate keys, names that share a length and first bytes told apart,
 * and every key of an object too big to index. */
START_TEST(test_spawn_field_index_semantics) {
        char err[256];
        struct mps__spawn out;
        cJSON *j = cJSON_Parse("{\"v\":1,\"op\":\"spawn\",\"tag\":5,\"tag\":6,"
                               "\"path\":\"/a\",\"pat\":\"x\",\"patH\":\"/b\",\"path\":\"/c\","
                               "\"argv\":[\"a\"],\"argx\":7,\"daemon\":true,\"daemoN\":false}");
        ck_assert_int_eq(mps__spawn_decode(j, 0, &out, err, sizeof(err)), 0);
        ck_assert_uint_eq(out.tag, 5);
        ck_assert_str_eq(out.path, "/a");
        ck_assert(out.daemon);
        mps__spawn_done(&out);
        cJSON_Delete(j);
        /* Past the index's 48 keys: the same answers, from cJSON. */
        char text[4096];
        size_t n = (size_t)snprintf(text, sizeof(text), "{\"v\":1,\"op\":\"spawn\"");
        for (int i = 0; i < 60; i++)
                n += (size_t)snprintf(text + n, sizeof(text) - n, ",\"x%d\":%d", i, i);
        snprintf(text + n, sizeof(text) - n,
                 ",\"tag\":9,\"path\":\"/p\",\"argv\":[\"p\"],\"tag\":10,\"umask\":18}");
        j = cJSON_Parse(text);
        ck_assert_int_eq(mps__spawn_decode(j, 0, &out, err, sizeof(err)), 0);
        ck_assert_uint_eq(out.tag, 9);
        ck_assert_int_eq(out.umask, 18);
        mps__spawn_done(&out);
        cJSON_Delete(j);
}
END_TEST

/* ---- formatted replies and env_ref ------------------------------------------------- */

/* The formatter's text must be the tree encoder's, byte for byte, and
 * decode to the same values. */
static void same_as_tree(cJSON *tree, const char *text, int n) {
        ck_assert_ptr_nonnull(tree);
        char *printed = cJSON_PrintUnformatted(tree);
        ck_assert_int_ge(n, 0);
        ck_assert_str_eq(text, printed);
        ck_assert_uint_eq(strlen(text), (size_t)n);
        cJSON_free(printed);
        cJSON_Delete(tree);
}

static const uint64_t edge_u64[] = {0, 1, 9, 10, 99, 100, 4294967295u, 4294967296u,
                                    4503599627370496u, 9007199254740991u,
                                    9007199254740992u, UINT64_MAX};
static const double edge_seconds[] = {0, -1, 1e-7, 4e-7, 5e-7, 1e-6, 0.0000015, 0.1,
                                      0.9999994, 0.9999995, 1, 59.123456789, 1e6,
                                      999999999999.9999, 1e12, 2e12, 1e300};

START_TEST(test_spawned_format_matches_tree) {
        char buf[MPS_WIRE_REPLY_TEXT_MAX];
        for (size_t i = 0; i < sizeof(edge_u64) / sizeof(edge_u64[0]); i++)
                for (int pidfd = 0; pidfd < 2; pidfd++) {
                        struct mps__spawned m = {.tag = edge_u64[i],
                                                 .id = edge_u64[sizeof(edge_u64) / sizeof(edge_u64[0]) - 1 - i],
                                                 .pid = i % 2 ? INT32_MAX : 1,
                                                 .has_pidfd = pidfd};
                        same_as_tree(mps__spawned_encode(&m), buf,
                                     mps__spawned_format(&m, buf, sizeof(buf)));
                }
        struct mps__spawned m = {.tag = UINT64_MAX, .id = UINT64_MAX, .pid = INT32_MAX};
        ck_assert_int_eq(mps__spawned_format(&m, buf, 20), -EMSGSIZE);
}
END_TEST

START_TEST(test_exited_format_matches_tree) {
        char buf[MPS_WIRE_REPLY_TEXT_MAX];
        const int codes[] = {-128, -64, -9, -1, 0, 1, 42, 127, 255};
        size_t nu = sizeof(edge_u64) / sizeof(edge_u64[0]);
        size_t ns = sizeof(edge_seconds) / sizeof(edge_seconds[0]);
        for (size_t c = 0; c < sizeof(codes) / sizeof(codes[0]); c++)
                for (size_t i = 0; i < ns; i++) {
                        struct mps__exited m = {
                                .tag = edge_u64[i % nu], .id = edge_u64[(i + c) % nu],
                                .pid = (pid_t)(1 + i * 1000), .exitcode = codes[c],
                                .core_dumped = i % 2, .timed_out = c % 2,
                                .utime = edge_seconds[i], .stime = edge_seconds[ns - 1 - i],
                                .wall = edge_seconds[(i + c) % ns],
                                .maxrss_kib = i % 3 == 0 ? -5 : (long)(i * 123457)};
                        same_as_tree(mps__exited_encode(&m), buf,
                                     mps__exited_format(&m, buf, sizeof(buf)));
                        /* What the client's decoder reads back. */
                        cJSON *j = cJSON_Parse(buf);
                        struct mps__exited back;
                        char err[256];
                        if (m.tag <= 9007199254740991u && m.id <= 9007199254740991u) {
                                ck_assert_int_eq(mps__exited_decode(j, &back, err, sizeof(err)), 0);
                                ck_assert_uint_eq(back.tag, m.tag);
                                ck_assert_int_eq(back.exitcode, m.exitcode);
                        }
                        cJSON_Delete(j);
                }
        struct mps__exited with_result = {.tag = 1, .id = 1, .pid = 1, .result = "1"};
        ck_assert_int_eq(mps__exited_format(&with_result, buf, sizeof(buf)), -ENOTSUP);
        struct mps__exited big = {.tag = UINT64_MAX, .id = UINT64_MAX, .pid = 1,
                                  .exitcode = -9, .utime = 1e12};
        ck_assert_int_eq(mps__exited_format(&big, buf, 64), -EMSGSIZE);
}
END_TEST

START_TEST(test_env_ref_round_trip) {
        const char *argv[] = {"true", NULL};
        struct mps__spawn m = {.tag = 3, .path = "true", .argv = argv, .argc = 1,
                               .env_ref = 2, .umask = -1};
        ck_assert_uint_eq(mps__spawn_features(&m), MPS_FEATURE_ENV_REF);
        struct mps__msg msg;
        round_trip(mps__spawn_encode(&m), NULL, 0, &msg);
        cJSON *j = msg.json;
        ck_assert_ptr_null(cJSON_GetObjectItem(j, "env"));
        struct mps__spawn out;
        char err[256];
        int r = mps__spawn_decode(j, 0, &out, err, sizeof(err));
        ck_assert_msg(r == 0, "%s", err);
        ck_assert_uint_eq(out.env_ref, 2);
        ck_assert_uint_eq(out.envc, 0);
        mps__spawn_done(&out);
        /* Both at once, or an id past the slots: refused. */
        cJSON_AddItemToObject(j, "env", cJSON_CreateArray());
        ck_assert_int_eq(mps__spawn_decode(j, 0, &out, err, sizeof(err)), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "exclude"));
        cJSON_DeleteItemFromObject(j, "env");
        cJSON_ReplaceItemInObject(j, "env_ref", cJSON_CreateNumber(MPS_WIRE_ENV_SLOTS + 1));
        ck_assert_int_eq(mps__spawn_decode(j, 0, &out, err, sizeof(err)), -EINVAL);
        mps__msg_release(&msg);

        const char *envp[] = {"A=1", "B=", NULL};
        struct mps__env e = {.tag = 4, .id = 1, .envp = envp, .envc = 2};
        round_trip(mps__env_encode(&e), NULL, 0, &msg);
        j = msg.json;
        ck_assert_int_eq(msg.op, MPS_OP_ENV);
        char *text = cJSON_PrintUnformatted(j);
        ck_assert_str_eq(text, "{\"v\":1,\"op\":\"env\",\"tag\":4,\"id\":1,\"env\":[\"A=1\",\"B=\"]}");
        cJSON_free(text);
        struct mps__env back;
        ck_assert_int_eq(mps__env_decode(j, &back, err, sizeof(err)), 0);
        ck_assert_uint_eq(back.id, 1);
        ck_assert_uint_eq(back.envc, 2);
        ck_assert_str_eq(back.envp[1], "B=");
        free(back.envp);
        cJSON_ReplaceItemInObject(j, "id", cJSON_CreateNumber(0));
        ck_assert_int_eq(mps__env_decode(j, &back, err, sizeof(err)), -EINVAL);
        mps__msg_release(&msg);
}
END_TEST

static Suite *wire_suite(void) {
        Suite *s = suite_create("wire");
        TCase *tc;

        tc = new_tcase(s, "round_trip");
        tcase_add_test(tc, test_hello_round_trip);
        tcase_add_test(tc, test_welcome_round_trip_with_pidfd_feature);
        tcase_add_test(tc, test_welcome_round_trip_without_pidfd_feature);
        tcase_add_test(tc, test_spawn_round_trip_all_fields);
        tcase_add_test(tc, test_spawn_round_trip_defaults);
        tcase_add_test(tc, test_spawned_round_trip);
        tcase_add_test(tc, test_exited_round_trip_normal_exit);
        tcase_add_test(tc, test_exited_round_trip_killed_by_signal);
        tcase_add_test(tc, test_signal_round_trip);
        tcase_add_test(tc, test_signaled_round_trip);
        tcase_add_test(tc, test_error_round_trip_by_errno_name);
        tcase_add_test(tc, test_error_defaults);
        tcase_add_test(tc, test_error_name_wins_over_code);
        tcase_add_test(tc, test_error_unknown_name_falls_back_to_code);

        tc = new_tcase(s, "fds");
        tcase_add_test(tc, test_fd_arrives_as_new_cloexec_fd_of_same_pipe);
        tcase_add_test(tc, test_send_fds_max_is_accepted);
        tcase_add_test(tc, test_send_more_than_fds_max_is_emsgsize);
        tcase_add_test(tc, test_send_oversized_encoding_is_emsgsize);
        tcase_add_test(tc, test_recv_end_of_stream_returns_zero);
        tcase_add_test(tc, test_recv_nothing_waiting_returns_eagain);

        tc = new_tcase(s, "malformed");
        tcase_add_test(tc, test_recv_rejects_malformed_with_ebadmsg);
        tcase_add_test(tc, test_recv_not_json_reason);
        tcase_add_test(tc, test_recv_json_array_is_not_an_object);
        tcase_add_test(tc, test_recv_missing_version);
        tcase_add_test(tc, test_recv_wrong_version_is_eproto);
        tcase_add_test(tc, test_recv_missing_op);
        tcase_add_test(tc, test_recv_unknown_op);
        tcase_add_test(tc, test_recv_message_of_exactly_msg_max_is_accepted);
        tcase_add_test(tc, test_recv_message_longer_than_msg_max);
        tcase_add_test(tc, test_recv_more_than_fds_max_attached);
        tcase_add_test(tc, test_recv_closes_fds_of_malformed_message);
        tcase_add_test(tc, test_recv_reports_tag_of_bad_message);
        tcase_add_test(tc, test_recv_tag_is_zero_when_not_a_valid_integer);
        tcase_add_test(tc, test_recv_leaves_tag_alone_when_not_an_object);
        tcase_add_test(tc, test_wire_tag);
        tcase_add_test(tc, test_recv_does_not_read_past_datagram);

        tc = new_tcase(s, "spawn_decode");
        tcase_add_test(tc, test_spawn_valid_base);
        tcase_add_test(tc, test_spawn_missing_path);
        tcase_add_test(tc, test_spawn_empty_path);
        tcase_add_test(tc, test_spawn_path_not_string);
        tcase_add_test(tc, test_spawn_call_args_beyond_double);
        tcase_add_test(tc, test_spawn_argv_empty);
        tcase_add_test(tc, test_spawn_argv_missing);
        tcase_add_test(tc, test_spawn_argv_not_array);
        tcase_add_test(tc, test_spawn_argv_entry_not_string);
        tcase_add_test(tc, test_spawn_argv_count_bound);
        tcase_add_test(tc, test_spawn_env_count_bound);
        tcase_add_test(tc, test_spawn_string_length_bound);
        tcase_add_test(tc, test_spawn_arg_string_length_bound);
        tcase_add_test(tc, test_spawn_name_length_bound);
        tcase_add_test(tc, test_spawn_fd_index_beyond_nfds);
        tcase_add_test(tc, test_spawn_fd_target_bound);
        tcase_add_test(tc, test_spawn_fd_map_shape);
        tcase_add_test(tc, test_spawn_fd_map_count_bound);
        tcase_add_test(tc, test_spawn_duplicate_fd_target);
        tcase_add_test(tc, test_spawn_field_index_semantics);
        tcase_add_test(tc, test_spawn_negative_tag);
        tcase_add_test(tc, test_spawn_non_integer_tag);
        tcase_add_test(tc, test_spawn_missing_tag);
        tcase_add_test(tc, test_spawn_flags_must_be_bool);
        tcase_add_test(tc, test_spawn_absent_env_is_empty);

        tc = new_tcase(s, "carrier");
        tcase_add_test(tc, test_carrier_round_trip);
        tcase_add_test(tc, test_carrier_absent_is_every_fd_the_jobs);
        tcase_add_test(tc, test_carrier_bounds);
        tcase_add_test(tc, test_spec_memfd_round_trip);
        tcase_add_test(tc, test_fd_bundle_round_trip);

        tc = new_tcase(s, "replies");
        tcase_add_test(tc, test_spawned_format_matches_tree);
        tcase_add_test(tc, test_exited_format_matches_tree);
        tcase_add_test(tc, test_env_ref_round_trip);

        tc = new_tcase(s, "names");
        tcase_add_test(tc, test_errno_name_round_trip);
        tcase_add_test(tc, test_errno_name_unknown);
        tcase_add_test(tc, test_op_names);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(wire_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
