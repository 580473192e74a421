/* SPDX-License-Identifier: MIT */
/*
 * check_service.c: mpforkserver as a system service, with the real tools.
 *
 * systemd-socket-activate (from the systemd package) listens on a
 * SOCK_SEQPACKET socket and execs mpforkserver on the first connection, as
 * systemd does with a .socket unit; the test is the service manager on the
 * other side of NOTIFY_SOCKET and reads READY=1, STATUS= and STOPPING=1 as
 * datagrams. Also: idle exit, a socket of the wrong kind refused with a
 * clear message, journal priority prefixes, allowed users and groups
 * (SO_PEERCRED, SO_PEERGROUPS), the root-server guard, the per-client limit
 * on jobs in flight, and the socket group.
 *
 * Nothing here sleeps to synchronise: it waits on descriptors (notify
 * datagrams, pidfds, pipes) with bounds, or polls with a bound where no
 * descriptor can tell (a socket appearing).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
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
#include "testutil.h"

extern char **environ;

/* Generous bounds: the machine may be slow and busy. */
#define WAIT_MS 20000

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One server under test, started directly or through
 * systemd-socket-activate, with its stderr in a file and a NOTIFY_SOCKET
 * of ours. */
struct srv {
        char dir[64];
        char sock[100];
        char notify_path[100];
        char log_path[100];
        int notify_fd;
        int log_fd;
        pid_t pid; /* the server (socket-activate execs it in its place) */
        int pidfd;
        char notes[8192]; /* every notification received, in order */
};

static void srv_init(struct srv *s) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        memset(s, 0, sizeof(*s));
        tu_tmpdir(s->dir, sizeof(s->dir));
        snprintf(s->sock, sizeof(s->sock), "%s/sock", s->dir);
        snprintf(s->notify_path, sizeof(s->notify_path), "%s/notify", s->dir);
        snprintf(s->log_path, sizeof(s->log_path), "%s/log", s->dir);
        s->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(s->notify_fd, 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->notify_path);
        ck_assert_int_eq(bind(s->notify_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        s->log_fd = open(s->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ck_assert_int_ge(s->log_fd, 0);
        s->pidfd = -1;
}

/* Starts argv (a NULL-terminated list) with stderr into the log file, stdout
 * too, stdin /dev/null, and NOTIFY_SOCKET plus extra_env in the environment. */
static void srv_spawn(struct srv *s, const char *const *argv, const char *const *extra_env) {
        posix_spawn_file_actions_t fa;
        char notify_env[128];
        const char *envp[256];
        size_t n = 0;

        snprintf(notify_env, sizeof(notify_env), "NOTIFY_SOCKET=%s", s->notify_path);
        for (size_t i = 0; environ[i] && n < 200; i++)
                if (strncmp(environ[i], "NOTIFY_SOCKET=", 14) != 0 &&
                    strncmp(environ[i], "LISTEN_", 7) != 0 &&
                    strncmp(environ[i], "JOURNAL_STREAM=", 15) != 0)
                        envp[n++] = environ[i];
        envp[n++] = notify_env;
        for (size_t i = 0; extra_env && extra_env[i] && n < 254; i++)
                envp[n++] = extra_env[i];
        envp[n] = NULL;

        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, s->log_fd, 1);
        posix_spawn_file_actions_adddup2(&fa, s->log_fd, 2);
        int r = posix_spawnp(&s->pid, argv[0], &fa, NULL, (char *const *)argv,
                             (char *const *)envp);
        posix_spawn_file_actions_destroy(&fa);
        ck_assert_msg(r == 0, "cannot run %s: %s", argv[0], strerror(r));
        s->pidfd = pidfd_open(s->pid, 0);
        ck_assert_int_ge(s->pidfd, 0);
}

/*
 * Starts mpforkserver ARGS under systemd-socket-activate on s->sock, with
 * the socket type given as socket-activate options (NULL-terminated, e.g.
 * {"--seqpacket", NULL}). Sanitizer settings pass through: socket-activate
 * gives its child only the variables it is told to.
 */
static void srv_activate(struct srv *s, const char *const *kind, const char *const *args,
                         const char *const *extra_env) {
        const char *argv[64];
        size_t n = 0;
        argv[n++] = "systemd-socket-activate";
        for (size_t i = 0; kind && kind[i]; i++)
                argv[n++] = kind[i];
        argv[n++] = "--listen";
        argv[n++] = s->sock;
        argv[n++] = "-E";
        argv[n++] = "NOTIFY_SOCKET";
        static const char *const pass[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS"};
        for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]); i++)
                if (getenv(pass[i])) {
                        argv[n++] = "-E";
                        argv[n++] = pass[i];
                }
        for (size_t i = 0; extra_env && extra_env[i] && n < 40; i++) {
                argv[n++] = "-E";
                argv[n++] = extra_env[i];
        }
        argv[n++] = tu_forkserver();
        for (size_t i = 0; args && args[i] && n < 62; i++)
                argv[n++] = args[i];
        argv[n] = NULL;
        srv_spawn(s, argv, extra_env);
}

