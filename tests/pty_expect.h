/* SPDX-License-Identifier: MIT */
/*
 * pty_expect.h: a very small expect(1) for the differential suite: a child
 * on a fresh pseudo-terminal (its controlling terminal, in a session of its
 * own), keystrokes written to the master, and reads of the transcript until
 * a string shows up or a deadline passes. No sleeps: every wait is a poll on
 * the master with a deadline.
 */
#ifndef MPS_PTY_EXPECT_H
#define MPS_PTY_EXPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct pe_pty {
        int master;     /* O_CLOEXEC; -1 when closed */
        pid_t pid;      /* the child, a session leader; 0 when reaped */
        int pidfd;
        char *buf;      /* everything read from the master, NUL-terminated */
        size_t len, cap;
        bool eof;       /* EIO or EOF on the master: no slave is left open */
};

/*
 * Opens a pseudo-terminal of rows x cols and runs argv[0] (a path) on it
 * with envp, in cwd: stdin, stdout and stderr are the slave, which is the
 * child's controlling terminal; signals are default and unblocked, fds
 * above 2 closed. Returns 0 or -errno.
 */
int pe_spawn(struct pe_pty *p, const char *const argv[], const char *const envp[],
             const char *cwd, unsigned short rows, unsigned short cols);

/* Every signal's disposition back to default (glibc's reserved ones too)
 * and an empty mask: for a child about to exec, so that what it inherits
 * does not depend on who ran the tests. Async-signal-safe. */
void pe_default_signals(void);

/* Writes all of s (len bytes) to the master. Returns 0 or -errno. */
int pe_send(struct pe_pty *p, const char *s, size_t len);

/* Sets the terminal's window size, as `stty rows R cols C` on it would. */
int pe_winsize(struct pe_pty *p, unsigned short rows, unsigned short cols);

/*
 * Reads until needle occurs in the transcript at or after offset from, or
 * timeout_ms passes, or the slave side is gone. Returns the offset just past
 * the match, or -ETIMEDOUT, or -EIO if the terminal closed first.
 */
long pe_expect(struct pe_pty *p, const char *needle, size_t from, int timeout_ms);

/* Reads whatever arrives until the slave is gone or timeout_ms passes. */
void pe_drain(struct pe_pty *p, int timeout_ms);

/*
 * Ends the child: SIGHUP to its session leader (an interactive bash passes
 * it on to its jobs), then SIGKILL to its process group if it has not gone
 * within timeout_ms; reaps it, closes the master, frees the transcript.
 * Returns the child's wait status (-1 if none).
 */
int pe_close(struct pe_pty *p, int timeout_ms);

#endif /* MPS_PTY_EXPECT_H */
