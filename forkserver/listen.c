/*
 * listen.c: the server's listening socket. A path where a live server
 * answers is never taken over; a stale socket file left by a dead one is
 * replaced. The socket is created with the requested mode (0600 by default:
 * only its owner may connect) by binding under a matching umask, so there is
 * no window in which it is more open than asked. Connections are accepted
 * here and handed to connection.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../launcher/fdutil.h"
#include "config.h"
#include "server.h"

#ifndef MPS_VERSION_STRING
#define MPS_VERSION_STRING "0.0.0"
#endif

#define LISTEN_ACCEPT_BURST 64 /* connections accepted per wake-up */

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

/* The spare descriptor, taken at start-up with the loop's own. */
int listen_init(struct server *srv) {
        srv->listen.fd = -1;
        srv->listen.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        return srv->listen.spare_fd < 0 ? -errno : 0;
}

/*
 * Accepts every pending connection. When out of descriptors, the spare one
 * is given up to accept and immediately close the connection, so that the
 * level-triggered listening socket does not spin and the client sees EOF.
 */
static void on_listen(struct watch *w, uint32_t events) {
        struct server *srv = w->data;
        struct listen_state *l = &srv->listen;
        (void)events;
        for (int i = 0; i < LISTEN_ACCEPT_BURST; i++) {
                int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        if (errno == EMFILE || errno == ENFILE) {
                                log_warn("out of file descriptors; refusing a "
                                         "connection");
                                l->spare_fd = mps__safe_close(l->spare_fd);
                                fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
                                mps__safe_close(fd);
                                l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                        } else if (errno != EAGAIN) {
                                log_err("accept: %m");
                        }
                        return;
                }
                if (client_new(srv, fd) < 0)
                        mps__safe_close(fd);
        }
}

/* The configured path, when systemd passed no socket: created with the
 * mode (without group bits until the group is set), remembered to be
 * unlinked at exit. */
static int open_configured(struct server *srv, char *err, size_t errlen) {
        const struct config *cfg = srv->cfg;
        const char *path = cfg->socket_path;
        if (!path) {
                snprintf(err, errlen, "no socket: give --socket PATH (or start under "
                                      "systemd socket activation)");
                return -EDESTADDRREQ;
        }
        unsigned mode = cfg->socket_mode;
        int r = listen_open(path, cfg->has_socket_group ? mode & ~0070u : mode,
                            &srv->listen.fd, err, errlen);
        if (r == 0 && cfg->has_socket_group &&
            (r = listen_set_group(path, cfg->socket_group, mode, err, errlen)) < 0)
                unlink(path);
        if (r < 0)
                return r;
        /* To unlink it at exit: without it, stop here. */
        if (!(srv->listen.path = strdup(path))) {
                snprintf(err, errlen, "out of memory");
                unlink(path);
                return -ENOMEM;
        }
        return 0;
}

/* "PATH" of the listening socket, for the log. */
static void socket_name(int fd, char *buf, size_t len) {
        struct sockaddr_un sa;
        socklen_t salen = sizeof(sa);
        memset(&sa, 0, sizeof(sa));
        if (getsockname(fd, (struct sockaddr *)&sa, &salen) < 0 || !sa.sun_path[0])
                snprintf(buf, len, "an unnamed socket");
        else
                snprintf(buf, len, "%.*s", (int)sizeof(sa.sun_path), sa.sun_path);
}

int listen_start(struct server *srv, char *where, size_t wherelen, char *err,
                 size_t errlen) {
        const struct config *cfg = srv->cfg;
        struct listen_state *l = &srv->listen;
        int r = service_listen_fd(&l->fd, err, errlen);
        if (r < 0)
                return r;
        bool activated = r > 0;
        if (activated && (cfg->socket_path || cfg->has_socket_group))
                log_info("socket-activated: the socket unit sets the "
                         "socket's path, mode and group; ignoring ours");
        if (!activated && (r = open_configured(srv, err, errlen)) < 0)
                return r;
        l->watch = (struct watch){.fn = on_listen, .data = srv};
        if ((r = loop_add(srv, l->fd, EPOLLIN, &l->watch)) < 0) {
                snprintf(err, errlen, "cannot watch the socket: %s", strerror(-r));
                return r;
        }
        socket_name(l->fd, where, wherelen);
        log_info("listening on %s%s (version %s, protocol %d)", where,
                 activated ? ", passed by systemd" : "", MPS_VERSION_STRING,
                 MPS_PROTOCOL_VERSION);
        return 0;
}

void listen_stop(struct server *srv) {
        struct listen_state *l = &srv->listen;
        if (l->fd < 0)
                return;
        loop_del(srv, l->fd);
        l->fd = mps__safe_close(l->fd);
        if (l->path)
                unlink(l->path);
}

void listen_close(struct server *srv) {
        struct listen_state *l = &srv->listen;
        if (l->path && l->fd >= 0)
                unlink(l->path);
        l->fd = mps__safe_close(l->fd);
        l->spare_fd = mps__safe_close(l->spare_fd);
        free(l->path);
        l->path = NULL;
}
