/* SPDX-License-Identifier: MIT */
/*
 * keeper.c: the two helper processes of a controlling-terminal job, and
 * the server's side of them.
 *
 * A job with a controlling terminal leads a session of its own, and its
 * parent, the server, is outside that session. That makes the job's
 * process group orphaned, and the kernel treats an orphaned group as no
 * shell's job: it discards ^Z (SIGTSTP, SIGTTIN, SIGTTOU with the default
 * action) and fails a background read with EIO instead of stopping the
 * reader with SIGTTIN. A group is not orphaned while one of its members
 * has a parent in the same session but another group. So, as sudo's
 * monitor does (lighter, and without becoming the job's parent, which
 * must stay the server that reaps it):
 *
 *   keeper  the server's child (clone with CLONE_PARENT from the job's
 *           child before exec, so that the program never sees a child it
 *           did not make), in the job's session, in a group of its own.
 *           It takes commands from the server on a socket: 'b' makes its
 *           own group the terminal's foreground (the job is then
 *           background in its own terminal and stops with SIGTTIN when it
 *           reads it), 'f' gives the foreground back to the group that
 *           had it. Only a process of the session may do that.
 *   anchor  the keeper's child, in the job's group, doing nothing with
 *           every signal ignored: its parent, the keeper, is what keeps
 *           the job's group from being orphaned.
 *
 * Both end once the job has ended (the keeper polls a pidfd of it) or the
 * server's end of the socket closes; the anchor only after the job, since
 * a group that becomes orphaned with a stopped member gets SIGHUP. The
 * keeper is the server's child and is reaped here through its pidfd (the
 * job's child hands it over the socket before exec), never taken for a
 * job; the anchor is the keeper's, which ignores SIGCHLD so that it never
 * leaves a zombie (job.c holds the server's side: the pidfd, the
 * commands). Both keep the server's credentials (they start before
 * the job drops to its client's), so its user can neither trace them
 * nor signal them but for SIGCONT.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "../launcher/fdutil.h"
#include "child.h"
#include "server.h"

/* The first version of struct clone_args (linux/sched.h), spelled out so
 * that the header's CLONE_* need not meet glibc's. */
struct keeper_clone_args {
        uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

/* A fork through clone3: flags CLONE_PARENT (exit_signal must then be 0:
 * the caller's is used) and CLONE_PIDFD. Raw, as the rest of a child's
 * set-up is: it returns 0 in the new process, on a copy of this stack. */
static pid_t clone_fork(uint64_t flags, int *ret_pidfd, int exit_signal) {
        struct keeper_clone_args a = {.flags = flags, .exit_signal = (uint64_t)exit_signal};
        if (ret_pidfd)
                a.pidfd = (uint64_t)(uintptr_t)ret_pidfd;
        return (pid_t)syscall(SYS_clone3, &a, sizeof(a));
}

static void set_disposition(int sig, void (*handler)(int)) {
        struct sigaction sa = {.sa_handler = handler};
        sigemptyset(&sa.sa_mask);
        (void)sigaction(sig, &sa, NULL); /* glibc refuses 32 and 33 */
}

static void unblock_all(void) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
}

/* The anchor: a member of the job's group, which it never leaves, until
 * the keeper kills it (or dies: the parent-death signal). */
static _Noreturn void anchor_main(pid_t keeper, pid_t job) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != keeper)
                _exit(0);
        prctl(PR_SET_NAME, "mps-anchor"); /* what ps shows in the session */
        close_range(0, ~0u, 0);
        (void)setpgid(0, job); /* as the keeper does: whoever comes first */
        for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        set_disposition(sig, SIG_IGN);
        unblock_all();
        for (;;)
                pause();
}

/* One command from the server: the foreground to the keeper's group
 * ('b'), or back to the group that had it ('f'). The terminal is opened
 * for each as /dev/tty, the session's: the keeper holds no descriptor of
 * it, so that the client sees the terminal's end (EIO on the master) as
 * soon as the job and its own have closed it, not once the keeper has. */
static void keeper_do(char cmd, pid_t *saved) {
        if ((cmd != 'b' || *saved > 0) && (cmd != 'f' || *saved <= 0))
                return;
        int tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (tty < 0)
                return; /* the session has lost its terminal */
        if (cmd == 'b') {
                pid_t fg = tcgetpgrp(tty);
                if (fg > 0 && tcsetpgrp(tty, getpgrp()) == 0)
                        *saved = fg;
        } else {
                (void)tcsetpgrp(tty, *saved); /* EPERM: that group is gone */
                *saved = 0;
        }
        close(tty);
}

