/* SPDX-License-Identifier: MIT */
/*
 * check_isolation.c: what a root server never lends a job of another user
 * (issue 13, "never the server's terminal or keys", "the socket is created
 * safely"): its controlling terminal, its session keyring; that the
 * parent-death signal survives the credential drop; and that the socket's
 * group and mode are never set through a path a racing user replaced by a
 * symlink. Jobs run as real unprivileged users (created with useradd in an
 * unchecked fixture, removed again); the binary re-executes itself as the
 * job (--tty, --keys-add, --keys-read, --pause).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <linux/keyctl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../include/mpspawn.h"
#include "testutil.h"

#define USER_A "mps-iso-a"
#define USER_B "mps-iso-b"

static char self_exe[PATH_MAX];
static bool created_a, created_b;

/* ---- the job's side ------------------------------------------------------------------- */

static long keyctl(int op, unsigned long a, unsigned long b, unsigned long c) {
        return syscall(SYS_keyctl, op, a, b, c, 0UL);
}

/* The serial of the session keyring, without creating one. */
static long session_keyring(void) {
        return keyctl(KEYCTL_GET_KEYRING_ID, (unsigned long)KEY_SPEC_SESSION_KEYRING, 0, 0);
}

/* Fields 6 (session) and 7 (tty_nr) of /proc/self/stat. */
static void own_session(int *ret_sid, int *ret_tty_nr) {
        char buf[1024];
        FILE *f = fopen("/proc/self/stat", "re");
        size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        if (f)
                fclose(f);
        buf[n] = '\0';
        char *rp = strrchr(buf, ')');
        *ret_sid = *ret_tty_nr = -1;
        if (rp)
                sscanf(rp + 1, " %*c %*d %*d %d %d", ret_sid, ret_tty_nr);
}

/* What the job can do with a controlling terminal, if it has one. */
static int helper_tty(void) {
        int sid, tty_nr;
        own_session(&sid, &tty_nr);
        int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        const char *open_r = fd >= 0 ? "ok" : strerrorname_np(errno);
        const char *sti_r = "-", *pgrp_r = "-";
        if (fd >= 0) {
                char c = ' ';
                sti_r = ioctl(fd, TIOCSTI, &c) == 0 ? "ok" : strerrorname_np(errno);
                pgrp_r = tcgetpgrp(fd) >= 0 ? "ok" : strerrorname_np(errno);
        }
        printf("open=%s sti=%s pgrp=%s leader=%d tty_nr=%d\n", open_r, sti_r, pgrp_r,
               sid == (int)getpid(), tty_nr);
        return 0;
}

/* Adds a key to the session keyring, reads it back, says so, and keeps
 * the keyring alive until stdin ends. */
static int helper_keys_add(void) {
        long key = syscall(SYS_add_key, "user", "mps-iso-secret", "secret", 6,
                           KEY_SPEC_SESSION_KEYRING);
        char buf[16] = "";
        long n = key < 0 ? -1
                         : keyctl(KEYCTL_READ, (unsigned long)key, (unsigned long)buf,
                                  sizeof(buf) - 1);
        printf("%ld %ld %s\n", session_keyring(), key, n == 6 ? buf : "unreadable");
        fflush(stdout);
        while (read(0, buf, sizeof(buf)) > 0)
                ;
        return 0;
}

static int helper_keys_read(const char *serial) {
        char buf[16] = "";
        long n = keyctl(KEYCTL_READ, strtoul(serial, NULL, 10), (unsigned long)buf,
                        sizeof(buf) - 1);
        printf("%ld %s\n", session_keyring(), n >= 0 ? buf : strerrorname_np(errno));
        return 0;
}

/* ---- the test's side ------------------------------------------------------------------ */

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Every directory of the suite is under base (0755, made in the unchecked
 * fixture), so that what a failed check leaves is removed with it. */
static char base[32];

static void iso_tmpdir(char *buf, size_t len) {
        ck_assert_uint_lt((size_t)snprintf(buf, len, "%s/d-XXXXXX", base), len);
        ck_assert_ptr_nonnull(mkdtemp(buf));
}