/* Starts mpforkserver --socket s->sock ARGS directly. */
static void srv_direct(struct srv *s, const char *const *args, const char *const *extra_env) {
        const char *argv[64];
        size_t n = 0;
        argv[n++] = tu_forkserver();
        argv[n++] = "--socket";
        argv[n++] = s->sock;
        for (size_t i = 0; args && args[i] && n < 62; i++)
                argv[n++] = args[i];
        argv[n] = NULL;
        srv_spawn(s, argv, extra_env);
}

/* Reads notifications until one contains needle (true), the server exits
 * with none left (false), or the bound passes (false). */
static bool srv_wait_note(struct srv *s, const char *needle, int timeout_ms) {
        int64_t deadline = now_ms() + timeout_ms;
        for (;;) {
                char msg[1024];
                ssize_t got = recv(s->notify_fd, msg, sizeof(msg) - 1, MSG_DONTWAIT);
                if (got > 0) {
                        msg[got] = '\0';
                        size_t used = strlen(s->notes);
                        snprintf(s->notes + used, sizeof(s->notes) - used, "%s\n---\n", msg);
                        if (strstr(msg, needle))
                                return true;
                        continue;
                }
                int64_t left = deadline - now_ms();
                if (left <= 0)
                        return false;
                struct pollfd p[2] = {{.fd = s->notify_fd, .events = POLLIN},
                                      {.fd = s->pidfd, .events = POLLIN}};
                int r = poll(p, 2, (int)left);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return false;
                if (!(p[0].revents & POLLIN) && (p[1].revents & POLLIN))
                        return false; /* exited, nothing more to read */
        }
}

/* Waits for the server to exit; returns its wait status, or -1 if it did not
 * within timeout_ms. */
static int srv_wait_exit(struct srv *s, int timeout_ms) {
        struct pollfd p = {.fd = s->pidfd, .events = POLLIN};
        int r;
        do
                r = poll(&p, 1, timeout_ms);
        while (r < 0 && errno == EINTR);
        if (r <= 0)
                return -1;
        int status;
        while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
                ;
        s->pid = 0;
        return status;
}