static _Noreturn void keeper_main(int sock, int jobfd, int ready, pid_t job) {
        int keep[] = {sock, jobfd, ready};
        (void)child_close_all_except(keep, 3);
        prctl(PR_SET_NAME, "mps-keeper");
        (void)setpgid(0, 0);
        /* Signals the terminal sends its foreground, which the keeper's
         * group is while the job is background; SIGTTOU, which tcsetpgrp
         * from the background would raise; SIGCHLD, so that the anchor
         * never becomes a zombie. */
        static const int ignored[] = {SIGHUP,  SIGINT,  SIGQUIT, SIGTSTP, SIGTTIN,
                                      SIGTTOU, SIGPIPE, SIGCHLD, SIGWINCH};
        for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
                set_disposition(ignored[i], SIG_IGN);
        unblock_all();
        pid_t self = getpid();
        pid_t anchor = clone_fork(0, NULL, SIGCHLD);
        if (anchor == 0)
                anchor_main(self, job);
        if (anchor > 0)
                (void)setpgid(anchor, job);
        /* The job's child waits for this before it goes on to exec. */
        (void)mps__write_all(ready, "k", 1);
        close(ready);

        pid_t saved = 0;
        for (;;) {
                struct pollfd p[2] = {{.fd = jobfd, .events = POLLIN},
                                      {.fd = sock, .events = POLLIN}};
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[0].revents)
                        break; /* the job has ended */
                if (!(p[1].revents & POLLIN) && p[1].revents)
                        break; /* the server's end closed */
                char cmd[16];
                ssize_t n = read(sock, cmd, sizeof(cmd));
                if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
                        break;
                for (ssize_t i = 0; i < n; i++)
                        keeper_do(cmd[i], &saved);
        }
        /* And wait for the anchor to be gone: left behind a moment, it would
         * be reparented to init, and die a zombie where init does not reap.
         * (SIGCHLD is ignored: waitpid returns, ECHILD, once it has died.) */
        if (anchor > 0 && kill(anchor, SIGKILL) == 0)
                while (waitpid(anchor, NULL, 0) < 0 && errno == EINTR)
                        ;
        _exit(0);
}

/* Hands fd over sock with SCM_RIGHTS. */
static int send_fd(int sock, int fd) {
        char byte = 'p';
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } u;
        memset(&u, 0, sizeof(u));
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                            .msg_controllen = sizeof(u.buf)};
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
        ssize_t n;
        do
                n = sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        return n < 0 ? -errno : 0;
}

/*
 * In the job's child (forked, never vforked: it waits here for the
 * keeper), once it has its controlling terminal. The keeper's pidfd goes to
 * the server first, so that it is reaped whatever happens next; then the
 * child waits until the anchor is in its group, so that the program never
 * runs with its group orphaned. Without pidfds or clone3 (before Linux
 * 5.3, valgrind) there is no keeper: the job then has its terminal, but
 * ^Z does nothing and foreground requests are refused (ENOTSUP).
 */
int keeper_start(int sock) {
        pid_t job = getpid();
        int jobfd = pidfd_open(job, 0);
        int ready[2];
        int r = 0;
        if (jobfd < 0)
                goto out;
        if (pipe2(ready, O_CLOEXEC) < 0) {
                r = -errno;
                goto out;
        }
        int kpidfd = -1;
        pid_t k = clone_fork(CLONE_PARENT | CLONE_PIDFD, &kpidfd, 0);
        if (k == 0)
                keeper_main(sock, jobfd, ready[1], job);
        /* ENOSYS: clone3 is refused (a filter, an emulator): no keeper, as
         * without pidfds. */
        r = k < 0 && errno != ENOSYS ? -errno : 0;
        close(ready[1]);
        if (k > 0) {
                r = send_fd(sock, kpidfd);
                if (r < 0)
                        pidfd_send_signal(kpidfd, SIGKILL, NULL, 0);
                close(kpidfd);
                char b;
                if (r == 0 && mps__read_retry(ready[0], &b, 1) != 1)
                        r = -EIO;
        }
        close(ready[0]);
out:
        mps__safe_close(jobfd);
        close(sock);
        return r;
}
