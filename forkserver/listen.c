/* SPDX-License-Identifier: MIT */
/*
 * listen.c: the server's listening socket. A path where a live server
 * answers is never taken over; a stale socket file left by a dead one is
 * replaced. The socket is created with the requested mode (0600 by default:
 * only its owner may connect) and group in a private directory, and only
 * then linked into place: it is never more open than asked, and no chown
 * or chmod ever goes through a path someone else could change (a symlink
 * put in its place in a writable directory). Connections are accepted
 * here and handed to connection.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

/* 0 if nothing is at path or a dead server's socket was (and is now
 * removed); -errno with err set if something else is there, or a live
 * server answers. */
static int check_path_free(const char *path, const struct sockaddr_un *sa, char *err,
                           size_t errlen) {
        struct stat st;
        if (lstat(path, &st) < 0)
                return 0;
        if (!S_ISSOCK(st.st_mode)) {
                snprintf(err, errlen, "'%s' exists and is not a socket; not replacing it",
                         path);
                return -EEXIST;
        }
        int r = probe(sa);
        if (r > 0) {
                snprintf(err, errlen, "a server is already listening on '%s'", path);
                return -EADDRINUSE;
        }
        if (r < 0) {
                snprintf(err, errlen, "cannot check '%s': %s", path, strerror(-r));
                return r;
        }
        if (unlink(path) < 0 && errno != ENOENT) {
                r = -errno;
                snprintf(err, errlen, "cannot remove stale socket '%s': %m", path);
                return r;
        }
        return 0;
}

/*
 * A private directory beside path ("DIR/.mpspawn-XXXXXX", 0700), its name
 * in tmpl and an fd of it in *ret_dfd. It is checked through the fd to be
 * ours and 0700, so a directory swapped in under its name before the open
 * is refused; from then on only the fd is used, and in a 0700 directory of
 * ours nobody else can create, replace or rename anything.
 */
static int private_dir(const char *path, char *tmpl, size_t len, int *ret_dfd) {
        const char *slash = strrchr(path, '/');
        int dirlen = slash ? (int)(slash - path) : 1;
        const char *dir = slash ? path : ".";
        if (slash == path)
                dirlen = 0; /* a socket in "/" */
        if ((size_t)snprintf(tmpl, len, "%.*s/.mpspawn-XXXXXX", dirlen, dir) >= len)
                return -ENAMETOOLONG;
        if (!mkdtemp(tmpl))
                return -errno;
        int dfd = open(tmpl, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        int r = dfd < 0 || fstat(dfd, &st) < 0 ? -errno : 0;
        if (r == 0 && (st.st_uid != geteuid() || (st.st_mode & 07777) != 0700))
                r = -EPERM;
        if (r < 0) {
                mps__safe_close(dfd);
                return r;
        }
        *ret_dfd = dfd;
        return 0;
}

#define LISTEN_PRIVATE_NAME "s"

/*
 * A listening socket named LISTEN_PRIVATE_NAME in the private directory
 * dfd (path, for messages), with mode and (unless gid is -1) group set while nobody else can
 * reach it. bind() takes a path, so the directory is named through our
 * fd (/proc/self/fd/N), never through a name someone could change.
 * listen() comes before the socket is published: a client (or a server
 * starting and checking for a stale socket) must never find it dead.
 */
static int bind_private(const char *path, int dfd, unsigned mode, gid_t gid, int *ret_fd,
                        char *err, size_t errlen) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", dfd,
                 LISTEN_PRIVATE_NAME);
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
                int r = -errno;
                snprintf(err, errlen, "socket: %m");
                return r;
        }
        mode_t old = umask(~mode & 0777);
        int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
        umask(old);
        const char *what = "bind";
        if (r == 0 && gid != (gid_t)-1) {
                what = "give the group to";
                r = fchownat(dfd, LISTEN_PRIVATE_NAME, (uid_t)-1, gid, AT_SYMLINK_NOFOLLOW);
        }
        if (r == 0) { /* the mode exactly, whatever a default ACL or chown made */
                what = "set the mode of";
                r = fchmodat(dfd, LISTEN_PRIVATE_NAME, mode, 0);
        }
        if (r == 0) {
                what = "listen on";
                r = listen(fd, SOMAXCONN);
        }
        if (r < 0) {
                int e = errno;
                if (gid == (gid_t)-1)
                        snprintf(err, errlen, "cannot %s '%s' (mode %04o): %s", what, path,
                                 mode, strerror(e));
                else
                        snprintf(err, errlen, "cannot %s '%s' (group %u, mode %04o): %s",
                                 what, path, (unsigned)gid, mode, strerror(e));
                mps__safe_close(fd);
                return -e;
        }
        *ret_fd = fd;
        return 0;
}