/* The log so far, NUL-terminated, in buf. */
static const char *srv_log(struct srv *s, char *buf, size_t len) {
        int fd = open(s->log_path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ssize_t n = read(fd, buf, len - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        return buf;
}

static void srv_finish(struct srv *s) {
        if (s->pid > 0) {
                kill(s->pid, SIGTERM);
                if (srv_wait_exit(s, WAIT_MS) < 0) {
                        kill(s->pid, SIGKILL);
                        srv_wait_exit(s, WAIT_MS);
                }
        }
        if (s->pidfd >= 0)
                close(s->pidfd);
        close(s->notify_fd);
        close(s->log_fd);
        char path[128];
        const char *names[] = {"sock", "notify", "log", "forkserver.conf"};
        for (size_t i = 0; i < 4; i++) {
                snprintf(path, sizeof(path), "%s/%s", s->dir, names[i]);
                unlink(path);
        }
        rmdir(s->dir);
}

/* Connects to path with the given socket type, polling (bounded) until
 * something listens there. Fails the test if the server exits first. */
static int connect_when_listening(struct srv *s, int type) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->sock);
        int64_t deadline = now_ms() + WAIT_MS;
        for (;;) {
                int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
                ck_assert_int_ge(fd, 0);
                if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
                        return fd;
                int e = errno;
                close(fd);
                ck_assert_msg(e == ENOENT || e == ECONNREFUSED, "connect: %s", strerror(e));
                ck_assert_msg(now_ms() < deadline, "nothing listens on %s", s->sock);
                /* The pidfd as the clock: wakes early if the process died. */
                struct pollfd p = {.fd = s->pidfd, .events = POLLIN};
                ck_assert_msg(poll(&p, 1, 5) == 0, "the listener exited before listening");
        }
}

/* Writes a configuration file into the server's directory. */
static const char *srv_config(struct srv *s, const char *text) {
        static char path[128];
        snprintf(path, sizeof(path), "%s/forkserver.conf", s->dir);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
        return path;
}

/* A job of argv with stdin from in_fd (or /dev/null) and stdout to out_fd
 * (or /dev/null). Returns the started process, or NULL with *ret_err set. */
static mps_process *start_job(mps_client *c, const char *const *argv, int in_fd, int out_fd,
                              int *ret_err) {
        mps_spec *spec;
        mps_process *p;
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_set_exec(spec, argv[0], argv), 0);
        ck_assert_int_eq(mps_spec_map_fd(spec, 0, in_fd), 0);
        ck_assert_int_eq(mps_spec_map_fd(spec, 1, out_fd), 0);
        ck_assert_int_eq(mps_process_new(c, spec, &p), 0);
        mps_spec_free(spec);
        int r = mps_start(p);
        if (ret_err)
                *ret_err = r;
        if (r < 0) {
                mps_process_close(p);
                return NULL;
        }
        return p;
}

/* Whether /proc/PID/maps names a file whose path contains `what`. */
static bool maps_mention(pid_t pid, const char *what) {
        char path[64], line[512];
        bool found = false;
        snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
        FILE *f = fopen(path, "re");
        ck_assert_msg(f, "%s: %s", path, strerror(errno));
        while (!found && fgets(line, sizeof(line), f))
                found = strstr(line, what) != NULL;
        fclose(f);
        return found;
}

