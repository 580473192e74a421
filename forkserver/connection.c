/* SPDX-License-Identifier: MIT */
/*
 * connection.c: the server's side of one connection: its set-up at accept,
 * requests in (each handed by op to its handler: spawn, or request.c),
 * replies out, and its teardown. Replies go out at once when the socket has
 * room, else into a bounded queue drained on EPOLLOUT. The server never
 * blocks on a client: one whose queue overflows is dropped. The queue is
 * bounded in replies (client_queue), in bytes (client_queue_bytes), and in
 * bytes for all of a user's connections together (..._per_uid), so that
 * more connections do not buy more of the server's memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../launcher/fdutil.h"
#include "config.h"
#include "server.h"

static void client_disconnect(struct client *c, const char *why);

static void creds_free(struct creds *cr) {
        if (cr)
                free(cr->groups);
        free(cr);
}

/* True when cr is what the server itself runs as: uid, gid and the very
 * same supplementary groups. */
static bool creds_are_servers(const struct creds *cr) {
        gid_t own[256];
        int n = getgroups(256, own);
        if (cr->uid != geteuid() || cr->gid != getegid() || n < 0 ||
            (size_t)n != cr->ngroups)
                return false;
        for (size_t i = 0; i < cr->ngroups; i++)
                if (cr->groups[i] != own[i])
                        return false;
        return true;
}

/*
 * The credentials a root server gives this client's jobs: the peer's uid
 * and gid as they were at connect, and the supplementary groups the peer
 * process actually held then (SO_PEERGROUPS), never the group database's:
 * groups a client dropped stay dropped. These cannot change for the
 * connection, so they are read once, here. *ret_creds is NULL when they
 * are the server's own (nothing to change; the capabilities, which a uid-0
 * peer may have fewer of, are in its context, read for each spawn).
 */
static int client_creds(const struct client *c, struct creds **ret_creds) {
        *ret_creds = NULL;
        if (geteuid() != 0)
                return 0; /* jobs run as the server's user anyway */
        struct creds *cr = calloc(1, sizeof(*cr));
        if (!cr)
                return -ENOMEM;
        int r = peer_creds(c->fd, &c->peer, cr);
        if (r < 0) {
                free(cr);
                return r;
        }
        if (creds_are_servers(cr)) {
                creds_free(cr);
                return 0;
        }
        *ret_creds = cr;
        return 0;
}

static void on_watch(struct watch *w, uint32_t events) {
        client_on_event(w->data, events);
}

