/* SPDX-License-Identifier: MIT */
/*
 * timer.c: job deadlines (kill-after grace periods, later timeouts) kept in a
 * binary min-heap and served by one timerfd armed for the earliest one, so
 * that no event costs a scan over all jobs. What a deadline means is not
 * this module's: an expired one is handed to the fire function given to
 * timer_open (job_on_deadline), so the heap needs nothing of job.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "../launcher/fdutil.h"

#include "server.h"

static void swap(struct timer_heap *h, size_t a, size_t b) {
        struct job *t = h->items[a];
        h->items[a] = h->items[b];
        h->items[b] = t;
        h->items[a]->heap_index = a;
        h->items[b]->heap_index = b;
}

static void sift_up(struct timer_heap *h, size_t i) {
        while (i > 0) {
                size_t p = (i - 1) / 2;
                if (h->items[p]->deadline_ns <= h->items[i]->deadline_ns)
                        break;
                swap(h, p, i);
                i = p;
        }
}

static void sift_down(struct timer_heap *h, size_t i) {
        for (;;) {
                size_t l = 2 * i + 1, r = l + 1, m = i;
                if (l < h->count && h->items[l]->deadline_ns < h->items[m]->deadline_ns)
                        m = l;
                if (r < h->count && h->items[r]->deadline_ns < h->items[m]->deadline_ns)
                        m = r;
                if (m == i)
                        return;
                swap(h, i, m);
                i = m;
        }
}

/* Arms the timerfd for the earliest deadline, or disarms it. */
static void rearm(struct server *srv) {
        struct itimerspec its = {0};
        if (srv->timers.count > 0) {
                uint64_t d = srv->timers.items[0]->deadline_ns;
                its.it_value.tv_sec = (time_t)(d / 1000000000u);
                its.it_value.tv_nsec = (long)(d % 1000000000u);
                if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
                        its.it_value.tv_nsec = 1;
        }
        if (timerfd_settime(srv->timers.fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
                log_err("timerfd_settime: %m");
}

int timer_arm(struct server *srv, struct job *j, uint64_t deadline_ns) {
        struct timer_heap *h = &srv->timers;
        if (j->heap_index != SIZE_MAX)
                timer_disarm(srv, j);
        if (h->count == h->cap) {
                size_t ncap = h->cap ? h->cap * 2 : 16;
                struct job **n = realloc(h->items, ncap * sizeof(*n));
                if (!n)
                        return -ENOMEM;
                h->items = n;
                h->cap = ncap;
        }
        j->deadline_ns = deadline_ns;
        j->heap_index = h->count;
        h->items[h->count++] = j;
        sift_up(h, j->heap_index);
        if (h->items[0] == j)
                rearm(srv);
        return 0;
}

void timer_disarm(struct server *srv, struct job *j) {
        struct timer_heap *h = &srv->timers;
        size_t i = j->heap_index;
        if (i == SIZE_MAX)
                return;
        j->heap_index = SIZE_MAX;
        h->count--;
        if (i != h->count) {
                h->items[i] = h->items[h->count];
                h->items[i]->heap_index = i;
                sift_up(h, i);
                sift_down(h, h->items[i]->heap_index);
        }
        if (i == 0)
                rearm(srv);
}

void timer_on_expiry(struct server *srv) {
        struct timer_heap *h = &srv->timers;
        uint64_t expirations;
        /* The count is not needed; reading clears readiness. EAGAIN is fine:
         * the timer may have been re-armed after it fired. */
        (void)!read(h->fd, &expirations, sizeof(expirations));
        uint64_t now = mps__now_ns();
        while (h->count > 0 && h->items[0]->deadline_ns <= now) {
                struct job *j = h->items[0];
                timer_disarm(srv, j);
                h->fire(j); /* may re-arm j or free it */
        }
        rearm(srv);
}

static void on_watch(struct watch *w, uint32_t events) {
        (void)events;
        timer_on_expiry(w->data);
}

int timer_open(struct server *srv, timer_fire_fn *fire) {
        struct timer_heap *h = &srv->timers;
        h->fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (h->fd < 0)
                return -errno;
        h->fire = fire;
        h->watch = (struct watch){.fn = on_watch, .data = srv};
        return 0;
}

void timer_close(struct server *srv) {
        struct timer_heap *h = &srv->timers;
        h->fd = mps__safe_close(h->fd);
        free(h->items);
        h->items = NULL;
        h->count = h->cap = 0;
}
