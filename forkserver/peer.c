/* SPDX-License-Identifier: MIT */
/*
 * peer.c: the connected peer's identity and context, from the kernel.
 *
 * At accept: SO_PEERCRED (pid, uid, gid, as they were at connect) and the
 * peer's actual supplementary groups (SO_PEERGROUPS), which cannot change
 * for the connection.
 *
 * For each spawn, what the peer may have changed since (capabilities,
 * no_new_privs, seccomp, umask, ignored signals, CPU affinity, rlimits,
 * nice, oom_score_adj), read from /proc/PID and checked against a pidfd of
 * that very process: SO_PEERPIDFD (Linux 6.5) gives one for the process
 * the socket recorded at connect, taken again for each read, so that a
 * connection holds no descriptor more than before. /proc/PID is read,
 * then the pidfd is checked to be alive: a process alive now was alive
 * throughout, and a pid is not reused while its process lives, so all that
 * was read was that process's; a recycled pid is refused (ESRCH), never
 * trusted. Before 6.5 the server takes pidfd_open(pid) once
 * at accept and holds it (one descriptor per connection); there is a window
 * between connect and that pidfd_open which the kernel offers nothing to
 * close. Root here lacks CAP_SYS_RESOURCE, so prlimit() on another process
 * fails: the limits come from /proc/PID/limits. nice comes from
 * getpriority(2), which needs no privilege; the affinity from Cpus_allowed
 * in /proc/PID/status.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../launcher/fdutil.h"
#include "peer.h"
#include "server.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

#define PEER_GROUPS_MAX 65536 /* NGROUPS_MAX */

/* 0 while the pidfd's process has not been reaped: a signal 0 is
 * delivered, or refused for want of permission (a root peer of a server
 * that is not root), which only a live process can refuse. Where
 * pidfd_send_signal is missing (valgrind 3.19 does not know it, so
 * check-valgrind and bench-callgrind would refuse every client), a pidfd
 * that does not poll readable names a process that has not exited. */
static int pidfd_alive(int pidfd) {
        if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0 || errno == EPERM)
                return 0;
        if (errno != ENOSYS)
                return -errno;
        int r = mps__poll_one(pidfd, POLLIN, 0);
        return r < 0 ? r : r > 0 ? -ESRCH : 0;
}