START_TEST(test_activation_ready_status_and_idle_exit) {
        struct srv s;
        char log[16384], out[256];
        int in[2], pout[2], r;
        srv_init(&s);
        srv_activate(&s, (const char *[]){"--seqpacket", NULL},
                     (const char *[]){"--idle-exit", "0.5", NULL}, NULL);

        /* The first connection makes socket-activate exec the server. */
        int probe = connect_when_listening(&s, SOCK_SEQPACKET);
        ck_assert_msg(srv_wait_note(&s, "READY=1", WAIT_MS), "no READY=1; got:\n%s\nlog:\n%s",
                      s.notes, srv_log(&s, log, sizeof(log)));
        ck_assert_ptr_nonnull(strstr(s.notes, "STATUS="));
        printf("activation: %s", s.notes);
        close(probe);

        /* A job through the activated server. */
        mps_client *c;
        char *why = NULL;
        r = mps_client_open(s.sock, &c, &why);
        ck_assert_msg(r == 0, "open: %s", why);
        ck_assert_int_eq(mps_client_server_pid(c), s.pid);
        /* Under a service manager the server loaded libsystemd to talk to it. */
        ck_assert(maps_mention(s.pid, "libsystemd.so"));
        ck_assert_int_eq(pipe2(pout, O_CLOEXEC), 0);
        mps_process *p = start_job(c, (const char *[]){"sh", "-c", "echo hello; exit 3", NULL},
                                   -1, pout[1], &r);
        ck_assert_msg(p, "start: %s", mps_client_error(c));
        close(pout[1]);
        ck_assert_int_eq(mps_join(p, WAIT_MS), 0);
        ck_assert_int_eq(mps_exitcode(p), 3);
        tu_read_all(pout[0], out, sizeof(out), WAIT_MS);
        ck_assert_str_eq(out, "hello\n");
        close(pout[0]);
        mps_process_close(p);

        /* A job that outlives its client: the server must not go idle. */
        ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
        mps_process *cat = start_job(c, (const char *[]){"cat", NULL}, in[0], -1, &r);
        ck_assert_msg(cat, "start: %s", mps_client_error(c));
        close(in[0]);
        ck_assert_msg(srv_wait_note(&s, "STATUS=1 client, 1 job;", WAIT_MS),
                      "no status with live counts; got:\n%s", s.notes);
        /* Closing the client leaves the non-daemon job running. */
        mps_client_close(c);
        ck_assert_int_eq(mps_process_close(cat), 0);
        ck_assert_msg(srv_wait_note(&s, "STATUS=0 clients, 1 job;", WAIT_MS),
                      "no status after the client left; got:\n%s", s.notes);
        /* Three idle periods with a job alive: no exit. */
        struct pollfd pp = {.fd = s.pidfd, .events = POLLIN};
        ck_assert_msg(poll(&pp, 1, 1500) == 0, "exited with a job still running:\n%s",
                      srv_log(&s, log, sizeof(log)));

        /* The job ends: idle from then on, and the server exits by itself. */
        close(in[1]);
        ck_assert_msg(srv_wait_note(&s, "STOPPING=1", WAIT_MS), "no STOPPING=1; got:\n%s",
                      s.notes);
        printf("activation: ...\n%s", strstr(s.notes, "STATUS=0 clients, 1 job"));
        int st = srv_wait_exit(&s, WAIT_MS);
        ck_assert_msg(st >= 0, "no idle exit");
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);

        srv_log(&s, log, sizeof(log));
        printf("activation log:\n%s", log);
        char want[256];
        snprintf(want, sizeof(want), "info: listening on %s, passed by systemd (version ", s.sock);
        ck_assert_msg(strstr(log, want), "log:\n%s", log);
        ck_assert_ptr_nonnull(strstr(log, "info: client 2 connected: pid "));
        ck_assert_ptr_nonnull(strstr(log, "started 'sh' for uid "));
        ck_assert_ptr_nonnull(strstr(log, "exited with status 3\n"));
        ck_assert_ptr_nonnull(
                strstr(log, "info: no client and no job for 0.500 s (idle_exit); exiting\n"));
        srv_finish(&s);
}
END_TEST

/* The server exits 1 with exactly message when systemd passes the wrong
 * kind of socket. */
static void expect_wrong_socket(const char *const *kind, int type, const char *message) {
        struct srv s;
        char log[8192], want[512];
        srv_init(&s);
        srv_activate(&s, kind, NULL, NULL);
        int probe = connect_when_listening(&s, type);
        if (type == SOCK_DGRAM)
                ck_assert_int_eq(send(probe, "x", 1, 0), 1);
        int st = srv_wait_exit(&s, WAIT_MS);
        ck_assert_msg(st >= 0, "the server did not exit");
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %#x", st);
        ck_assert_msg(!srv_wait_note(&s, "READY=1", 0), "READY=1 from a server that failed");
        srv_log(&s, log, sizeof(log));
        snprintf(want, sizeof(want), "]: error: %s\n", message);
        ck_assert_msg(strstr(log, want), "expected '%s' in:\n%s", message, log);
        close(probe);
        srv_finish(&s);
}

/* An embedded server has no service manager: libsystemd (and the six
 * libraries it pulls in) stays out of its memory. */
