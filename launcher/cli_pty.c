/* SPDX-License-Identifier: MIT */
/*
 * cli_pty.c: the job's own pseudo-terminal, and the relay between it and
 * the caller's terminal, as sudo's use_pty and `ssh -t` do it.
 *
 * Which fds get the slave: every one of 0-2 that is a terminal (a file or
 * pipe stays what it was: `mpspawn cmd > file` gives the job the pty as 0
 * and 2 and the file as 1), or all three with --pty. When fd 0 is the
 * slave it is also the job's controlling terminal, in a session of its
 * own. The job never gets an fd of the caller's terminal: only the slave
 * is mapped, and our own descriptors are close-on-exec.
 *
 * The relay never blocks: the master is non-blocking, and so is our own
 * open file description of the caller's terminal (we reopen it by name, so
 * the shell's descriptions keep their flags); each direction has one
 * bounded buffer, and a full buffer stops reading its source, so a slow
 * stdout slows the job down instead of growing memory.
 *
 * Typeahead: a user types the next command right after ^C or ^Z, for the
 * shell. Run directly, it stays in the terminal for the shell; here we
 * would take it and hand it to a job that is about to end or stop. So
 * after a byte that is one of the job terminal's signal keys (VINTR, VQUIT,
 * VSUSP, with ISIG on) we read no further, until the job has been seen to
 * end or stop (then the bytes are the shell's) or a moment has passed (a
 * job that handles the signal, an inner shell or an editor, must go on
 * getting its input). To never take a byte beyond the key, input is read
 * a byte at a time while the job's terminal has ISIG on (only what the
 * terminal holds, so never blocking).
 *
 * The caller's terminal is in raw mode only while we relay its input in
 * its foreground; it is put back on every way out: the normal end, errors
 * (atexit), stops, and fatal signals (a handler restores, then lets the
 * signal kill us). Only SIGKILL leaves it raw, as it does for sudo.
 */
#include "cli_pty.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "fdutil.h"

/* One direction of the relay: bytes read and not yet written. */
struct relay_buf {
        char data[4096];
        size_t off, len;
};

struct mps__pty {
        int master, slave;
        /* Our own description of the caller's terminal (non-blocking when
         * the reopen worked, term_blocking otherwise), or -1 with --pty
         * and no terminal at all. */
        int term;
        bool term_blocking;
        int in_fd;  /* what we relay to the job: term, 0, or -1 (none) */
        int out_fd; /* where the job's output goes: term or 1 */
        bool in_is_term, in_enabled, in_eof, last_was_newline;
        bool master_eof, out_broken;
        bool raw, have_saved;
        bool outer_icrnl; /* raw, but with ICRNL, as the job's terminal has */
        bool stopped_for; /* we stopped ourselves for the job's current stop */
        bool cont_sent;   /* ... and have continued the job since */
        /* When we relayed a signal key and stopped reading (0: reading);
         * see input_paused. */
        uint64_t paused_at;
        pid_t job;
        struct termios saved;
        struct relay_buf to_job, to_out;
        int pi_in, pi_master, pi_out; /* their indexes in the poll array */
};

/* What a signal handler needs to restore the terminal: set before the
 * terminal goes raw, cleared once it is back. */
static volatile sig_atomic_t restore_armed;
static int restore_fd = -1;
static struct termios restore_termios;

/* The fatal signals not on our signalfd: each restores the terminal and
 * then kills us as it would have. */
static const int fatal_signals[] = {SIGALRM, SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ,
                                    SIGPIPE, SIGSEGV,   SIGBUS,  SIGFPE,  SIGILL,
                                    SIGABRT, SIGSYS,    SIGTRAP};

void mps__pty_restore_terminal(void) {
        if (restore_armed) {
                int e = errno;
                tcsetattr(restore_fd, TCSANOW, &restore_termios);
                restore_armed = 0;
                errno = e;
        }
}

/* SA_RESETHAND made the disposition default again: once this returns,
 * the re-raised signal (blocked while we run) does what it would have. */
