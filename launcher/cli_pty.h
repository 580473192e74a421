/* SPDX-License-Identifier: MIT */
/*
 * cli_pty.h: a pseudo-terminal of its own for a job run from a terminal,
 * as sudo's use_pty, `ssh -t` and `systemd-run --pty` give one. mpspawn
 * keeps the master and relays between it and the caller's terminal; the
 * job gets only the slave, so it can never reach the caller's terminal
 * itself. See cli_pty.c.
 */
#ifndef MPS_CLI_PTY_H
#define MPS_CLI_PTY_H

#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/signalfd.h>

#include "../include/mpspawn.h"

enum mps__pty_mode {
        MPS__PTY_AUTO,  /* a pty when stdin or stdout is a terminal */
        MPS__PTY_FORCE, /* --pty: always, with the slave as all of 0-2 */
        MPS__PTY_NEVER, /* --no-pty */
};

struct mps__pty;

/* Whether mode gives the job a pty, with mpspawn's fds 0-2 as they are:
 * --pty always, --no-pty never, else when stdin or stdout is a terminal. */
bool mps__pty_wanted(enum mps__pty_mode mode);

/* Decides whether the job gets a pty (mode and which of 0-2 are
 * terminals) and if so opens the pair, copies the caller's terminal
 * settings and window size to the slave, and maps the slave into spec as
 * the fds that get it (with a controlling terminal and stop reports when
 * fd 0 is the slave). Returns 0 with *ret NULL when no pty is wanted, 0
 * with *ret set, or -errno. */
int mps__pty_open(enum mps__pty_mode mode, mps_spec *spec, struct mps__pty **ret);

/* After mps_start() succeeded: drops our slave, so that the master reads
 * EIO once the job's side is closed, and takes the caller's terminal into
 * raw mode if mpspawn is in its foreground (else starts the job in the
 * background of its own terminal). */
void mps__pty_started(struct mps__pty *t, mps_process *proc);

/* The fds the relay waits on now: fills at most max entries of pfd and
 * returns how many. (Not the caller's terminal for a moment after a
 * signal key was relayed: see cli_pty.c.) */
int mps__pty_pollfds(struct mps__pty *t, struct pollfd *pfd, int max);

/* Moves what the fds filled by mps__pty_pollfds are ready for, without
 * blocking. Returns 0 or -errno on a failure the run cannot go on with. */
int mps__pty_relay(struct mps__pty *t, const struct pollfd *pfd, int n);

/* A signal that reached mpspawn in pty mode. Returns true when the pty
 * took care of it (WINCH, CONT, stop signals), false when it is to be
 * forwarded as usual (all others, INT and QUIT from the caller's terminal
 * too: see cli_pty.c). */
bool mps__pty_signal(struct mps__pty *t, mps_process *proc,
                     const struct signalfd_siginfo *si);

/* Called after every look at the job's state: when the job has stopped,
 * gives the terminal back and stops mpspawn with the same signal; when
 * mpspawn runs again, resumes the job as the shell asked (fg or bg).
 * Returns true when it did (the caller then looks at the job again). */
bool mps__pty_follow_stops(struct mps__pty *t, mps_process *proc);

/* Stops mpspawn with sig (SIG_DFL, raised, unblocked for the moment),
 * with the caller's terminal as the shell gave it to us (t may be NULL:
 * no pty). Returns once we are continued. */
void mps__pty_stop_self(struct mps__pty *t, int sig);

/* How long the caller's poll may wait (ms; -1: no limit): short only
 * while a stop may go unreported, or while input is paused after a signal
 * key (see cli_pty.c). */
int mps__pty_wait_ms(const struct mps__pty *t);

/* After the job's end: relays what the job left in the master (until the
 * slave is closed everywhere, or a short quiet time). */
void mps__pty_drain(struct mps__pty *t);

/* Restores the caller's terminal and frees everything; NULL is a no-op. */
void mps__pty_close(struct mps__pty *t);

/* Puts the caller's terminal back as it was, if a pty relay changed it.
 * Async-signal-safe; a no-op outside pty mode. */
void mps__pty_restore_terminal(void);

/* The signals pty mode needs on mpspawn's signalfd besides the forwarded
 * ones. */
void mps__pty_add_signals(sigset_t *set);

#endif /* MPS_CLI_PTY_H */
