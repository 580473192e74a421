/* SPDX-License-Identifier: MIT */
/* fdutil.c: descriptor and time helpers (see fdutil.h). */
#include "fdutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int mps__safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                close(fd);
                errno = saved;
        }
        return -1;
}

int mps__write_all(int fd, const void *buf, size_t len) {
        const char *p = buf;
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

ssize_t mps__read_retry(int fd, void *buf, size_t len) {
        ssize_t n;
        do
                n = read(fd, buf, len);
        while (n < 0 && errno == EINTR);
        return n < 0 ? -errno : n;
}

pid_t mps__wait_retry(pid_t pid, int *status, int options, struct rusage *ru) {
        pid_t r;
        do
                r = wait4(pid, status, options, ru);
        while (r < 0 && errno == EINTR);
        return r < 0 ? -errno : r;
}

uint64_t mps__now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int mps__poll_one(int fd, short events, int timeout_ms) {
        struct pollfd p = {.fd = fd, .events = events};
        return mps__poll_many(&p, 1, timeout_ms);
}

int mps__poll_many(struct pollfd *fds, size_t n, int timeout_ms) {
        uint64_t deadline = timeout_ms >= 0
                ? mps__now_ns() + (uint64_t)timeout_ms * 1000000u : 0;
        for (;;) {
                int r = poll(fds, (nfds_t)n, timeout_ms);
                if (r >= 0)
                        return r;
                if (errno != EINTR)
                        return -errno;
                if (timeout_ms >= 0) {
                        uint64_t now = mps__now_ns();
                        timeout_ms = now >= deadline
                                ? 0 : (int)((deadline - now + 999999) / 1000000);
                }
        }
}

int mps__fd_move_at_least(int fd, int min) {
        if (fd < 0 || fd >= min)
                return fd;
        int n = fcntl(fd, F_DUPFD_CLOEXEC, min);
        if (n < 0)
                return -errno;
        close(fd);
        return n;
}

int mps__read_file(const char *path, size_t max, char **ret_text, size_t *ret_len) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        char *buf = malloc(max + 2);
        if (!buf) {
                close(fd);
                return -ENOMEM;
        }
        size_t n = 0;
        ssize_t k = 1;
        /* One byte past max tells a file that is too long. */
        while (n <= max && (k = mps__read_retry(fd, buf + n, max + 1 - n)) > 0)
                n += (size_t)k;
        close(fd);
        if (k < 0 || n > max) {
                free(buf);
                return k < 0 ? (int)k : -EFBIG;
        }
        buf[n] = '\0';
        *ret_text = buf;
        *ret_len = n;
        return 0;
}

int mps__exitcode_of_status(int status) {
        return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
}
