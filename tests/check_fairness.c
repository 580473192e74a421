/* SPDX-License-Identifier: MIT */
/*
 * check_fairness.c: nothing a client controls blocks the server's loop, and
 * no user takes more than its share (issue 13, items 6 to 9). A root server
 * with real unprivileged users of this suite's own (mps-fair-a, -b):
 *
 *   - a credential-changing job stopped between setresuid and execve (its
 *     user SIGSTOPs it) does not hold the server;
 *   - a TCP socket with a lingering close and a full send queue, attached
 *     to a refused request, a valid one, or sent by a refused peer, does
 *     not hold the server;
 *   - replies queued for connections that never read are bounded in bytes
 *     for the user, and the memory goes back after they close;
 *   - one user's exits do not evict another's kept exit record, and one
 *     user cannot take all of max_children.
 *
 * "Does not hold the server" is always the same check: a second client's
 * hello is answered within a bound (server_answers).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../include/mpspawn.h"
#include "../launcher/wire.h"
#include "testutil.h"

#define USER_A "mps-fair-a"
#define USER_B "mps-fair-b"
#define ANSWER_MS 3000 /* a server that is not blocked answers well within */

static bool created_a, created_b;
static uid_t uid_a, uid_b;
static gid_t gid_a, gid_b;

static void users_setup(void) {
        struct passwd *pw = tu_user(USER_A, &created_a);
        uid_a = pw->pw_uid;
        gid_a = pw->pw_gid;
        pw = tu_user(USER_B, &created_b);
        uid_b = pw->pw_uid;
        gid_b = pw->pw_gid;
}

static void users_teardown(void) {
        tu_user_done(USER_A, created_a);
        tu_user_done(USER_B, created_b);
}

/* A root server others can reach: socket 0666 in a directory they may
 * search. */
static void start_shared(struct tu_server *s, const char *const *extra) {
        const char *argv[16] = {"--socket-mode", "0666"};
        size_t n = 2;
        for (size_t i = 0; extra && extra[i] && n < 15; i++)
                argv[n++] = extra[i];
        argv[n] = NULL;
        tu_server_start(s, argv);
        ck_assert_int_eq(chmod(s->dir, 0755), 0);
}

/* Becomes uid/gid for good (in a forked child); false on failure. */
static bool become(uid_t uid, gid_t gid) {
        return setgroups(0, NULL) == 0 && setresgid(gid, gid, gid) == 0 &&
               setresuid(uid, uid, uid) == 0;
}

/* Waits up to ms for child pid; its wait status, or -1 (then it is killed
 * and reaped). */
static int wait_child(pid_t pid, int ms) {
        int pfd = pidfd_open(pid, 0);
        ck_assert_int_ge(pfd, 0);
        struct pollfd p = {.fd = pfd, .events = POLLIN};
        int r = poll(&p, 1, ms);
        close(pfd);
        int status = -1;
        if (r <= 0) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                return -1;
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        return status;
}

/* A raw connection to the server (no hello sent). */
static int connect_raw(const char *path) {
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        return fd;
}

static void send_hello(int fd) {
        struct mps__hello h = {.protocol = MPS_PROTOCOL_VERSION, .client = "check_fairness"};
        cJSON *j = mps__hello_encode(&h);
        ck_assert_int_eq(mps__wire_send(fd, j, NULL, 0), 0);
        cJSON_Delete(j);
}

/* Whether the server answers a new connection's hello within ms. */
static bool server_answers(const char *path, int ms) {
        int fd = connect_raw(path);
        send_hello(fd);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, ms);
        close(fd);
        return r == 1;
}

/* Sends every process of uid the signal, from a child of that uid. */
static void signal_user(uid_t uid, gid_t gid, int sig) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                if (!become(uid, gid))
                        _exit(1);
                kill(-1, sig);
                _exit(0);
        }
        ck_assert_int_ge(wait_child(pid, 5000), 0);
}

/* ---- item 6: a stopped child before exec ------------------------------------- */