int client_new(struct server *srv, int fd) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                log_warn("SO_PEERCRED: %m; refusing connection");
                return -errno;
        }
        char why[512];
        int denied = access_check(srv, fd, &cred, why, sizeof(why));
        uint64_t ukey = (uint64_t)cred.uid + 1;
        uintptr_t conns = (uintptr_t)mps__idmap_get(&srv->clients.by_uid, ukey);
        if (denied == 0 && conns >= srv->cfg->max_connections_per_uid) {
                snprintf(why, sizeof(why),
                         "too many connections from this user (it has %u, the maximum)",
                         srv->cfg->max_connections_per_uid);
                denied = -EAGAIN;
        }
        struct client *c = calloc(1, sizeof(*c));
        if (!c) {
                log_err("out of memory; refusing connection");
                return -ENOMEM;
        }
        c->srv = srv;
        c->fd = fd;
        c->peer = (struct peer){.pidfd = -1, .sockfd = fd};
        c->uid = cred.uid;
        c->gid = cred.gid;
        c->pid = cred.pid;
        c->serial = ++srv->clients.next_serial;
        mps__list_init(&c->jobs);
        mps__list_init(&c->node);
        /* The process itself, whose context its jobs get; one that cannot
         * be pinned down is told why and served nothing. */
        char perr[256];
        int pr = peer_open(fd, &c->peer, perr, sizeof(perr));
        if (pr < 0 && denied == 0) {
                snprintf(why, sizeof(why), "%s", perr);
                denied = pr;
        }
        /* A root server runs a client's jobs as that client. */
        if (pr == 0 && (pr = client_creds(c, &c->creds)) < 0) {
                /* Without them its jobs would run as root: refuse it. */
                log_err("cannot read the credentials of uid %u (%s); refusing connection",
                        (unsigned)c->uid, strerror(-pr));
                peer_close(&c->peer);
                free(c);
                return pr;
        }
        c->watch = (struct watch){.fn = on_watch, .data = c};
        int r = loop_add(srv, fd, EPOLLIN, &c->watch);
        if (r < 0) {
                log_err("epoll_ctl: %s", strerror(-r));
                client_free(c); /* with its creds */
                return r;
        }
        if (mps__idmap_put(&srv->clients.by_serial, c->serial, c) < 0) {
                loop_del(srv, fd);
                client_free(c); /* with its creds */
                return -ENOMEM;
        }
        mps__idmap_remove(&srv->clients.by_uid, ukey);
        if (mps__idmap_put(&srv->clients.by_uid, ukey, (void *)(conns + 1)) < 0) {
                mps__idmap_remove(&srv->clients.by_serial, c->serial);
                loop_del(srv, fd);
                client_free(c); /* with its creds */
                return -ENOMEM;
        }
        srv->clients.count++;
        mps__list_push_front(&srv->clients.list, &c->node);
        if (denied < 0) {
                /* The reason goes to the client now; the connection closes
                 * on its next event (its hello, usually), so that a client
                 * still sending when we close does not lose the reason. */
                log_warn("client %llu refused: pid %d uid %u: %s",
                         (unsigned long long)c->serial, (int)c->pid, (unsigned)c->uid,
                         why);
                c->refused = true;
                srv->clients.nrefused++;
                client_send_error(c, 0, -denied, "connect", "%s", why);
                if (srv->clients.nrefused > CLIENT_REFUSED_MAX && !c->dead)
                        client_disconnect(c, NULL);
                return 0;
        }
        log_info("client %llu connected: pid %d uid %u gid %u",
                 (unsigned long long)c->serial, (int)c->pid, (unsigned)c->uid,
                 (unsigned)c->gid);
        return 0;
}

/* Past this many bytes freed at once, free memory goes back to the
 * system: glibc keeps freed heap in the process, and a burst of queued
 * replies would otherwise stay in our RSS for good. */
#define TRIM_AFTER_BYTES (1u << 20)

/* Bytes queued for all the connections of user uid. */
static size_t uid_bytes(const struct server *srv, uid_t uid) {
        return (size_t)(uintptr_t)mps__idmap_get(&srv->clients.bytes_by_uid, (uint64_t)uid + 1);
}

/* Adds delta (which may be negative) to the user's queued bytes. The map
 * holds sizes as pointers, 0 as no entry; remove-then-put of a key that was
 * there never grows the map, so only a user's first byte can fail. */
static int uid_bytes_add(struct server *srv, uid_t uid, ssize_t delta) {
        uint64_t key = (uint64_t)uid + 1;
        size_t n = uid_bytes(srv, uid) + (size_t)delta;
        mps__idmap_remove(&srv->clients.bytes_by_uid, key);
        return n ? mps__idmap_put(&srv->clients.bytes_by_uid, key, (void *)(uintptr_t)n) : 0;
}

int client_charge(struct client *c, ssize_t delta) {
        if (delta > 0 &&
            uid_bytes(c->srv, c->uid) + (size_t)delta > c->srv->cfg->client_queue_bytes_per_uid)
                return -ENOBUFS;
        return uid_bytes_add(c->srv, c->uid, delta);
}

static void outmsg_free(struct outmsg *m) {
        mps__safe_close(m->fd);
        cJSON_free(m->buf);
        free(m);
}

void client_free(struct client *c) {
        client_env_release(c);
        creds_free(c->creds);
        peer_close(&c->peer);
        size_t freed = 0;
        struct outmsg *m = c->out_head;
        while (m) {
                struct outmsg *next = m->next;
                freed += m->len;
                outmsg_free(m);
                m = next;
        }
        free(c);
        if (freed >= TRIM_AFTER_BYTES)
                malloc_trim(0);
}

