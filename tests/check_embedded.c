/* SPDX-License-Identifier: MIT */
/*
 * check_embedded.c: the embedded default shared by a process (launcher/
 * embedded.c, forkserver/adopt.c): many clients and many threads of one
 * process get one private server, which goes with the last client; a
 * forked child gets a server of its own; the adopt request on the wire,
 * refused by a listening server and by bad descriptors; a server that
 * cannot share (an older binary) gives each client its own, as before.
 *
 * The servers of a test are told apart from every other mpforkserver on
 * the machine (other suites run at once) by a variable of the test's own in
 * their environment, and counted as the session leaders among them (an
 * embedded server is one; its jobs and its first process, reaped at
 * start, are not).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../include/mpspawn.h"
#include "../launcher/fdutil.h"
#include "../launcher/wire.h"
#include "testutil.h"

#define NCLIENTS 16
#define TAG_VAR "MPS_CHECK_EMBEDDED_TAG"

static char tag[64];

/* No system, user or $MPSPAWN_SOCKET server: the default is the embedded
 * one. Every server started from here carries this test's tag. */
static void embedded_setup(void) {
        static char dir[64];
        unsetenv("MPSPAWN_SOCKET");
        unsetenv("XDG_RUNTIME_DIR");
        tu_tmpdir(dir, sizeof(dir));
        setenv("MPSPAWN_TMPDIR", dir, 1);
        snprintf(tag, sizeof(tag), "%d-%llu", (int)getpid(),
                 (unsigned long long)mps__now_ns());
        setenv(TAG_VAR, tag, 1);
}

static void embedded_teardown(void) {
        rmdir(getenv("MPSPAWN_TMPDIR"));
}

/* Whether /proc/PID/environ holds TAG_VAR=tag. */
static bool tagged(const char *pid) {
        char path[64], buf[65536], want[128];
        snprintf(path, sizeof(path), "/proc/%s/environ", pid);
        snprintf(want, sizeof(want), TAG_VAR "=%s", tag);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        ssize_t n = mps__read_retry(fd, buf, sizeof(buf) - 1);
        close(fd);
        for (ssize_t i = 0; n > 0 && i < n;) {
                if (strcmp(buf + i, want) == 0)
                        return true;
                i += (ssize_t)strnlen(buf + i, (size_t)(n - i)) + 1;
        }
        return false;
}

/* Whether pid leads its own session (field 6 of /proc/PID/stat). */
static bool session_leader(const char *pid) {
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%s/stat", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        ssize_t n = mps__read_retry(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return false;
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        char state;
        int ppid, pgrp, sid;
        if (!p || sscanf(p + 1, " %c %d %d %d", &state, &ppid, &pgrp, &sid) != 4)
                return false;
        return state != 'Z' && sid == atoi(pid);
}

/* This test's embedded servers now running. */
static int count_servers(void) {
        DIR *d = opendir("/proc");
        int n = 0;
        struct dirent *e;
        ck_assert_ptr_nonnull(d);
        while ((e = readdir(d)))
                if (e->d_name[0] >= '1' && e->d_name[0] <= '9' && tagged(e->d_name) &&
                    session_leader(e->d_name))
                        n++;
        closedir(d);
        return n;
}

static mps_client *open_default(void) {
        mps_client *c = NULL;
        char *msg = NULL;
        int r = mps_client_open(NULL, &c, &msg);
        ck_assert_msg(r == 0, "embedded open failed: %s", msg ? msg : "?");
        free(msg);
        return c;
}

/* Runs /bin/sh -c 'exit CODE' and returns its exit code, or -errno of the
 * start. No ck_assert: threads and forked children call it. */
static int run_exit(mps_client *c, int code) {
        char script[32];
        snprintf(script, sizeof(script), "exit %d", code);
        const char *argv[] = {"/bin/sh", "-c", script, NULL};
        mps_spec *spec = NULL;
        mps_process *p = NULL;
        int r = mps_spec_new(&spec);
        if (r == 0)
                r = mps_spec_set_exec(spec, argv[0], argv);
        if (r == 0)
                r = mps_process_new(c, spec, &p);
        mps_spec_free(spec);
        if (r == 0)
                r = mps_start(p);
        if (r == 0)
                r = mps_join(p, 30000);
        if (r == 0)
                r = mps_exitcode(p);
        if (p && mps_process_close(p) < 0 && r >= 0)
                r = -EBUSY;
        return r;
}