/* Its comm, "" when it is gone. */
static void proc_comm(pid_t pid, char *buf, size_t len) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
        buf[0] = '\0';
        FILE *f = fopen(path, "re");
        if (!f)
                return;
        if (!fgets(buf, (int)len, f))
                buf[0] = '\0';
        fclose(f);
        buf[strcspn(buf, "\n")] = '\0';
}

/* Its real uid from /proc/PID/status (not the owner of /proc/PID, which
 * is root for a process that changed credentials and has not exec'ed:
 * it is not dumpable), or -1. */
static uid_t proc_uid(pid_t pid) {
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        FILE *f = fopen(path, "re");
        unsigned ruid = (unsigned)-1;
        if (!f)
                return (uid_t)-1;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "Uid: %u", &ruid) == 1)
                        break;
        fclose(f);
        return (uid_t)ruid;
}

/* A child of server whose real uid is uid, stopped before it exec'ed (it
 * still has the server's comm): its pid, or 0. */
static pid_t stopped_before_exec(pid_t server, uid_t uid) {
        DIR *d = opendir("/proc");
        ck_assert_ptr_nonnull(d);
        struct dirent *e;
        pid_t found = 0;
        while (!found && (e = readdir(d))) {
                if (e->d_name[0] < '1' || e->d_name[0] > '9')
                        continue;
                pid_t pid = (pid_t)atoi(e->d_name), ppid = 0;
                if (tu_proc_state(pid, &ppid) != 'T' || ppid != server)
                        continue;
                char comm[32];
                proc_comm(pid, comm, sizeof(comm));
                if (proc_uid(pid) == uid && strcmp(comm, "mpforkserver") == 0)
                        found = pid;
        }
        closedir(d);
        return found;
}

/* As user A: sends spawn requests for `true` found through a long PATH (so
 * that the child makes many system calls between setresuid and execve),
 * then stops every process of its user, its jobs' children included, until
 * told to quit on fd quit. */
static _Noreturn void stopper(const char *path, int quit) {
        if (!become(uid_a, gid_a))
                _exit(1);
        int fd = connect_raw(path);
        send_hello(fd);
        static char pathvar[12000];
        size_t off = (size_t)snprintf(pathvar, sizeof(pathvar), "PATH=");
        for (int i = 0; off + 16 < sizeof(pathvar) - 16; i++)
                off += (size_t)snprintf(pathvar + off, sizeof(pathvar) - off, "/nx/%d:", i);
        snprintf(pathvar + off, sizeof(pathvar) - off, "/bin");
        const char *argv[] = {"true", NULL}, *envp[] = {pathvar, NULL};
        for (int i = 0; i < 16; i++) {
                struct mps__spawn sp = {.tag = (uint64_t)i + 1, .path = "true",
                                        .argv = argv, .argc = 1, .envp = envp, .envc = 1,
                                        .umask = -1};
                cJSON *j = mps__spawn_encode(&sp);
                int r;
                struct pollfd po = {.fd = fd, .events = POLLOUT};
                while (j && (r = mps__wire_send(fd, j, NULL, 0)) == -EAGAIN)
                        poll(&po, 1, 1000);
                if (!j || r < 0)
                        _exit(2);
                cJSON_Delete(j);
        }
        struct pollfd p = {.fd = quit, .events = POLLIN};
        while (poll(&p, 1, 0) == 0)
                kill(-1, SIGSTOP);
        _exit(0);
}

