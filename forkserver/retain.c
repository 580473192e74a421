/*
 * retain.c: the exit of a job whose client has gone (a detached job, or one
 * whose client was killed) has nobody to go to. It is kept here, bounded in
 * number and age, so that `mpspawn wait ID` from another invocation of the
 * same user can still collect it, exactly once.
 */
#include <stdlib.h>
#include <string.h>

#include "../launcher/fdutil.h"
#include "server.h"

void retain_free(struct exit_record *rec) {
        if (!rec)
                return;
        free(rec->name);
        free(rec->command);
        free(rec);
}

/* Unlinks the oldest record. */
static struct exit_record *pop_oldest(struct server *srv) {
        struct exit_record *r = srv->retained.head;
        if (!r)
                return NULL;
        srv->retained.head = r->next;
        if (!srv->retained.head)
                srv->retained.tail = NULL;
        mps__idmap_remove(&srv->retained.map, r->exited.id);
        return r;
}

/* Drops records past their age, oldest first (the list is in age order). */
static void expire(struct server *srv, uint64_t now) {
        while (srv->retained.head &&
               now - srv->retained.head->kept_ns > (uint64_t)RETAIN_SECONDS * 1000000000u)
                retain_free(pop_oldest(srv));
}

void retain_expire(struct server *srv) {
        expire(srv, mps__now_ns());
}

void retain_add(struct server *srv, const struct job *j, const struct mps__exited *e) {
        uint64_t now = mps__now_ns();
        expire(srv, now);
        if (srv->retained.map.count >= RETAIN_MAX) {
                struct exit_record *old = pop_oldest(srv);
                log_warn("forgetting the exit of job %llu: more than %d exits "
                         "are waiting to be collected",
                         (unsigned long long)old->exited.id, RETAIN_MAX);
                retain_free(old);
        }
        struct exit_record *r = calloc(1, sizeof(*r));
        if (!r || (j->name && !(r->name = strdup(j->name))) ||
            (j->command && !(r->command = strdup(j->command))) ||
            mps__idmap_put(&srv->retained.map, e->id, r) < 0) {
                log_err("out of memory: the exit of job %llu is lost",
                        (unsigned long long)e->id);
                retain_free(r);
                return;
        }
        r->uid = j->uid;
        r->kept_ns = now;
        r->runtime = e->wall;
        r->exited = *e;
        r->exited.tag = 0;
        if (srv->retained.tail)
                srv->retained.tail->next = r;
        else
                srv->retained.head = r;
        srv->retained.tail = r;
}

struct exit_record *retain_take(struct server *srv, uint64_t id, uid_t uid) {
        expire(srv, mps__now_ns());
        struct exit_record *r = mps__idmap_get(&srv->retained.map, id);
        if (!r || r->uid != uid)
                return NULL;
        mps__idmap_remove(&srv->retained.map, id);
        /* Unlink from the age list: records are few, and taking one is a
         * request, not an event on the launch path. */
        struct exit_record **pp = &srv->retained.head, *prev = NULL;
        while (*pp && *pp != r) {
                prev = *pp;
                pp = &(*pp)->next;
        }
        if (*pp)
                *pp = r->next;
        if (srv->retained.tail == r)
                srv->retained.tail = prev;
        r->next = NULL;
        return r;
}

void retain_release_all(struct server *srv) {
        struct exit_record *r;
        while ((r = pop_oldest(srv)))
                retain_free(r);
        mps__idmap_free(&srv->retained.map);
}
