/* SPDX-License-Identifier: MIT */
/*
 * retain.c: the exit of a job whose client has gone (a detached job, or one
 * whose client was killed) has nobody to go to. It is kept here, bounded in
 * number and age, so that `mpspawn wait ID` from another invocation of the
 * same user can still collect it, exactly once.
 *
 * Each user has a share of its own (RETAIN_PER_UID): a user past it loses
 * its own oldest record, never another user's, so that nobody can evict a
 * detached job's exit by ending many jobs of their own. RETAIN_MAX bounds
 * them all, for memory; only many users at their share together reach it.
 *
 * A call job's record keeps its result and failure message (result.c), so
 * that the wait that collects it gets them too: each is bounded
 * (MPS_RESULT_MAX, MPS_RESULT_ERROR_MAX), as the number of records is,
 * and their bytes are, per user and in all (RETAIN_RESULT_BYTES_*): past
 * those a record keeps its exit, and a failure saying the result was not
 * kept, rather than evict another record.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../launcher/fdutil.h"
#include "server.h"

void retain_free(struct exit_record *rec) {
        if (!rec)
                return;
        free(rec->name);
        free(rec->command);
        free(rec->result);
        free(rec->failure);
        free(rec);
}

static size_t uid_result_bytes(const struct server *srv, uid_t uid) {
        return (size_t)(uintptr_t)mps__idmap_get(&srv->retained.result_bytes_by_uid,
                                                 (uint64_t)uid + 1);
}

/* As uid_records_set, for the bytes of results kept. */
static int uid_result_bytes_set(struct server *srv, uid_t uid, size_t n) {
        uint64_t key = (uint64_t)uid + 1;
        mps__idmap_remove(&srv->retained.result_bytes_by_uid, key);
        return n ? mps__idmap_put(&srv->retained.result_bytes_by_uid, key, (void *)(uintptr_t)n)
                 : 0;
}

static void uncount_result(struct server *srv, struct exit_record *r) {
        if (!r->result_bytes)
                return;
        srv->retained.result_bytes -= r->result_bytes;
        uid_result_bytes_set(srv, r->uid, uid_result_bytes(srv, r->uid) - r->result_bytes);
        r->result_bytes = 0;
}

static unsigned uid_records(const struct server *srv, uid_t uid) {
        return (unsigned)(uintptr_t)mps__idmap_get(&srv->retained.by_uid, (uint64_t)uid + 1);
}

/* The map holds counts as pointers; 0 is no entry. Remove-then-put of a
 * key that was there never grows the map, so only a new user can fail. */
static int uid_records_set(struct server *srv, uid_t uid, unsigned n) {
        uint64_t key = (uint64_t)uid + 1;
        mps__idmap_remove(&srv->retained.by_uid, key);
        return n ? mps__idmap_put(&srv->retained.by_uid, key, (void *)(uintptr_t)n) : 0;
}

/* Unlinks r, whose predecessor in the age list is prev (NULL: the head). */
static struct exit_record *unlink_record(struct server *srv, struct exit_record *r,
                                         struct exit_record *prev) {
        if (prev)
                prev->next = r->next;
        else
                srv->retained.head = r->next;
        if (srv->retained.tail == r)
                srv->retained.tail = prev;
        r->next = NULL;
        if (r->detached)
                srv->retained.ndetached--;
        mps__idmap_remove(&srv->retained.map, r->exited.id);
        uid_records_set(srv, r->uid, uid_records(srv, r->uid) - 1);
        uncount_result(srv, r);
        return r;
}

/* Unlinks the oldest record. */
static struct exit_record *pop_oldest(struct server *srv) {
        struct exit_record *r = srv->retained.head;
        return r ? unlink_record(srv, r, NULL) : NULL;
}

/* Unlinks the oldest record of user uid. A walk of the age list: it runs
 * only when that user is at its share, and ends at its oldest record. */
