/* SPDX-License-Identifier: MIT */
/*
 * envcache.c: the environments a connection has stored in its server (the
 * env_ref feature), so that a start whose environment the server holds
 * already names it (env_ref) instead of sending it again: it was most of a
 * spawn request, and most of the server's work parsing one.
 *
 * The client mirrors the server's MPS_WIRE_ENV_SLOTS slots. A slot's key
 * is the environment itself (its strings, NUL-separated): a match is exact,
 * never a mere hash match. Threads start at once, and datagrams reach the
 * server in the order their sends completed, so under the client's lock a
 * start either refers to a slot whose env request has been sent already
 * (stored), or claims a free slot and sends the env request itself before
 * its spawn; a slot in use by a start that has not sent its spawn yet
 * (users) is never given to another environment. When no slot fits, the
 * environment goes in the spawn, as to a server without the feature. A
 * new connection (a new client, or a reconnect) starts with none, and a
 * forked child's copy of a client never talks. An environment goes inline
 * the first time, and is stored when a second start uses it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib.h"

/* FNV-1a: a cheap first test before the exact comparison. */
static uint64_t key_hash(const char *key, size_t len) {
        uint64_t h = 0xcbf29ce484222325u;
        for (size_t i = 0; i < len; i++)
                h = (h ^ (unsigned char)key[i]) * 0x100000001b3u;
        return h;
}

/* The environment as one block of NUL-terminated strings. */
static char *key_make(const char *const *envp, size_t envc, size_t *ret_len) {
        size_t len = 0;
        for (size_t i = 0; i < envc; i++)
                len += strlen(envp[i]) + 1;
        char *key = malloc(len ? len : 1);
        if (!key)
                return NULL;
        char *p = key;
        for (size_t i = 0; i < envc; i++) {
                size_t n = strlen(envp[i]) + 1;
                memcpy(p, envp[i], n);
                p += n;
        }
        *ret_len = len;
        return key;
}

/* With the lock held: forgets what the slot holds (its users keep it). */
static void slot_clear(struct mps__envslot *s) {
        free(s->key);
        s->key = NULL;
        s->keylen = 0;
        s->stored = false;
}

/* With the lock held: the stored slot holding key, else -1. */
static int slot_find(const struct mps__envcache *ec, const char *key, size_t len,
                     uint64_t hash) {
        for (int i = 0; i < MPS_WIRE_ENV_SLOTS; i++) {
                const struct mps__envslot *s = &ec->slot[i];
                if (s->stored && s->hash == hash && s->keylen == len &&
                    memcmp(s->key, key, len) == 0)
                        return i;
        }
        return -1;
}

/* With the lock held: a slot no start uses, an empty one first, else the
 * one used longest ago; -1 when every slot is in use. */
static int slot_victim(const struct mps__envcache *ec) {
        int best = -1;
        for (int i = 0; i < MPS_WIRE_ENV_SLOTS; i++) {
                const struct mps__envslot *s = &ec->slot[i];
                if (s->users)
                        continue;
                if (!s->key)
                        return i;
                if (best < 0 || s->used < ec->slot[best].used)
                        best = i;
        }
        return best;
}

/* Sends the env request storing m's environment in slot i. */
static int send_env(mps_client *c, const struct mps__spawn *m, int i) {
        struct mps__env e = {.tag = m->tag, .id = (uint64_t)i + 1, .envp = m->envp,
                             .envc = m->envc};
        cJSON *json = mps__env_encode(&e);
        char *text = json ? cJSON_PrintUnformatted(json) : NULL;
        cJSON_Delete(json);
        if (!text)
                return -ENOMEM;
        size_t len = strlen(text);
        /* Past one datagram it is not worth storing: it goes inline (in a
         * memfd, if need be) as before. */
        int r = len <= MPS_WIRE_MSG_MAX ? mps__client_send_raw(c, text, len, NULL, 0)
                                        : -EMSGSIZE;
        cJSON_free(text);
        return r;
}

int mps__envcache_attach(mps_client *c, struct mps__spawn *m, int *ret_slot) {
        struct mps__envcache *ec = &c->envcache;
        *ret_slot = -1;
        if (!(c->features & MPS_FEATURE_ENV_REF) || m->envc == 0)
                return 0;
        size_t len;
        char *key = key_make(m->envp, m->envc, &len);
        if (!key)
                return 0; /* inline, then */
        uint64_t hash = key_hash(key, len);
        mps__client_lock(c);
        int i = slot_find(ec, key, len, hash);
        bool fresh = i < 0;
        /* An environment is stored the second time it is used: a
         * connection for one job (the CLI's) sends one datagram, as
         * before. The hash decides no more than that. */
        bool again = ec->seen_hash == hash && ec->seen_len == len;
        if (fresh && !again) {
                ec->seen_hash = hash;
                ec->seen_len = len;
                i = -1;
        } else if (fresh && (i = slot_victim(ec)) >= 0) {
                slot_clear(&ec->slot[i]);
                ec->slot[i] = (struct mps__envslot){.key = key, .keylen = len, .hash = hash,
                                                    .tag = m->tag};
                key = NULL;
        }
        if (i >= 0) {
                ec->slot[i].users++;
                ec->slot[i].used = ++ec->clock;
        }
        mps__client_unlock(c);
        free(key);
        if (i < 0)
                return 0;
        int r = fresh ? send_env(c, m, i) : 0;
        mps__client_lock(c);
        /* (A refusal already read meanwhile cleared it: the spawn then
         * fails at the server, as it must.) */
        if (fresh && r == 0 && ec->slot[i].key)
                ec->slot[i].stored = true;
        else if (fresh)
                slot_clear(&ec->slot[i]);
        if (r < 0)
                ec->slot[i].users--;
        mps__client_unlock(c);
        if (r == -EMSGSIZE || r == -ENOMEM)
                return 0;
        if (r < 0)
                return r;
        m->env_ref = (uint64_t)i + 1;
        *ret_slot = i;
        return 0;
}

void mps__envcache_detach(mps_client *c, int slot) {
        if (slot < 0)
                return;
        mps__client_lock(c);
        c->envcache.slot[slot].users--;
        mps__client_unlock(c);
}

void mps__envcache_on_error(mps_client *c, uint64_t tag, const char *stage) {
        if (!stage || strcmp(stage, "env") != 0)
                return;
        for (int i = 0; i < MPS_WIRE_ENV_SLOTS; i++)
                if (c->envcache.slot[i].key && c->envcache.slot[i].tag == tag)
                        slot_clear(&c->envcache.slot[i]);
}

void mps__envcache_free(mps_client *c) {
        for (int i = 0; i < MPS_WIRE_ENV_SLOTS; i++)
                slot_clear(&c->envcache.slot[i]);
}