START_TEST(test_embedded_server_does_not_load_libsystemd) {
        mps_client *c;
        char *why = NULL;
        int r = mps_client_open(NULL, &c, &why);
        ck_assert_msg(r == 0, "open: %s", why);
        pid_t pid = mps_client_server_pid(c);
        ck_assert_int_gt(pid, 0);
        ck_assert(maps_mention(pid, "libcjson.so")); /* the probe can see */
        ck_assert(!maps_mention(pid, "libsystemd.so"));
        mps_client_close(c);
}
END_TEST

START_TEST(test_wrong_socket_kind_is_refused_clearly) {
        expect_wrong_socket(NULL, SOCK_STREAM,
                            "the socket from systemd (fd 3) is a SOCK_STREAM socket "
                            "(ListenStream=), not SOCK_SEQPACKET: use "
                            "ListenSequentialPacket= in the socket unit");
        expect_wrong_socket((const char *[]){"--datagram", NULL}, SOCK_DGRAM,
                            "the socket from systemd (fd 3) is a SOCK_DGRAM socket "
                            "(ListenDatagram=), not SOCK_SEQPACKET: use "
                            "ListenSequentialPacket= in the socket unit");
}
END_TEST

START_TEST(test_accepted_connection_is_refused_clearly) {
        struct srv s;
        char log[8192];
        srv_init(&s);
        /* --accept: socket-activate passes each connection, not the
         * listening socket, to a child of its own. */
        srv_activate(&s, (const char *[]){"--seqpacket", "--accept", NULL}, NULL, NULL);
        int probe = connect_when_listening(&s, SOCK_SEQPACKET);
        /* The server, holding the other end, exits: our end hangs up. */
        struct pollfd p = {.fd = probe, .events = POLLIN};
        ck_assert_int_eq(poll(&p, 1, WAIT_MS), 1);
        char buf[16];
        ck_assert_int_eq(recv(probe, buf, sizeof(buf), 0), 0);
        close(probe);
        srv_log(&s, log, sizeof(log));
        srv_finish(&s); /* stops socket-activate itself */
        ck_assert_msg(strstr(log, "]: error: the socket from systemd (fd 3) is one "
                                  "connection, not a listening socket: use Accept=no in "
                                  "the socket unit\n"),
                      "log:\n%s", log);
}
END_TEST

