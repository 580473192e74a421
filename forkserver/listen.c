/*
 * listen.c: the server's listening socket. A path where a live server
 * answers is never taken over; a stale socket file left by a dead one is
 * replaced. The socket is created with the requested mode (0600 by default:
 * only its owner may connect) by binding under a matching umask, so there is
 * no window in which it is more open than asked.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../launcher/fdutil.h"
#include "server.h"

static int fill_addr(const char *path, struct sockaddr_un *sa) {
        memset(sa, 0, sizeof(*sa));
        sa->sun_family = AF_UNIX;
        if (strlen(path) >= sizeof(sa->sun_path))
                return -ENAMETOOLONG;
        strcpy(sa->sun_path, path);
        return 0;
}

/* 1 if a server answers at path, 0 if the path is free or stale, -errno. */
static int probe(const struct sockaddr_un *sa) {
        /* Non-blocking: a live server whose backlog is full would hold a
         * blocking connect, and our start with it; EAGAIN says it is live. */
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        int r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
        int e = errno;
        mps__safe_close(fd);
        if (r == 0 || e == EAGAIN)
                return 1;
        if (e == ENOENT || e == ECONNREFUSED)
                return 0;
        return -e;
}

int listen_open(const char *path, unsigned mode, int *ret_fd, char *err,
                size_t errlen) {
        struct sockaddr_un sa;
        struct stat st;
        int fd = -1, r;

        if ((r = fill_addr(path, &sa)) < 0) {
                snprintf(err, errlen, "socket path '%s' is too long", path);
                return r;
        }
        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode)) {
                        snprintf(err, errlen,
                                 "'%s' exists and is not a socket; not replacing it",
                                 path);
                        return -EEXIST;
                }
                r = probe(&sa);
                if (r > 0) {
                        snprintf(err, errlen,
                                 "a server is already listening on '%s'", path);
                        return -EADDRINUSE;
                }
                if (r < 0) {
                        snprintf(err, errlen, "cannot check '%s': %s", path,
                                 strerror(-r));
                        return r;
                }
                if (unlink(path) < 0 && errno != ENOENT) {
                        r = -errno;
                        snprintf(err, errlen, "cannot remove stale socket '%s': %m",
                                 path);
                        return r;
                }
        }

        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
                r = -errno;
                snprintf(err, errlen, "socket: %m");
                return r;
        }
        mode_t old = umask(~mode & 0777);
        r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
        int e = errno;
        umask(old);
        if (r < 0) {
                snprintf(err, errlen, "cannot bind '%s': %s", path, strerror(e));
                mps__safe_close(fd);
                return -e;
        }
        if (listen(fd, SOMAXCONN) < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot listen on '%s': %m", path);
                unlink(path);
                mps__safe_close(fd);
                return r;
        }
        *ret_fd = fd;
        return 0;
}

/*
 * Gives the socket at path the group gid, then the full mode. listen_open
 * created it without group permissions, so no member of the server's own
 * group could connect in between: the socket is never more open than
 * asked, only briefly less.
 */
int listen_set_group(const char *path, gid_t gid, unsigned mode, char *err,
                     size_t errlen) {
        if (chown(path, (uid_t)-1, gid) < 0 || chmod(path, mode) < 0) {
                int r = -errno;
                snprintf(err, errlen, "cannot give '%s' group %u and mode %04o: %m", path,
                         (unsigned)gid, mode);
                return r;
        }
        return 0;
}
