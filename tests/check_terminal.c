/* SPDX-License-Identifier: MIT */
/*
 * check_terminal.c: jobs with a controlling terminal of their own and job
 * control (issue 14), against a real mpforkserver: a pseudo-terminal's
 * slave as the job's fds 0-2, the master driven by the test. The job's
 * session, /dev/tty and tty(1); the "terminal" stage; stop reports
 * (SIGSTOP, ^Z, SIGTTIN after mps_set_terminal_foreground(false)); the
 * keeper and its anchor reaped once the job ends. Every wait is bounded
 * polling on the client fd, the master, or /proc.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../include/mpspawn.h"
#include "../launcher/wire.h"
#include "testutil.h"

#define WAIT_MS 10000

static struct tu_server srv;
static mps_client *cli;

static void server_setup(void) {
        const char *extra[] = {"--grace", "1", NULL};
        tu_server_start(&srv, extra);
        char *msg = NULL;
        int r = mps_client_open(srv.path, &cli, &msg);
        ck_assert_msg(r == 0, "cannot connect: %s", msg ? msg : "?");
        free(msg);
}

/* A server that drops a client with more than two replies queued: what a
 * storm of stop reports would do without coalescing. */
static void small_queue_server_setup(void) {
        const char *extra[] = {"--grace", "1", "--client-queue", "2", NULL};
        tu_server_start(&srv, extra);
        char *msg = NULL;
        int r = mps_client_open(srv.path, &cli, &msg);
        ck_assert_msg(r == 0, "cannot connect: %s", msg ? msg : "?");
        free(msg);
}

static void server_teardown(void) {
        mps_client_close(cli);
        cli = NULL;
        int st = tu_server_stop(&srv);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "the server did not exit cleanly (status %#x)", st);
}

static long long now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct pty {
        int master, slave;
        char name[64];
};

static void pty_open(struct pty *p) {
        p->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        ck_assert_int_ge(p->master, 0);
        ck_assert_int_eq(grantpt(p->master), 0);
        ck_assert_int_eq(unlockpt(p->master), 0);
        ck_assert_int_eq(ptsname_r(p->master, p->name, sizeof(p->name)), 0);
        p->slave = open(p->name, O_RDWR | O_NOCTTY | O_CLOEXEC);
        ck_assert_int_ge(p->slave, 0);
}

static void pty_close(struct pty *p) {
        close(p->master);
        if (p->slave >= 0)
                close(p->slave);
}

/* Starts argv with the pty's slave as fds 0-2 (stdin from in_fd when it
 * is not -1). Returns the start's result; *ret the handle. */
static int start_job(const struct pty *p, int in_fd, const char *const argv[], bool ctty,
                     bool stops, mps_process **ret) {
        mps_spec *s;
        ck_assert_int_eq(mps_spec_new(&s), 0);
        ck_assert_int_eq(mps_spec_set_exec(s, argv[0], argv), 0);
        ck_assert_int_eq(mps_spec_map_fd(s, 0, in_fd >= 0 ? in_fd : p->slave), 0);
        ck_assert_int_eq(mps_spec_map_fd(s, 1, p->slave), 0);
        ck_assert_int_eq(mps_spec_map_fd(s, 2, p->slave), 0);
        ck_assert_int_eq(mps_spec_set_controlling_terminal(s, ctty), 0);
        ck_assert_int_eq(mps_spec_set_report_stops(s, stops), 0);
        ck_assert_int_eq(mps_process_new(cli, s, ret), 0);
        mps_spec_free(s);
        return mps_start(*ret);
}

static mps_process *start_ok(const struct pty *p, const char *const argv[], bool ctty,
                             bool stops) {
        mps_process *proc;
        int r = start_job(p, -1, argv, ctty, stops, &proc);
        ck_assert_msg(r == 0, "start: %s (%s)", mps_strerror(r), mps_client_error(cli));
        return proc;
}

/* Dispatches until the job's reported stop signal is want. */
static bool wait_stop_signal(mps_process *proc, int want) {
        long long end = now_ms() + WAIT_MS;
        while (mps_stop_signal(proc) != want) {
                long long left = end - now_ms();
                if (left <= 0)
                        return false;
                struct pollfd pfd = {.fd = mps_client_fd(cli), .events = POLLIN};
                if (poll(&pfd, 1, (int)left) > 0 && mps_client_dispatch(cli) < 0)
                        return false;
        }
        return true;
}