START_TEST(test_journal_priority_prefixes) {
        struct srv s;
        char log[8192], journal[64];
        struct stat st;
        srv_init(&s);
        /* Our log file stands for the journal's stream. */
        ck_assert_int_eq(fstat(s.log_fd, &st), 0);
        snprintf(journal, sizeof(journal), "JOURNAL_STREAM=%llu:%llu",
                 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
        srv_direct(&s, (const char *[]){"--log-level", "debug", NULL},
                   (const char *[]){journal, NULL});
        ck_assert(srv_wait_note(&s, "READY=1", WAIT_MS));
        mps_client *c;
        char *why = NULL;
        ck_assert_msg(mps_client_open(s.sock, &c, &why) == 0, "open: %s", why);
        int r;
        mps_process *p = start_job(c, (const char *[]){"no-such-program-mps", NULL}, -1, -1, &r);
        ck_assert_ptr_null(p);
        ck_assert_int_eq(r, -ENOENT);
        /* A daemon job, ended by policy when its client goes. */
        mps_spec *spec;
        const char *sleep_argv[] = {"sleep", "60", NULL};
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_set_exec(spec, "sleep", sleep_argv), 0);
        ck_assert_int_eq(mps_spec_set_daemon(spec, true), 0);
        ck_assert_int_eq(mps_process_new(c, spec, &p), 0);
        mps_spec_free(spec);
        ck_assert_msg(mps_start(p) == 0, "start: %s", mps_client_error(c));
        mps_client_close(c);
        ck_assert_int_eq(mps_process_close(p), 0);
        ck_assert(srv_wait_note(&s, "STATUS=0 clients, 0 jobs", WAIT_MS));
        kill(s.pid, SIGTERM);
        ck_assert_int_eq(srv_wait_exit(&s, WAIT_MS), 0);
        srv_log(&s, log, sizeof(log));
        /* Every line starts with an sd-daemon priority, and nothing else. */
        for (char *line = log; *line;) {
                ck_assert_msg(line[0] == '<' && line[1] >= '3' && line[1] <= '7' &&
                                      line[2] == '>',
                              "line without a priority: %s", line);
                ck_assert_msg(strncmp(line + 3, "mpforkserver", 12) != 0, "%s", line);
                char *nl = strchr(line, '\n');
                ck_assert_ptr_nonnull(nl);
                line = nl + 1;
        }
        ck_assert_ptr_nonnull(strstr(log, "<6>listening on "));
        ck_assert_ptr_nonnull(strstr(log, "<6>client 1 connected: pid "));
        ck_assert_ptr_nonnull(strstr(log, "<6>job 1: exec 'no-such-program-mps' failed: "
                                          "No such file or directory\n"));
        ck_assert_ptr_nonnull(strstr(log, "<6>client 1 (pid "));
        ck_assert_ptr_nonnull(strstr(log, "<6>job 2: pid "));
        ck_assert_ptr_nonnull(strstr(log, ": ending daemon job (SIGTERM, SIGKILL in 5.000 s)\n"));
        ck_assert_ptr_nonnull(strstr(log, " killed by SIGTERM\n"));
        ck_assert_ptr_nonnull(strstr(log, "<6>received SIGTERM, stopping\n"));
        ck_assert_ptr_nonnull(strstr(log, "<7>"));
        srv_finish(&s);
}
END_TEST

START_TEST(test_log_level_filters) {
        struct srv s;
        char log[8192];
        srv_init(&s);
        srv_direct(&s, (const char *[]){"--log-level", "warning", NULL}, NULL);
        ck_assert(srv_wait_note(&s, "READY=1", WAIT_MS));
        mps_client *c;
        char *why = NULL;
        ck_assert_msg(mps_client_open(s.sock, &c, &why) == 0, "open: %s", why);
        mps_client_close(c);
        kill(s.pid, SIGTERM);
        ck_assert_int_eq(srv_wait_exit(&s, WAIT_MS), 0);
        ck_assert_str_eq(srv_log(&s, log, sizeof(log)), "");
        srv_finish(&s);
}
END_TEST

START_TEST(test_allowed_users_refuses_others_with_the_reason) {
        struct srv s;
        char log[8192], want[512];
        srv_init(&s);
        const char *conf = srv_config(&s, "allowed_users = daemon\n");
        srv_direct(&s, (const char *[]){"--config", conf, NULL}, NULL);
        ck_assert(srv_wait_note(&s, "READY=1", WAIT_MS));

        mps_client *c = NULL;
        char *why = NULL;
        int r = mps_client_open(s.sock, &c, &why);
        ck_assert_int_eq(r, -EACCES);
        snprintf(want, sizeof(want),
                 "%s refused the connection: uid %u is not allowed to use this server "
                 "(allowed_users and allowed_groups in %s)",
                 s.sock, (unsigned)getuid(), conf);
        ck_assert_str_eq(why, want);
        free(why);
        /* The server closed the connection and serves on. */
        ck_assert_int_eq(mps_client_open(s.sock, &c, &why), -EACCES);
        free(why);
        srv_log(&s, log, sizeof(log));
        snprintf(want, sizeof(want), "warning: client 1 refused: pid %d uid %u: uid %u is "
                 "not allowed to use this server (allowed_users and allowed_groups in %s)\n",
                 (int)getpid(), (unsigned)getuid(), (unsigned)getuid(), conf);
        ck_assert_msg(strstr(log, want), "log:\n%s", log);
        ck_assert_ptr_null(strstr(log, "connected"));
        srv_finish(&s);

        /* Listed: served. */
        srv_init(&s);
        char text[128];
        snprintf(text, sizeof(text), "allowed_users = daemon %u\n", (unsigned)getuid());
        conf = srv_config(&s, text);
        srv_direct(&s, (const char *[]){"--config", conf, NULL}, NULL);
        ck_assert(srv_wait_note(&s, "READY=1", WAIT_MS));
        ck_assert_msg(mps_client_open(s.sock, &c, &why) == 0, "open: %s", why);
        mps_client_close(c);
        srv_finish(&s);
}
END_TEST

