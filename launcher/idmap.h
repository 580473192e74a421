/* SPDX-License-Identifier: MIT */
/*
 * idmap.h: a hash map from nonzero 64-bit ids to pointers, with O(1) lookup,
 * insert and removal. The server keys jobs by id, the library keys
 * processes by request tag; neither ever scans all entries per event.
 */
#ifndef MPS_IDMAP_H
#define MPS_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct mps__idmap {
        struct mps__idmap_slot *slots;
        size_t cap; /* a power of two, or 0 */
        size_t count;
};

/* An empty map needs no set-up: struct mps__idmap m = {0}. */
void mps__idmap_free(struct mps__idmap *m);

/* Adds key -> value; key must be nonzero and not present. 0 or -ENOMEM. */
int mps__idmap_put(struct mps__idmap *m, uint64_t key, void *value);

/* The value for key, or NULL. */
void *mps__idmap_get(const struct mps__idmap *m, uint64_t key);

/* Removes key and returns its value, or NULL if absent. */
void *mps__idmap_remove(struct mps__idmap *m, uint64_t key);

/* Some entry's value (and key), or NULL when empty: for draining a map. */
void *mps__idmap_any(const struct mps__idmap *m, uint64_t *ret_key);

/* Calls fn for each entry; fn must not change the map. */
void mps__idmap_foreach(const struct mps__idmap *m,
                        void (*fn)(uint64_t key, void *value, void *data),
                        void *data);

#endif /* MPS_IDMAP_H */