static void set_want_out(struct client *c, bool want) {
        if (c->want_out == want)
                return;
        c->want_out = want;
        loop_mod(c->srv, c->fd, EPOLLIN | (want ? EPOLLOUT : 0), &c->watch);
}

/* Sends queued replies in order until the socket is full. */
static void flush(struct client *c) {
        while (c->out_head) {
                struct outmsg *m = c->out_head;
                int r = mps__wire_send_raw(c->fd, m->buf, m->len, &m->fd,
                                           m->fd >= 0 ? 1 : 0);
                if (r == -EAGAIN || r == -ENOBUFS) {
                        set_want_out(c, true);
                        return;
                }
                if (r < 0) {
                        client_disconnect(c, strerror(-r));
                        return;
                }
                c->out_head = m->next;
                if (!c->out_head)
                        c->out_tail = NULL;
                c->out_count--;
                c->out_bytes -= m->len;
                uid_bytes_add(c->srv, c->uid, -(ssize_t)m->len);
                outmsg_free(m);
        }
        set_want_out(c, false);
        /* Stop reports wait for an empty queue (job.c coalesces them). */
        job_flush_stop_reports(c);
        if (c->out_bytes == 0 && c->out_peak >= TRIM_AFTER_BYTES) {
                /* A reader that caught up after a burst. */
                c->out_peak = 0;
                malloc_trim(0);
        }
}

/* Whether a reply of len bytes still fits the client's queue bounds. */
static bool queue_has_room(const struct client *c, size_t len) {
        const struct config *cfg = c->srv->cfg;
        return c->out_count < cfg->client_queue &&
               c->out_bytes + len <= cfg->client_queue_bytes &&
               uid_bytes(c->srv, c->uid) + len <= cfg->client_queue_bytes_per_uid;
}