static void users_up(void) {
        snprintf(base, sizeof(base), "/tmp/mps-iso-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(base));
        ck_assert_int_eq(chmod(base, 0755), 0);
        tu_user(USER_A, &created_a);
        tu_user(USER_B, &created_b);
}

/* Removes one entry; symlinks themselves, never what they point to. */
static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void)st;
        (void)flag;
        (void)ftw;
        remove(path);
        return 0;
}

static void users_down(void) {
        tu_user_done(USER_A, created_a);
        tu_user_done(USER_B, created_b);
        nftw(base, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The server's side of a terminal, for the server-launching child. */
struct pty {
        int master;
        char slave[64];
};

/*
 * Starts mpforkserver --socket sock [extra...] with a NOTIFY_SOCKET of
 * ours, and waits for READY=1 (true) or its exit (false), at most 20 s.
 * With pty, the server is started as a session leader with the pty as
 * its controlling terminal (and stdin), as from a login shell. quiet
 * sends its stderr to /dev/null. s->dir is left empty: the caller owns
 * the socket's directory.
 */
static bool launch(struct tu_server *s, const char *sock, const char *const *extra,
                   const struct pty *pty, bool quiet) {
        char ndir[64], notify[96];
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        memset(s, 0, sizeof(*s));
        snprintf(s->path, sizeof(s->path), "%s", sock);
        iso_tmpdir(ndir, sizeof(ndir));
        snprintf(notify, sizeof(notify), "%s/notify", ndir);
        int nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(nfd, 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", notify);
        ck_assert_int_eq(bind(nfd, (struct sockaddr *)&sa, sizeof(sa)), 0);

        const char *argv[24];
        size_t n = 0;
        argv[n++] = tu_forkserver();
        argv[n++] = "--socket";
        argv[n++] = sock;
        argv[n++] = "--log-level";
        argv[n++] = "warning";
        for (size_t i = 0; extra && extra[i] && n < 22; i++)
                argv[n++] = extra[i];
        argv[n] = NULL;

        s->pid = fork();
        ck_assert_int_ge(s->pid, 0);
        if (s->pid == 0) {
                /* A failed test must not leave a root server behind. */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (pty) {
                        int fd;
                        if (setsid() < 0 || (fd = open(pty->slave, O_RDWR)) < 0 ||
                            ioctl(fd, TIOCSCTTY, 0) < 0)
                                _exit(120);
                        dup2(fd, 0); /* stdout and stderr stay ours, to be read */
                }
                if (quiet) {
                        int null = open("/dev/null", O_WRONLY);
                        dup2(null, 2);
                }
                setenv("NOTIFY_SOCKET", notify, 1);
                execv(argv[0], (char *const *)argv);
                _exit(121);
        }
        s->pidfd = pidfd_open(s->pid, 0);
        ck_assert_int_ge(s->pidfd, 0);
        struct pollfd p[2] = {{.fd = nfd, .events = POLLIN},
                              {.fd = s->pidfd, .events = POLLIN}};
        int r = poll(p, 2, 20000);
        bool ready = false;
        if (r > 0 && (p[0].revents & POLLIN)) {
                char msg[256];
                ssize_t got = recv(nfd, msg, sizeof(msg) - 1, 0);
                ready = got > 0 && (msg[got] = '\0', strstr(msg, "READY=1"));
        }
        ck_assert_msg(r > 0, "mpforkserver neither ready nor gone in 20 s");
        close(nfd);
        unlink(notify);
        rmdir(ndir);
        return ready;
}

/* SIGTERM (SIGKILL after 20 s) and reap; the socket's directory stays. */
static void stop(struct tu_server *s) {
        if (s->pid <= 0)
                return;
        kill(s->pid, SIGTERM);
        struct pollfd p = {.fd = s->pidfd, .events = POLLIN};
        if (poll(&p, 1, 20000) <= 0)
                kill(s->pid, SIGKILL);
        while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
                ;
        close(s->pidfd);
        s->pid = 0;
}

/* A root server on DIR/sock that every user may connect to. */
static void start_open_server(struct tu_server *s, char *dir, size_t len,
                              const struct pty *pty) {
        char sock[100];
        iso_tmpdir(dir, len);
        ck_assert_int_eq(chmod(dir, 0755), 0);
        snprintf(sock, sizeof(sock), "%s/sock", dir);
        ck_assert_msg(launch(s, sock, (const char *[]){"--socket-mode", "0666", NULL}, pty,
                             false),
                      "the server did not start");
}

static void stop_open_server(struct tu_server *s, const char *dir) {
        stop(s);
        unlink(s->path);
        rmdir(dir);
}

/*
 * In a child running as user: a connection to sock, one job of argv
 * (stdin from in_fd and stdout to out_fd when >= 0, pdeathsig when > 0).
 * The child writes "PID\n" (or "start ERRNO STAGE\n") to report_fd once
 * the job started, and then waits for it. close_fds: the test's ends of
 * its pipes, -1 terminated. Returns the child's pid.
 */
static pid_t job_as(const char *user, const char *sock, const char *const *argv,
                    int in_fd, int out_fd, int pdeathsig, int report_fd,
                    const int *close_fds) {
        struct passwd *pw = getpwnam(user);
        ck_assert_ptr_nonnull(pw);
        uid_t uid = pw->pw_uid;
        gid_t gid = pw->pw_gid;
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid > 0)
                return pid;
        for (size_t i = 0; close_fds && close_fds[i] >= 0; i++)
                close(close_fds[i]);
        if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
                _exit(90);
        mps_client *c = NULL;
        mps_spec *s;
        mps_process *p;
        if (mps_client_open(sock, &c, NULL) < 0 || mps_spec_new(&s) < 0)
                _exit(91);
        mps_spec_set_exec(s, argv[0], argv);
        mps_spec_set_cwd(s, "/");
        if (in_fd >= 0)
                mps_spec_map_fd(s, 0, in_fd);
        if (out_fd >= 0)
                mps_spec_map_fd(s, 1, out_fd);
        if (pdeathsig > 0)
                mps_spec_set_pdeathsig(s, pdeathsig);
        if (mps_process_new(c, s, &p) < 0)
                _exit(92);
        int r = mps_start(p);
        if (in_fd >= 0)
                close(in_fd);
        if (out_fd >= 0)
                close(out_fd);
        if (r < 0)
                dprintf(report_fd, "start %s %s\n", strerrorname_np(-r),
                        mps_start_failed_stage(p));
        else
                dprintf(report_fd, "%d\n", (int)mps_pid(p));
        if (r == 0)
                mps_join(p, -1);
        _exit(0);
}

/* Runs argv as user to its end; its stdout in out. */
static void run_as(const char *user, const char *sock, const char *const *argv, char *out,
                   size_t len) {
        int o[2], rep[2];
        ck_assert_int_eq(pipe2(o, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(rep, O_CLOEXEC), 0);
        pid_t pid = job_as(user, sock, argv, -1, o[1], 0, rep[1],
                           (const int[]){o[0], rep[0], -1});
        close(o[1]);
        close(rep[1]);
        char report[128];
        tu_read_all(rep[0], report, sizeof(report), 30000);
        ck_assert_msg(strncmp(report, "start", 5) != 0, "%s: %s", user, report);
        tu_read_all(o[0], out, len, 30000);
        close(o[0]);
        close(rep[0]);
        int st;
        waitpid(pid, &st, 0);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s's client: %#x", user, st);
}

/* tty_nr (field 7) of /proc/PID/stat. */
static int tty_of(pid_t pid) {
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "re");
        ck_assert_ptr_nonnull(f);
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        int tty = -1;
        char *rp = strrchr(buf, ')');
        ck_assert_ptr_nonnull(rp);
        ck_assert_int_eq(sscanf(rp + 1, " %*c %*d %*d %*d %d", &tty), 1);
        return tty;
}

/*
 * A root server started from a terminal (session leader, a pty as its
 * controlling terminal): a job of another user cannot open /dev/tty
 * (ENXIO), so it can neither TIOCSTI nor tcgetpgrp, and leads a session of
 * its own without a terminal. The server has let go of the terminal, so
 * even a job of its own uid (root, which keeps a group in the server's
 * session) has none.
 */
START_TEST(test_job_never_gets_the_servers_terminal) {
        struct pty pty;
        pty.master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        ck_assert_int_ge(pty.master, 0);
        ck_assert_int_eq(grantpt(pty.master), 0);
        ck_assert_int_eq(unlockpt(pty.master), 0);
        ck_assert_int_eq(ptsname_r(pty.master, pty.slave, sizeof(pty.slave)), 0);
        struct tu_server s;
        char dir[64], out[256];
        start_open_server(&s, dir, sizeof(dir), &pty);

        run_as(USER_A, s.path, (const char *[]){self_exe, "--tty", NULL}, out, sizeof(out));
        ck_assert_str_eq(out, "open=ENXIO sti=- pgrp=- leader=1 tty_nr=0\n");

        mps_client *c;
        ck_assert_int_eq(mps_client_open(s.path, &c, NULL), 0);
        mps_spec *spec;
        mps_process *p;
        int fds[2];
        ck_assert_int_eq(mps_spec_new(&spec), 0);
        ck_assert_int_eq(mps_spec_set_exec(spec, self_exe,
                                           (const char *[]){self_exe, "--tty", NULL}),
                         0);
        ck_assert_int_eq(mps_pipe(fds), 0);
        ck_assert_int_eq(mps_spec_map_fd(spec, 1, fds[1]), 0);
        ck_assert_int_eq(mps_process_new(c, spec, &p), 0);
        ck_assert_int_eq(mps_start(p), 0);
        close(fds[1]);
        tu_read_all(fds[0], out, sizeof(out), 30000);
        close(fds[0]);
        ck_assert_int_eq(mps_join(p, -1), 0);
        ck_assert_str_eq(out, "open=ENXIO sti=- pgrp=- leader=0 tty_nr=0\n");
        ck_assert_int_eq(tty_of(s.pid), 0); /* the server let go of it */
        mps_process_close(p);
        mps_spec_free(spec);
        mps_client_close(c);
        stop_open_server(&s, dir);
        close(pty.master);
}
END_TEST

/* Reads one line (up to len-1 bytes) from fd, bounded. */
static void read_line(int fd, char *buf, size_t len) {
        size_t n = 0;
        int64_t deadline = now_ms() + 30000;
        while (n + 1 < len) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                int left = (int)(deadline - now_ms());
                if (left <= 0 || poll(&p, 1, left) <= 0 || read(fd, buf + n, 1) != 1)
                        break;
                if (buf[n++] == '\n')
                        break;
        }
        buf[n] = '\0';
}

/*
 * The server runs in a session keyring of its own (joined here, so it is
 * not the test's). User A's job adds a key to its session keyring and keeps
 * it alive; user B's job cannot read that key, and neither job's session
 * keyring is the server's or the other's.
 */
START_TEST(test_each_job_of_another_user_gets_a_fresh_session_keyring) {
        long server_ring = keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0);
        ck_assert_int_gt(server_ring, 0);
        struct tu_server s;
        char dir[64], line[128], out[128];
        start_open_server(&s, dir, sizeof(dir), NULL);

        int in[2], o[2], rep[2];
        ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(o, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(rep, O_CLOEXEC), 0);
        pid_t a = job_as(USER_A, s.path, (const char *[]){self_exe, "--keys-add", NULL}, in[0],
                         o[1], 0, rep[1], (const int[]){in[1], o[0], rep[0], -1});
        close(in[0]);
        close(o[1]);
        close(rep[1]);
        read_line(rep[0], line, sizeof(line));
        ck_assert_msg(strncmp(line, "start", 5) != 0, "A: %s", line);
        read_line(o[0], line, sizeof(line));
        long ring_a = 0, key = 0;
        char back[32] = "";
        ck_assert_msg(sscanf(line, "%ld %ld %31s", &ring_a, &key, back) == 3, "A: '%s'",
                      line);
        ck_assert_int_gt(key, 0);
        ck_assert_str_eq(back, "secret"); /* A's own key, for A */
        ck_assert_int_ne(ring_a, server_ring);

        char serial[32];
        snprintf(serial, sizeof(serial), "%ld", key);
        run_as(USER_B, s.path, (const char *[]){self_exe, "--keys-read", serial, NULL}, out,
               sizeof(out));
        long ring_b = 0;
        char result[32] = "";
        ck_assert_msg(sscanf(out, "%ld %31s", &ring_b, result) == 2, "B: '%s'", out);
        ck_assert_int_ne(ring_b, server_ring);
        ck_assert_int_ne(ring_b, ring_a);
        ck_assert_msg(strcmp(result, "EACCES") == 0, "B read A's key: %s", result);

        close(in[1]); /* A's job ends */
        int st;
        waitpid(a, &st, 0);
        close(o[0]);
        close(rep[0]);
        stop_open_server(&s, dir);
}
END_TEST