START_TEST(test_allowed_groups_uses_the_peers_supplementary_groups) {
        struct srv s;
        struct group *ng = getgrnam("nogroup");
        ck_assert_ptr_nonnull(ng);
        gid_t nogroup = ng->gr_gid;
        if (getuid() != 0 || getgid() == nogroup) {
                printf("skipped: needs root (to set our own supplementary groups)\n");
                return;
        }
        srv_init(&s);
        const char *conf = srv_config(&s, "allowed_groups = nogroup\n");
        srv_direct(&s, (const char *[]){"--config", conf, NULL}, NULL);
        ck_assert(srv_wait_note(&s, "READY=1", WAIT_MS));
        mps_client *c;
        char *why = NULL;

        /* This test runs in a process of its own (Check's fork mode), so
         * changing its groups touches nothing else. */
        ck_assert_int_eq(setgroups(0, NULL), 0);
        ck_assert_int_eq(mps_client_open(s.sock, &c, &why), -EACCES);
        free(why);
        ck_assert_int_eq(setgroups(1, &nogroup), 0);
        ck_assert_msg(mps_client_open(s.sock, &c, &why) == 0, "open: %s", why);
        mps_client_close(c);
        srv_finish(&s);
}
END_TEST

START_TEST(test_root_server_runs_other_users_jobs_as_them) {
        struct srv s;
        if (geteuid() != 0) {
                printf("skipped: needs a server running as root\n");
                return;
        }
        srv_init(&s);
        /* Reachable by anyone. */
        ck_assert_int_eq(chmod(s.dir, 0755), 0);
        srv_direct(&s, (const char *[]){"--socket-mode", "0666", NULL}, NULL);
        ck_assert(srv_wait_note(&s, "READY=1", WAIT_MS));

        int msg[2];
        ck_assert_int_eq(pipe2(msg, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                mps_client *c;
                mps_spec *spec;
                mps_process *p;
                gid_t g = 65534;
                if (setgroups(1, &g) < 0 || setresgid(g, g, g) < 0 ||
                    setresuid(65534, 65534, 65534) < 0)
                        _exit(100);
                if (mps_client_open(s.sock, &c, NULL) < 0)
                        _exit(101);
                const char *argv[] = {"/bin/sh", "-c", "id -u; id -g", NULL};
                mps_spec_new(&spec);
                mps_spec_set_exec(spec, argv[0], argv);
                mps_spec_set_cwd(spec, "/");
                mps_spec_map_fd(spec, 1, msg[1]);
                if (mps_process_new(c, spec, &p) < 0 || mps_start(p) < 0)
                        _exit(102);
                mps_join(p, -1);
                _exit(mps_exitcode(p) == 0 ? 0 : 103);
        }
        close(msg[1]);
        char out[256];
        tu_read_all(msg[0], out, sizeof(out), WAIT_MS);
        close(msg[0]);
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
        ck_assert_str_eq(out, "65534\n65534\n");
        srv_finish(&s);
}
END_TEST

START_TEST(test_max_jobs_per_client) {
        struct srv s;
        int in[2], r;
        srv_init(&s);
        const char *conf = srv_config(&s, "max_jobs_per_client = 2\n");
        srv_direct(&s, (const char *[]){"--config", conf, NULL}, NULL);
        ck_assert(srv_wait_note(&s, "READY=1", WAIT_MS));
        ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);

        mps_client *c, *c2;
        char *why = NULL;
        ck_assert_msg(mps_client_open(s.sock, &c, &why) == 0, "open: %s", why);
        mps_process *a = start_job(c, (const char *[]){"cat", NULL}, in[0], -1, &r);
        mps_process *b = start_job(c, (const char *[]){"cat", NULL}, in[0], -1, &r);
        ck_assert_ptr_nonnull(a);
        ck_assert_ptr_nonnull(b);
        mps_process *x = start_job(c, (const char *[]){"true", NULL}, -1, -1, &r);
        ck_assert_ptr_null(x);
        ck_assert_int_eq(r, -EAGAIN);
        ck_assert_str_eq(mps_client_error(c),
                         "too many jobs in flight: this connection has 2, the server "
                         "allows 2 (max_jobs_per_client); wait for one to end");

        /* The limit is per connection. */
        ck_assert_msg(mps_client_open(s.sock, &c2, &why) == 0, "open: %s", why);
        mps_process *y = start_job(c2, (const char *[]){"true", NULL}, -1, -1, &r);
        ck_assert_msg(y, "second client: %s", mps_client_error(c2));
        ck_assert_int_eq(mps_join(y, WAIT_MS), 0);
        mps_process_close(y);
        mps_client_close(c2);

        /* One ends: room for one more. */
        ck_assert_int_eq(mps_kill(a), 0);
        ck_assert_int_eq(mps_join(a, WAIT_MS), 0);
        ck_assert_int_eq(mps_exitcode(a), -SIGKILL);
        x = start_job(c, (const char *[]){"true", NULL}, -1, -1, &r);
        ck_assert_msg(x, "after one ended: %s", mps_client_error(c));
        ck_assert_int_eq(mps_join(x, WAIT_MS), 0);
        ck_assert_int_eq(mps_exitcode(x), 0);

        close(in[1]);
        ck_assert_int_eq(mps_join(b, WAIT_MS), 0);
        mps_process_close(a);
        mps_process_close(b);
        mps_process_close(x);
        mps_client_close(c);
        close(in[0]);
        srv_finish(&s);
}
END_TEST

