/* SPDX-License-Identifier: MIT */
/*
 * idmap.c: open addressing with linear probing; removal shifts the following
 * cluster back, so there are no tombstones and lookups stay short.
 */
#include "idmap.h"

#include <errno.h>
#include <stdlib.h>

struct mps__idmap_slot {
        uint64_t key; /* 0: empty */
        void *value;
};

static size_t slot_of(uint64_t key, size_t cap) {
        /* Fibonacci hashing takes the top bits of the product, which depend
         * on every bit of the key: sequential ids and ids that differ only in
         * high bits spread alike. cap is a power of two >= 16. */
        unsigned bits = (unsigned)__builtin_ctzll((unsigned long long)cap);
        return (size_t)((key * 11400714819323198485ull) >> (64 - bits));
}

void mps__idmap_free(struct mps__idmap *m) {
        free(m->slots);
        m->slots = NULL;
        m->cap = m->count = 0;
}

static int grow(struct mps__idmap *m) {
        size_t ncap = m->cap ? m->cap * 2 : 16;
        struct mps__idmap_slot *ns = calloc(ncap, sizeof(*ns));
        if (!ns)
                return -ENOMEM;
        for (size_t i = 0; i < m->cap; i++) {
                if (!m->slots[i].key)
                        continue;
                size_t j = slot_of(m->slots[i].key, ncap);
                while (ns[j].key)
                        j = (j + 1) & (ncap - 1);
                ns[j] = m->slots[i];
        }
        free(m->slots);
        m->slots = ns;
        m->cap = ncap;
        return 0;
}

int mps__idmap_put(struct mps__idmap *m, uint64_t key, void *value) {
        if (key == 0)
                return -EINVAL;
        /* Keep the load factor at or below 1/2. */
        if ((m->count + 1) * 2 > m->cap) {
                int r = grow(m);
                if (r < 0)
                        return r;
        }
        size_t i = slot_of(key, m->cap);
        while (m->slots[i].key) {
                if (m->slots[i].key == key)
                        return -EEXIST;
                i = (i + 1) & (m->cap - 1);
        }
        m->slots[i].key = key;
        m->slots[i].value = value;
        m->count++;
        return 0;
}

static size_t find(const struct mps__idmap *m, uint64_t key) {
        if (m->cap == 0 || key == 0)
                return SIZE_MAX;
        size_t i = slot_of(key, m->cap);
        while (m->slots[i].key) {
                if (m->slots[i].key == key)
                        return i;
                i = (i + 1) & (m->cap - 1);
        }
        return SIZE_MAX;
}

void *mps__idmap_get(const struct mps__idmap *m, uint64_t key) {
        size_t i = find(m, key);
        return i == SIZE_MAX ? NULL : m->slots[i].value;
}

void *mps__idmap_remove(struct mps__idmap *m, uint64_t key) {
        size_t i = find(m, key);
        if (i == SIZE_MAX)
                return NULL;
        void *value = m->slots[i].value;
        size_t mask = m->cap - 1;
        /* Backward-shift deletion: move each later member of the cluster
         * into the hole if its home slot does not lie between hole and it. */
        size_t hole = i, j = i;
        for (;;) {
                j = (j + 1) & mask;
                if (!m->slots[j].key)
                        break;
                size_t home = slot_of(m->slots[j].key, m->cap);
                if (((j - home) & mask) >= ((j - hole) & mask)) {
                        m->slots[hole] = m->slots[j];
                        hole = j;
                }
        }
        m->slots[hole].key = 0;
        m->slots[hole].value = NULL;
        m->count--;
        return value;
}

void mps__idmap_foreach(const struct mps__idmap *m,
                        void (*fn)(uint64_t key, void *value, void *data),
                        void *data) {
        for (size_t i = 0; i < m->cap; i++)
                if (m->slots[i].key)
                        fn(m->slots[i].key, m->slots[i].value, data);
}

void *mps__idmap_any(const struct mps__idmap *m, uint64_t *ret_key) {
        for (size_t i = 0; i < m->cap; i++)
                if (m->slots[i].key) {
                        if (ret_key)
                                *ret_key = m->slots[i].key;
                        return m->slots[i].value;
                }
        return NULL;
}