/* Whether the process behind pidfd ended within timeout_ms. */
static bool ended(int pidfd, int timeout_ms) {
        return mps__poll_one(pidfd, POLLIN, timeout_ms) == 1;
}

/* ---- many clients, one server ------------------------------------------------- */

START_TEST(test_sixteen_clients_share_one_server) {
        int fds_before = tu_count_fds();
        ck_assert_int_eq(count_servers(), 0);
        mps_client *c[NCLIENTS];
        for (int i = 0; i < NCLIENTS; i++)
                c[i] = open_default();
        pid_t server = mps_client_server_pid(c[0]);
        ck_assert_int_gt(server, 0);
        for (int i = 1; i < NCLIENTS; i++)
                ck_assert_int_eq(mps_client_server_pid(c[i]), server);
        ck_assert_int_eq(count_servers(), 1);
        for (int i = 0; i < NCLIENTS; i++)
                ck_assert_int_eq(run_exit(c[i], 40 + i), 40 + i);
        int pidfd = pidfd_open(server, 0);
        ck_assert_int_ge(pidfd, 0);

        /* The first client (whose open started the server) goes first:
         * the others' connections are their own. */
        for (int i = 0; i < NCLIENTS - 1; i++)
                mps_client_close(c[i]);
        ck_assert_msg(!ended(pidfd, 0), "the server went with 15 of its 16 clients");
        ck_assert_int_eq(run_exit(c[NCLIENTS - 1], 3), 3);
        mps_client_close(c[NCLIENTS - 1]);
        ck_assert_msg(ended(pidfd, 20000), "the server outlived its last client");
        close(pidfd);
        ck_assert_int_eq(count_servers(), 0);
        ck_assert_int_eq(tu_count_fds(), fds_before);

        /* The next open starts a new one. */
        mps_client *again = open_default();
        pid_t next = mps_client_server_pid(again);
        ck_assert_int_gt(next, 0);
        ck_assert_int_ne(next, server);
        ck_assert_int_eq(run_exit(again, 5), 5);
        pidfd = pidfd_open(next, 0);
        ck_assert_int_ge(pidfd, 0);
        mps_client_close(again);
        ck_assert(ended(pidfd, 20000));
        close(pidfd);
        ck_assert_int_eq(tu_count_fds(), fds_before);
}
END_TEST

/* What the header says of clients sharing the server: one client's job
 * is seen and reached by id from another (same user, same server), its
 * exit goes to its own client, and a client's daemon jobs end with it
 * while the other clients' run on. */
START_TEST(test_clients_of_a_process_see_each_others_jobs_by_id) {
        mps_client *a = open_default(), *b = open_default();
        mps_spec *spec;
        mps_process *pa, *pd;
        const char *argv[] = {"/bin/sleep", "60", NULL};
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_set_exec(spec, argv[0], argv), 0);
        ck_assert_int_eq(mps_process_new(a, spec, &pa), 0);
        ck_assert_int_eq(mps_start(pa), 0);
        ck_assert_int_eq(mps_spec_set_daemon(spec, true), 0);
        ck_assert_int_eq(mps_process_new(b, spec, &pd), 0);
        ck_assert_int_eq(mps_start(pd), 0);
        mps_spec_free(spec);
        uint64_t id = mps_job_id(pa);
        mps_job_info *jobs = NULL;
        size_t n = 0;
        ck_assert_int_eq(mps_client_list_jobs(b, &jobs, &n), 0);
        bool seen = false;
        for (size_t i = 0; i < n; i++)
                seen |= jobs[i].id == id;
        free(jobs);
        ck_assert_msg(seen, "client b does not list client a's job");
        ck_assert_int_eq(mps_client_signal_job(b, id, SIGTERM), 0);
        ck_assert_int_eq(mps_join(pa, 20000), 0);
        ck_assert_int_eq(mps_exitcode(pa), -SIGTERM);
        /* b's daemon job ends with b; a and its server go on. */
        pid_t daemon_pid = mps_pid(pd);
        mps_client_close(b);
        ck_assert_msg(tu_wait_reaped(daemon_pid, 0, 20000), "b's daemon job outlived b");
        ck_assert_int_eq(run_exit(a, 17), 17);
        mps_process_close(pa);
        mps_process_close(pd);
        mps_client_close(a);
}
END_TEST