static void on_fatal_signal(int sig) {
        mps__pty_restore_terminal();
        raise(sig);
}

static void install_fatal_handlers(void) {
        static bool done;
        if (done)
                return;
        done = true;
        atexit(mps__pty_restore_terminal);
        for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(int); i++) {
                struct sigaction old, sa = {.sa_handler = on_fatal_signal,
                                            .sa_flags = SA_RESETHAND};
                sigemptyset(&sa.sa_mask);
                /* An ignored signal stays ignored: the job inherits it. */
                if (sigaction(fatal_signals[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL)
                        sigaction(fatal_signals[i], &sa, NULL);
        }
}

void mps__pty_add_signals(sigset_t *set) {
        sigaddset(set, SIGWINCH);
        sigaddset(set, SIGCONT);
        sigaddset(set, SIGTSTP);
        /* Blocked, TTIN and TTOU never stop us for touching the terminal
         * from the background (the kernel then fails the call instead), so
         * that we can always restore it; sent with kill, they reach the
         * job. */
        sigaddset(set, SIGTTIN);
        sigaddset(set, SIGTTOU);
}

/* Whether the job's terminal maps CR to NL on input, and nothing else
 * that would make doing it twice differ from doing it once. The master's
 * termios is the slave's. */
static bool job_wants_icrnl(const struct mps__pty *t) {
        struct termios tio;
        return tcgetattr(t->master, &tio) == 0 && (tio.c_iflag & ICRNL) &&
               !(tio.c_iflag & (INLCR | IGNCR));
}

/* The caller's terminal raw, as we relay its input: all processing is the
 * job terminal's, but for ICRNL when the job's terminal has it (see
 * mps__pty_pollfds: typeahead left in it after ^C is the shell's, and must
 * end its line as if typed there). */
static void raw_termios(const struct mps__pty *t, struct termios *raw) {
        *raw = t->saved;
        cfmakeraw(raw);
        raw->c_cc[VMIN] = 1;
        raw->c_cc[VTIME] = 0;
        if (t->outer_icrnl)
                raw->c_iflag |= ICRNL;
}

/* Called only in the foreground (tcsetattr from the background would be
 * refused). Relaying input, the caller's terminal goes raw. Relaying only
 * output to it (stdin a pipe or a file), only OPOST goes off: the job's
 * pty did the output processing (ONLCR) already, and the terminal would
 * turn its "\r\n" into "\r\r\n"; ISIG and the rest stay, so that ^C there
 * still signals us, and we forward it. t->raw says either changed it. */
static void set_raw(struct mps__pty *t) {
        bool output_only = !t->in_is_term && t->out_fd == t->term && t->term >= 0;
        if (t->raw || !t->have_saved || !(t->in_is_term || output_only))
                return;
        struct termios raw = t->saved;
        if (output_only) {
                raw.c_oflag &= ~(tcflag_t)OPOST;
        } else {
                t->outer_icrnl = job_wants_icrnl(t);
                raw_termios(t, &raw);
        }
        restore_termios = t->saved;
        restore_fd = t->term;
        restore_armed = 1;
        if (tcsetattr(t->term, TCSADRAIN, &raw) == 0)
                t->raw = true;
        else
                restore_armed = 0;
}

static void unset_raw(struct mps__pty *t) {
        if (!t->raw)
                return;
        t->raw = false;
        mps__pty_restore_terminal();
}

/* mpspawn may read the caller's terminal: it is in its foreground (or the
 * terminal is not our controlling one, and reading cannot stop us). */
static bool in_foreground(const struct mps__pty *t) {
        if (t->term < 0)
                return true;
        pid_t pg = tcgetpgrp(t->term);
        return pg < 0 || pg == getpgrp();
}

static void copy_winsize(const struct mps__pty *t, int to) {
        struct winsize ws;
        if (t->term >= 0 && ioctl(t->term, TIOCGWINSZ, &ws) == 0)
                ioctl(to, TIOCSWINSZ, &ws);
}

/* The state letter of process pid in /proc/PID/stat ('R', 'T', 'Z'...),
 * 'X' when it is gone (reaped), or 0 when that cannot be told. */
static char job_state(pid_t pid) {
        char path[64], buf[512];
        if (pid <= 0)
                return 0;
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                /* Gone, unless there is no /proc to tell. */
                bool gone = (errno == ENOENT || errno == ESRCH) &&
                            access("/proc/self/stat", F_OK) == 0;
                return gone ? 'X' : 0;
        }
        ssize_t n = mps__read_retry(fd, buf, sizeof(buf) - 1);
        mps__safe_close(fd);
        if (n <= 0)
                return n < 0 && errno == ESRCH ? 'X' : 0;
        buf[n] = '\0';
        const char *paren = strrchr(buf, ')');
        return paren && paren[1] == ' ' ? paren[2] : 0;
}

