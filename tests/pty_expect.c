/* SPDX-License-Identifier: MIT */
/* pty_expect.c: see pty_expect.h. */
#include "pty_expect.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/pidfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pe_default_signals(void) {
        /* Through the system call: glibc's signal() refuses its reserved
         * signals 32 and 33, and a caller of the test run (make, flock...)
         * may have left those ignored, which exec would pass on. */
        struct {
                void *handler;
                unsigned long flags;
                void *restorer;
                unsigned long mask;
        } dfl = {SIG_DFL, 0, NULL, 0};
        for (int sig = 1; sig <= 64; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(dfl.mask));
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
}

/* The child's side: from here to exec only async-signal-safe calls. */
_Noreturn static void pe_child(const char *slave, const char *const argv[],
                               const char *const envp[], const char *cwd) {
        pe_default_signals();
        if (setsid() < 0)
                _exit(120);
        /* Opened without O_NOCTTY by a session leader with no terminal,
         * the slave becomes the controlling terminal; TIOCSCTTY makes
         * that explicit. */
        int fd = open(slave, O_RDWR);
        if (fd < 0 || ioctl(fd, TIOCSCTTY, 0) < 0)
                _exit(121);
        if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
                _exit(122);
        if (fd > 2)
                close(fd);
        if (cwd && chdir(cwd) < 0)
                _exit(123);
        close_range(3, ~0U, 0);
        execve(argv[0], (char *const *)argv, (char *const *)envp);
        _exit(127);
}

int pe_spawn(struct pe_pty *p, const char *const argv[], const char *const envp[],
             const char *cwd, unsigned short rows, unsigned short cols) {
        char slave[128];
        memset(p, 0, sizeof(*p));
        p->pidfd = -1;
        p->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (p->master < 0)
                return -errno;
        if (grantpt(p->master) < 0 || unlockpt(p->master) < 0 ||
            ptsname_r(p->master, slave, sizeof(slave)) != 0)
                goto fail;
        struct winsize ws = {.ws_row = rows, .ws_col = cols};
        if (ioctl(p->master, TIOCSWINSZ, &ws) < 0)
                goto fail;
        p->cap = 65536;
        p->buf = malloc(p->cap);
        if (!p->buf)
                goto fail;
        p->buf[0] = '\0';
        p->pid = fork();
        if (p->pid < 0)
                goto fail;
        if (p->pid == 0)
                pe_child(slave, argv, envp, cwd);
        p->pidfd = pidfd_open(p->pid, 0);
        return 0;
fail:;
        int r = -errno;
        close(p->master);
        p->master = -1;
        free(p->buf);
        p->buf = NULL;
        return r;
}

int pe_send(struct pe_pty *p, const char *s, size_t len) {
        while (len > 0) {
                ssize_t k = write(p->master, s, len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                s += k;
                len -= (size_t)k;
        }
        return 0;
}

int pe_winsize(struct pe_pty *p, unsigned short rows, unsigned short cols) {
        struct winsize ws = {.ws_row = rows, .ws_col = cols};
        return ioctl(p->master, TIOCSWINSZ, &ws) < 0 ? -errno : 0;
}

/* One poll and read, at most until deadline. Returns bytes read, 0 on
 * timeout, -EIO once the slave side is gone. */
static long pe_read_some(struct pe_pty *p, int64_t deadline) {
        if (p->eof)
                return -EIO;
        int64_t left = deadline - now_ms();
        if (left < 0)
                left = 0;
        struct pollfd pf = {.fd = p->master, .events = POLLIN};
        int r = poll(&pf, 1, (int)left);
        if (r < 0 && errno == EINTR)
                return 0;
        if (r <= 0)
                return 0;
        if (p->len + 4097 > p->cap) {
                /* Transcripts stay small; this bound keeps a runaway job
                 * from growing the test without limit. */
                if (p->cap >= (8u << 20)) {
                        p->eof = true;
                        return -EIO;
                }
                char *nb = realloc(p->buf, p->cap * 2);
                if (!nb)
                        return -ENOMEM;
                p->buf = nb;
                p->cap *= 2;
        }
        ssize_t k = read(p->master, p->buf + p->len, 4096);
        if (k < 0 && errno == EINTR)
                return 0;
        if (k <= 0) {
                /* Linux reports EIO once every slave fd is closed. */
                p->eof = true;
                return -EIO;
        }
        p->len += (size_t)k;
        p->buf[p->len] = '\0';
        return k;
}

long pe_expect(struct pe_pty *p, const char *needle, size_t from, int timeout_ms) {
        int64_t deadline = now_ms() + timeout_ms;
        for (;;) {
                if (from <= p->len) {
                        /* The transcript may hold NUL bytes from the job:
                         * search it as bytes. */
                        const char *hit = memmem(p->buf + from, p->len - from, needle,
                                                 strlen(needle));
                        if (hit)
                                return (long)(hit - p->buf) + (long)strlen(needle);
                }
                if (now_ms() >= deadline)
                        return -ETIMEDOUT;
                long r = pe_read_some(p, deadline);
                if (r == -EIO || r == -ENOMEM)
                        return -EIO;
        }
}

void pe_drain(struct pe_pty *p, int timeout_ms) {
        int64_t deadline = now_ms() + timeout_ms;
        while (now_ms() < deadline)
                if (pe_read_some(p, deadline) < 0)
                        break;
}

int pe_close(struct pe_pty *p, int timeout_ms) {
        int status = -1;
        if (p->pid > 0) {
                kill(p->pid, SIGHUP);
                kill(p->pid, SIGCONT);
                struct pollfd pf = {.fd = p->pidfd, .events = POLLIN};
                int64_t deadline = now_ms() + timeout_ms;
                for (;;) {
                        /* Keep reading so that a child blocked writing to a
                         * full terminal can make progress and exit. */
                        pf.revents = 0;
                        int r = poll(&pf, 1, 0);
                        if (r > 0 || now_ms() >= deadline)
                                break;
                        if (pe_read_some(p, deadline) < 0) {
                                poll(&pf, 1, (int)(deadline - now_ms() > 0 ? deadline - now_ms() : 0));
                                break;
                        }
                }
                if (!(pf.revents & POLLIN)) {
                        kill(-p->pid, SIGKILL);
                        kill(p->pid, SIGKILL);
                }
                while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
                        ;
                p->pid = 0;
        }
        if (p->pidfd >= 0)
                close(p->pidfd);
        p->pidfd = -1;
        if (p->master >= 0)
                close(p->master);
        p->master = -1;
        free(p->buf);
        p->buf = NULL;
        return status;
}