/* The number of keys the kernel counts for uid (/proc/key-users), or -1. */
static int user_nkeys(uid_t uid) {
        FILE *f = fopen("/proc/key-users", "re");
        char line[256];
        int n = -1;
        while (f && fgets(line, sizeof(line), f)) {
                unsigned u;
                int usage, nkeys;
                if (sscanf(line, " %u: %d %d/", &u, &usage, &nkeys) == 3 && u == uid)
                        n = nkeys;
        }
        if (f)
                fclose(f);
        return n;
}

/*
 * In a child running as user: the user's user-session keyring (made now,
 * as a login would), then keys until the user's key quota is full, held
 * until fd `hold` ends. Writes the user-session keyring's serial to
 * report_fd once the quota is full.
 */
static pid_t fill_key_quota(const char *user, int report_fd, int hold, const int *close_fds) {
        struct passwd *pw = getpwnam(user);
        ck_assert_ptr_nonnull(pw);
        uid_t uid = pw->pw_uid;
        gid_t gid = pw->pw_gid;
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid > 0)
                return pid;
        for (size_t i = 0; close_fds[i] >= 0; i++)
                close(close_fds[i]);
        if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
                _exit(90);
        long us = keyctl(KEYCTL_GET_KEYRING_ID, (unsigned long)KEY_SPEC_USER_SESSION_KEYRING,
                         1, 0);
        if (us < 0 || keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0) < 0)
                _exit(91);
        /* Keys of the user's that died but are not collected yet still
         * count; once collected they would free the quota again. So fill,
         * and fill again, until every key the kernel counts for the user
         * is one of ours (bounded polling: 10 s). */
        int added = 0;
        for (int64_t end = now_ms() + 10000;;) {
                char name[32];
                snprintf(name, sizeof(name), "mps-iso-fill-%d", added);
                if (syscall(SYS_add_key, "user", name, "x", 1, KEY_SPEC_SESSION_KEYRING) >= 0) {
                        added++;
                        continue;
                }
                if (errno != EDQUOT)
                        _exit(92);
                /* Ours: the added keys, the session keyring, @u and @us. */
                if (user_nkeys(uid) == added + 3)
                        break;
                if (now_ms() > end)
                        _exit(93);
                struct timespec ts = {0, 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        dprintf(report_fd, "%ld\n", us);
        char c;
        while (read(hold, &c, 1) > 0)
                ;
        _exit(0);
}

/* With the user's key quota used up, a job of that user still starts, in
 * the user's own user-session keyring: never the server's. */
START_TEST(test_full_key_quota_falls_back_to_the_users_own_keyring) {
        long server_ring = keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0);
        ck_assert_int_gt(server_ring, 0);
        struct tu_server s;
        char dir[64], line[64], out[128];
        start_open_server(&s, dir, sizeof(dir), NULL);
        int rep[2], hold[2];
        ck_assert_int_eq(pipe2(rep, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(hold, O_CLOEXEC), 0);
        pid_t filler = fill_key_quota(USER_B, rep[1], hold[0], (const int[]){rep[0], hold[1], -1});
        close(rep[1]);
        close(hold[0]);
        read_line(rep[0], line, sizeof(line));
        long us = atol(line);
        ck_assert_msg(us > 0, "filling the quota: '%s'", line);

        run_as(USER_B, s.path, (const char *[]){self_exe, "--keys-read", "1", NULL}, out,
               sizeof(out));
        long ring = 0;
        ck_assert_msg(sscanf(out, "%ld", &ring) == 1, "B: '%s'", out);
        ck_assert_int_ne(ring, server_ring);
        ck_assert_int_eq(ring, us);

        close(hold[1]);
        waitpid(filler, NULL, 0);
        close(rep[0]);
        stop_open_server(&s, dir);
}
END_TEST

/* A test user's job with pdeathsig SIGTERM ends when its server is
 * SIGKILLed (the kernel clears the signal at a credential change). */
START_TEST(test_pdeathsig_survives_the_credential_drop) {
        struct tu_server s;
        char dir[64], line[64];
        start_open_server(&s, dir, sizeof(dir), NULL);
        int rep[2];
        ck_assert_int_eq(pipe2(rep, O_CLOEXEC), 0);
        pid_t cl = job_as(USER_A, s.path, (const char *[]){self_exe, "--pause", NULL}, -1, -1,
                          SIGTERM, rep[1], (const int[]){rep[0], -1});
        close(rep[1]);
        read_line(rep[0], line, sizeof(line));
        close(rep[0]);
        int job = atoi(line);
        ck_assert_msg(job > 0, "start: %s", line);
        int jfd = pidfd_open(job, 0);
        ck_assert_int_ge(jfd, 0);

        kill(s.pid, SIGKILL);
        struct pollfd p = {.fd = jfd, .events = POLLIN};
        int r = poll(&p, 1, 10000);
        if (r <= 0)
                syscall(SYS_pidfd_send_signal, jfd, SIGKILL, NULL, 0);
        close(jfd);
        int st;
        waitpid(cl, &st, 0);
        stop_open_server(&s, dir);
        ck_assert_msg(r == 1, "the job outlived its server by 10 s");
}
END_TEST

/* A process of user that keeps replacing the socket at sock by a symlink
 * to target (renamed over it as soon as it appears) until killed, or for
 * 120 s at most. */
static pid_t start_racer(const char *user, const char *dir, const char *target) {
        struct passwd *pw = getpwnam(user);
        ck_assert_ptr_nonnull(pw);
        uid_t uid = pw->pw_uid;
        gid_t gid = pw->pw_gid;
        pid_t parent = getpid();
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid > 0)
                return pid;
        if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
                _exit(90);
        /* Ends with a failed test (set after setuid, which clears it). */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(91);
        char sock[128], lnk[128];
        snprintf(sock, sizeof(sock), "%s/sock", dir);
        snprintf(lnk, sizeof(lnk), "%s/lnk", dir);
        int64_t end = now_ms() + 120000;
        for (unsigned long i = 0;; i++) {
                struct stat st;
                /* EEXIST: the last one still waits to be renamed. */
                bool have = symlink(target, lnk) == 0 || errno == EEXIST;
                if (have && lstat(sock, &st) == 0 && S_ISSOCK(st.st_mode))
                        (void)rename(lnk, sock);
                if (i % 4096 == 0 && now_ms() > end)
                        _exit(0);
        }
}