/* Reads the master until buf holds needle (the job writes it). */
static bool read_until(int master, char *buf, size_t len, const char *needle) {
        size_t n = 0;
        long long end = now_ms() + WAIT_MS;
        buf[0] = '\0';
        while (!strstr(buf, needle) && n + 1 < len) {
                long long left = end - now_ms();
                struct pollfd pfd = {.fd = master, .events = POLLIN};
                if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
                        return false;
                ssize_t k = read(master, buf + n, len - 1 - n);
                if (k <= 0)
                        return false;
                n += (size_t)k;
                buf[n] = '\0';
        }
        return strstr(buf, needle) != NULL;
}

/* Polls until the terminal's foreground group is (or, with is false, is
 * no longer) pgrp. TIOCGPGRP on the master reads the slave's. */
static bool wait_foreground(int master, pid_t pgrp, bool is) {
        long long end = now_ms() + WAIT_MS;
        while (now_ms() < end) {
                pid_t fg = tcgetpgrp(master);
                if ((fg == pgrp) == is)
                        return true;
                struct timespec ts = {0, 2000000};
                nanosleep(&ts, NULL); /* bounded polling of kernel state */
        }
        return false;
}

/* Polls /proc until pid is stopped ('T'). */
static bool wait_proc_stopped(pid_t pid) {
        long long end = now_ms() + WAIT_MS;
        while (now_ms() < end) {
                if (tu_proc_state(pid, NULL) == 'T')
                        return true;
                struct timespec ts = {0, 2000000};
                nanosleep(&ts, NULL);
        }
        return false;
}

static int join_exitcode(mps_process *proc) {
        ck_assert_int_eq(mps_join(proc, 30000), 0);
        return mps_exitcode(proc);
}

/* Fields 4..8 of /proc/PID/stat: ppid, pgrp, session, tty_nr, tpgid. */
struct stat_ids {
        long ppid, pgrp, session, tty_nr, tpgid;
};

static bool parse_stat(const char *text, struct stat_ids *ids) {
        const char *p = strrchr(text, ')');
        char state;
        return p && sscanf(p + 1, " %c %ld %ld %ld %ld %ld", &state, &ids->ppid, &ids->pgrp,
                           &ids->session, &ids->tty_nr, &ids->tpgid) == 6;
}

static bool read_stat(pid_t pid, struct stat_ids *ids) {
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return false;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        return parse_stat(buf, ids);
}

/* The processes of session sid but its leader, into pids (at most max). */
static size_t session_members(pid_t sid, pid_t *pids, size_t max) {
        size_t n = 0;
        DIR *d = opendir("/proc");
        ck_assert_ptr_nonnull(d);
        struct dirent *e;
        while ((e = readdir(d)) && n < max) {
                pid_t pid = (pid_t)atoi(e->d_name);
                struct stat_ids ids;
                if (pid > 0 && pid != sid && read_stat(pid, &ids) && ids.session == sid)
                        pids[n++] = pid;
        }
        closedir(d);
        return n;
}

/* ---- the terminal -------------------------------------------------------------- */

START_TEST(test_tty_names_the_slave) {
        struct pty p;
        pty_open(&p);
        const char *argv[] = {"/usr/bin/tty", NULL};
        mps_process *proc = start_ok(&p, argv, true, false);
        char buf[256], want[80];
        snprintf(want, sizeof(want), "%s\r\n", p.name);
        ck_assert_msg(read_until(p.master, buf, sizeof(buf), want), "tty printed '%s'", buf);
        ck_assert_int_eq(join_exitcode(proc), 0);
        mps_process_close(proc);
        pty_close(&p);
}
END_TEST

START_TEST(test_dev_tty_opens) {
        struct pty p;
        pty_open(&p);
        const char *argv[] = {"/bin/sh", "-c", "echo via-dev-tty >/dev/tty", NULL};
        mps_process *proc = start_ok(&p, argv, true, false);
        char buf[256];
        ck_assert_msg(read_until(p.master, buf, sizeof(buf), "via-dev-tty"), "got '%s'", buf);
        ck_assert_int_eq(join_exitcode(proc), 0);
        mps_process_close(proc);
        pty_close(&p);
}
END_TEST

/* The job leads its session and group, the pty is that session's
 * terminal, and the job's group its foreground. */
