/* SPDX-License-Identifier: MIT */
/*
 * check_pty.c: mpspawn run from a terminal (issue 14 items 1-3), driven
 * through a pseudo-terminal of the test's own, as a user at a shell would
 * drive it. A small "shell" process (forked from the test) is the session
 * leader on the test's terminal and runs mpspawn in a process group of its
 * own in the foreground, as a job-control shell does; it reports every
 * wait status (stopped, continued, ended) to the test and does `fg`/`bg`
 * on request, so that the test can see what the shell would see.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "../include/mpspawn.h"
#include "testutil.h"

static struct tu_server server;

/* If set, mpspawn's stdout is this file instead of the terminal, as
 * `mpspawn cmd > file` gives it. */
static const char *term_stdout_file;
/* If set, mpspawn's stdin is this file instead of the terminal. */
static const char *term_stdin_file;
/* If set, the shell starts mpspawn in the background (`mpspawn ... &`). */
static bool term_background;

static void server_setup(void) {
        tu_server_start(&server, NULL);
}

static void server_teardown(void) {
        tu_server_stop(&server);
}

/* The test's end of a terminal with mpspawn running in it. */
struct term {
        int master;           /* the outer terminal, as the test's emulator */
        char slave_name[64];  /* its slave: mpspawn's (and the shell's) tty */
        pid_t shell;          /* the shell process (our child) */
        pid_t mpspawn;        /* mpspawn (the shell's child) */
        int events, commands; /* from and to the shell */
        char out[262144];     /* everything read from the master */
        size_t len, seen;     /* bytes in out; where the next expect looks */
};

/* The last bytes the terminal showed, for failure messages (Check's are
 * bounded). */
static const char *tail(const struct term *t) {
        return t->len > 300 ? t->out + t->len - 300 : t->out;
}

struct event {
        char type; /* 'P' mpspawn's pid, 'W' a wait status */
        int value;
};

/* The shell's loop: reports mpspawn's wait statuses; 'f' puts it in the
 * foreground and continues it, 'b' continues it in the background, as
 * `fg` and `bg` do; 'g' only puts it in the foreground (the first half of
 * `fg`, so that a test can act between the two). Ends when mpspawn has
 * ended or the test goes. */
static _Noreturn void shell_loop(pid_t pid, int events, int commands) {
        sigset_t chld;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
        for (;;) {
                int st;
                pid_t r;
                while ((r = waitpid(pid, &st, WNOHANG | WUNTRACED | WCONTINUED)) > 0) {
                        struct event e = {'W', st};
                        (void)!write(events, &e, sizeof(e));
                        if (WIFEXITED(st) || WIFSIGNALED(st))
                                _exit(0);
                }
                struct pollfd p[2] = {{.fd = sfd, .events = POLLIN},
                                      {.fd = commands, .events = POLLIN}};
                if (poll(p, 2, -1) < 0)
                        continue;
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof(si)) == sizeof(si))
                        ;
                char c;
                if ((p[1].revents & (POLLIN | POLLHUP)) && read(commands, &c, 1) != 1) {
                        kill(-pid, SIGKILL);
                        _exit(0);
                }
                if (p[1].revents & POLLIN) {
                        tcsetpgrp(0, c == 'f' || c == 'g' ? pid : getpgrp());
                        if (c != 'g')
                                kill(-pid, SIGCONT);
                }
        }
}

