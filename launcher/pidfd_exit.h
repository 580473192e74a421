/* SPDX-License-Identifier: MIT */
/*
 * pidfd_exit.h: a process's exit status read from its pidfd once it has
 * been reaped (PIDFD_GET_INFO with PIDFD_INFO_EXIT, Linux 6.15), so that a
 * client learns a job's exit code without waiting for the server's record.
 */
#ifndef MPS_PIDFD_EXIT_H
#define MPS_PIDFD_EXIT_H

#include <stdbool.h>

/*
 * The wait status of the process of pidfd, if its parent has reaped it and
 * the kernel keeps the status for pidfds: 1 with *ret_status set; 0 while
 * it is not reaped; -EOPNOTSUPP when this kernel does not tell (learnt on
 * first use and remembered for the whole process: every later call says so
 * at once); another -errno when it cannot be told for this pidfd.
 */
int mps__pidfd_exit_status(int pidfd, int *ret_status);

/* The same for a pidfd already seen reaped (POLLHUP): no poll first. */
int mps__pidfd_exit_status_reaped(int pidfd, int *ret_status);

/* False once this process has learnt that the kernel does not tell. */
bool mps__pidfd_exit_maybe(void);

#endif /* MPS_PIDFD_EXIT_H */