/* ---- opens from many threads at once ------------------------------------------- */

struct opener {
        pthread_barrier_t *opened, *counted;
        pid_t server;
        int open_r, job_r;
        char msg[256];
};

static void *open_in_thread(void *arg) {
        struct opener *o = arg;
        mps_client *c = NULL;
        char *msg = NULL;
        o->open_r = mps_client_open(NULL, &c, &msg);
        snprintf(o->msg, sizeof(o->msg), "%s", msg ? msg : "");
        free(msg);
        if (o->open_r == 0) {
                o->server = mps_client_server_pid(c);
                o->job_r = run_exit(c, 9);
        }
        /* Nobody closes before every thread has opened and been counted:
         * else the server could rightly end and another start. */
        pthread_barrier_wait(o->opened);
        pthread_barrier_wait(o->counted);
        mps_client_close(c);
        return NULL;
}

START_TEST(test_opens_from_sixteen_threads_get_one_server) {
        pthread_barrier_t opened, counted;
        pthread_t t[NCLIENTS];
        struct opener o[NCLIENTS];
        ck_assert_int_eq(pthread_barrier_init(&opened, NULL, NCLIENTS + 1), 0);
        ck_assert_int_eq(pthread_barrier_init(&counted, NULL, NCLIENTS + 1), 0);
        for (int i = 0; i < NCLIENTS; i++) {
                o[i] = (struct opener){.opened = &opened, .counted = &counted};
                ck_assert_int_eq(pthread_create(&t[i], NULL, open_in_thread, &o[i]), 0);
        }
        pthread_barrier_wait(&opened);
        int servers = count_servers();
        pthread_barrier_wait(&counted);
        for (int i = 0; i < NCLIENTS; i++)
                ck_assert_int_eq(pthread_join(t[i], NULL), 0);
        for (int i = 0; i < NCLIENTS; i++) {
                ck_assert_msg(o[i].open_r == 0, "thread %d: %s", i, o[i].msg);
                ck_assert_int_eq(o[i].job_r, 9);
                ck_assert_int_eq(o[i].server, o[0].server);
        }
        ck_assert_int_eq(servers, 1);
        int pidfd = pidfd_open(o[0].server, 0);
        ck_assert_msg(pidfd < 0 || ended(pidfd, 20000), "the server outlived its clients");
        if (pidfd >= 0)
                close(pidfd);
        pthread_barrier_destroy(&opened);
        pthread_barrier_destroy(&counted);
}
END_TEST

/* ---- a host that forks ---------------------------------------------------------- */

/*
 * The child of a host with a shared server opens a client: a server of its
 * own. The child also closes its copy of the parent's client connection
 * (what client.c's own fork handling does): then the parent's server ends
 * when the parent closes, though the child still runs, which it would not
 * if the child kept the parent's control connection.
 */