START_TEST(test_job_stopped_before_exec_does_not_hold_the_server) {
        struct tu_server s;
        start_shared(&s, NULL);
        pid_t caught = 0;
        for (int attempt = 0; attempt < 20 && !caught; attempt++) {
                int q[2];
                ck_assert_int_eq(pipe2(q, O_CLOEXEC), 0);
                pid_t st = fork();
                ck_assert_int_ge(st, 0);
                if (st == 0)
                        stopper(s.path, q[0]);
                for (int i = 0; i < 400 && !caught; i++) {
                        caught = stopped_before_exec(s.pid, uid_a);
                        if (!caught) {
                                struct timespec ts = {0, 5 * 1000 * 1000};
                                nanosleep(&ts, NULL); /* bounded polling of /proc */
                        }
                }
                if (caught) {
                        ck_assert_msg(server_answers(s.path, ANSWER_MS),
                                      "the server did not answer while job child %d of %s "
                                      "was stopped before exec",
                                      (int)caught, USER_A);
                }
                ck_assert_int_eq(write(q[1], "x", 1), 1);
                close(q[0]);
                close(q[1]);
                int status = 0;
                if (waitpid(st, &status, WNOHANG) == st)
                        ck_abort_msg("the stopper ended early: status %#x", status);
                signal_user(uid_a, gid_a, SIGKILL); /* the stopper and its jobs */
                waitpid(st, NULL, 0);
        }
        ck_assert_msg(caught, "no job child was caught before exec in 20 attempts");
        ck_assert(server_answers(s.path, ANSWER_MS));
        tu_server_stop(&s);
}
END_TEST

/* ---- item 7: a close that lingers ---------------------------------------------- */

/* A TCP connection on 127.0.0.1 whose client end (*ret_fd) lingers for
 * 2^31-1 s on close, with a full send queue its peer (*ret_peer) never
 * reads. Closing the peer ends the linger (the client end gets a reset). */
static void lingering_socket(int *ret_fd, int *ret_peer) {
        int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(l, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(sa);
        int small = 4096;
        setsockopt(l, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
        ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sa, &len), 0);
        ck_assert_int_eq(listen(l, 1), 0);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        int peer = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(peer, 0);
        close(l);
        struct linger lg = {.l_onoff = 1, .l_linger = INT_MAX};
        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
        ck_assert_int_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
        static char junk[65536];
        size_t sent = 0;
        while (send(fd, junk, sizeof(junk), MSG_NOSIGNAL) > 0)
                sent++;
        ck_assert_int_eq(errno, EAGAIN);
        ck_assert_uint_gt(sent, 0);
        *ret_fd = fd;
        *ret_peer = peer;
}

enum linger_case { LINGER_BAD_REQUEST, LINGER_EXEC_FAILS, LINGER_VALID };

/* Sends one message carrying the lingering socket over a connection of
 * our own, from a child (as uid) that closes its copy as soon as the
 * message holds one, once the caller has closed its own (byte on fd go),
 * and then says so (byte on fd closed). The caller holds the server
 * stopped in between, so that the server's copy is the last (unless a job
 * took one): were the server to let go first, the child's close would be
 * the one that lingers. The child exits 0 when the server answered the
 * message and then a hello on the same connection, which it handles only
 * after it let go of the message. It drops its inherited copy of peer at
 * once, so that the caller's close of peer ends any linger, the child's
 * own included. */
static pid_t send_lingering(const char *path, int lfd, int peer, int go, int closed,
                            enum linger_case what, uid_t uid, gid_t gid) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid != 0)
                return pid;
        close(peer);
        if (uid != 0 && !become(uid, gid))
                _exit(1);
        int fd = connect_raw(path);
        const char *argv[] = {what == LINGER_EXEC_FAILS ? "/nonexistent/x" : "/bin/true",
                              NULL};
        struct mps__fd_map map = {.target = 3, .source = 0};
        struct mps__spawn sp = {.tag = 9, .path = argv[0], .argv = argv, .argc = 1,
                                .fdmap = &map, .nfdmap = 1, .umask = -1};
        cJSON *j = mps__spawn_encode(&sp);
        if (what == LINGER_BAD_REQUEST)
                cJSON_DeleteItemFromObjectCaseSensitive(j, "argv"); /* refused */
        char b;
        if (read(go, &b, 1) != 1)
                _exit(2);
        int r = mps__wire_send(fd, j, &lfd, 1);
        close(lfd);
        cJSON_Delete(j);
        if (write(closed, "x", 1) != 1 || r < 0)
                _exit(3);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, ANSWER_MS) != 1)
                _exit(4);
        struct mps__msg m;
        char err[128];
        if (mps__wire_recv(fd, &m, err, sizeof(err), NULL) <= 0)
                _exit(0); /* closed on us: a refused peer; nothing more to ask */
        mps__msg_release(&m);
        struct mps__hello h = {.protocol = MPS_PROTOCOL_VERSION, .client = "check_fairness"};
        j = mps__hello_encode(&h);
        r = mps__wire_send(fd, j, NULL, 0);
        if (r == -EPIPE || r == -ECONNRESET)
                _exit(0); /* a refused peer: closed once its message was read */
        _exit(r == 0 && poll(&p, 1, ANSWER_MS) == 1 ? 0 : 5);
}