/* How long input stays paused after a signal key (see the top of the
 * file): at least PAUSE_NS; then, while the job is seen dead or stopped
 * (its report is on its way, through a busy server perhaps), up to
 * PAUSE_MAX_NS. */
#define PAUSE_NS 200000000ull
#define PAUSE_MAX_NS 2000000000ull

static bool input_paused(const struct mps__pty *t) {
        if (t->paused_at == 0)
                return false;
        uint64_t waited = mps__now_ns() - t->paused_at;
        if (waited < PAUSE_NS)
                return true;
        if (waited >= PAUSE_MAX_NS)
                return false;
        char st = job_state(t->job);
        return st == 'Z' || st == 'X' || st == 'T' || st == 't';
}

/* Our own non-blocking open file description of the terminal at fd (the
 * shell's keeps its flags), or, if it cannot be reopened, a duplicate
 * (*ret_blocking then says writes must stay small). At >= 3 either way. */
static int own_terminal(int fd, bool *ret_blocking) {
        char name[PATH_MAX];
        struct stat a, b;
        if (ttyname_r(fd, name, sizeof(name)) == 0) {
                int o = open(name, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
                if (o >= 0 && fstat(o, &a) == 0 && fstat(fd, &b) == 0 &&
                    a.st_rdev == b.st_rdev) {
                        int moved = mps__fd_move_at_least(o, 3);
                        if (moved >= 0) {
                                *ret_blocking = false;
                                return moved;
                        }
                }
                mps__safe_close(o);
        }
        *ret_blocking = true;
        return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

/* A new pty pair into t: a non-blocking master and a slave, never at 0-2. */
static int open_pair(struct mps__pty *t) {
        char name[PATH_MAX];
        int m = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (m < 0)
                return -errno;
        t->master = mps__fd_move_at_least(m, 3);
        if (t->master < 0) {
                mps__safe_close(m);
                return t->master;
        }
        if (grantpt(t->master) < 0 || unlockpt(t->master) < 0)
                return -errno;
        int r = ptsname_r(t->master, name, sizeof(name));
        if (r != 0)
                return -r;
        int s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (s < 0)
                return -errno;
        t->slave = mps__fd_move_at_least(s, 3);
        if (t->slave < 0) {
                mps__safe_close(s);
                return t->slave;
        }
        return 0;
}

/* Maps the slave into spec as the fds that get it; fd 0 makes it the
 * controlling terminal. */
static int give_slave(struct mps__pty *t, mps_spec *spec, const bool gets[3]) {
        for (int i = 0; i < 3; i++)
                if (gets[i] && mps_spec_map_fd(spec, i, t->slave) < 0)
                        return -EINVAL;
        /* Stops are reported either way: a stop signal we pass on stops
         * the job, and we then stop with it. */
        int r = mps_spec_set_report_stops(spec, true);
        if (r == 0 && gets[0])
                r = mps_spec_set_controlling_terminal(spec, true);
        return r;
}

bool mps__pty_wanted(enum mps__pty_mode mode) {
        return mode == MPS__PTY_FORCE ||
               (mode == MPS__PTY_AUTO && (isatty(0) == 1 || isatty(1) == 1));
}

int mps__pty_open(enum mps__pty_mode mode, mps_spec *spec, struct mps__pty **ret) {
        bool tty[3], gets[3];
        *ret = NULL;
        if (!mps__pty_wanted(mode))
                return 0;
        for (int i = 0; i < 3; i++)
                tty[i] = isatty(i) == 1;
        for (int i = 0; i < 3; i++)
                gets[i] = mode == MPS__PTY_FORCE || tty[i];

        struct mps__pty *t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->master = t->slave = t->term = t->in_fd = -1;
        t->last_was_newline = true;
        int r = open_pair(t);
        if (r < 0)
                goto fail;
        int src = tty[0] ? 0 : tty[1] ? 1 : tty[2] ? 2 : -1;
        if (src >= 0) {
                t->term = own_terminal(src, &t->term_blocking);
                if (t->term < 0) {
                        r = -errno;
                        goto fail;
                }
                if (tcgetattr(t->term, &t->saved) == 0) {
                        t->have_saved = true;
                        tcsetattr(t->slave, TCSANOW, &t->saved);
                }
                copy_winsize(t, t->slave);
        }
        /* Input: the terminal on fd 0, else with --pty whatever fd 0 is
         * (ssh -tt does the same); none when the job keeps our fd 0. */
        if (gets[0]) {
                t->in_is_term = tty[0];
                t->in_fd = tty[0] ? t->term : 0;
                t->in_enabled = true;
        }
        t->out_fd = (mode == MPS__PTY_AUTO || tty[1]) ? t->term : 1;
        r = give_slave(t, spec, gets);
        if (r < 0)
                goto fail;
        *ret = t;
        return 0;
fail:
        mps__pty_close(t);
        return r;
}

/* Waits (bounded: the server's keeper does it, asynchronously) until the
 * job's process group is (fg) or is not the foreground of its terminal:
 * continued before that, the job would stop again at once (or read in the
 * background without being stopped). The master shows the slave's
 * foreground. */
static void await_job_foreground(const struct mps__pty *t, mps_process *proc, bool fg) {
        pid_t job = mps_pid(proc);
        for (int i = 0; i < 1000 && job > 0; i++) {
                pid_t pg = tcgetpgrp(t->master);
                if (pg < 0 || (pg == job) == fg)
                        return;
                poll(NULL, 0, 1);
        }
}

void mps__pty_started(struct mps__pty *t, mps_process *proc) {
        /* The job has its copy: the master reads EIO once all are closed. */
        t->slave = mps__safe_close(t->slave);
        t->job = mps_pid(proc);
        install_fatal_handlers();
        if (in_foreground(t)) {
                set_raw(t);
                return;
        }
        /* Started with `&`: the job starts in the background of its own
         * terminal too, and a read there stops it (SIGTTIN), not us. */
        if (t->in_is_term)
                t->in_enabled = false;
        /* The server made the job the foreground of its terminal; a read
         * it begins before this takes effect waits instead of stopping. */
        if (mps_set_terminal_foreground(proc, false) == 0)
                await_job_foreground(t, proc, false);
}

/* Adds fd with events to pfd if there is room and something to wait
 * for; returns its index or -1. */
static int add_pollfd(struct pollfd *pfd, int *n, int max, int fd, short events) {
        if (fd < 0 || events == 0 || *n >= max)
                return -1;
        pfd[*n] = (struct pollfd){.fd = fd, .events = events};
        return (*n)++;
}

/* Keeps ICRNL on the raw caller's terminal as the job's terminal has it
 * now. Input is processed when it arrives, under the settings of that
 * moment: typed ahead after ^C and left in the caller's terminal for the
 * shell (see the top of the file), an Enter that arrived raw would stay a
 * CR, and the shell, cooked again, would wait for the end of that line.
 * For the job nothing changes: a CR its terminal would map to NL comes as
 * NL. (It can lag a moment behind a change the job makes.) */
static void mirror_icrnl(struct mps__pty *t) {
        if (!t->raw || !t->in_is_term)
                return;
        bool want = job_wants_icrnl(t);
        struct termios raw;
        if (want == t->outer_icrnl)
                return;
        t->outer_icrnl = want;
        raw_termios(t, &raw);
        tcsetattr(t->term, TCSANOW, &raw);
}

int mps__pty_pollfds(struct mps__pty *t, struct pollfd *pfd, int max) {
        int n = 0;
        short m = 0;
        mirror_icrnl(t);
        if (!input_paused(t))
                t->paused_at = 0;
        t->pi_in = add_pollfd(pfd, &n, max, t->in_fd,
                              t->in_enabled && !t->in_eof && t->to_job.len == 0 && !t->paused_at
                                  ? POLLIN
                                  : 0);
        if (!t->master_eof) {
                if (t->to_out.len == 0)
                        m |= POLLIN;
                if (t->to_job.len > 0)
                        m |= POLLOUT;
        }
        t->pi_master = add_pollfd(pfd, &n, max, t->master, m);
        t->pi_out = add_pollfd(pfd, &n, max, t->out_fd, t->to_out.len > 0 ? POLLOUT : 0);
        return n;
}

/* End of our input: the job gets VEOF (^D, or whatever the slave uses),
 * twice after a line without its newline, so that `cat` sees the end as
 * it would typed. */
static void input_ended(struct mps__pty *t) {
        struct termios tio;
        char eof = 4;
        t->in_eof = true;
        if (tcgetattr(t->master, &tio) == 0 && tio.c_cc[VEOF] != _POSIX_VDISABLE)
                eof = (char)tio.c_cc[VEOF];
        t->to_job.data[0] = t->to_job.data[1] = eof;
        t->to_job.off = 0;
        t->to_job.len = t->last_was_newline ? 1 : 2;
}

/* Whether byte c is one of the signal keys of the job's terminal tio. */
static bool is_signal_key(const struct termios *tio, unsigned char c) {
        static const int keys[] = {VINTR, VQUIT, VSUSP};
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
                if (tio->c_cc[keys[i]] != _POSIX_VDISABLE && tio->c_cc[keys[i]] == c)
                        return true;
        return false;
}

/* Reads the caller's terminal into to_job a byte at a time, no further
 * than a signal key of the job's terminal tio (input then pauses), and no
 * more than the terminal holds (FIONREAD), so that even a blocking
 * description never blocks. Returns what read(2) would. */
static ssize_t read_to_signal_key(struct mps__pty *t, const struct termios *tio) {
        int avail = 0;
        if (ioctl(t->in_fd, FIONREAD, &avail) < 0 || avail < 1)
                avail = 1; /* poll said readable: EOF or an error, maybe */
        size_t want = (size_t)avail < sizeof(t->to_job.data) ? (size_t)avail
                                                             : sizeof(t->to_job.data);
        size_t got = 0;
        while (got < want) {
                ssize_t r = read(t->in_fd, t->to_job.data + got, 1);
                if (r <= 0) {
                        if (got > 0)
                                break;
                        return r;
                }
                if (is_signal_key(tio, (unsigned char)t->to_job.data[got++])) {
                        t->paused_at = mps__now_ns();
                        break;
                }
        }
        return (ssize_t)got;
}

static void read_input(struct mps__pty *t) {
        struct termios tio;
        ssize_t n;
        if (t->in_is_term && tcgetattr(t->master, &tio) == 0 && (tio.c_lflag & ISIG))
                n = read_to_signal_key(t, &tio);
        else
                n = read(t->in_fd, t->to_job.data, sizeof(t->to_job.data));
        if (n > 0) {
                t->to_job.off = 0;
                t->to_job.len = (size_t)n;
                t->last_was_newline = t->to_job.data[n - 1] == '\n';
        } else if (n < 0 && errno == EIO && t->in_is_term && !in_foreground(t)) {
                /* We went to the background since poll (the kernel fails
                 * the read, SIGTTIN being blocked): not the end. */
                t->in_enabled = false;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                /* EOF, or a hung-up terminal (EIO). */
                input_ended(t);
        }
}

/* Writes some of b to fd; false when fd cannot take more, ever. */
static bool write_some(int fd, struct relay_buf *b, bool small) {
        size_t len = b->len;
        /* A blocking fd poll said writable takes PIPE_BUF without blocking. */
        if (small && len > PIPE_BUF)
                len = PIPE_BUF;
        ssize_t w = write(fd, b->data + b->off, len);
        if (w < 0)
                return errno == EAGAIN || errno == EINTR;
        b->off += (size_t)w;
        b->len -= (size_t)w;
        return true;
}

static void read_master(struct mps__pty *t) {
        ssize_t n = read(t->master, t->to_out.data, sizeof(t->to_out.data));
        if (n > 0) {
                t->to_out.off = 0;
                t->to_out.len = (size_t)n;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                /* EIO: no one holds the slave any more. */
                t->master_eof = true;
                t->to_job.len = 0;
        }
}

int mps__pty_relay(struct mps__pty *t, const struct pollfd *pfd, int n) {
        const short ready = POLLIN | POLLHUP | POLLERR;
        (void)n;
        if (t->pi_in >= 0 && (pfd[t->pi_in].revents & ready))
                read_input(t);
        if (t->pi_master >= 0) {
                short re = pfd[t->pi_master].revents;
                if ((re & (POLLOUT | POLLERR)) && t->to_job.len > 0 &&
                    !write_some(t->master, &t->to_job, false))
                        t->to_job.len = 0;
                if ((re & ready) && t->to_out.len == 0)
                        read_master(t);
        }
        if (t->pi_out >= 0 && (pfd[t->pi_out].revents & (POLLOUT | POLLERR | POLLHUP))) {
                bool small = t->out_fd == t->term ? t->term_blocking : true;
                if (!write_some(t->out_fd, &t->to_out, small)) {
                        /* Nowhere to write (a closed pipe): the job's output
                         * is dropped rather than left to block it. */
                        t->out_broken = true;
                        t->to_out.len = 0;
                }
        }
        if (t->out_broken)
                t->to_out.len = 0;
        return 0;
}

void mps__pty_stop_self(struct mps__pty *t, int sig) {
        struct sigaction old, dfl = {.sa_handler = SIG_DFL};
        sigset_t one;
        if (t)
                unset_raw(t);
        if (sig == SIGSTOP) {
                raise(SIGSTOP);
                return;
        }
        sigemptyset(&dfl.sa_mask);
        sigaction(sig, &dfl, &old);
        sigemptyset(&one);
        sigaddset(&one, sig);
        /* Pending while blocked, it stops us the moment it is unblocked. */
        raise(sig);
        sigprocmask(SIG_UNBLOCK, &one, NULL);
        sigprocmask(SIG_BLOCK, &one, NULL);
        sigaction(sig, &old, NULL);
}

/* The job is stopped now, as /proc says ('T'): a stop report may be
 * coalesced with the continue before it (the server sends only changes
 * from the state it last sent), so the report alone cannot tell a stop
 * after our SIGCONT from the one we followed already. */
static bool job_stopped_now(mps_process *proc) {
        char st = job_state(mps_pid(proc));
        return st == 'T' || st == 't';
}

/* We run again (fg, bg, or a SIGCONT): the job follows, in the foreground
 * of its terminal if we are in ours, else in its background. */
static void resume(struct mps__pty *t, mps_process *proc) {
        bool fg = in_foreground(t);
        /* A signal key's pause ends: the job stopped, and what is typed
         * now is for it. */
        t->paused_at = 0;
        if (fg) {
                if (t->in_is_term)
                        t->in_enabled = true;
                set_raw(t);
        } else {
                /* Never read a terminal whose foreground is someone else's:
                 * that input is theirs. If the job cannot be put in its own
                 * background (-ENOTSUP), its reads then just wait. */
                if (t->in_is_term)
                        t->in_enabled = false;
                unset_raw(t);
        }
        if (t->term >= 0)
                copy_winsize(t, t->master);
        if (mps_set_terminal_foreground(proc, fg) == 0)
                await_job_foreground(t, proc, fg);
        if (mps_stop_signal(proc) != 0) {
                mps_send_signal(proc, SIGCONT);
                t->cont_sent = t->stopped_for;
        }
}

bool mps__pty_follow_stops(struct mps__pty *t, mps_process *proc) {
        int sig = mps_stop_signal(proc);
        if (sig == 0) {
                t->stopped_for = t->cont_sent = false;
                return false;
        }
        /* Once per stop: the job stays "stopped" until the server's report
         * that it continued comes in, after our SIGCONT; unless it is
         * stopped again already (see job_stopped_now). */
        if (t->stopped_for) {
                if (!(t->cont_sent && job_stopped_now(proc)))
                        return false;
                /* Stopped again since our SIGCONT. A stop with another
                 * signal is reported (a moment later, maybe): wait for it,
                 * bounded; none comes for the same signal (coalesced). */
                for (int i = 0; i < 20 && mps_stop_signal(proc) == sig && mps_is_alive(proc); i++)
                        mps_join(proc, 10);
                sig = mps_stop_signal(proc);
                if (sig == 0 || !mps_is_alive(proc)) {
                        t->stopped_for = t->cont_sent = false;
                        return true; /* the caller looks again */
                }
        }
        t->stopped_for = true;
        t->cont_sent = false;
        mps__pty_stop_self(t, sig);
        resume(t, proc);
        return true;
}

int mps__pty_wait_ms(const struct mps__pty *t) {
        /* Between our SIGCONT and the report that the job continued, a new
         * stop may never be reported (coalesced): look again now and then. */
        int ms = t->stopped_for && t->cont_sent ? 50 : -1;
        /* Paused input resumes at the end of its pause (mps__pty_pollfds,
         * called before this, ended an expired one). Past PAUSE_NS, the
         * job's state is looked at again now and then. */
        if (t->paused_at != 0) {
                uint64_t waited = mps__now_ns() - t->paused_at;
                int p = waited < PAUSE_NS ? (int)((PAUSE_NS - waited) / 1000000) + 1 : 10;
                if (ms < 0 || p < ms)
                        ms = p;
        }
        return ms;
}

bool mps__pty_signal(struct mps__pty *t, mps_process *proc, const struct signalfd_siginfo *si) {
        int sig = (int)si->ssi_signo;
        switch (sig) {
        case SIGWINCH:
                copy_winsize(t, t->master);
                return true;
        case SIGCONT:
                resume(t, proc);
                return true;
        case SIGTSTP:
        case SIGTTIN:
        case SIGTTOU:
                /* Typed ^Z on a terminal we do not relay, or kill(2): the
                 * job stops, and we follow once the server says so. */
                mps_send_signal(proc, sig);
                return true;
        default:
                /* INT and QUIT too, even when the caller's terminal sent
                 * them: it does so only while it is not raw (before
                 * set_raw, after unset_raw, or when we relay no input), and
                 * then the key was a signal to our process group alone; the
                 * job, in a session of its own, never saw it. (Raw, the key
                 * has ISIG off and reaches the job as a byte instead.) */
                return false;
        }
}

void mps__pty_drain(struct mps__pty *t) {
        /* Until the slave is closed everywhere, or, when something the job
         * left behind holds it, until it has been quiet for a moment; and
         * never more than a bounded time in all. */
        uint64_t deadline = mps__now_ns() + 2000000000ull;
        t->in_enabled = false;
        while (!(t->master_eof && t->to_out.len == 0) && !t->out_broken) {
                struct pollfd pfd[3];
                int n = mps__pty_pollfds(t, pfd, 3);
                uint64_t now = mps__now_ns();
                if (n == 0 || now >= deadline)
                        break;
                int wait_ms = (int)((deadline - now) / 1000000);
                if (wait_ms > 100)
                        wait_ms = 100;
                int r = poll(pfd, (nfds_t)n, wait_ms);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        break;
                mps__pty_relay(t, pfd, n);
        }
}

void mps__pty_close(struct mps__pty *t) {
        if (!t)
                return;
        unset_raw(t);
        restore_armed = 0;
        mps__safe_close(t->master);
        mps__safe_close(t->slave);
        mps__safe_close(t->term);
        free(t);
}