/* Reads a small file relative to dirfd into buf (NUL-terminated). */
static ssize_t read_at(int dirfd, const char *name, char *buf, size_t len) {
        int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        size_t got = 0;
        while (got < len - 1) {
                ssize_t n = mps__read_retry(fd, buf + got, len - 1 - got);
                if (n < 0) {
                        int e = errno;
                        close(fd);
                        return -e;
                }
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        close(fd);
        buf[got] = '\0';
        return (ssize_t)got;
}

/* The pid a pidfd names, from our own fdinfo of it. */
static int pidfd_pid(int pidfd, pid_t *ret_pid) {
        char name[64], buf[1024];
        snprintf(name, sizeof(name), "/proc/self/fdinfo/%d", pidfd);
        ssize_t n = read_at(AT_FDCWD, name, buf, sizeof(buf));
        if (n < 0)
                return (int)n;
        const char *p = strstr(buf, "\nPid:");
        int pid;
        if (!p || sscanf(p + 5, "%d", &pid) != 1)
                return -EINVAL;
        *ret_pid = pid;
        return 0;
}

/* The peer's pidfd from the socket (-ENOPROTOOPT before Linux 6.5). */
static int socket_pidfd(int sockfd) {
        int pidfd = -1;
        socklen_t len = sizeof(pidfd);
        if (getsockopt(sockfd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0)
                return -errno;
        return pidfd;
}

/* The pidfd of p for one read: its own, or a fresh one (*ret_owned). */
static int peer_pidfd(const struct peer *p, bool *ret_owned) {
        *ret_owned = p->pidfd < 0;
        return p->pidfd >= 0 ? p->pidfd : socket_pidfd(p->sockfd);
}

int peer_open(int sockfd, struct peer *ret_peer, char *err, size_t errlen) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        if (getsockopt(sockfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                snprintf(err, errlen, "SO_PEERCRED: %m");
                return -errno;
        }
        struct peer p = {.pid = cred.pid, .uid = cred.uid, .gid = cred.gid, .pidfd = -1,
                         .sockfd = sockfd};
        pid_t named = -1;
        if (cred.pid <= 0) {
                /* Not in our pid namespace: nothing to read it by. */
                snprintf(err, errlen, "the peer's pid is not visible to the server");
                return -ESRCH;
        }
        int pidfd = socket_pidfd(sockfd);
        if (pidfd == -ENOPROTOOPT || pidfd == -EINVAL) {
                /* Before 6.5: the pid may name a later process by now. */
                p.pidfd = pidfd = pidfd_open(cred.pid, 0);
                if (pidfd < 0)
                        pidfd = -errno;
        }
        if (pidfd < 0) {
                snprintf(err, errlen, "cannot get a pidfd of pid %d: %s", (int)cred.pid,
                         strerror(-pidfd));
                return pidfd == -EMFILE || pidfd == -ENFILE ? pidfd : -ESRCH;
        }
        int r = pidfd_pid(pidfd, &named);
        if (r == 0 && (named != cred.pid || pidfd_alive(pidfd) < 0))
                r = -ESRCH;
        if (p.pidfd < 0)
                close(pidfd);
        if (r < 0) {
                snprintf(err, errlen, "pid %d is gone or no longer the connected process: %s",
                         (int)cred.pid, strerror(-r));
                peer_close(&p);
                return r == -EMFILE || r == -ENFILE ? r : -ESRCH;
        }
        *ret_peer = p;
        return 0;
}

void peer_close(struct peer *p) {
        p->pidfd = mps__safe_close(p->pidfd);
}

int peer_creds(int sockfd, const struct peer *p, struct creds *cr) {
        socklen_t len = 16 * sizeof(gid_t);
        gid_t *groups = NULL;
        for (;;) {
                gid_t *g = realloc(groups, len ? len : sizeof(gid_t));
                if (!g) {
                        free(groups);
                        return -ENOMEM;
                }
                groups = g;
                socklen_t have = len;
                if (getsockopt(sockfd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
                        break;
                /* ERANGE: len now says how much it needs. */
                if (errno != ERANGE || len <= have || len > PEER_GROUPS_MAX * sizeof(gid_t)) {
                        int e = errno == ERANGE ? E2BIG : errno;
                        free(groups);
                        return -e;
                }
        }
        cr->uid = p->uid;
        cr->gid = p->gid;
        cr->groups = groups;
        cr->ngroups = len / sizeof(gid_t);
        return 0;
}

/* ---- /proc text ---------------------------------------------------------- */

static int hex_field(const char *text, const char *key, uint64_t *ret) {
        const char *p = strstr(text, key);
        char *end;
        if (!p)
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(p + strlen(key), &end, 16);
        if (errno || end == p + strlen(key))
                return -EINVAL;
        *ret = v;
        return 0;
}

static int dec_field(const char *text, const char *key, int base, long *ret) {
        const char *p = strstr(text, key);
        char *end;
        if (!p)
                return -EINVAL;
        errno = 0;
        long v = strtol(p + strlen(key), &end, base);
        if (errno || end == p + strlen(key))
                return -EINVAL;
        *ret = v;
        return 0;
}

int peer_parse_status(const char *text, struct peer_context *ctx) {
        long nnp, sc, um, nf = 0;
        /* Keys with the line break before them, so that "CapPrm" cannot
         * match inside another name. */
        if (hex_field(text, "\nCapInh:", &ctx->cap_inh) < 0 ||
            hex_field(text, "\nCapPrm:", &ctx->cap_prm) < 0 ||
            hex_field(text, "\nCapEff:", &ctx->cap_eff) < 0 ||
            hex_field(text, "\nCapBnd:", &ctx->cap_bnd) < 0 ||
            hex_field(text, "\nSigIgn:", &ctx->sig_ign) < 0 ||
            dec_field(text, "\nNoNewPrivs:", 10, &nnp) < 0 ||
            dec_field(text, "\nSeccomp:", 10, &sc) < 0)
                return -EINVAL;
        /* Since Linux 4.3 (ambient), 4.7 (Umask), 5.9 (Seccomp_filters). */
        if (hex_field(text, "\nCapAmb:", &ctx->cap_amb) < 0)
                ctx->cap_amb = 0;
        ctx->umask = dec_field(text, "Umask:", 8, &um) == 0 ? (int)(um & 0777) : -1;
        (void)dec_field(text, "\nSeccomp_filters:", 10, &nf);
        ctx->no_new_privs = nnp != 0;
        ctx->seccomp = (int)sc;
        ctx->seccomp_filters = (unsigned)nf;
        return 0;
}

static int limit_value(const char *s, char **end, rlim_t *ret) {
        while (*s == ' ')
                s++;
        if (strncmp(s, "unlimited", 9) == 0) {
                *ret = RLIM_INFINITY;
                *end = (char *)s + 9;
                return 0;
        }
        errno = 0;
        unsigned long long v = strtoull(s, end, 10);
        if (errno || *end == s)
                return -EINVAL;
        *ret = (rlim_t)v;
        return 0;
}

/* The kernel prints one line per resource, in resource order, as
 * "%-25s %-20s %-20s %-10s" after a header line. */
int peer_parse_limits(const char *text, struct peer_context *ctx) {
        const char *line = strchr(text, '\n');
        for (int i = 0; i < PEER_RLIMITS; i++) {
                if (!line || strlen(line + 1) < 26)
                        return -EINVAL;
                char *end;
                const char *s = line + 1 + 26;
                if (limit_value(s, &end, &ctx->rlim[i].rlim_cur) < 0 ||
                    limit_value(end, &end, &ctx->rlim[i].rlim_max) < 0)
                        return -EINVAL;
                line = strchr(end, '\n');
        }
        return 0;
}

/* ---- reading a context ------------------------------------------------------ */

/* Cpus_allowed: 32-bit hex words, the highest first, comma-separated. */
static int parse_cpus(const char *text, cpu_set_t *set) {
        const char *p = strstr(text, "\nCpus_allowed:");
        uint32_t words[CPU_SETSIZE / 32];
        size_t n = 0;
        if (!p)
                return -EINVAL;
        p += strlen("\nCpus_allowed:");
        for (;;) {
                char *end;
                unsigned long w = strtoul(p, &end, 16);
                if (end == p || n == sizeof(words) / sizeof(words[0]))
                        return -EINVAL;
                words[n++] = (uint32_t)w;
                if (*end != ',')
                        break;
                p = end + 1;
        }
        CPU_ZERO(set);
        for (size_t i = 0; i < n; i++) /* words[n - 1] holds CPUs 0-31 */
                for (int b = 0; b < 32; b++)
                        if (words[n - 1 - i] & (1u << b))
                                CPU_SET(i * 32 + (size_t)b, set);
        return 0;
}

/* ENOENT in /proc/PID: the process was reaped. */
static int gone(ssize_t r) {
        return r == -ENOENT ? -ESRCH : (int)r;
}

/* One file of /proc/PID into buf; by path, so that a read holds one
 * descriptor at a time (a spawn's received fds may leave few spare). */
static ssize_t read_proc(pid_t pid, const char *name, char *buf, size_t len) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
        return read_at(AT_FDCWD, path, buf, len);
}

static int read_context(pid_t pid, struct peer_context *c, const char **what) {
        char buf[4096];
        ssize_t n;
        memset(c, 0, sizeof(*c));
        *what = "status";
        if ((n = read_proc(pid, "status", buf, sizeof(buf))) < 0)
                return gone(n);
        if (peer_parse_status(buf, c) < 0 || parse_cpus(buf, &c->affinity) < 0)
                return -EINVAL;
        *what = "limits";
        if ((n = read_proc(pid, "limits", buf, sizeof(buf))) < 0)
                return gone(n);
        if (peer_parse_limits(buf, c) < 0)
                return -EINVAL;
        /* nice by getpriority(2), which any process may ask of any other
         * and which answers for the thread-group leader, as /proc/PID/stat
         * would, for a sixtieth of the cost of that file. */
        *what = "nice";
        errno = 0; /* -1 is a nice value too: only errno tells a failure */
        int prio = getpriority(PRIO_PROCESS, (id_t)pid);
        if (prio == -1 && errno)
                return -errno; /* ESRCH: the process is gone */
        c->nice = prio;
        /* The I/O priority has no /proc file: ioprio_get(2) by pid, which the
         * pidfd check below makes the peer's as well. */
        *what = "I/O priority";
        long io = syscall(SYS_ioprio_get, PEER_IOPRIO_WHO_PROCESS, (int)pid);
        if (io < 0)
                return -errno; /* ESRCH: the process is gone */
        c->ioprio = (int)io;
        *what = "oom_score_adj";
        if ((n = read_proc(pid, "oom_score_adj", buf, sizeof(buf))) < 0)
                return gone(n);
        char *end;
        errno = 0;
        long oom = strtol(buf, &end, 10);
        if (errno || end == buf)
                return -EINVAL;
        c->oom_score_adj = (int)oom;
        return 0;
}

int peer_read_context(const struct peer *p, struct peer_context *ret_ctx, char *err,
                      size_t errlen) {
        const char *what;
        bool owned;
        int r = read_context(p->pid, ret_ctx, &what);
        /* Then the pidfd of the process that connected, alive: a process
         * that lives now lived throughout the reads, and while it lives no
         * other has its pid, so all of the above was its. Taken after the
         * reads, so that a read holds one descriptor at most (a spawn's
         * received fds may leave few spare). */
        if (r == 0 || r == -ESRCH) {
                int pidfd = peer_pidfd(p, &owned);
                if (pidfd == -EMFILE || pidfd == -ENFILE) {
                        what = "pidfd";
                        r = pidfd;
                } else if (pidfd < 0 || pidfd_alive(pidfd) < 0) {
                        r = -ESRCH;
                }
                if (pidfd >= 0 && owned)
                        close(pidfd);
        }
        if (r == -ESRCH)
                snprintf(err, errlen,
                         "the process that connected (pid %d) has exited: its context "
                         "cannot be read, and is not guessed",
                         (int)p->pid);
        else if (r < 0)
                snprintf(err, errlen, "cannot read the client's %s (pid %d): %s", what,
                         (int)p->pid, strerror(-r));
        return r;
}

int peer_read_self(struct peer_context *ret_ctx) {
        const char *what;
        return read_context(getpid(), ret_ctx, &what);
}

bool peer_context_equal(const struct peer_context *a, const struct peer_context *b) {
        return a->cap_inh == b->cap_inh && a->cap_prm == b->cap_prm &&
               a->cap_eff == b->cap_eff && a->cap_bnd == b->cap_bnd &&
               a->cap_amb == b->cap_amb && a->no_new_privs == b->no_new_privs &&
               a->seccomp == b->seccomp && a->seccomp_filters == b->seccomp_filters &&
               a->umask == b->umask && a->sig_ign == b->sig_ign && a->nice == b->nice &&
               a->ioprio == b->ioprio && a->oom_score_adj == b->oom_score_adj &&
               memcmp(a->rlim, b->rlim, sizeof(a->rlim)) == 0 &&
               CPU_EQUAL(&a->affinity, &b->affinity);
}