START_TEST(test_forked_child_gets_its_own_server) {
        mps_client *c = open_default();
        pid_t server = mps_client_server_pid(c);
        ck_assert_int_eq(run_exit(c, 1), 1);
        int report[2], go[2];
        ck_assert_int_eq(pipe2(report, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
        pid_t child = fork();
        ck_assert_int_ge(child, 0);
        if (child == 0) {
                close(mps_client_fd(c));
                mps_client *mine = NULL;
                pid_t theirs = -1;
                int code = 0;
                if (mps_client_open(NULL, &mine, NULL) < 0)
                        code = 1;
                else if ((theirs = mps_client_server_pid(mine)) == server)
                        code = 2;
                else if (run_exit(mine, 6) != 6)
                        code = 3;
                if (write(report[1], &theirs, sizeof(theirs)) != sizeof(theirs))
                        code = 4;
                char byte;
                if (read(go[0], &byte, 1) != 1) /* until the parent has checked */
                        code = 5;
                mps_client_close(mine);
                _exit(code);
        }
        close(report[1]);
        close(go[0]);
        pid_t childs_server = -1;
        char buf[sizeof(childs_server) + 1]; /* tu_read_all ends it with a NUL */
        ck_assert_int_eq(tu_read_all(report[0], buf, sizeof(buf), 30000), sizeof(childs_server));
        memcpy(&childs_server, buf, sizeof(childs_server));
        close(report[0]);
        ck_assert_int_gt(childs_server, 0);
        ck_assert_int_ne(childs_server, server);
        /* The parent's server serves the parent while the child runs. */
        ck_assert_int_eq(mps_client_server_pid(c), server);
        ck_assert_int_eq(run_exit(c, 2), 2);
        int pidfd = pidfd_open(server, 0), child_pidfd = pidfd_open(childs_server, 0);
        ck_assert_int_ge(pidfd, 0);
        ck_assert_int_ge(child_pidfd, 0);
        mps_client_close(c);
        ck_assert_msg(ended(pidfd, 20000),
                      "the parent's server outlived the parent's clients (the child holds it)");
        ck_assert_msg(!ended(child_pidfd, 0), "the child's server went with the parent's");
        ck_assert_int_eq(write(go[1], "x", 1), 1);
        close(go[1]);
        int st;
        ck_assert_int_eq(mps__wait_retry(child, &st, 0, NULL), child);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
        ck_assert_msg(ended(child_pidfd, 20000), "the child's server outlived the child");
        close(pidfd);
        close(child_pidfd);
}
END_TEST

/* The parent's server, after a child forked, opened and exited, still
 * serves the parent and more of its clients share it. */
START_TEST(test_parent_unaffected_by_a_child_that_opened) {
        mps_client *c = open_default();
        pid_t server = mps_client_server_pid(c);
        pid_t child = fork();
        ck_assert_int_ge(child, 0);
        if (child == 0) {
                mps_client *mine = NULL;
                int code = mps_client_open(NULL, &mine, NULL) < 0        ? 1
                           : mps_client_server_pid(mine) == server ? 2
                           : run_exit(mine, 4) != 4                 ? 3
                                                                    : 0;
                mps_client_close(mine);
                _exit(code);
        }
        int st;
        ck_assert_int_eq(mps__wait_retry(child, &st, 0, NULL), child);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
        ck_assert_int_eq(run_exit(c, 8), 8);
        mps_client *more = open_default();
        ck_assert_int_eq(mps_client_server_pid(more), server);
        ck_assert_int_eq(run_exit(more, 9), 9);
        mps_client_close(more);
        mps_client_close(c);
}
END_TEST

/* ---- a server that died --------------------------------------------------------- */

/* The shared server killed: the next open starts a fresh one, and the
 * close of a client of the dead one does not count against the new one. */
START_TEST(test_dead_server_is_replaced) {
        mps_client *old = open_default();
        pid_t dead = mps_client_server_pid(old);
        int pidfd = pidfd_open(dead, 0);
        ck_assert_int_ge(pidfd, 0);
        ck_assert_int_eq(pidfd_send_signal(pidfd, SIGKILL, NULL, 0), 0);
        ck_assert(ended(pidfd, 20000));
        close(pidfd);
        mps_client *fresh = open_default();
        pid_t server = mps_client_server_pid(fresh);
        ck_assert_int_ne(server, dead);
        ck_assert_int_lt(run_exit(old, 1), 0); /* its server is gone */
        mps_client_close(old);
        pidfd = pidfd_open(server, 0);
        ck_assert_int_ge(pidfd, 0);
        ck_assert_msg(!ended(pidfd, 0), "closing a client of the dead server ended the new one");
        ck_assert_int_eq(run_exit(fresh, 11), 11);
        mps_client *second = open_default();
        ck_assert_int_eq(mps_client_server_pid(second), server);
        mps_client_close(fresh);
        ck_assert(!ended(pidfd, 0));
        mps_client_close(second);
        ck_assert(ended(pidfd, 20000));
        close(pidfd);
}
END_TEST

/* ---- adopt on the wire ---------------------------------------------------------- */

/* The next message on fd, within 10 s; fails the test otherwise. */
static void recv_one(int fd, struct mps__msg *m) {
        char err[256];
        ck_assert_int_eq(mps__poll_one(fd, POLLIN, 10000), 1);
        int r = mps__wire_recv(fd, m, err, sizeof(err), NULL);
        ck_assert_msg(r == 1, "recv: %s (%s)", strerror(-r), err);
}

/* Sends adopt (tag) with fds and returns the answer's op; an error's errno
 * and message go to *ret_err and msg. */
static enum mps__op send_adopt(int sock, uint64_t t, const int *fds, size_t nfds,
                               int *ret_err, char *msg, size_t msglen) {
        cJSON *j = mps__adopt_encode(t);
        ck_assert_ptr_nonnull(j);
        ck_assert_int_eq(mps__wire_send(sock, j, fds, nfds), 0);
        cJSON_Delete(j);
        struct mps__msg m;
        recv_one(sock, &m);
        ck_assert_int_eq(m.tag, t);
        enum mps__op op = m.op;
        *ret_err = 0;
        if (op == MPS_OP_ERROR) {
                struct mps__error e;
                char err[256];
                ck_assert_int_eq(mps__error_decode(m.json, &e, err, sizeof(err)), 0);
                *ret_err = e.err;
                snprintf(msg, msglen, "%s", e.message);
        }
        mps__msg_release(&m);
        return op;
}

/* A hello on sock: the features of the welcome. */
static unsigned hello(int sock) {
        struct mps__hello h = {.protocol = MPS_PROTOCOL_VERSION, .client = "check_embedded"};
        cJSON *j = mps__hello_encode(&h);
        ck_assert_int_eq(mps__wire_send(sock, j, NULL, 0), 0);
        cJSON_Delete(j);
        struct mps__msg m;
        recv_one(sock, &m);
        ck_assert_int_eq(m.op, MPS_OP_WELCOME);
        struct mps__welcome w;
        char err[256];
        ck_assert_int_eq(mps__welcome_decode(m.json, &w, err, sizeof(err)), 0);
        unsigned f = w.features;
        mps__msg_release(&m);
        return f;
}

START_TEST(test_listening_server_refuses_adopt) {
        struct tu_server s;
        tu_server_start(&s, NULL);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s.path);
        int sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(connect(sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_msg(!(hello(sock) & MPS_FEATURE_ADOPT), "a listening server offers adopt");
        int sv[2], err;
        char msg[512] = "";
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        ck_assert_int_eq(send_adopt(sock, 7, &sv[1], 1, &err, msg, sizeof(msg)), MPS_OP_ERROR);
        ck_assert_int_eq(err, EOPNOTSUPP);
        ck_assert_msg(strstr(msg, "only an embedded server"), "message: %s", msg);
        /* Not adopted: the server let go of its copy at once. */
        close(sv[1]);
        ck_assert_int_eq(mps__poll_one(sv[0], POLLIN, 10000), 1);
        char byte;
        ck_assert_int_eq(recv(sv[0], &byte, 1, MSG_DONTWAIT), 0);
        close(sv[0]);
        /* And it serves on. */
        mps_client *c = NULL;
        ck_assert_int_eq(mps_client_open(s.path, &c, NULL), 0);
        ck_assert_int_eq(run_exit(c, 21), 21);
        mps_client_close(c);
        close(sock);
        int st = tu_server_stop(&s);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "server status %#x", st);
}
END_TEST

/* One bad adopt: its errno, and a message naming the problem. */
static void expect_refused(int sock, const int *fds, size_t nfds, int want_err,
                           const char *want_text) {
        static uint64_t t = 100;
        int err;
        char msg[512] = "";
        ck_assert_int_eq(send_adopt(sock, ++t, fds, nfds, &err, msg, sizeof(msg)),
                         MPS_OP_ERROR);
        ck_assert_msg(err == want_err, "errno %d (%s), not %d", err, msg, want_err);
        ck_assert_msg(strstr(msg, want_text), "message: %s", msg);
}

START_TEST(test_bad_adopts_get_errors_and_the_server_serves_on) {
        mps_client *c = open_default();
        pid_t server = mps_client_server_pid(c);
        int sock = mps_client_fd(c); /* idle: its replies are ours to read */
        int p[2], st[2], plain, sv[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, st), 0);
        plain = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(plain, 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);

        expect_refused(sock, &p[0], 1, ENOTSOCK, "not a socket");
        expect_refused(sock, &st[1], 1, EPROTOTYPE, "not an AF_UNIX SOCK_SEQPACKET socket");
        expect_refused(sock, &plain, 1, ENOTCONN, "not connected");
        expect_refused(sock, NULL, 0, EINVAL, "exactly one descriptor");
        expect_refused(sock, sv, 2, EINVAL, "exactly one descriptor, not 2");
        /* Not even JSON: an error too. */
        ck_assert_int_eq(mps__wire_send_raw(sock, "{\"v\":1,\"op\":\"adopt\"}", 20, &sv[1], 1),
                         0);
        struct mps__msg m;
        recv_one(sock, &m);
        ck_assert_int_eq(m.op, MPS_OP_ERROR);
        mps__msg_release(&m);

        /* A good one, by hand: the new connection is served. */
        int err;
        char msg[256];
        ck_assert_int_eq(send_adopt(sock, 9, &sv[1], 1, &err, msg, sizeof(msg)), MPS_OP_ADOPTED);
        close(sv[1]);
        ck_assert_msg(hello(sv[0]) & MPS_FEATURE_ADOPT, "the embedded server offers no adopt");

        /* The client and the server go on. */
        ck_assert_int_eq(run_exit(c, 13), 13);
        mps_client *more = open_default();
        ck_assert_int_eq(mps_client_server_pid(more), server);
        ck_assert_int_eq(run_exit(more, 14), 14);
        mps_client_close(more);
        mps_client_close(c);
        /* The hand-made connection keeps the server until it closes. */
        int pidfd = pidfd_open(server, 0);
        ck_assert_int_ge(pidfd, 0);
        ck_assert(!ended(pidfd, 0));
        close(sv[0]);
        ck_assert(ended(pidfd, 20000));
        close(pidfd);
        close(p[0]);
        close(p[1]);
        close(st[0]);
        close(st[1]);
        close(plain);
}
END_TEST

/* ---- servers that cannot share -------------------------------------------------- */

/* Two clients, two servers, both working, both gone with their client. */
static void expect_one_server_per_client(void) {
        mps_client *a = open_default(), *b = open_default();
        pid_t sa = mps_client_server_pid(a), sb = mps_client_server_pid(b);
        ck_assert_int_gt(sa, 0);
        ck_assert_int_gt(sb, 0);
        ck_assert_int_ne(sa, sb);
        ck_assert_int_eq(count_servers(), 2);
        ck_assert_int_eq(run_exit(a, 31), 31);
        ck_assert_int_eq(run_exit(b, 32), 32);
        int pa = pidfd_open(sa, 0), pb = pidfd_open(sb, 0);
        ck_assert_int_ge(pa, 0);
        ck_assert_int_ge(pb, 0);
        mps_client_close(a);
        ck_assert(ended(pa, 20000));
        ck_assert(!ended(pb, 0));
        ck_assert_int_eq(run_exit(b, 33), 33);
        mps_client_close(b);
        ck_assert(ended(pb, 20000));
        close(pa);
        close(pb);
}

START_TEST(test_server_without_adopt_gives_a_server_per_client) {
        setenv("MPSPAWN_SERVER_NO_ADOPT", "1", 1);
        expect_one_server_per_client();
}
END_TEST

static Suite *embedded_suite(void) {
        Suite *s = suite_create("embedded");
        TCase *t = tcase_create("shared");
        tcase_add_checked_fixture(t, embedded_setup, embedded_teardown);
        tcase_set_timeout(t, 120);
        tcase_add_test(t, test_sixteen_clients_share_one_server);
        tcase_add_test(t, test_clients_of_a_process_see_each_others_jobs_by_id);
        tcase_add_test(t, test_opens_from_sixteen_threads_get_one_server);
        tcase_add_test(t, test_forked_child_gets_its_own_server);
        tcase_add_test(t, test_parent_unaffected_by_a_child_that_opened);
        tcase_add_test(t, test_dead_server_is_replaced);
        tcase_add_test(t, test_listening_server_refuses_adopt);
        tcase_add_test(t, test_bad_adopts_get_errors_and_the_server_serves_on);
        tcase_add_test(t, test_server_without_adopt_gives_a_server_per_client);
        suite_add_tcase(s, t);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(embedded_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