static void check_lingering(const struct tu_server *s, enum linger_case what, uid_t uid,
                            gid_t gid) {
        const char *path = s->path;
        int lfd, peer, go[2], closed[2];
        lingering_socket(&lfd, &peer);
        ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(closed, O_CLOEXEC), 0);
        pid_t sender = send_lingering(path, lfd, peer, go[0], closed[1], what, uid, gid);
        close(lfd);
        close(closed[1]);
        /* The message waits in the server's socket while it is stopped. */
        ck_assert_int_eq(kill(s->pid, SIGSTOP), 0);
        bool went = write(go[1], "x", 1) == 1;
        close(go[0]);
        close(go[1]);
        struct pollfd pc = {.fd = closed[0], .events = POLLIN};
        bool let_go = went && poll(&pc, 1, 20000) == 1;
        close(closed[0]);
        ck_assert_int_eq(kill(s->pid, SIGCONT), 0); /* before any check fails */
        /* The sender ends once answered twice, or in 2 * ANSWER_MS. */
        for (int i = 0; i < 1000 && tu_proc_state(sender, NULL) != 'Z'; i++) {
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL); /* bounded polling */
        }
        bool ok = server_answers(path, ANSWER_MS);
        close(peer); /* the linger ends: everyone lets go */
        int status = wait_child(sender, 20000);
        ck_assert_msg(let_go, "the sender of case %d did not close its copy", (int)what);
        ck_assert_msg(status != -1, "the sender of case %d did not end", (int)what);
        ck_assert_msg(ok, "the server did not answer after case %d: blocked in close?",
                      (int)what);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "the sender of case %d: status %#x (5: no answer to its hello)",
                      (int)what, status);
}

START_TEST(test_lingering_socket_on_a_refused_request) {
        struct tu_server s;
        start_shared(&s, NULL);
        check_lingering(&s, LINGER_BAD_REQUEST, 0, 0);
        ck_assert(server_answers(s.path, ANSWER_MS));
        tu_server_stop(&s);
}
END_TEST

START_TEST(test_lingering_socket_on_a_job_that_fails_to_exec) {
        struct tu_server s;
        start_shared(&s, NULL);
        check_lingering(&s, LINGER_EXEC_FAILS, uid_a, gid_a);
        check_lingering(&s, LINGER_EXEC_FAILS, 0, 0);
        tu_server_stop(&s);
}
END_TEST

START_TEST(test_lingering_socket_on_a_valid_request) {
        struct tu_server s;
        start_shared(&s, NULL);
        check_lingering(&s, LINGER_VALID, uid_a, gid_a);
        check_lingering(&s, LINGER_VALID, 0, 0);
        tu_server_stop(&s);
}
END_TEST

START_TEST(test_lingering_socket_from_a_refused_peer) {
        struct tu_server s;
        char dir[64], conf[128];
        tu_tmpdir(dir, sizeof(dir));
        snprintf(conf, sizeof(conf), "%s/fair.conf", dir);
        FILE *f = fopen(conf, "we");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "allowed_users = %s\n", USER_B);
        fclose(f);
        start_shared(&s, (const char *[]){"--config", conf, NULL});
        check_lingering(&s, LINGER_BAD_REQUEST, uid_a, gid_a); /* A is refused */
        check_lingering(&s, LINGER_VALID, uid_a, gid_a);
        tu_server_stop(&s);
        unlink(conf);
        rmdir(dir);
}
END_TEST

