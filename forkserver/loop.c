/* SPDX-License-Identifier: MIT */
/*
 * loop.c: the server's one epoll loop, and nothing else. Every event source
 * is registered with a struct watch that carries its own handler and data,
 * so dispatch is one indirect call; what happens between waits (how long
 * the next one may last, what is done after a batch, whether to go on) is
 * the caller's, through struct loop_hooks. The loop knows no module.
 */
#include <errno.h>
#include <sys/epoll.h>

#include "../launcher/fdutil.h"
#include "server.h"

#define LOOP_EVENTS_MAX 64

int loop_open(struct server *srv) {
        srv->loop.epfd = epoll_create1(EPOLL_CLOEXEC);
        return srv->loop.epfd < 0 ? -errno : 0;
}

void loop_close(struct server *srv) {
        srv->loop.epfd = mps__safe_close(srv->loop.epfd);
}

int loop_add(struct server *srv, int fd, uint32_t events, struct watch *w) {
        struct epoll_event ev = {.events = events, .data.ptr = w};
        return epoll_ctl(srv->loop.epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int loop_mod(struct server *srv, int fd, uint32_t events, struct watch *w) {
        struct epoll_event ev = {.events = events, .data.ptr = w};
        return epoll_ctl(srv->loop.epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void loop_del(struct server *srv, int fd) {
        epoll_ctl(srv->loop.epfd, EPOLL_CTL_DEL, fd, NULL);
}

int loop_run(struct server *srv, const struct loop_hooks *hooks, void *data) {
        struct epoll_event evs[LOOP_EVENTS_MAX];

        for (;;) {
                int n = epoll_wait(srv->loop.epfd, evs, LOOP_EVENTS_MAX,
                                   hooks->timeout_ms(data));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                for (int i = 0; i < n; i++) {
                        struct watch *w = evs[i].data.ptr;
                        w->fn(w, evs[i].events);
                }
                if (!hooks->after_batch(data, n))
                        return 0;
        }
}