/*
 * The socket at path, created safely: in a private directory beside it,
 * with its group and mode set there, then hard-linked to path (which, like
 * rename with RENAME_NOREPLACE, never replaces or follows what is at path)
 * and its private name removed. A path changed under us (a symlink, a
 * live server's socket appearing) makes the start fail; nothing at path
 * is ever chowned, chmodded or replaced. gid (gid_t)-1: the server's own.
 */
static int listen_open(const char *path, unsigned mode, gid_t gid, int *ret_fd, char *err,
                       size_t errlen) {
        struct sockaddr_un sa;
        char tmpl[PATH_MAX];
        int dfd = -1, fd = -1, r;

        if ((r = fill_addr(path, &sa)) < 0) {
                snprintf(err, errlen, "socket path '%s' is too long", path);
                return r;
        }
        if ((r = check_path_free(path, &sa, err, errlen)) < 0)
                return r;
        if ((r = private_dir(path, tmpl, sizeof(tmpl), &dfd)) < 0) {
                snprintf(err, errlen, "cannot make a private directory beside '%s': %s",
                         path, strerror(-r));
                return r;
        }
        r = bind_private(path, dfd, mode, gid, &fd, err, errlen);
        if (r == 0 && linkat(dfd, LISTEN_PRIVATE_NAME, AT_FDCWD, path, 0) < 0) {
                r = -errno;
                if (r == -EEXIST)
                        snprintf(err, errlen, "'%s' appeared while starting; not "
                                              "replacing it", path);
                else
                        snprintf(err, errlen, "cannot bind '%s': %s", path, strerror(-r));
                fd = mps__safe_close(fd);
        }
        unlinkat(dfd, LISTEN_PRIVATE_NAME, 0);
        mps__safe_close(dfd);
        rmdir(tmpl); /* empty: at worst someone else's empty directory */
        if (r == 0)
                *ret_fd = fd;
        return r;
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

/* The configured path, when systemd passed no socket: created with its
 * mode and group, remembered to be unlinked at exit. */
static int open_configured(struct server *srv, char *err, size_t errlen) {
        const struct config *cfg = srv->cfg;
        const char *path = cfg->socket_path;
        if (!path) {
                snprintf(err, errlen, "no socket: give --socket PATH (or start under "
                                      "systemd socket activation)");
                return -EDESTADDRREQ;
        }
        gid_t gid = cfg->has_socket_group ? cfg->socket_group : (gid_t)-1;
        int r = listen_open(path, cfg->socket_mode, gid, &srv->listen.fd, err, errlen);
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

/* "PATH" of the listening socket, for the log: ours is bound under a
 * private name, so the configured path says where it is. */
static void socket_name(int fd, const char *path, char *buf, size_t len) {
        struct sockaddr_un sa;
        if (path) {
                snprintf(buf, len, "%s", path);
                return;
        }
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
        socket_name(l->fd, l->path, where, wherelen);
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
        /* The name goes first: a server started on the same path once ours
         * no longer answers must not lose its new socket to our unlink. */
        if (l->path)
                unlink(l->path);
        l->fd = mps__safe_close(l->fd);
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
