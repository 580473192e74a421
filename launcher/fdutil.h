/* SPDX-License-Identifier: MIT */
/*
 * fdutil.h: small descriptor and time helpers shared by the server, the
 * library and the CLI. The EINTR retries of the project live here.
 */
#ifndef MPS_FDUTIL_H
#define MPS_FDUTIL_H

#include <stdint.h>
#include <sys/types.h>

/* Closes fd if it is >= 0 and returns -1, keeping errno; never retries
 * close() on EINTR (the descriptor is gone either way on Linux). Use as
 * fd = mps__safe_close(fd). */
int mps__safe_close(int fd);

/* Writes all of buf, retrying on EINTR and short writes. 0 or -errno. */
int mps__write_all(int fd, const void *buf, size_t len);

/* read() retried on EINTR. Returns the count or -errno. */
ssize_t mps__read_retry(int fd, void *buf, size_t len);

/* poll() on one fd for events, retried on EINTR with the remaining time.
 * timeout_ms < 0 waits forever. Returns >0 ready, 0 timeout, -errno. */
int mps__poll_one(int fd, short events, int timeout_ms);

/* The same for n fds (revents set in each). */
struct pollfd;
int mps__poll_many(struct pollfd *fds, size_t n, int timeout_ms);

/* wait4(pid, status, options, ru) retried on EINTR: the one place the
 * project waits for a child. Returns the pid reaped, 0 (WNOHANG and none
 * ready) or -errno. status and ru may be NULL. */
struct rusage;
pid_t mps__wait_retry(pid_t pid, int *status, int options, struct rusage *ru);

/* The public exit code of a wait status: the exit code, or -N after
 * signal N. The server's exit records and the client's exits read from
 * pidfds both use it, so that the two never disagree. */
int mps__exitcode_of_status(int status);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t mps__now_ns(void);

/* Moves fd to a number >= min, with O_CLOEXEC. Returns the new fd (the
 * old one closed), fd itself when it is there already, or -errno (fd left
 * as it was). */
int mps__fd_move_at_least(int fd, int min);

/* Reads the whole file at path, at most max bytes, into a new
 * NUL-terminated buffer (*ret_text, to free; its length in *ret_len).
 * 0, -errno of open or read, -EFBIG when longer than max, -ENOMEM. */
int mps__read_file(const char *path, size_t max, char **ret_text, size_t *ret_len);

#endif /* MPS_FDUTIL_H */
