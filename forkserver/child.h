/* SPDX-License-Identifier: MIT */
/*
 * child.h: the parts of a child's set-up (child.c) that are used, or
 * tested, on their own. Both run in the child only.
 */
#ifndef MPS_FORKSERVER_CHILD_H
#define MPS_FORKSERVER_CHILD_H

#include <signal.h>
#include <stddef.h>

#include "server.h"

/* Installs spec's fd map: target t gets fds[source] (O_CLOEXEC cleared);
 * a target with source -1 is closed, or /dev/null when it is 0, 1 or 2,
 * which are never left closed. Every other fd is closed but *errpipe,
 * which is moved above every target (CLOEXEC kept) and *errpipe updated.
 * 0 or -errno (then some fds may have moved already). */
int child_arrange_fds(const struct mps__spawn *spec, const int *fds, size_t nfds,
                      int *errpipe);

/* Sets every disposition in srv->child_reset back to the default, then
 * the signal mask to mask. */
void child_reset_signals(const struct server *srv, const sigset_t *mask);

/* Closes every fd but the n in keep (sorted in place; no allocation, so
 * that a forked child may call it). -1 (errno set) where the kernel lacks
 * close_range (before 5.9). */
int child_close_all_except(int *keep, size_t n);

#endif
