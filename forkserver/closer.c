/* SPDX-License-Identifier: MIT */
/*
 * closer.c: letting go of descriptors a client sent us without ever
 * blocking on their close.
 *
 * The last close of some files waits on something a client controls: a TCP
 * socket with SO_LINGER {1, 2^31-1} and a full send queue waits until its
 * data is acknowledged, a unix socket frees the descriptors queued in it
 * (which may be such a TCP socket), a tty drains its output, a FUSE or NFS
 * file flushes to its server. Any peer may attach such a file to any
 * message, even one the server refuses, and our copy is then the last.
 *
 * So every received descriptor is released through closer_release, which
 * closes at once what cannot block (pipes, anonymous inodes, /dev/null and
 * its kind, files and directories of local filesystems: one fstatfs, and an
 * fstat for some) and hands the rest to the closer: a small process forked
 * (twice, so that init reaps it) the first time one is needed, which gets
 * them over a socketpair and closes each in a thread of its own, so one
 * that blocks holds up nothing else. The server's end is non-blocking: when
 * the closer cannot keep up (its queue is full), a fresh closer is started
 * and the old one, whose end we close, finishes what it has and exits.
 *
 * Outside the server process (a pre-forked child, a call job using the
 * library) a descriptor is simply closed: blocking there blocks nobody else.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../launcher/fdutil.h"
#include "server.h"

#ifndef SCM_MAX_FD
#define SCM_MAX_FD 253 /* the kernel's bound on descriptors in one message */
#endif
#define CLOSER_SNDBUF (4 << 20)          /* room for thousands of hand-overs */
#define CLOSER_THREAD_STACK (64 * 1024)

static struct {
        int sock;    /* our end, non-blocking; -1 until a closer is needed */
        pid_t owner; /* the server's pid: only the server hands over */
        uint64_t handed, restarts;
} closer = {.sock = -1};

/* Room for the most descriptors one message can carry, so that the kernel
 * never has to drop (and so close, here) one that does not fit. */
union fd_control {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * SCM_MAX_FD)];
};

/* Receives one datagram from sock (its data discarded) and the descriptors
 * it carried into fds: their number (0 or more), or -1 when there is none
 * (end of stream, nothing queued with MSG_DONTWAIT in flags, an error). */
static ssize_t recv_fds(int sock, int *fds, int flags) {
        union fd_control control;
        char byte;
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
                            .msg_control = control.buf,
                            .msg_controllen = sizeof(control.buf)};
        ssize_t n;
        do
                n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        size_t nfds = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k && nfds < SCM_MAX_FD; i++)
                        memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        }
        if (n <= 0 && nfds == 0)
                return -1;
        return (ssize_t)nfds;
}

/* Sends fd alone in a one-byte datagram (fd < 0: the datagram alone):
 * 0 or -errno. */
static int send_fd(int sock, int fd) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int))];
        } control;
        char byte = 0;
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
                            .msg_control = control.buf,
                            .msg_controllen = sizeof(control.buf)};
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
        if (fd < 0) {
                mh.msg_control = NULL;
                mh.msg_controllen = 0;
        }
        ssize_t n;
        do
                n = sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        return n < 0 ? -errno : 0;
}

/* --- the closer process -------------------------------------------------------- */

static void *close_one(void *arg) {
        close((int)(intptr_t)arg);
        return NULL;
}

/* Closes fd in a thread of its own; inline if no thread can be had (then a
 * blocking close holds this closer, and the server starts another). */
static void close_detached(int fd, const pthread_attr_t *attr) {
        pthread_t t;
        if (pthread_create(&t, attr, close_one, (void *)(intptr_t)fd) != 0)
                close(fd);
}

/*
 * The closer: takes descriptors from sock and closes them, until the
 * server's end is closed (it exited, or retired this closer); exiting ends
 * any close still blocked in a thread, which closes that file all the
 * same.
 *
 * A descriptor is closed only once a datagram without one follows it: the
 * server sends that after closing its own copy, so that ours is the last
 * and the server's close never is (had we closed first, the server's
 * close would be the one that waits).
 */
static _Noreturn void closer_main(int sock) {
        sigset_t all;
        sigfillset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL); /* only SIGKILL ends it early */
        setsid(); /* off the server's terminal, if it had one */
        if (sock != 3 && dup3(sock, 3, O_CLOEXEC) < 0)
                _exit(1);
        close_range_except(4, ~0u, -1);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        for (int i = 0; i < 3 && null >= 0; i++)
                dup2(null, i);
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, CLOSER_THREAD_STACK);
        static int pending[SCM_MAX_FD * 4];
        size_t npending = 0;
        for (;;) {
                int fds[SCM_MAX_FD];
                ssize_t n = recv_fds(3, fds, 0);
                if (n <= 0 || npending + (size_t)n > sizeof(pending) / sizeof(pending[0])) {
                        /* Committed, gone, or (never, from the server) too many. */
                        for (size_t i = 0; i < npending; i++)
                                close_detached(pending[i], &attr);
                        npending = 0;
                }
                if (n < 0)
                        _exit(0);
                for (ssize_t i = 0; i < n; i++)
                        pending[npending++] = fds[i];
        }
}