/* ---- item 8: queued replies in bytes ---------------------------------------------- */

static long rss_kib(pid_t pid) {
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        FILE *f = fopen(path, "re");
        ck_assert_ptr_nonnull(f);
        long kib = -1;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %ld", &kib) == 1)
                        break;
        fclose(f);
        return kib;
}

#define LIST_JOBS 130
#define LIST_CONNS 8
#define LIST_REQUESTS 1000

/* As user A: LIST_JOBS long-named jobs, then LIST_CONNS connections that
 * ask for the list LIST_REQUESTS times each and never read. Writes to fd
 * done one byte, how many of them the server dropped, when all is sent,
 * and holds everything until killed. */
static _Noreturn void list_flooder(const char *path, int done) {
        if (!become(uid_a, gid_a))
                _exit(1);
        mps_client *c = NULL;
        if (mps_client_open(path, &c, NULL) < 0)
                _exit(2);
        char name[MPS_WIRE_NAME_MAX + 1], arg[180];
        memset(arg, 'x', sizeof(arg) - 1);
        arg[sizeof(arg) - 1] = '\0';
        const char *argv[] = {"/bin/sleep", "600", arg, NULL};
        for (int i = 0; i < LIST_JOBS; i++) {
                mps_spec *s;
                mps_process *p;
                memset(name, 'a' + i % 26, MPS_WIRE_NAME_MAX);
                name[MPS_WIRE_NAME_MAX] = '\0';
                argv[2] = arg;
                if (mps_spec_new(&s) < 0 || mps_spec_set_exec(s, "/bin/sh", (const char *[]){
                            "/bin/sh", "-c", "exec sleep 600", arg, NULL}) < 0 ||
                    mps_spec_set_name(s, name) < 0 || mps_process_new(c, s, &p) < 0 ||
                    mps_start(p) < 0)
                        _exit(3);
                mps_spec_free(s);
        }
        (void)argv;
        unsigned dropped = 0;
        int fds[LIST_CONNS];
        for (int k = 0; k < LIST_CONNS; k++) {
                int fd = fds[k] = connect_raw(path);
                send_hello(fd);
                for (int i = 0; i < LIST_REQUESTS && !(dropped & (1u << k)); i++) {
                        struct mps__wait w = {.tag = (uint64_t)i + 1};
                        cJSON *j = mps__wait_encode(MPS_OP_LIST, &w);
                        int r;
                        struct pollfd po = {.fd = fd, .events = POLLOUT};
                        while ((r = mps__wire_send(fd, j, NULL, 0)) == -EAGAIN &&
                               poll(&po, 1, 5000) == 1)
                                ;
                        cJSON_Delete(j);
                        if (r < 0)
                                dropped |= 1u << k; /* as a slow reader is */
                }
        }
        /* A connection dropped after our last send ends too. */
        for (int k = 0; k < LIST_CONNS; k++) {
                struct pollfd p = {.fd = fds[k], .events = POLLIN};
                if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR)))
                        dropped |= 1u << k;
        }
        unsigned char n = 0;
        for (int k = 0; k < LIST_CONNS; k++)
                n += (dropped >> k) & 1;
        if (write(done, &n, 1) != 1)
                _exit(4);
        for (;;)
                pause();
}