/*
 * socket_group set, the socket in a directory every user may write: a
 * user racing to replace the socket by a symlink to a root-owned file
 * (100 server starts at most) never gets that file's owner or mode
 * changed. The server may fail to start or lose its socket name; it never
 * chowns or chmods through the symlink.
 */
START_TEST(test_socket_setup_never_follows_a_symlink) {
        struct passwd *pw = getpwnam(USER_A);
        ck_assert_ptr_nonnull(pw);
        char dir[64], priv[64], target[128], conf[128], sock[128];
        iso_tmpdir(dir, sizeof(dir));
        ck_assert_int_eq(chmod(dir, 0777), 0);
        iso_tmpdir(priv, sizeof(priv));
        snprintf(target, sizeof(target), "%s/precious", priv);
        snprintf(conf, sizeof(conf), "%s/forkserver.conf", priv);
        snprintf(sock, sizeof(sock), "%s/sock", dir);
        int fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        close(fd);
        FILE *f = fopen(conf, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "socket_mode = 0660\nsocket_group = %u\n", (unsigned)pw->pw_gid);
        fclose(f);

        pid_t racer = start_racer(USER_A, dir, target);
        int ready = 0, tries;
        bool intact = true;
        struct stat st;
        for (tries = 0; tries < 100 && intact; tries++) {
                struct tu_server s;
                unlink(sock);
                ready += launch(&s, sock, (const char *[]){"--config", conf, NULL}, NULL, true);
                stop(&s);
                ck_assert_int_eq(stat(target, &st), 0);
                intact = st.st_uid == 0 && st.st_gid == 0 && (st.st_mode & 07777) == 0600;
        }
        kill(racer, SIGKILL);
        waitpid(racer, NULL, 0);
        char lnk[128];
        snprintf(lnk, sizeof(lnk), "%s/lnk", dir);
        unlink(sock);
        unlink(lnk);
        ck_assert_int_eq(rmdir(dir), 0); /* no private directory left behind */
        unlink(target);
        unlink(conf);
        rmdir(priv);
        fprintf(stderr, "socket race: %d starts, %d became ready\n", tries, ready);
        ck_assert_msg(intact, "after %d starts (%d ready) the file is %u:%u %04o", tries, ready,
                      (unsigned)st.st_uid, (unsigned)st.st_gid, st.st_mode & 07777);
        ck_assert_int_gt(ready, 0);
}
END_TEST