/* Starts mpspawn -s SERVER args... in a new terminal of rows x cols. */
static void term_start(struct term *t, const char *const *args, int rows, int cols) {
        const char *argv[32];
        size_t n = 0;
        int ev[2], cmd[2];
        argv[n++] = tu_cli();
        argv[n++] = "-s";
        argv[n++] = server.path;
        for (size_t i = 0; args[i] && n < 31; i++)
                argv[n++] = args[i];
        argv[n] = NULL;
        memset(t, 0, sizeof(*t));
        t->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        ck_assert_int_ge(t->master, 0);
        ck_assert_int_eq(grantpt(t->master), 0);
        ck_assert_int_eq(unlockpt(t->master), 0);
        ck_assert_int_eq(ptsname_r(t->master, t->slave_name, sizeof(t->slave_name)), 0);
        struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
        ck_assert_int_eq(ioctl(t->master, TIOCSWINSZ, &ws), 0);
        ck_assert_int_eq(pipe2(ev, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(cmd, O_CLOEXEC), 0);
        sigset_t chld;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        t->shell = fork();
        ck_assert_int_ge(t->shell, 0);
        if (t->shell == 0) {
                sigprocmask(SIG_BLOCK, &chld, NULL);
                setsid();
                int s = open(t->slave_name, O_RDWR);
                if (s < 0 || ioctl(s, TIOCSCTTY, 0) < 0)
                        _exit(120);
                dup2(s, 0), dup2(s, 1), dup2(s, 2);
                /* Not left to mpspawn: it passes on what it inherits, and
                 * the job would hold the caller's terminal through it. */
                if (s > 2)
                        close(s);
                signal(SIGTTOU, SIG_IGN);
                pid_t pid = fork();
                if (pid == 0) {
                        setpgid(0, 0);
                        if (!term_background)
                                tcsetpgrp(0, getpid());
                        signal(SIGTTOU, SIG_DFL);
                        /* As an interactive shell runs its jobs, whatever
                         * the test run inherited ignored. */
                        signal(SIGINT, SIG_DFL);
                        signal(SIGQUIT, SIG_DFL);
                        sigprocmask(SIG_UNBLOCK, &chld, NULL);
                        if (term_stdin_file) {
                                int f = open(term_stdin_file, O_RDONLY);
                                if (f < 0 || dup2(f, 0) < 0)
                                        _exit(121);
                        }
                        if (term_stdout_file) {
                                int f = open(term_stdout_file, O_WRONLY | O_CREAT | O_TRUNC,
                                             0600);
                                if (f < 0 || dup2(f, 1) < 0)
                                        _exit(121);
                        }
                        execv(argv[0], (char *const *)argv);
                        _exit(127);
                }
                setpgid(pid, pid);
                if (!term_background)
                        tcsetpgrp(0, pid);
                struct event e = {'P', pid};
                (void)!write(ev[1], &e, sizeof(e));
                shell_loop(pid, ev[1], cmd[0]);
        }
        close(ev[1]);
        close(cmd[0]);
        t->events = ev[0];
        t->commands = cmd[1];
        struct event e;
        struct pollfd p = {.fd = t->events, .events = POLLIN};
        ck_assert_int_eq(poll(&p, 1, 30000), 1);
        ck_assert_int_eq(read(t->events, &e, sizeof(e)), sizeof(e));
        ck_assert_int_eq(e.type, 'P');
        t->mpspawn = e.value;
}

/* Reads the terminal until want appears after what earlier expects
 * matched (bounded); fails the test with what came instead. */
static void term_expect(struct term *t, const char *want) {
        for (;;) {
                t->out[t->len] = '\0';
                char *hit = strstr(t->out + t->seen, want);
                if (hit) {
                        t->seen = (size_t)(hit - t->out) + strlen(want);
                        return;
                }
                struct pollfd p = {.fd = t->master, .events = POLLIN};
                ck_assert_msg(poll(&p, 1, 30000) == 1 && t->len + 1 < sizeof(t->out),
                              "expected '%s', terminal ends '%s'", want, tail(t));
                ssize_t n = read(t->master, t->out + t->len, sizeof(t->out) - 1 - t->len);
                ck_assert_msg(n > 0, "terminal closed; expected '%s', terminal ends '%s'", want,
                              tail(t));
                t->len += (size_t)n;
        }
}

static void term_send(struct term *t, const char *s) {
        ck_assert_int_eq(write(t->master, s, strlen(s)), (ssize_t)strlen(s));
}

/* The next wait status the shell saw of mpspawn (bounded). */
static int term_status(struct term *t) {
        struct event e;
        for (;;) {
                struct pollfd p[2] = {{.fd = t->events, .events = POLLIN},
                                      {.fd = t->master, .events = POLLIN}};
                ck_assert_msg(poll(p, 2, 30000) > 0, "no status from mpspawn; terminal ends '%s'",
                              tail(t));
                /* Keep the terminal drained meanwhile, so output never
                 * blocks what is to end. */
                if (p[1].revents & POLLIN) {
                        ssize_t n = read(t->master, t->out + t->len, sizeof(t->out) - 1 - t->len);
                        if (n > 0)
                                t->len += (size_t)n;
                }
                if (p[0].revents & POLLIN)
                        break;
        }
        ck_assert_int_eq(read(t->events, &e, sizeof(e)), sizeof(e));
        ck_assert_int_eq(e.type, 'W');
        return e.value;
}

static void term_command(struct term *t, char c) {
        ck_assert_int_eq(write(t->commands, &c, 1), 1);
}

static void term_end(struct term *t) {
        close(t->commands);
        int st;
        while (waitpid(t->shell, &st, 0) < 0 && errno == EINTR)
                ;
        close(t->events);
        close(t->master);
}

/* The terminal's local modes now (bounded polling until want_raw says
 * whether ICANON is to be off). */
static tcflag_t term_wait_lflag(struct term *t, bool want_raw) {
        struct termios tio;
        for (int i = 0; i < 3000; i++) {
                ck_assert_int_eq(tcgetattr(t->master, &tio), 0);
                if (!(tio.c_lflag & ICANON) == want_raw)
                        return tio.c_lflag;
                struct pollfd p = {.fd = t->events, .events = POLLIN};
                ck_assert_int_eq(poll(&p, 1, 10), 0); /* mpspawn still runs */
        }
        ck_abort_msg("the terminal did not become %s", want_raw ? "raw" : "cooked");
        return 0;
}

START_TEST(test_tty_is_a_pty_of_its_own) {
        struct term t;
        term_start(&t, (const char *[]){"sh", "-c", "tty; test -r /dev/tty && echo ctty-ok",
                                        NULL},
                   24, 80);
        term_expect(&t, "/dev/pts/");
        char name[64];
        ck_assert_int_eq(sscanf(t.out + t.seen - strlen("/dev/pts/"), "%63s", name), 1);
        ck_assert_str_ne(name, t.slave_name);
        term_expect(&t, "ctty-ok");
        int st = term_status(&t);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
        term_end(&t);
}
END_TEST

/* `mpspawn cmd > file` on a terminal: the job has the pty as 0 and 2 and
 * the file as 1, as ssh -t and sudo's use_pty do. */
START_TEST(test_a_redirected_fd_stays_what_it_was) {
        char dir[64], file[100], buf[64];
        tu_tmpdir(dir, sizeof(dir));
        snprintf(file, sizeof(file), "%s/out", dir);
        term_stdout_file = file;
        struct term t;
        term_start(&t, (const char *[]){"sh", "-c",
                                        "tty >&2; [ -t 1 ] || echo one-is-no-tty >&2; "
                                        "echo to-the-file",
                                        NULL},
                   24, 80);
        term_stdout_file = NULL;
        term_expect(&t, "/dev/pts/");
        term_expect(&t, "one-is-no-tty");
        int st = term_status(&t);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
        term_end(&t);
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        ck_assert_int_ge(n, 0);
        buf[n] = '\0';
        ck_assert_str_eq(buf, "to-the-file\n");
        close(fd);
        unlink(file);
        rmdir(dir);
}
END_TEST

/* The job holds no descriptor of the caller's terminal. */
START_TEST(test_job_cannot_reach_the_callers_terminal) {
        struct term t;
        char outer[80];
        term_start(&t, (const char *[]){"sh", "-c", "ls -l /proc/$$/fd; echo listed", NULL}, 24,
                   80);
        term_expect(&t, "listed");
        snprintf(outer, sizeof(outer), "-> %s\r", t.slave_name);
        ck_assert_msg(!strstr(t.out, outer), "the job holds %s: %s", t.slave_name, tail(&t));
        ck_assert_ptr_nonnull(strstr(t.out, "-> /dev/pts/"));
        int st = term_status(&t);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
        term_end(&t);
}
END_TEST

START_TEST(test_no_pty_shares_the_terminal_without_a_controlling_one) {
        struct term t;
        term_start(&t, (const char *[]){"--no-pty", "sh", "-c",
                                        "tty; (: </dev/tty) 2>/dev/null || echo no-ctty", NULL},
                   24, 80);
        term_expect(&t, t.slave_name);
        term_expect(&t, "no-ctty");
        int st = term_status(&t);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
        term_end(&t);
}
END_TEST

START_TEST(test_window_size_at_start_and_on_sigwinch) {
        struct term t;
        term_start(&t, (const char *[]){"sh", "-c", "stty size; read x; stty size", NULL}, 31,
                   101);
        term_expect(&t, "31 101");
        term_wait_lflag(&t, true);
        /* The kernel sends SIGWINCH to mpspawn (the foreground) at once;
         * mpspawn handles its signals before relaying the input below. */
        struct winsize ws = {.ws_row = 42, .ws_col = 123};
        ck_assert_int_eq(ioctl(t.master, TIOCSWINSZ, &ws), 0);
        term_send(&t, "x\r");
        term_expect(&t, "42 123");
        int st = term_status(&t);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
        term_end(&t);
}
END_TEST

START_TEST(test_input_reaches_read_and_ctrl_d_ends_cat) {
        struct term t;
        term_start(&t, (const char *[]){"sh", "-c",
                                        "read x; echo \"got <$x>\"; cat; echo cat-done", NULL},
                   24, 80);
        term_wait_lflag(&t, true);
        term_send(&t, "hello\r");
        term_expect(&t, "got <hello>");
        term_send(&t, "abc\r");
        term_expect(&t, "abc");
        term_send(&t, "\004");
        term_expect(&t, "cat-done");
        int st = term_status(&t);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
        term_end(&t);
}
END_TEST

START_TEST(test_termios_restored_after_exit) {
        struct term t;
        struct termios after;
        term_start(&t, (const char *[]){"sh", "-c", "read x; exit 5", NULL}, 24, 80);
        tcflag_t raw = term_wait_lflag(&t, true);
        ck_assert(!(raw & ECHO));
        term_send(&t, "x\r");
        int st = term_status(&t);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 5, "status %#x", st);
        ck_assert_int_eq(tcgetattr(t.master, &after), 0);
        ck_assert(after.c_lflag & ICANON);
        ck_assert(after.c_lflag & ECHO);
        ck_assert(after.c_oflag & OPOST);
        term_end(&t);
}
END_TEST