START_TEST(test_reply_queue_is_bounded_in_bytes_per_user) {
        struct tu_server s;
        start_shared(&s, NULL);
        ck_assert(server_answers(s.path, ANSWER_MS));
        long base = rss_kib(s.pid);
        int d[2];
        ck_assert_int_eq(pipe2(d, O_CLOEXEC), 0);
        pid_t fl = fork();
        ck_assert_int_ge(fl, 0);
        if (fl == 0)
                list_flooder(s.path, d[1]);
        close(d[1]);
        struct pollfd p = {.fd = d[0], .events = POLLIN};
        ck_assert_int_eq(poll(&p, 1, 60000), 1);
        unsigned char ndropped;
        ck_assert_int_eq(read(d[0], &ndropped, 1), 1);
        close(d[0]);
        /* Every request sent has been read once the server answers us. */
        ck_assert(server_answers(s.path, 20000));
        long peak = rss_kib(s.pid);
        signal_user(uid_a, gid_a, SIGKILL);
        waitpid(fl, NULL, 0);
        /* The connections close and the jobs end: the server lets go. */
        long after = 0;
        for (int i = 0; i < 500; i++) {
                ck_assert(server_answers(s.path, ANSWER_MS));
                after = rss_kib(s.pid);
                if (after - base < 8 * 1024)
                        break;
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL); /* bounded polling */
        }
        tu_server_stop(&s);
        /* 8,000 replies of about 11 KB each, for one user: past 16 MiB its
         * connections are dropped. */
        ck_assert_msg(ndropped > 0, "none of %d connections that never read was dropped",
                      LIST_CONNS);
#if defined(__SANITIZE_ADDRESS__)
        /* AddressSanitizer keeps freed memory in quarantine, and its
         * allocator ignores malloc_trim: RSS says nothing there. */
        (void)peak;
        (void)after;
        return;
#endif
        ck_assert_msg(peak - base < 40 * 1024,
                      "RSS grew from %ld to %ld KiB with unread replies", base, peak);
        ck_assert_msg(after - base < 8 * 1024,
                      "RSS stayed at %ld KiB after the burst (baseline %ld KiB)", after, base);
}
END_TEST

/* ---- item 9: kept exits and max_children per user -------------------------------- */

/* Starts one detached /bin/true as uid; its job id and pid (0 on failure). */
static uint64_t detached_true(mps_client *c, pid_t *ret_pid) {
        mps_spec *s;
        mps_process *p;
        const char *argv[] = {"/bin/true", NULL};
        if (mps_spec_new(&s) < 0 || mps_spec_set_exec(s, argv[0], argv) < 0 ||
            mps_spec_set_detached(s, true) < 0 || mps_process_new(c, s, &p) < 0)
                return 0;
        mps_spec_free(s);
        if (mps_start(p) < 0)
                return 0;
        uint64_t id = mps_job_id(p);
        *ret_pid = mps_pid(p);
        mps_process_close(p);
        return id;
}

/* As user B: 1,100 detached /bin/true, each reaped before it returns. */
static _Noreturn void many_detached(const char *path, pid_t server) {
        if (!become(uid_b, gid_b))
                _exit(1);
        mps_client *c = NULL;
        if (mps_client_open(path, &c, NULL) < 0)
                _exit(2);
        for (int i = 0; i < 1100; i++) {
                pid_t pid = 0;
                if (!detached_true(c, &pid))
                        _exit(3);
                if (!tu_wait_reaped(pid, server, 10000))
                        _exit(4);
        }
        mps_client_close(c);
        _exit(0);
}

/* As user A: a detached job, waited for from a second connection after
 * fd go becomes readable. Exit 0 when its exit record was there. */
static _Noreturn void keeps_record(const char *path, pid_t server, int ready, int go) {
        if (!become(uid_a, gid_a))
                _exit(1);
        mps_client *c = NULL;
        if (mps_client_open(path, &c, NULL) < 0)
                _exit(2);
        pid_t pid = 0;
        uint64_t id = detached_true(c, &pid);
        if (!id || !tu_wait_reaped(pid, server, 10000))
                _exit(3);
        mps_client_close(c);
        if (write(ready, "x", 1) != 1)
                _exit(4);
        char b;
        if (read(go, &b, 1) != 1)
                _exit(5);
        if (mps_client_open(path, &c, NULL) < 0)
                _exit(6);
        mps_exit_info info;
        int r = mps_client_wait_job(c, id, 5000, &info);
        _exit(r == 0 ? 0 : r == -ESRCH ? 10 : 11);
}

