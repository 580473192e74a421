/* SPDX-License-Identifier: MIT */
/*
 * pidfd_exit.c: see pidfd_exit.h.
 *
 * A pidfd polls POLLHUP (even with no events asked for) once its process
 * has been reaped, and from Linux 6.15 PIDFD_GET_INFO then answers with
 * PIDFD_INFO_EXIT and the wait status its parent saw. Before the reap
 * (a zombie) the mask lacks PIDFD_INFO_EXIT. An older kernel fails the
 * ioctl (ENOTTY, EINVAL) or, from 6.13, answers a reaped process with
 * ESRCH or without the bit: then nothing is to be had from pidfds, and the
 * exit comes from the server's record as before.
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/ioctl.h>

#include "fdutil.h"
#include "pidfd_exit.h"

/* linux/pidfd.h's struct pidfd_info (PIDFD_INFO_SIZE_VER0), under a name of
 * our own: older headers lack it, newer ones must not clash. */
struct mps__pidfd_info {
        uint64_t mask;
        uint64_t cgroupid;
        uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
        int32_t exit_code;
};
_Static_assert(sizeof(struct mps__pidfd_info) == 64, "PIDFD_INFO_SIZE_VER0");

#define MPS__PIDFD_INFO_EXIT (1u << 3)
#define MPS__PIDFD_GET_INFO _IOWR(0xFF, 11, struct mps__pidfd_info)

/* 0 not known yet, 1 the kernel tells, -1 it does not. */
static _Atomic int support;

bool mps__pidfd_exit_maybe(void) {
        return atomic_load_explicit(&support, memory_order_relaxed) >= 0;
}

static int unsupported(void) {
        atomic_store_explicit(&support, -1, memory_order_relaxed);
        return -EOPNOTSUPP;
}

/* Whether pidfd's process has been reaped (POLLHUP), without waiting. */
static int reaped(int pidfd) {
        struct pollfd p = {.fd = pidfd, .events = 0};
        int r = mps__poll_many(&p, 1, 0);
        return r <= 0 ? r : (p.revents & POLLHUP) != 0;
}

int mps__pidfd_exit_status(int pidfd, int *ret_status) {
        if (!mps__pidfd_exit_maybe())
                return -EOPNOTSUPP;
        int r = reaped(pidfd);
        return r <= 0 ? r : mps__pidfd_exit_status_reaped(pidfd, ret_status);
}

int mps__pidfd_exit_status_reaped(int pidfd, int *ret_status) {
        int known = atomic_load_explicit(&support, memory_order_relaxed);
        if (known < 0)
                return -EOPNOTSUPP;
        struct mps__pidfd_info info = {.mask = MPS__PIDFD_INFO_EXIT};
        if (ioctl(pidfd, MPS__PIDFD_GET_INFO, &info) < 0) {
                int r = -errno;
                /* ESRCH for a reaped process is 6.13's answer; where the
                 * kernel is known to tell, it is about this pidfd only. */
                if (r == -ENOTTY || r == -EINVAL || r == -EOPNOTSUPP ||
                    (r == -ESRCH && known == 0))
                        return unsupported();
                return r;
        }
        if (!(info.mask & MPS__PIDFD_INFO_EXIT))
                return known == 0 ? unsupported() : -ENODATA;
        atomic_store_explicit(&support, 1, memory_order_relaxed);
        *ret_status = info.exit_code;
        return 1;
}
