/* SPDX-License-Identifier: MIT */
/*
 * adopt.c: the "adopt" request, by which the process that started an
 * embedded server (libmpspawn) hands it one more connection: the far end of
 * a socketpair it made, attached as SCM_RIGHTS. The server then serves that
 * socket exactly as a connection it had accepted (client_new): its
 * credentials and context come from the kernel (SO_PEERCRED of a
 * socketpair end names the process that made the pair), never from the
 * request. So every client of one host process shares one private server,
 * and the server still ends when its last connection is gone.
 *
 * A server that listens on a socket takes no connection this way (it has
 * accept for that, and a descriptor handed over would bypass nothing, but
 * no client needs it): it refuses, and announces no "adopt" feature.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "../launcher/fdutil.h"
#include "server.h"

/* Whether fd is a connected AF_UNIX SOCK_SEQPACKET socket: 0, or -errno
 * with what it is instead in why. */
static int check_connection(int fd, char *why, size_t whylen) {
        struct stat st;
        int domain = 0, type = 0;
        socklen_t len = sizeof(int);
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
                snprintf(why, whylen, "the descriptor is not a socket");
                return -ENOTSOCK;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 || domain != AF_UNIX ||
            getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &(socklen_t){sizeof(int)}) < 0 ||
            type != SOCK_SEQPACKET) {
                snprintf(why, whylen, "the descriptor is not an AF_UNIX SOCK_SEQPACKET socket");
                return -EPROTOTYPE;
        }
        /* A listening or never connected socket has no peer to serve. */
        if (getpeername(fd, (struct sockaddr *)&peer, &plen) < 0) {
                snprintf(why, whylen, "the socket is not connected");
                return -ENOTCONN;
        }
        return 0;
}

bool adopt_offered(const struct server *srv) {
        /* MPSPAWN_SERVER_NO_ADOPT=1, a test hook, makes an embedded server
         * behave as one from before adopt: the library must then fall back
         * to a server per client. Read once: the environment is ours. */
        static int hook = -1;
        if (hook < 0) {
                const char *e = getenv("MPSPAWN_SERVER_NO_ADOPT");
                hook = e && strcmp(e, "1") == 0;
        }
        return srv->life.embedded && !hook;
}

void request_adopt(struct client *c, struct mps__msg *msg) {
        struct server *srv = c->srv;
        char err[256], why[128];
        uint64_t tag = 0;
        int r = mps__adopt_decode(msg->json, &tag, err, sizeof(err));
        if (r < 0) {
                client_send_error(c, msg->tag, -r, "request", "bad adopt request: %s", err);
                return;
        }
        if (!srv->life.embedded) {
                client_send_error(c, tag, EOPNOTSUPP, "request",
                                  "only an embedded server (mpforkserver --embedded) "
                                  "takes a connection handed over; connect to this one's "
                                  "socket instead");
                return;
        }
        if (!adopt_offered(srv)) {
                client_send_error(c, tag, EOPNOTSUPP, "request",
                                  "this server takes no connection handed over "
                                  "(MPSPAWN_SERVER_NO_ADOPT=1)");
                return;
        }
        if (srv->life.stopping) {
                client_send_error(c, tag, ESHUTDOWN, "request",
                                  "the server is stopping and takes no new connection");
                return;
        }
        if (msg->nfds != 1) {
                client_send_error(c, tag, EINVAL, "request",
                                  "adopt carries exactly one descriptor, not %zu", msg->nfds);
                return; /* the message's descriptors go with it */
        }
        if ((r = check_connection(msg->fds[0], why, sizeof(why))) < 0) {
                client_send_error(c, tag, -r, "request", "cannot adopt: %s", why);
                return;
        }
        /* Received MSG_CMSG_CLOEXEC; every connection of ours is
         * non-blocking. The flag is the open file's, which the sender let go
         * of with its copy. */
        int fd = msg->fds[0];
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
                r = -errno;
                client_send_error(c, tag, -r, "request", "cannot adopt: fcntl: %s",
                                  strerror(-r));
                return;
        }
        msg->fds[0] = -1; /* taken: client_new owns it from here, or we close it */
        if ((r = client_new(srv, fd)) < 0) {
                closer_release(fd);
                client_send_error(c, tag, -r, "request", "cannot adopt the connection: %s",
                                  strerror(-r));
                return;
        }
        /* A connection client_new refused (a limit) has its reason queued
         * on it: the new connection's owner reads it there. */
        client_send(c, mps__adopted_encode(tag), -1);
}