START_TEST(test_other_users_exits_do_not_evict_a_kept_record) {
        struct tu_server s;
        start_shared(&s, NULL);
        int ready[2], go[2];
        ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
        pid_t a = fork();
        ck_assert_int_ge(a, 0);
        if (a == 0)
                keeps_record(s.path, s.pid, ready[1], go[0]);
        struct pollfd p = {.fd = ready[0], .events = POLLIN};
        ck_assert_int_eq(poll(&p, 1, 20000), 1);
        pid_t b = fork();
        ck_assert_int_ge(b, 0);
        if (b == 0)
                many_detached(s.path, s.pid);
        int st = wait_child(b, 120000);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "user B's jobs: status %d", st);
        ck_assert_int_eq(write(go[1], "x", 1), 1);
        st = wait_child(a, 20000);
        tu_server_stop(&s);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "user A's wait: status %d (10: its exit record was evicted)", st);
}
END_TEST

/* As uid: starts jobs of /bin/sleep until one is refused (at most 50),
 * writes one byte to report: how many ran, plus 100 when the refusal was
 * not the per-user share (EAGAIN naming max_children_per_uid), or 200 when
 * none was refused; then holds its jobs until killed. */
static _Noreturn void fill_share(const char *path, uid_t uid, gid_t gid, int report) {
        if (!become(uid, gid))
                _exit(99);
        mps_client *c = NULL;
        if (mps_client_open(path, &c, NULL) < 0)
                _exit(98);
        const char *argv[] = {"/bin/sleep", "600", NULL};
        unsigned char result = 200;
        for (int n = 0; n < 50 && result == 200; n++) {
                mps_spec *s;
                mps_process *p;
                if (mps_spec_new(&s) < 0 || mps_spec_set_exec(s, argv[0], argv) < 0 ||
                    mps_process_new(c, s, &p) < 0)
                        _exit(97);
                mps_spec_free(s);
                int r = mps_start(p);
                if (r < 0)
                        result = (unsigned char)(n + (r == -EAGAIN && strstr(mps_client_error(c),
                                                          "max_children_per_uid")
                                                          ? 0 : 100));
        }
        if (write(report, &result, 1) != 1)
                _exit(96);
        for (;;)
                pause();
}

/* The byte a fill_share child reports, within 20 s. */
static int share_result(int fd) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ck_assert_int_eq(poll(&p, 1, 20000), 1);
        unsigned char b;
        ck_assert_int_eq(read(fd, &b, 1), 1);
        return b;
}

START_TEST(test_one_user_cannot_take_all_of_max_children) {
        struct tu_server s;
        /* max_children_per_uid is then a quarter: 2. */
        start_shared(&s, (const char *[]){"--max-children", "8", NULL});
        int rep[2];
        ck_assert_int_eq(pipe2(rep, O_CLOEXEC), 0);
        pid_t b = fork();
        ck_assert_int_ge(b, 0);
        if (b == 0)
                fill_share(s.path, uid_b, gid_b, rep[1]);
        int got_b = share_result(rep[0]);
        /* B holds what it got; A still gets its own share. */
        pid_t a = fork();
        ck_assert_int_ge(a, 0);
        if (a == 0)
                fill_share(s.path, uid_a, gid_a, rep[1]);
        int got_a = share_result(rep[0]);
        signal_user(uid_a, gid_a, SIGKILL);
        signal_user(uid_b, gid_b, SIGKILL);
        waitpid(a, NULL, 0);
        waitpid(b, NULL, 0);
        tu_server_stop(&s);
        ck_assert_msg(got_b == 2, "user B ran %d jobs (100+: refused by another limit)", got_b);
        ck_assert_msg(got_a == 2, "user A ran %d jobs (100+: refused by another limit)", got_a);
}
END_TEST