/* Without the race: the socket gets its group and mode, and stale-socket
 * detection still refuses to take over a live server's socket. */
START_TEST(test_socket_group_mode_and_live_server_kept) {
        struct passwd *pw = getpwnam(USER_A);
        ck_assert_ptr_nonnull(pw);
        char dir[64], conf[128], sock[128];
        iso_tmpdir(dir, sizeof(dir));
        snprintf(conf, sizeof(conf), "%s/forkserver.conf", dir);
        snprintf(sock, sizeof(sock), "%s/sock", dir);
        FILE *f = fopen(conf, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "socket_mode = 0660\nsocket_group = %u\n", (unsigned)pw->pw_gid);
        fclose(f);
        struct tu_server s, second;
        ck_assert(launch(&s, sock, (const char *[]){"--config", conf, NULL}, NULL, false));
        struct stat st;
        ck_assert_int_eq(lstat(sock, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));
        ck_assert_uint_eq(st.st_gid, pw->pw_gid);
        ck_assert_uint_eq(st.st_mode & 07777, 0660);
        ino_t ino = st.st_ino;
        ck_assert(!launch(&second, sock, (const char *[]){"--config", conf, NULL}, NULL, true));
        stop(&second);
        ck_assert_int_eq(lstat(sock, &st), 0);
        ck_assert_uint_eq(st.st_ino, ino);
        mps_client *c;
        ck_assert_int_eq(mps_client_open(sock, &c, NULL), 0);
        mps_client_close(c);
        stop(&s);
        unlink(sock);
        unlink(conf);
        ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

static Suite *isolation_suite(void) {
        Suite *s = suite_create("isolation");
        TCase *t = tcase_create("isolation");
        tcase_add_unchecked_fixture(t, users_up, users_down);
        tcase_set_timeout(t, 120);
        tcase_add_test(t, test_job_never_gets_the_servers_terminal);
        tcase_add_test(t, test_each_job_of_another_user_gets_a_fresh_session_keyring);
        tcase_add_test(t, test_full_key_quota_falls_back_to_the_users_own_keyring);
        tcase_add_test(t, test_pdeathsig_survives_the_credential_drop);
        tcase_add_test(t, test_socket_setup_never_follows_a_symlink);
        tcase_add_test(t, test_socket_group_mode_and_live_server_kept);
        suite_add_tcase(s, t);
        return s;
}

int main(int argc, char **argv) {
        if (argc >= 2 && strcmp(argv[1], "--tty") == 0)
                return helper_tty();
        if (argc >= 2 && strcmp(argv[1], "--keys-add") == 0)
                return helper_keys_add();
        if (argc >= 3 && strcmp(argv[1], "--keys-read") == 0)
                return helper_keys_read(argv[2]);
        if (argc >= 2 && strcmp(argv[1], "--pause") == 0) {
                pause();
                return 0;
        }
        ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
        if (n <= 0)
                return 1;
        self_exe[n] = '\0';
        if (geteuid() != 0) {
                /* Every check needs a root server and real users. */
                printf("skipping: not root\n100%%: Checks: 0, Failures: 0, Errors: 0\n");
                return 0;
        }
        SRunner *sr = srunner_create(isolation_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
