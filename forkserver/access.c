/* SPDX-License-Identifier: MIT */
/*
 * access.c: who may connect. Runs once per connection, at accept, on the
 * credentials the kernel recorded when the peer called connect()
 * (SO_PEERCRED, SO_PEERGROUPS): a peer cannot change them afterwards, and
 * they do not depend on /etc/group being read again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "server.h"

/* The peer's supplementary groups into a malloc()ed array. */
static int peer_groups(int fd, gid_t **ret, size_t *ret_n) {
        socklen_t len = 64 * sizeof(gid_t);
        for (int tries = 0; tries < 4; tries++) {
                gid_t *g = malloc(len ? len : sizeof(gid_t));
                if (!g)
                        return -ENOMEM;
                socklen_t got = len;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &got) == 0) {
                        *ret = g;
                        *ret_n = got / sizeof(gid_t);
                        return 0;
                }
                int e = errno;
                free(g);
                /* ERANGE: got says how much room the list needs. */
                if (e != ERANGE)
                        return -e;
                len = got;
        }
        return -ERANGE;
}

int access_check(struct server *srv, int fd, const struct ucred *cred, char *why,
                 size_t whylen) {
        const struct config *cfg = srv->cfg;
        gid_t *groups = NULL;
        size_t ngroups = 0;

        if (cfg->n_allowed_gids > 0) {
                int r = peer_groups(fd, &groups, &ngroups);
                if (r < 0) {
                        snprintf(why, whylen, "cannot read the groups of uid %u: %s",
                                 (unsigned)cred->uid, strerror(-r));
                        return -EACCES;
                }
        }
        bool ok = config_allows(cfg, cred->uid, cred->gid, groups, ngroups);
        free(groups);
        if (!ok) {
                snprintf(why, whylen,
                         "uid %u is not allowed to use this server (allowed_users "
                         "and allowed_groups in %s)",
                         (unsigned)cred->uid, cfg->file ? cfg->file : "its configuration");
                return -EACCES;
        }

        return 0;
}