/* ---- the new keys ----------------------------------------------------------------- */

/* --check-config with a file of the given text: its status, output in out. */
static int check_config(const char *text, char *out, size_t outlen) {
        char dir[64], conf[128], err[1024];
        tu_tmpdir(dir, sizeof(dir));
        snprintf(conf, sizeof(conf), "%s/keys.conf", dir);
        FILE *f = fopen(conf, "we");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        fclose(f);
        int st = tu_run((const char *[]){tu_forkserver(), "--config", conf, "--check-config",
                                         NULL},
                        NULL, out, outlen, err, sizeof(err));
        if (st != 0)
                snprintf(out, outlen, "%s", err);
        unlink(conf);
        rmdir(dir);
        return st;
}

START_TEST(test_share_keys_are_read_checked_and_printed) {
        char out[8192];
        ck_assert_int_eq(check_config("max_children_per_uid = 3\nclient_queue_bytes = 65536\n"
                                      "client_queue_bytes_per_uid = 131072\n",
                                      out, sizeof(out)),
                         0);
        ck_assert_ptr_nonnull(strstr(out, "\nmax_children_per_uid = 3\n"));
        ck_assert_ptr_nonnull(strstr(out, "\nclient_queue_bytes = 65536\n"));
        ck_assert_ptr_nonnull(strstr(out, "\nclient_queue_bytes_per_uid = 131072\n"));
        ck_assert_int_eq(check_config("\n", out, sizeof(out)), 0);
        ck_assert_ptr_nonnull(strstr(out, "\nmax_children_per_uid = 0\n"));
        ck_assert_ptr_nonnull(strstr(out, "\nclient_queue_bytes = 4194304\n"));
        ck_assert_ptr_nonnull(strstr(out, "\nclient_queue_bytes_per_uid = 16777216\n"));
        /* Less than one reply of the largest size is refused. */
        ck_assert_int_ne(check_config("client_queue_bytes = 65535\n", out, sizeof(out)), 0);
        ck_assert_msg(strstr(out, "client_queue_bytes: '65535' is not a whole number of bytes "
                                  "from 65536"),
                      "got: %s", out);
        ck_assert_int_ne(check_config("max_children_per_uid = -1\n", out, sizeof(out)), 0);
        ck_assert_msg(strstr(out, "max_children_per_uid: '-1' is not a whole number"),
                      "got: %s", out);
}
END_TEST

/* One test case per item, so that CK_RUN_CASE can pick one; each makes
 * (and removes) the users in the parent. */
static void add_case(Suite *s, const char *name, const TTest *const *tests) {
        TCase *t = tcase_create(name);
        tcase_add_unchecked_fixture(t, users_setup, users_teardown);
        tcase_set_timeout(t, 180);
        for (size_t i = 0; tests[i]; i++)
                tcase_add_test(t, tests[i]);
        suite_add_tcase(s, t);
}

static Suite *fairness_suite(void) {
        Suite *s = suite_create("fairness");
        add_case(s, "stopped", (const TTest *const[]){
                test_job_stopped_before_exec_does_not_hold_the_server, NULL});
        add_case(s, "linger", (const TTest *const[]){
                test_lingering_socket_on_a_refused_request,
                test_lingering_socket_on_a_job_that_fails_to_exec,
                test_lingering_socket_on_a_valid_request,
                test_lingering_socket_from_a_refused_peer, NULL});
        add_case(s, "queue", (const TTest *const[]){
                test_reply_queue_is_bounded_in_bytes_per_user, NULL});
        add_case(s, "shares", (const TTest *const[]){
                test_other_users_exits_do_not_evict_a_kept_record,
                test_one_user_cannot_take_all_of_max_children,
                test_share_keys_are_read_checked_and_printed, NULL});
        return s;
}

int main(void) {
        if (geteuid() != 0) {
                printf("check_fairness: needs root (real users are created)\n");
                return 0;
        }
        SRunner *sr = srunner_create(fairness_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
