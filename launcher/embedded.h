/* SPDX-License-Identifier: MIT */
/*
 * embedded.h: the library's embedded default, one private mpforkserver per
 * process shared by every client that falls back to it (embedded.c).
 */
#ifndef MPS_EMBEDDED_H
#define MPS_EMBEDDED_H

#include <spawn.h>
#include <stddef.h>

/*
 * A new connection to this process's embedded server, started first when
 * there is none (or the one there was has gone): *ret_fd, O_CLOEXEC, at 3
 * or above, not yet greeted (the caller sends its hello). Each one holds a
 * reference on the shared server until mps__embedded_close. With an
 * mpforkserver binary that cannot share (no "adopt" feature), the
 * connection is to a server of its own, as every client had before.
 * 0, or -errno with a one-line reason in msg.
 */
int mps__embedded_connect(int *ret_fd, char *msg, size_t msglen);

/*
 * Closes a client's connection fd, which may be any connection (one not
 * from mps__embedded_connect is only closed); one that was releases its
 * reference, and the last one lets the server go (it exits once its last
 * connection is closed). Release and close happen under one lock, so that
 * the number cannot be reused by another thread's connection in between:
 * call it instead of close(2), never after it. Not in a fork child's
 * atfork handler (it takes a lock). Returns -1, for
 * fd = mps__embedded_close(fd).
 */
int mps__embedded_close(int fd);

/*
 * Registers the record's fork handlers (once). client.c calls it before
 * registering its own, so that at a fork its prepare (which takes every
 * client's lock) runs before ours (which takes the record's): the order
 * in which mps__embedded_close, called with a client's lock held, takes
 * them.
 */
void mps__embedded_atfork_register(void);

/* posix_spawnattr_init with what every server we start gets: a session of
 * its own (so that the caller's terminal signals never reach it), no
 * signal blocked, every disposition the default. Also the per-user server
 * the CLI starts (cli_server.c). */
void mps__server_spawnattr_init(posix_spawnattr_t *attr);

#endif /* MPS_EMBEDDED_H */