/* --- the server's side --------------------------------------------------------- */

/* Starts a closer; 0 or -errno. Rare (the first hand-over, or a closer
 * that fell behind), and bounded: the middle child exits at once. */
static int closer_start(void) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        int size = CLOSER_SNDBUF;
        if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
                setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
        sigset_t old;
        spawn_block_signals(&old);
        pid_t pid = fork();
        if (pid == 0) {
                close(sv[0]);
                pid_t grandchild = fork();
                if (grandchild == 0)
                        closer_main(sv[1]);
                _exit(grandchild < 0 ? 1 : 0);
        }
        int e = errno;
        spawn_restore_signals(&old);
        close(sv[1]);
        int status = 0;
        if (pid < 0 || mps__wait_retry(pid, &status, 0, NULL) < 0 || status != 0) {
                close(sv[0]);
                return pid < 0 ? -e : -ECHILD;
        }
        if (fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0) {
                e = errno;
                close(sv[0]);
                return -e;
        }
        closer.sock = sv[0];
        return 0;
}

/* Whether the last close of fd could wait on something outside our
 * control. Unknown filesystems count as could. */
static bool close_may_block(int fd) {
        struct statfs sfs;
        if (fstatfs(fd, &sfs) < 0)
                return false; /* not open: close says so at once */
        switch ((unsigned long)sfs.f_type) {
        case PIPEFS_MAGIC:
        case ANON_INODE_FS_MAGIC:
        case PROC_SUPER_MAGIC:
        case SYSFS_MAGIC:
        case CGROUP2_SUPER_MAGIC:
        case NSFS_MAGIC:
                return false;
        case TMPFS_MAGIC: /* devtmpfs too: /dev's ttys are checked below */
        case EXT4_SUPER_MAGIC:
        case XFS_SUPER_MAGIC:
        case BTRFS_SUPER_MAGIC:
        case OVERLAYFS_SUPER_MAGIC:
        case RAMFS_MAGIC: {
                struct stat st;
                if (fstat(fd, &st) < 0)
                        return false;
                if (S_ISCHR(st.st_mode))
                        return major(st.st_rdev) != 1; /* 1: null, zero, full, random */
                return S_ISBLK(st.st_mode);
        }
        default:
                return true; /* sockets, ttys (devpts), FUSE, NFS, ... */
        }
}

/* Hands fd to the closer: 0, or -errno (-EAGAIN: it fell behind). */
static int hand_over(int fd) {
        if (closer.sock < 0) {
                int r = closer_start();
                if (r < 0)
                        return r;
        }
        int r = send_fd(closer.sock, fd);
        if (r == -EAGAIN || r == -EPIPE || r == -ECONNREFUSED) {
                /* Fallen behind, or gone: a fresh one takes over; the old
                 * one finishes its queue once our end is closed. */
                closer.sock = mps__safe_close(closer.sock);
                closer.restarts++;
                if ((r = closer_start()) < 0)
                        return r;
                r = send_fd(closer.sock, fd);
        }
        return r;
}

void closer_release(int fd) {
        if (fd < 0)
                return;
        /* Most descriptors cannot block: that check first, so that the
         * common case costs no getpid. */
        if (!close_may_block(fd) || closer.owner != getpid()) {
                close(fd);
                return;
        }
        int r = hand_over(fd);
        if (r < 0)
                log_err("cannot hand a descriptor to the closer (%s): closing it here, "
                        "which may block", strerror(-r));
        else
                closer.handed++;
        /* Handed over, ours is not the last reference: the closer holds
         * its own until the commit below, which it gets after this. */
        close(fd);
        if (r == 0 && send_fd(closer.sock, -1) < 0) {
                /* Full: retired, it closes what it holds when it sees our
                 * end closed, which is after our close all the same. */
                closer.sock = mps__safe_close(closer.sock);
                closer.restarts++;
        }
}

void closer_drain(int sock, unsigned max) {
        for (unsigned i = 0; i < max; i++) {
                int fds[SCM_MAX_FD];
                ssize_t n = recv_fds(sock, fds, MSG_DONTWAIT);
                if (n < 0)
                        return;
                for (ssize_t k = 0; k < n; k++)
                        closer_release(fds[k]);
        }
}

void closer_install(void) {
        closer.owner = getpid();
        mps__wire_set_release(closer_release);
}