/* Killed by SIGTERM (forwarded, so the job dies of it and mpspawn with
 * it) or by a signal it does not forward (SIGALRM: the handler restores
 * and re-raises), the terminal is as it was. */
static void check_restored_when_killed(int sig) {
        struct term t;
        term_start(&t, (const char *[]){"sleep", "30", NULL}, 24, 80);
        term_wait_lflag(&t, true);
        ck_assert_int_eq(kill(t.mpspawn, sig), 0);
        int st = term_status(&t);
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == sig, "status %#x", st);
        struct termios after;
        ck_assert_int_eq(tcgetattr(t.master, &after), 0);
        ck_assert(after.c_lflag & ICANON);
        ck_assert(after.c_lflag & ECHO);
        term_end(&t);
}

START_TEST(test_termios_restored_when_killed_by_sigterm) {
        check_restored_when_killed(SIGTERM);
}
END_TEST

START_TEST(test_termios_restored_when_killed_by_sigalrm) {
        check_restored_when_killed(SIGALRM);
}
END_TEST

START_TEST(test_job_killed_by_sigsegv_kills_mpspawn_with_it) {
        struct term t;
        term_start(&t, (const char *[]){"sh", "-c", "kill -SEGV $$", NULL}, 24, 80);
        int st = term_status(&t);
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "status %#x", st);
        ck_assert(!WCOREDUMP(st));
        term_end(&t);
}
END_TEST