START_TEST(test_session_and_foreground_are_the_jobs) {
        struct pty p;
        pty_open(&p);
        const char *argv[] = {"/bin/cat", "/proc/self/stat", NULL};
        mps_process *proc = start_ok(&p, argv, true, false);
        pid_t pid = mps_pid(proc);
        char buf[1024];
        ck_assert(read_until(p.master, buf, sizeof(buf), "\r\n"));
        struct stat_ids ids;
        ck_assert_msg(parse_stat(buf, &ids), "stat: %s", buf);
        struct stat st;
        ck_assert_int_eq(fstat(p.slave, &st), 0);
        long tty_nr = (long)((minor(st.st_rdev) & 0xff) | (major(st.st_rdev) << 8) |
                             ((minor(st.st_rdev) & ~0xffu) << 12));
        ck_assert_int_eq(ids.session, pid);
        ck_assert_int_eq(ids.pgrp, pid);
        ck_assert_int_eq(ids.tty_nr, tty_nr);
        ck_assert_int_eq(ids.tpgid, pid);
        ck_assert_int_eq(join_exitcode(proc), 0);
        mps_process_close(proc);
        pty_close(&p);
}
END_TEST

/* Without the option the job has no terminal, as before. */
START_TEST(test_without_the_option_no_controlling_terminal) {
        struct pty p;
        pty_open(&p);
        const char *argv[] = {"/bin/sh", "-c",
                              "if sh -c 'exec </dev/tty' 2>/dev/null; then echo has; "
                              "else echo none; fi",
                              NULL};
        mps_process *proc = start_ok(&p, argv, false, false);
        char buf[512];
        ck_assert_msg(read_until(p.master, buf, sizeof(buf), "none"), "got '%s'", buf);
        ck_assert_int_eq(join_exitcode(proc), 0);
        mps_process_close(proc);
        pty_close(&p);
}
END_TEST

START_TEST(test_fd0_not_a_terminal_fails_at_stage_terminal) {
        struct pty p;
        pty_open(&p);
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(null, 0);
        const char *argv[] = {"/bin/true", NULL};
        mps_process *proc;
        int r = start_job(&p, null, argv, true, false, &proc);
        ck_assert_int_eq(r, -ENOTTY);
        ck_assert_str_eq(mps_start_failed_stage(proc), "terminal");
        mps_process_close(proc);
        close(null);
        /* The server serves on. */
        const char *ok[] = {"/usr/bin/tty", NULL};
        proc = start_ok(&p, ok, true, false);
        ck_assert_int_eq(join_exitcode(proc), 0);
        mps_process_close(proc);
        pty_close(&p);
}
END_TEST

/* ---- stops ------------------------------------------------------------------------ */

START_TEST(test_sigstop_and_sigcont_are_reported) {
        struct pty p;
        pty_open(&p);
        const char *argv[] = {"/bin/sh", "-c", "read x; echo \"got $x\"", NULL};
        mps_process *proc = start_ok(&p, argv, false, true);
        ck_assert_int_eq(mps_stop_signal(proc), 0);
        ck_assert_int_eq(mps_send_signal(proc, SIGSTOP), 0);
        ck_assert_msg(wait_stop_signal(proc, SIGSTOP), "no stop report");
        ck_assert_int_eq(mps_send_signal(proc, SIGCONT), 0);
        ck_assert_msg(wait_stop_signal(proc, 0), "no continue report");
        ck_assert_int_eq(write(p.master, "one\n", 4), 4);
        char buf[256];
        ck_assert_msg(read_until(p.master, buf, sizeof(buf), "got one"), "got '%s'", buf);
        ck_assert_int_eq(join_exitcode(proc), 0);
        ck_assert_int_eq(mps_stop_signal(proc), 0);
        mps_process_close(proc);
        pty_close(&p);
}
END_TEST

/* The terminal's suspend character stops the job with SIGTSTP: its group
 * is not orphaned (the keeper's anchor), so the kernel does not discard
 * the signal. */
START_TEST(test_ctrl_z_stops_the_job_with_sigtstp) {
        struct pty p;
        pty_open(&p);
        const char *argv[] = {"/bin/sh", "-c", "read x; echo \"got $x\"", NULL};
        mps_process *proc = start_ok(&p, argv, true, true);
        struct termios t;
        ck_assert_int_eq(tcgetattr(p.slave, &t), 0);
        ck_assert_int_eq(write(p.master, &t.c_cc[VSUSP], 1), 1);
        ck_assert_msg(wait_stop_signal(proc, SIGTSTP), "no SIGTSTP stop (state %d)",
                      mps_stop_signal(proc));
        ck_assert_int_eq(mps_send_signal(proc, SIGCONT), 0);
        ck_assert(wait_stop_signal(proc, 0));
        ck_assert_int_eq(write(p.master, "two\n", 4), 4);
        char buf[256];
        ck_assert_msg(read_until(p.master, buf, sizeof(buf), "got two"), "got '%s'", buf);
        ck_assert_int_eq(join_exitcode(proc), 0);
        mps_process_close(proc);
        pty_close(&p);
}
END_TEST

