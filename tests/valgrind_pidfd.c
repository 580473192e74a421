/* SPDX-License-Identifier: MIT */
/*
 * valgrind_pidfd.c: for tests/bench_callgrind.sh only. valgrind 3.19 does
 * not know pidfd_send_signal (424), so under it the server's liveness test
 * of a connecting peer (peer.c: pidfd_send_signal(pidfd, 0)) fails with
 * ENOSYS and every client is refused. Preloaded into the server there,
 * this answers that one call the way the kernel would, by kill(pid, 0) on
 * the pid the pidfd's fdinfo names, and passes every other syscall() on.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static long pidfd_probe(int pidfd) {
        char path[64], line[128];
        long pid = -1;
        snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
        FILE *f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "Pid: %ld", &pid) == 1)
                        break;
        fclose(f);
        if (pid <= 0) {
                errno = ESRCH;
                return -1;
        }
        return kill((pid_t)pid, 0);
}

long syscall(long nr, ...) {
        static long (*next)(long, ...);
        va_list ap;
        long a[6];
        va_start(ap, nr);
        for (int i = 0; i < 6; i++)
                a[i] = va_arg(ap, long);
        va_end(ap);
        if (nr == SYS_pidfd_send_signal && a[1] == 0)
                return pidfd_probe((int)a[0]);
        if (!next)
                next = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
        return next(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}