START_TEST(test_output_after_exit_is_drained) {
        /* 160 KB, far more than the pty or the relay buffer hold, written
         * just before the job ends. */
        struct term t;
        term_start(&t, (const char *[]){"sh", "-c",
                                        "i=0; while [ $i -lt 2000 ]; do "
                                        "echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done; "
                                        "echo the-end",
                                        NULL},
                   24, 80);
        term_expect(&t, "line-1999-");
        term_expect(&t, "the-end");
        int st = term_status(&t);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
        term_end(&t);
}
END_TEST

/* With a pty, INT sent with kill(2) (not typed) is forwarded: the job
 * dies of it, and mpspawn with it. */
START_TEST(test_sigint_sent_with_kill_is_forwarded) {
        struct term t;
        term_start(&t, (const char *[]){"sh", "-c", "echo ready; exec sleep 30", NULL}, 24,
                   80);
        term_expect(&t, "ready");
        term_wait_lflag(&t, true);
        ck_assert_int_eq(kill(t.mpspawn, SIGINT), 0);
        int st = term_status(&t);
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT, "status %#x", st);
        term_end(&t);
}
END_TEST

/* stdin not the terminal, stdout the terminal: the job's pty did the
 * output processing (ONLCR), so the terminal must not do it again ("\r\r\n"
 * before); it keeps ISIG, so ^C there signals mpspawn, which forwards it;
 * and OPOST is back once mpspawn has ended. */