/* The interrupt character kills the job with SIGINT, as from a shell: the
 * keeper's helpers are no obstacle. */
START_TEST(test_ctrl_c_kills_the_job_with_sigint) {
        struct pty p;
        pty_open(&p);
        const char *argv[] = {"/bin/sh", "-c", "echo ready; read x; echo not-reached", NULL};
        mps_process *proc = start_ok(&p, argv, true, true);
        char buf[256];
        ck_assert(read_until(p.master, buf, sizeof(buf), "ready"));
        struct termios t;
        ck_assert_int_eq(tcgetattr(p.slave, &t), 0);
        ck_assert_int_eq(write(p.master, &t.c_cc[VINTR], 1), 1);
        ck_assert_int_eq(join_exitcode(proc), -SIGINT);
        mps_process_close(proc);
        pty_close(&p);
}
END_TEST

/* A job that signals its own group (kill 0) with what it ignores itself
 * leaves the anchor alone: ^Z still stops it afterwards. */
START_TEST(test_signals_to_the_jobs_group_spare_the_anchor) {
        struct pty p;
        pty_open(&p);
        const char *argv[] = {"/bin/sh", "-c",
                              "trap '' TERM HUP USR1; kill -TERM 0; kill -HUP 0; kill -USR1 0; "
                              "echo sent; read x; echo \"got $x\"",
                              NULL};
        mps_process *proc = start_ok(&p, argv, true, true);
        char buf[256];
        ck_assert(read_until(p.master, buf, sizeof(buf), "sent"));
        struct termios t;
        ck_assert_int_eq(tcgetattr(p.slave, &t), 0);
        ck_assert_int_eq(write(p.master, &t.c_cc[VSUSP], 1), 1);
        ck_assert_msg(wait_stop_signal(proc, SIGTSTP), "no SIGTSTP stop (state %d)",
                      mps_stop_signal(proc));
        ck_assert_int_eq(mps_send_signal(proc, SIGCONT), 0);
        ck_assert_int_eq(write(p.master, "six\n", 4), 4);
        ck_assert(read_until(p.master, buf, sizeof(buf), "got six"));
        ck_assert_int_eq(join_exitcode(proc), 0);
        mps_process_close(proc);
        pty_close(&p);
}
END_TEST

/* Background in its own terminal, the job stops with SIGTTIN when it
 * reads; back in the foreground and continued, the read completes. */
START_TEST(test_background_read_stops_with_sigttin) {
        struct pty p;
        pty_open(&p);
        const char *argv[] = {"/bin/sh", "-c", "kill -STOP $$; read x; echo \"got $x\"", NULL};
        mps_process *proc = start_ok(&p, argv, true, true);
        pid_t pid = mps_pid(proc);
        ck_assert(wait_stop_signal(proc, SIGSTOP));
        ck_assert_int_eq(tcgetpgrp(p.master), pid);
        ck_assert_int_eq(mps_set_terminal_foreground(proc, false), 0);
        ck_assert_msg(wait_foreground(p.master, pid, false), "still foreground");
        ck_assert_int_eq(mps_send_signal(proc, SIGCONT), 0);
        ck_assert_msg(wait_stop_signal(proc, SIGTTIN), "no SIGTTIN stop (state %d)",
                      mps_stop_signal(proc));
        ck_assert_int_eq(mps_set_terminal_foreground(proc, true), 0);
        ck_assert_msg(wait_foreground(p.master, pid, true), "not foreground again");
        ck_assert_int_eq(mps_send_signal(proc, SIGCONT), 0);
        ck_assert_int_eq(write(p.master, "three\n", 6), 6);
        char buf[256];
        ck_assert_msg(read_until(p.master, buf, sizeof(buf), "got three"), "got '%s'", buf);
        ck_assert_int_eq(join_exitcode(proc), 0);
        mps_process_close(proc);
        pty_close(&p);
}
END_TEST

/* Without report_stops, a stop changes nothing the client sees, and the
 * exit is reported once. */