START_TEST(test_socket_group_and_mode) {
        struct srv s;
        struct stat st;
        struct group *ng = getgrnam("nogroup");
        ck_assert_ptr_nonnull(ng);
        if (geteuid() != 0) {
                printf("skipped: needs root (to give the socket another group)\n");
                return;
        }
        srv_init(&s);
        const char *conf = srv_config(&s, "socket_mode = 0660\nsocket_group = nogroup\n");
        srv_direct(&s, (const char *[]){"--config", conf, NULL}, NULL);
        ck_assert(srv_wait_note(&s, "READY=1", WAIT_MS));
        ck_assert_int_eq(stat(s.sock, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));
        ck_assert_uint_eq(st.st_mode & 07777, 0660);
        ck_assert_uint_eq(st.st_gid, ng->gr_gid);
        srv_finish(&s);
}
END_TEST

static Suite *service_suite(void) {
        Suite *s = suite_create("service");
        TCase *t = tcase_create("service");
        tcase_set_timeout(t, 120);
        tcase_add_test(t, test_activation_ready_status_and_idle_exit);
        tcase_add_test(t, test_embedded_server_does_not_load_libsystemd);
        tcase_add_test(t, test_wrong_socket_kind_is_refused_clearly);
        tcase_add_test(t, test_accepted_connection_is_refused_clearly);
        tcase_add_test(t, test_journal_priority_prefixes);
        tcase_add_test(t, test_log_level_filters);
        tcase_add_test(t, test_allowed_users_refuses_others_with_the_reason);
        tcase_add_test(t, test_allowed_groups_uses_the_peers_supplementary_groups);
        tcase_add_test(t, test_root_server_runs_other_users_jobs_as_them);
        tcase_add_test(t, test_max_jobs_per_client);
        tcase_add_test(t, test_socket_group_and_mode);
        suite_add_tcase(s, t);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(service_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