START_TEST(test_output_only_relay_has_no_double_cr_and_keeps_ctrl_c) {
        struct term t;
        term_stdin_file = "/dev/null";
        term_start(&t,
                   (const char *[]){"sh", "-c", "printf 'a\\nb\\nready\\n'; exec sleep 30", NULL},
                   24, 80);
        term_stdin_file = NULL;
        term_expect(&t, "ready");
        ck_assert_msg(strstr(t.out, "a\r\nb\r\nready") != NULL, "terminal shows '%s'", tail(&t));
        struct termios tio;
        ck_assert_int_eq(tcgetattr(t.master, &tio), 0);
        ck_assert(tio.c_lflag & ISIG);
        ck_assert(tio.c_lflag & ICANON);
        term_send(&t, "\003");
        int st = term_status(&t);
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT, "status %#x", st);
        ck_assert_int_eq(tcgetattr(t.master, &tio), 0);
        ck_assert(tio.c_oflag & OPOST);
        term_end(&t);
}
END_TEST

/* ---- job control: these need the job's controlling terminal ------------- */

/* The job's state letter in /proc (bounded polling until it is want). */
static void wait_job_state(pid_t job, char want) {
        for (int i = 0; i < 3000; i++) {
                if (tu_proc_state(job, NULL) == want)
                        return;
                poll(NULL, 0, 10);
        }
        ck_abort_msg("job %d never reached state %c", (int)job, want);
}

/* Whether sig is pending for process pid (shared or its own), by /proc. */
static bool signal_pending(pid_t pid, int sig) {
        char path[64], buf[4096];
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        ck_assert_int_gt(n, 0);
        buf[n] = '\0';
        unsigned long long mask = 0, one;
        for (const char *key = "SigPnd:"; key; key = key[1] == 'i' ? "ShdPnd:" : NULL) {
                const char *at = strstr(buf, key);
                if (at && sscanf(at + strlen(key), "%llx", &one) == 1)
                        mask |= one;
        }
        return mask & (1ull << (sig - 1));
}

/* ^C typed while mpspawn is in the foreground but has not made the
 * terminal raw (here: after the shell gave it the terminal for `fg` and
 * before it is continued) is a signal to mpspawn alone; the job never saw
 * the key, and must get the signal. (It was dropped, the job ran on.) */
START_TEST(test_ctrl_c_typed_while_cooked_ends_the_job) {
        struct term t;
        term_start(&t, (const char *[]){"sh", "-c", "echo pid=$$; exec sleep 30", NULL}, 24, 80);
        term_expect(&t, "pid=");
        pid_t job = atoi(t.out + t.seen);
        ck_assert_int_gt(job, 0);
        term_wait_lflag(&t, true);
        term_send(&t, "\032");
        int st = term_status(&t);
        ck_assert_msg(WIFSTOPPED(st) && WSTOPSIG(st) == SIGTSTP, "status %#x", st);
        wait_job_state(job, 'T');
        term_wait_lflag(&t, false);
        term_command(&t, 'g');
        int i;
        for (i = 0; i < 3000 && tcgetpgrp(t.master) != t.mpspawn; i++)
                poll(NULL, 0, 1);
        ck_assert_int_eq(tcgetpgrp(t.master), t.mpspawn);
        term_send(&t, "\003");
        for (i = 0; i < 3000 && !signal_pending(t.mpspawn, SIGINT); i++)
                poll(NULL, 0, 1);
        ck_assert_msg(signal_pending(t.mpspawn, SIGINT), "^C did not signal mpspawn");
        term_command(&t, 'f');
        st = term_status(&t);
        ck_assert_msg(WIFCONTINUED(st), "status %#x", st);
        st = term_status(&t);
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT, "status %#x", st);
        term_end(&t);
}
END_TEST