START_TEST(test_without_report_stops_nothing_is_reported) {
        struct pty p;
        pty_open(&p);
        const char *argv[] = {"/bin/sh", "-c", "kill -STOP $$; exit 7", NULL};
        mps_process *proc = start_ok(&p, argv, true, false);
        ck_assert(wait_proc_stopped(mps_pid(proc)));
        /* A round trip: whatever the server sent before its answer has
         * been dispatched by then. */
        mps_server_stats st;
        ck_assert_int_eq(mps_client_stats(cli, &st), 0);
        ck_assert_int_eq(mps_stop_signal(proc), 0);
        ck_assert_int_eq(mps_send_signal(proc, SIGCONT), 0);
        ck_assert_int_eq(join_exitcode(proc), 7);
        ck_assert_int_eq(mps_client_stats(cli, &st), 0);
        ck_assert_int_eq(mps_client_dispatch(cli), 0); /* nothing more */
        mps_process_close(proc);
        pty_close(&p);
}
END_TEST

/* A job stopped and continued many times over, with its client not
 * reading meanwhile: the reports are coalesced (at most one queued), so
 * the client is not dropped even by a server that allows two queued
 * replies, and the latest state is what it ends up with. */
START_TEST(test_stop_continue_storm_is_coalesced) {
        struct pty p;
        pty_open(&p);
        const char *argv[] = {"/bin/sh", "-c", "read x; echo \"got $x\"", NULL};
        mps_process *proc = start_ok(&p, argv, false, true);
        pid_t pid = mps_pid(proc);
        for (int i = 0; i < 20000; i++) {
                kill(pid, SIGSTOP);
                kill(pid, SIGCONT);
        }
        kill(pid, SIGSTOP);
        ck_assert(wait_stop_signal(proc, SIGSTOP));
        ck_assert_int_eq(mps_send_signal(proc, SIGCONT), 0);
        ck_assert(wait_stop_signal(proc, 0));
        ck_assert_int_eq(write(p.master, "four\n", 5), 5);
        char buf[256];
        ck_assert(read_until(p.master, buf, sizeof(buf), "got four"));
        ck_assert_int_eq(join_exitcode(proc), 0);
        mps_process_close(proc);
        pty_close(&p);
}
END_TEST

/* ---- the keeper ---------------------------------------------------------------------- */

/* The job's session holds the keeper (the server's child, a group of its
 * own) and the anchor (in the job's group); the job itself has no child;
 * both are gone, reaped, once the job has ended. */
START_TEST(test_keeper_and_anchor_are_reaped) {
        struct pty p;
        pty_open(&p);
        const char *argv[] = {"/bin/sh", "-c", "read x", NULL};
        mps_process *proc = start_ok(&p, argv, true, false);
        pid_t pid = mps_pid(proc);
        pid_t members[8];
        size_t n = session_members(pid, members, 8);
        ck_assert_uint_eq(n, 2);
        pid_t keeper = 0, anchor = 0;
        for (size_t i = 0; i < n; i++) {
                struct stat_ids ids;
                ck_assert(read_stat(members[i], &ids));
                ck_assert_int_ne(ids.ppid, pid); /* never the job's child */
                if (ids.ppid == srv.pid) {
                        keeper = members[i];
                        ck_assert_int_eq(ids.pgrp, keeper);
                } else {
                        anchor = members[i];
                        ck_assert_int_eq(ids.pgrp, pid);
                }
        }
        ck_assert_int_gt(keeper, 0);
        ck_assert_int_gt(anchor, 0);
        struct stat_ids aids;
        ck_assert(read_stat(anchor, &aids));
        ck_assert_int_eq(aids.ppid, keeper);
        ck_assert_int_eq(write(p.master, "x\n", 2), 2);
        ck_assert_int_eq(join_exitcode(proc), 0);
        ck_assert_msg(tu_wait_reaped(keeper, 0, WAIT_MS), "keeper %d left", (int)keeper);
        ck_assert_msg(tu_wait_reaped(anchor, 0, WAIT_MS), "anchor %d left", (int)anchor);
        mps_process_close(proc);
        pty_close(&p);
}
END_TEST

/* Once the job has ended and the test's own slave is closed, the master
 * reads EIO: no helper of the server's holds the terminal. */