/* Queues buf (taking owned, a cJSON_malloc()ed buf, or else a copy). */
static int enqueue(struct client *c, const char *buf, size_t len, char *owned, int fd) {
        if (c->out_count >= c->srv->cfg->client_queue) {
                cJSON_free(owned);
                return -ENOBUFS;
        }
        struct outmsg *m = calloc(1, sizeof(*m));
        if (m && !owned && (owned = cJSON_malloc(len)))
                memcpy(owned, buf, len);
        if (!m || !owned) {
                free(m);
                cJSON_free(owned);
                return -ENOMEM;
        }
        m->fd = -1;
        m->buf = owned;
        m->len = len;
        if (!queue_has_room(c, m->len) || uid_bytes_add(c->srv, c->uid, (ssize_t)m->len) < 0) {
                outmsg_free(m);
                return -ENOBUFS;
        }
        if (fd >= 0 && (m->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0) {
                int r = -errno;
                uid_bytes_add(c->srv, c->uid, -(ssize_t)m->len);
                outmsg_free(m);
                return r;
        }
        c->out_bytes += m->len;
        if (c->out_bytes > c->out_peak)
                c->out_peak = c->out_bytes;
        if (c->out_tail)
                c->out_tail->next = m;
        else
                c->out_head = m;
        c->out_tail = m;
        c->out_count++;
        set_want_out(c, true);
        return 0;
}

/* Sends buf now, or queues it behind what waits; owned as for enqueue. A
 * client that cannot take it is dropped. */
static void send_text(struct client *c, const char *buf, size_t len, char *owned, int fd) {
        int r;
        if (c->out_head) {
                r = enqueue(c, buf, len, owned, fd);
        } else {
                r = mps__wire_send_raw(c->fd, buf, len, &fd, fd >= 0 ? 1 : 0);
                if (r == -EAGAIN || r == -ENOBUFS)
                        r = enqueue(c, buf, len, owned, fd);
                else
                        cJSON_free(owned);
        }
        if (r == -ENOBUFS) {
                char why[200];
                snprintf(why, sizeof(why),
                         "it does not read its replies: %zu queued (%zu bytes; its "
                         "user's connections %zu), this one and later ones lost",
                         c->out_count, c->out_bytes, uid_bytes(c->srv, c->uid));
                client_disconnect(c, why);
        }
        else if (r < 0)
                client_disconnect(c, strerror(-r));
}

void client_send(struct client *c, cJSON *json, int fd) {
        if (!json) {
                log_err("out of memory building a reply to client %llu",
                        (unsigned long long)c->serial);
                return;
        }
        if (c->dead) {
                cJSON_Delete(json);
                return;
        }
        size_t len;
        char *text = mps__wire_encode(json, &len);
        cJSON_Delete(json);
        if (!text) {
                client_disconnect(c, strerror(errno));
                return;
        }
        send_text(c, text, len, text, fd);
}

void client_send_spawned(struct client *c, const struct mps__spawned *m, int fd) {
        char buf[MPS_WIRE_REPLY_TEXT_MAX];
        int n = mps__spawned_format(m, buf, sizeof(buf));
        if (n < 0)
                client_send(c, mps__spawned_encode(m), fd);
        else if (!c->dead)
                send_text(c, buf, (size_t)n, NULL, fd);
}

void client_send_exited(struct client *c, const struct mps__exited *m) {
        char buf[MPS_WIRE_REPLY_TEXT_MAX];
        int n = mps__exited_format(m, buf, sizeof(buf));
        if (n < 0)
                client_send(c, mps__exited_encode(m), -1);
        else if (!c->dead)
                send_text(c, buf, (size_t)n, NULL, -1);
}

void client_send_error(struct client *c, uint64_t tag, int err,
                       const char *stage, const char *fmt, ...) {
        char text[MPS_WIRE_STR_MAX / 2];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        struct mps__error e = {.tag = tag, .err = err, .stage = stage,
                               .message = text};
        client_send(c, mps__error_encode(&e), -1);
}

/* Each request goes to its handler, which answers it (spawn.c for spawn,
 * spawn_batch.c for spawn_batch, request.c for the rest). Returns how many
 * requests the message held: a batch counts as its jobs in the burst. */
static size_t handle(struct client *c, struct mps__msg *msg) {
        switch (msg->op) {
        case MPS_OP_SPAWN_BATCH:
                return spawn_batch_request(c, msg);
        case MPS_OP_HELLO:
                request_hello(c, msg);
                break;
        case MPS_OP_SPAWN:
                spawn_request(c, msg, NULL);
                break;
        case MPS_OP_SIGNAL:
                request_signal(c, msg);
                break;
        case MPS_OP_WAIT:
                request_wait(c, msg);
                break;
        case MPS_OP_LIST:
                request_list(c, msg);
                break;
        case MPS_OP_STATS:
                request_stats(c, msg);
                break;
        case MPS_OP_FOREGROUND:
                request_foreground(c, msg);
                break;
        case MPS_OP_ADOPT:
                request_adopt(c, msg);
                break;
        case MPS_OP_ENV:
                request_env(c, msg);
                break;
        default:
                client_send_error(c, msg->tag, EOPNOTSUPP, "request",
                                  "op \"%s\" is not a request", mps__op_name(msg->op));
                break;
        }
        return 1;
}

/*
 * Drops what a refused client sent (its hello) before we close. Closing with
 * unread messages makes the kernel report ECONNRESET to the peer, and a
 * receiver sees that error before the reply already queued for it: the
 * client would never read why it was refused.
 */
static void discard_input(int fd) {
        /* Not recv(): descriptors attached to a datagram received without
         * room for them are closed by the kernel, in recv, here, and the
         * close of some can block (closer.c). */
        closer_drain(fd, CLIENT_RECV_BURST);
}

/* Closes a connection's socket. Datagrams still queued in it hold the
 * descriptors their sender attached, and the kernel would release them in
 * close; so the peer is stopped from sending more (SHUT_RD: its sends fail
 * with EPIPE) and what is queued is drained through the closer first. The
 * queue is finite once shut, bounded by the peer's send buffer. */
static int close_connection(int fd) {
        if (fd < 0)
                return -1;
        shutdown(fd, SHUT_RD);
        closer_drain(fd, UINT_MAX);
        return mps__safe_close(fd);
}

void client_on_event(struct client *c, uint32_t events) {
        char err[256];
        if (c->dead)
                return;
        if (events & EPOLLOUT) {
                flush(c);
                if (c->dead)
                        return;
        }
        if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                return;
        if (c->refused) {
                discard_input(c->fd);
                client_disconnect(c, NULL);
                return;
        }
        /* A bounded burst per wake-up keeps one busy client from starving
         * the others; level-triggered epoll brings us back for the rest. */
        for (size_t i = 0; i < CLIENT_RECV_BURST && !c->dead;) {
                struct mps__msg msg;
                uint64_t tag = 0;
                err[0] = '\0';
                int r = mps__wire_recv(c->fd, &msg, err, sizeof(err), &tag);
                if (r == -EAGAIN)
                        return;
                if (r == 0) {
                        client_disconnect(c, NULL);
                        return;
                }
                if (r == -EBADMSG || r == -EPROTO || r == -EMFILE) {
                        log_warn("client %llu (pid %d): bad message: %s",
                                 (unsigned long long)c->serial, (int)c->pid, err);
                        client_send_error(c, tag, -r, "request", "%s", err);
                        i++;
                        continue;
                }
                if (r < 0) {
                        client_disconnect(c, strerror(-r));
                        return;
                }
                msg.received_ns = mps__now_ns();
                i += handle(c, &msg);
                mps__msg_release(&msg);
        }
}

static void client_disconnect(struct client *c, const char *why) {
        struct server *srv = c->srv;
        if (c->dead)
                return;
        c->dead = true;
        if (c->refused)
                srv->clients.nrefused--;
        if (why)
                log_warn("client %llu (pid %d) dropped: %s",
                         (unsigned long long)c->serial, (int)c->pid, why);
        else if (c->refused)
                log_debug("client %llu (pid %d) closed after refusal",
                          (unsigned long long)c->serial, (int)c->pid);
        else
                log_info("client %llu (pid %d) disconnected",
                         (unsigned long long)c->serial, (int)c->pid);
        loop_del(srv, c->fd);
        c->fd = close_connection(c->fd);
        /* Its queue is freed with it after the batch; it no longer counts
         * against its user. */
        uid_bytes_add(srv, c->uid, -(ssize_t)c->out_bytes);
        client_env_release(c);
        struct mps__list *n;
        while ((n = mps__list_first(&c->jobs)))
                job_client_gone(mps__list_entry(n, struct job, cnode)); /* unlinks it */
        mps__idmap_remove(&srv->clients.by_serial, c->serial);
        uint64_t ukey = (uint64_t)c->uid + 1;
        uintptr_t conns = (uintptr_t)mps__idmap_remove(&srv->clients.by_uid, ukey);
        if (conns > 1)
                mps__idmap_put(&srv->clients.by_uid, ukey, (void *)(conns - 1));
        mps__list_remove(&c->node);
        srv->clients.count--;
        c->gnext = srv->clients.dead;
        srv->clients.dead = c;
}

void client_release_all(struct server *srv) {
        struct mps__list *n, *tmp, *jn, *jtmp;
        mps__list_foreach_safe(n, tmp, &srv->clients.list) {
                struct client *c = mps__list_entry(n, struct client, node);
                mps__list_remove(n);
                mps__list_foreach_safe(jn, jtmp, &c->jobs) {
                        mps__list_remove(jn);
                        mps__list_entry(jn, struct job, cnode)->client = NULL;
                }
                close_connection(c->fd);
                client_free(c);
        }
        srv->clients.count = 0;
        mps__idmap_free(&srv->clients.by_serial);
        mps__idmap_free(&srv->clients.by_uid);
        mps__idmap_free(&srv->clients.bytes_by_uid);
}