/* What is typed right after ^C, in the same burst, is the shell's next
 * command: mpspawn must leave it in the terminal (it took it and gave it
 * to the dying job), with its Enter a newline, as typed in a cooked
 * terminal (raw, the CR stayed a CR and the shell waited for more). */
START_TEST(test_typeahead_after_ctrl_c_stays_for_the_shell) {
        struct term t;
        term_start(&t, (const char *[]){"sh", "-c", "echo ready; exec sleep 30", NULL}, 24, 80);
        term_expect(&t, "ready");
        term_wait_lflag(&t, true);
        term_send(&t, "\003echo next\r");
        int st = term_status(&t);
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT, "status %#x", st);
        int s = open(t.slave_name, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        ck_assert_int_ge(s, 0);
        char line[64] = "";
        ssize_t n = read(s, line, sizeof(line) - 1);
        close(s);
        ck_assert_msg(n == 10 && memcmp(line, "echo next\n", 10) == 0,
                      "the terminal holds %zd bytes: '%s'", n, n > 0 ? line : "");
        term_end(&t);
}
END_TEST

/* A job that survives ^C (it ignores INT, as a shell or an editor handles
 * it) goes on getting what is typed after it, once the short pause ends. */
START_TEST(test_input_after_ctrl_c_reaches_a_job_that_survives_it) {
        struct term t;
        term_start(&t, (const char *[]){"sh", "-c",
                                        "trap '' INT; echo ready; read x; echo \"got <$x>\"", NULL},
                   24, 80);
        term_expect(&t, "ready");
        term_wait_lflag(&t, true);
        term_send(&t, "\003hello\r");
        term_expect(&t, "got <hello>");
        int st = term_status(&t);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
        term_end(&t);
}
END_TEST

START_TEST(test_ctrl_c_kills_mpspawn_with_sigint) {
        struct term t;
        term_start(&t, (const char *[]){"sh", "-c", "echo ready; exec sleep 30", NULL}, 24,
                   80);
        term_expect(&t, "ready");
        term_wait_lflag(&t, true);
        term_send(&t, "\003");
        int st = term_status(&t);
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT, "status %#x", st);
        term_end(&t);
}
END_TEST

START_TEST(test_ctrl_z_stops_both_and_fg_resumes_both) {
        struct term t;
        term_start(&t, (const char *[]){"sh", "-c", "echo pid=$$; read x; echo \"got <$x>\"",
                                        NULL},
                   24, 80);
        term_expect(&t, "pid=");
        pid_t job = atoi(t.out + t.seen);
        ck_assert_int_gt(job, 0);
        term_wait_lflag(&t, true);
        term_send(&t, "\032");
        int st = term_status(&t);
        ck_assert_msg(WIFSTOPPED(st) && WSTOPSIG(st) == SIGTSTP, "status %#x", st);
        wait_job_state(job, 'T');
        /* Stopped, mpspawn gave the terminal back as it was. */
        term_wait_lflag(&t, false);
        term_command(&t, 'f');
        st = term_status(&t);
        ck_assert_msg(WIFCONTINUED(st), "status %#x", st);
        term_wait_lflag(&t, true);
        term_send(&t, "again\r");
        term_expect(&t, "got <again>");
        st = term_status(&t);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
        term_end(&t);
}
END_TEST

START_TEST(test_background_read_stops_with_sigttin) {
        struct term t;
        term_start(&t, (const char *[]){"sh", "-c",
                                        "echo ready; read x; read y; echo \"got <$y>\"", NULL},
                   24, 80);
        term_expect(&t, "ready");
        term_wait_lflag(&t, true);
        term_send(&t, "\032");
        int st = term_status(&t);
        ck_assert_msg(WIFSTOPPED(st) && WSTOPSIG(st) == SIGTSTP, "status %#x", st);
        /* bg: the job's read must stop it (and so us), not take input. */
        term_command(&t, 'b');
        st = term_status(&t);
        ck_assert_msg(WIFCONTINUED(st), "status %#x", st);
        st = term_status(&t);
        ck_assert_msg(WIFSTOPPED(st) && WSTOPSIG(st) == SIGTTIN, "status %#x", st);
        term_command(&t, 'f');
        st = term_status(&t);
        ck_assert_msg(WIFCONTINUED(st), "status %#x", st);
        term_wait_lflag(&t, true);
        term_send(&t, "one\rtwo\r");
        term_expect(&t, "got <two>");
        st = term_status(&t);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
        term_end(&t);
}
END_TEST