START_TEST(test_master_sees_the_end_of_the_terminal) {
        struct pty p;
        pty_open(&p);
        const char *argv[] = {"/bin/sh", "-c", "echo bye", NULL};
        mps_process *proc = start_ok(&p, argv, true, true);
        close(p.slave);
        p.slave = -1;
        ck_assert_int_eq(join_exitcode(proc), 0);
        char buf[256];
        ssize_t k = 0;
        long long end = now_ms() + WAIT_MS;
        while (now_ms() < end) {
                struct pollfd pfd = {.fd = p.master, .events = POLLIN};
                if (poll(&pfd, 1, (int)(end - now_ms())) <= 0)
                        break;
                k = read(p.master, buf, sizeof(buf));
                if (k < 0)
                        break;
        }
        ck_assert_int_eq(k, -1);
        ck_assert_int_eq(errno, EIO);
        mps_process_close(proc);
        pty_close(&p);
}
END_TEST

START_TEST(test_foreground_needs_a_controlling_terminal) {
        struct pty p;
        pty_open(&p);
        const char *argv[] = {"/bin/sh", "-c", "read x", NULL};
        mps_process *proc = start_ok(&p, argv, false, true);
        ck_assert_int_eq(mps_set_terminal_foreground(proc, false), -ENOTSUP);
        ck_assert_int_eq(write(p.master, "x\n", 2), 2);
        ck_assert_int_eq(join_exitcode(proc), 0);
        /* Ended: a no-op. */
        ck_assert_int_eq(mps_set_terminal_foreground(proc, true), -ENOTSUP);
        mps_process_close(proc);
        pty_close(&p);
}
END_TEST

/* ---- the codec ------------------------------------------------------------------------ */

static cJSON *parse(const char *text) {
        cJSON *j = cJSON_Parse(text);
        ck_assert_ptr_nonnull(j);
        return j;
}

/* What the peer decodes: the encoder's tree (with raw numbers) as text,
 * parsed again. */
static cJSON *reparse(cJSON *encoded) {
        ck_assert_ptr_nonnull(encoded);
        char *text = cJSON_PrintUnformatted(encoded);
        cJSON_Delete(encoded);
        cJSON *j = parse(text);
        free(text);
        return j;
}

START_TEST(test_wire_spawn_fields_round_trip_and_need_the_feature) {
        const char *argv[] = {"tty", NULL};
        struct mps__spawn m = {.path = "tty", .argv = argv, .argc = 1,
                               .controlling_terminal = true, .report_stops = true,
                               .umask = -1};
        ck_assert_uint_eq(mps__spawn_features(&m) & MPS_FEATURE_TERMINAL,
                          MPS_FEATURE_TERMINAL);
        cJSON *j = reparse(mps__spawn_encode(&m));
        struct mps__spawn out;
        char err[256];
        ck_assert_int_eq(mps__spawn_decode(j, 0, &out, err, sizeof(err)), 0);
        ck_assert(out.controlling_terminal);
        ck_assert(out.report_stops);
        ck_assert(out.new_session); /* implied */
        mps__spawn_done(&out);
        cJSON_Delete(j);
        /* Absent: false, and no feature needed. */
        struct mps__spawn plain = {.path = "tty", .argv = argv, .argc = 1, .umask = -1};
        ck_assert_uint_eq(mps__spawn_features(&plain) & MPS_FEATURE_TERMINAL, 0);
        j = parse("{\"v\":1,\"op\":\"spawn\",\"tag\":1,\"path\":\"x\",\"argv\":[\"x\"],"
                  "\"report_stops\":1}");
        ck_assert_int_eq(mps__spawn_decode(j, 0, &out, err, sizeof(err)), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "report_stops"));
        cJSON_Delete(j);
}
END_TEST