static struct exit_record *pop_oldest_of(struct server *srv, uid_t uid) {
        struct exit_record *prev = NULL;
        for (struct exit_record *r = srv->retained.head; r; prev = r, r = r->next)
                if (r->uid == uid)
                        return unlink_record(srv, r, prev);
        return NULL;
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

/* Copies e's result and failure message into r when the user's share and
 * the total allow; else r says the result was not kept. 0 or -ENOMEM. */
static int keep_result(struct server *srv, uid_t uid, const struct mps__exited *e,
                       struct exit_record *r) {
        size_t bytes = (e->result ? strlen(e->result) : 0) + (e->failure ? strlen(e->failure) : 0);
        if (!bytes)
                return 0;
        size_t mine = uid_result_bytes(srv, uid);
        if (mine + bytes > RETAIN_RESULT_BYTES_PER_UID ||
            srv->retained.result_bytes + bytes > RETAIN_RESULT_BYTES_MAX) {
                log_warn("not keeping the result of job %llu of uid %u: the results "
                         "waiting to be collected are at their bound (%u bytes for a "
                         "user, %u in all)",
                         (unsigned long long)e->id, (unsigned)uid,
                         RETAIN_RESULT_BYTES_PER_UID, RETAIN_RESULT_BYTES_MAX);
                r->failure = strdup("the call job's result was not kept: too many results "
                                    "were waiting to be collected");
                return r->failure ? 0 : -ENOMEM;
        }
        if ((e->result && !(r->result = strdup(e->result))) ||
            (e->failure && !(r->failure = strdup(e->failure))) ||
            uid_result_bytes_set(srv, uid, mine + bytes) < 0)
                return -ENOMEM;
        r->uid = uid;
        r->result_bytes = bytes;
        srv->retained.result_bytes += bytes;
        return 0;
}

void retain_add(struct server *srv, const struct job *j, const struct mps__exited *e) {
        uint64_t now = mps__now_ns();
        expire(srv, now);
        struct exit_record *old = NULL;
        if (uid_records(srv, j->uid) >= RETAIN_PER_UID)
                old = pop_oldest_of(srv, j->uid);
        else if (srv->retained.map.count >= RETAIN_MAX)
                old = pop_oldest(srv);
        if (old) {
                log_warn("forgetting the exit of job %llu of uid %u: more than %d of "
                         "its exits are waiting to be collected",
                         (unsigned long long)old->exited.id, (unsigned)old->uid,
                         old->uid == j->uid ? RETAIN_PER_UID : RETAIN_MAX);
                retain_free(old);
        }
        struct exit_record *r = calloc(1, sizeof(*r));
        if (!r || (j->name && !(r->name = strdup(j->name))) ||
            (j->command && !(r->command = strdup(j->command))) ||
            keep_result(srv, j->uid, e, r) < 0 ||
            uid_records_set(srv, j->uid, uid_records(srv, j->uid) + 1) < 0) {
                log_err("out of memory: the exit of job %llu is lost",
                        (unsigned long long)e->id);
                if (r)
                        uncount_result(srv, r);
                retain_free(r);
                return;
        }
        if (mps__idmap_put(&srv->retained.map, e->id, r) < 0) {
                log_err("out of memory: the exit of job %llu is lost",
                        (unsigned long long)e->id);
                uid_records_set(srv, j->uid, uid_records(srv, j->uid) - 1);
                uncount_result(srv, r);
                retain_free(r);
                return;
        }
        r->uid = j->uid;
        r->kept_ns = now;
        r->runtime = e->wall;
        r->exited = *e;
        r->exited.tag = 0;
        r->exited.result = r->result;
        r->exited.failure = r->failure;
        r->detached = j->detached;
        srv->retained.ndetached += r->detached;
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
        /* Unlink from the age list: taking one is a request, not an event
         * on the launch path. */
        struct exit_record *prev = NULL;
        for (struct exit_record *p = srv->retained.head; p && p != r; p = p->next)
                prev = p;
        return unlink_record(srv, r, prev);
}

void retain_release_all(struct server *srv) {
        struct exit_record *r;
        while ((r = pop_oldest(srv)))
                retain_free(r);
        mps__idmap_free(&srv->retained.map);
        mps__idmap_free(&srv->retained.by_uid);
        mps__idmap_free(&srv->retained.result_bytes_by_uid);
}