/* `mpspawn sh -c 'read x' &`: the job's read stops it and mpspawn with
 * SIGTTIN, instead of taking the shell's input; fg then gives it that. */
START_TEST(test_started_in_the_background_stops_on_read) {
        struct term t;
        term_background = true;
        /* The job is put in the background of its terminal just after it
         * started (asynchronously: a read begun before that would wait
         * instead of stopping, a known race); so it waits for that first,
         * by bounded polling of its /proc stat (pgrp is field 5, the
         * terminal's foreground group field 8). */
        term_start(&t, (const char *[]){"sh", "-c",
                                        "i=0; while [ $i -lt 3000 ] && [ \"$(cut -d' ' -f5 "
                                        "/proc/$$/stat)\" = \"$(cut -d' ' -f8 /proc/$$/stat)\" ]; "
                                        "do i=$((i+1)); done; read x; echo \"got <$x>\"",
                                        NULL},
                   24, 80);
        term_background = false;
        int st = term_status(&t);
        ck_assert_msg(WIFSTOPPED(st) && WSTOPSIG(st) == SIGTTIN, "status %#x", st);
        /* Never raw: the terminal was the shell's all along. */
        struct termios tio;
        ck_assert_int_eq(tcgetattr(t.master, &tio), 0);
        ck_assert(tio.c_lflag & ICANON);
        term_command(&t, 'f');
        st = term_status(&t);
        ck_assert_msg(WIFCONTINUED(st), "status %#x", st);
        term_wait_lflag(&t, true);
        term_send(&t, "z\r");
        term_expect(&t, "got <z>");
        st = term_status(&t);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
        term_end(&t);
}
END_TEST

static Suite *pty_suite(void) {
        Suite *s = suite_create("pty");
        TCase *t = tcase_create("relay");
        tcase_set_timeout(t, 120);
        tcase_add_checked_fixture(t, server_setup, server_teardown);
        tcase_add_test(t, test_tty_is_a_pty_of_its_own);
        tcase_add_test(t, test_no_pty_shares_the_terminal_without_a_controlling_one);
        tcase_add_test(t, test_a_redirected_fd_stays_what_it_was);
        tcase_add_test(t, test_job_cannot_reach_the_callers_terminal);
        tcase_add_test(t, test_window_size_at_start_and_on_sigwinch);
        tcase_add_test(t, test_input_reaches_read_and_ctrl_d_ends_cat);
        tcase_add_test(t, test_termios_restored_after_exit);
        tcase_add_test(t, test_termios_restored_when_killed_by_sigterm);
        tcase_add_test(t, test_termios_restored_when_killed_by_sigalrm);
        tcase_add_test(t, test_job_killed_by_sigsegv_kills_mpspawn_with_it);
        tcase_add_test(t, test_output_after_exit_is_drained);
        tcase_add_test(t, test_sigint_sent_with_kill_is_forwarded);
        tcase_add_test(t, test_output_only_relay_has_no_double_cr_and_keeps_ctrl_c);
        suite_add_tcase(s, t);

        TCase *j = tcase_create("job-control");
        tcase_set_timeout(j, 120);
        tcase_add_checked_fixture(j, server_setup, server_teardown);
        tcase_add_test(j, test_ctrl_c_kills_mpspawn_with_sigint);
        tcase_add_test(j, test_ctrl_z_stops_both_and_fg_resumes_both);
        tcase_add_test(j, test_ctrl_c_typed_while_cooked_ends_the_job);
        tcase_add_test(j, test_typeahead_after_ctrl_c_stays_for_the_shell);
        tcase_add_test(j, test_input_after_ctrl_c_reaches_a_job_that_survives_it);
        tcase_add_test(j, test_background_read_stops_with_sigttin);
        tcase_add_test(j, test_started_in_the_background_stops_on_read);
        suite_add_tcase(s, j);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(pty_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