START_TEST(test_wire_stop_reports_and_foreground) {
        struct mps__stop_report r = {.tag = 3, .id = 9007199254740991ull, .signo = SIGTTIN};
        cJSON *j = mps__stop_report_encode(MPS_OP_STOPPED, &r);
        char *text = cJSON_PrintUnformatted(j);
        ck_assert_str_eq(text, "{\"v\":1,\"op\":\"stopped\",\"tag\":3,"
                               "\"id\":9007199254740991,\"signal\":21}");
        free(text);
        j = reparse(j);
        struct mps__stop_report back;
        char err[256];
        ck_assert_int_eq(mps__stop_report_decode(j, true, &back, err, sizeof(err)), 0);
        ck_assert_int_eq(back.signo, SIGTTIN);
        ck_assert_uint_eq(back.id, r.id);
        cJSON_Delete(j);
        j = mps__stop_report_encode(MPS_OP_CONTINUED, &r);
        text = cJSON_PrintUnformatted(j);
        ck_assert_str_eq(text, "{\"v\":1,\"op\":\"continued\",\"tag\":3,"
                               "\"id\":9007199254740991}");
        free(text);
        j = reparse(j);
        ck_assert_int_eq(mps__stop_report_decode(j, false, &back, err, sizeof(err)), 0);
        ck_assert_int_eq(back.signo, 0);
        /* A stop needs its signal. */
        ck_assert_int_eq(mps__stop_report_decode(j, true, &back, err, sizeof(err)), -EINVAL);
        cJSON_Delete(j);
        ck_assert_int_eq(mps__op_from_name("stopped"), MPS_OP_STOPPED);
        ck_assert_int_eq(mps__op_from_name("continued"), MPS_OP_CONTINUED);
        ck_assert_int_eq(mps__op_from_name("foreground"), MPS_OP_FOREGROUND);

        struct mps__foreground f = {.tag = 4, .id = 5, .foreground = false};
        j = reparse(mps__foreground_encode(&f));
        struct mps__foreground fb;
        ck_assert_int_eq(mps__foreground_decode(j, &fb, err, sizeof(err)), 0);
        ck_assert(!fb.foreground);
        ck_assert_uint_eq(fb.id, 5);
        cJSON_Delete(j);
        j = parse("{\"v\":1,\"op\":\"foreground\",\"tag\":4,\"id\":5}");
        ck_assert_int_eq(mps__foreground_decode(j, &fb, err, sizeof(err)), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "foreground"));
        cJSON_Delete(j);
}
END_TEST

/* A foreground request the server refuses comes back as an error, and
 * the server serves on: a bad one, another's job, a job without a
 * terminal. */
START_TEST(test_foreground_requests_refused_with_errors) {
        struct pty p;
        pty_open(&p);
        const char *argv[] = {"/bin/sh", "-c", "read x", NULL};
        mps_process *proc = start_ok(&p, argv, false, false);
        int sock = mps_client_fd(cli);
        const char *bad[] = {
                "{\"v\":1,\"op\":\"foreground\",\"tag\":71,\"id\":1,\"foreground\":\"yes\"}",
                "{\"v\":1,\"op\":\"foreground\",\"tag\":72,\"id\":999,\"foreground\":false}",
                NULL,
        };
        char third[128];
        snprintf(third, sizeof(third),
                 "{\"v\":1,\"op\":\"foreground\",\"tag\":73,\"id\":%llu,\"foreground\":false}",
                 (unsigned long long)mps_job_id(proc));
        const char *want[] = {"EINVAL", "ESRCH", "EOPNOTSUPP"}; /* = ENOTSUP */
        for (int i = 0; i < 3; i++) {
                const char *text = i < 2 ? bad[i] : third;
                cJSON *j = parse(text);
                ck_assert_int_eq(mps__wire_send(sock, j, NULL, 0), 0);
                cJSON_Delete(j);
                struct pollfd pfd = {.fd = sock, .events = POLLIN};
                ck_assert_int_eq(poll(&pfd, 1, WAIT_MS), 1);
                struct mps__msg msg;
                char err[256];
                ck_assert_int_eq(mps__wire_recv(sock, &msg, err, sizeof(err), NULL), 1);
                ck_assert_int_eq(msg.op, MPS_OP_ERROR);
                ck_assert_uint_eq(msg.tag, 71 + i);
                struct mps__error e;
                ck_assert_int_eq(mps__error_decode(msg.json, &e, err, sizeof(err)), 0);
                ck_assert_str_eq(mps__errno_name(e.err), want[i]);
                mps__msg_release(&msg);
        }
        ck_assert_int_eq(write(p.master, "x\n", 2), 2);
        ck_assert_int_eq(join_exitcode(proc), 0);
        mps_process_close(proc);
        pty_close(&p);
}
END_TEST

/* ---- a job of another user (a root server) ------------------------------------------ */

#define OTHER_USER "mpspawn-term"
static uid_t other_uid;
static gid_t other_gid;
static bool other_created;

static void other_users_setup(void) {
        if (geteuid() != 0)
                return;
        struct passwd *pw = tu_user(OTHER_USER, &other_created);
        other_uid = pw->pw_uid;
        other_gid = pw->pw_gid;
}

static void other_users_teardown(void) {
        if (geteuid() == 0)
                tu_user_done(OTHER_USER, other_created);
}

static void shared_server_setup(void) {
        const char *extra[] = {"--socket-mode", "0666", NULL};
        tu_server_start(&srv, extra);
        ck_assert_int_eq(chmod(srv.dir, 0755), 0);
}

static void shared_server_teardown(void) {
        tu_server_stop(&srv);
}

/* As the other user: its own pty, a terminal job through the root server;
 * the exit code says which step failed (0: all went as a direct run). */
static _Noreturn void other_client(void) {
        if (syscall(SYS_setgroups, 0, NULL) < 0 ||
            setresgid(other_gid, other_gid, other_gid) < 0 ||
            setresuid(other_uid, other_uid, other_uid) < 0)
                _exit(90);
        struct pty p;
        p.master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (p.master < 0 || grantpt(p.master) < 0 || unlockpt(p.master) < 0 ||
            ptsname_r(p.master, p.name, sizeof(p.name)) != 0 ||
            (p.slave = open(p.name, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0)
                _exit(91);
        if (mps_client_open(srv.path, &cli, NULL) < 0)
                _exit(92);
        const char *argv[] = {"/bin/sh", "-c", "echo \"uid $(id -u) $(tty)\"; read x; echo \"got $x\"",
                              NULL};
        mps_process *proc;
        if (start_job(&p, -1, argv, true, true, &proc) < 0)
                _exit(93);
        char buf[512], want[128];
        snprintf(want, sizeof(want), "uid %u %s", (unsigned)other_uid, p.name);
        if (!read_until(p.master, buf, sizeof(buf), want))
                _exit(94);
        struct termios t;
        if (tcgetattr(p.slave, &t) < 0 || write(p.master, &t.c_cc[VSUSP], 1) != 1 ||
            !wait_stop_signal(proc, SIGTSTP))
                _exit(95);
        if (mps_send_signal(proc, SIGCONT) < 0 || !wait_stop_signal(proc, 0) ||
            write(p.master, "five\n", 5) != 5 || !read_until(p.master, buf, sizeof(buf), "got five"))
                _exit(96);
        if (mps_join(proc, 30000) < 0 || mps_exitcode(proc) != 0)
                _exit(97);
        _exit(0);
}

/* A root server's job of another user: its terminal and job control work
 * as for the server's own user, and it runs as that user while its
 * keeper and anchor keep the server's credentials. */
START_TEST(test_another_users_terminal_job) {
        if (geteuid() != 0)
                return; /* needs a root server */
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
                other_client();
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "client status %#x", st);
}
END_TEST

static Suite *terminal_suite(void) {
        Suite *s = suite_create("terminal");
        TCase *t = tcase_create("terminal");
        tcase_add_checked_fixture(t, server_setup, server_teardown);
        tcase_set_timeout(t, 60);
        tcase_add_test(t, test_tty_names_the_slave);
        tcase_add_test(t, test_dev_tty_opens);
        tcase_add_test(t, test_session_and_foreground_are_the_jobs);
        tcase_add_test(t, test_without_the_option_no_controlling_terminal);
        tcase_add_test(t, test_fd0_not_a_terminal_fails_at_stage_terminal);
        tcase_add_test(t, test_sigstop_and_sigcont_are_reported);
        tcase_add_test(t, test_ctrl_z_stops_the_job_with_sigtstp);
        tcase_add_test(t, test_background_read_stops_with_sigttin);
        tcase_add_test(t, test_ctrl_c_kills_the_job_with_sigint);
        tcase_add_test(t, test_signals_to_the_jobs_group_spare_the_anchor);
        tcase_add_test(t, test_without_report_stops_nothing_is_reported);
        tcase_add_test(t, test_keeper_and_anchor_are_reaped);
        tcase_add_test(t, test_foreground_needs_a_controlling_terminal);
        tcase_add_test(t, test_master_sees_the_end_of_the_terminal);
        tcase_add_test(t, test_foreground_requests_refused_with_errors);
        suite_add_tcase(s, t);
        TCase *q = tcase_create("small_queue");
        tcase_add_checked_fixture(q, small_queue_server_setup, server_teardown);
        tcase_set_timeout(q, 60);
        tcase_add_test(q, test_stop_continue_storm_is_coalesced);
        suite_add_tcase(s, q);
        TCase *u = tcase_create("other_user");
        tcase_add_unchecked_fixture(u, other_users_setup, other_users_teardown);
        tcase_add_checked_fixture(u, shared_server_setup, shared_server_teardown);
        tcase_set_timeout(u, 60);
        tcase_add_test(u, test_another_users_terminal_job);
        suite_add_tcase(s, u);
        TCase *w = tcase_create("wire");
        tcase_add_test(w, test_wire_spawn_fields_round_trip_and_need_the_feature);
        tcase_add_test(w, test_wire_stop_reports_and_foreground);
        suite_add_tcase(s, w);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(terminal_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
