/* SPDX-License-Identifier: MIT */
/*
 * list.h: the one intrusive doubly linked list of the project (jobs of a
 * connection, live connections, the policy cache's LRU, a pool's tasks).
 * A list is a struct mps__list head; an element embeds a struct mps__list
 * node and is found from it with mps__list_entry. Insertion and removal
 * are O(1) and never allocate. An unlinked node points at itself, so
 * removing a node twice, or one never linked, is harmless.
 */
#ifndef MPS_LIST_H
#define MPS_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct mps__list {
        struct mps__list *next, *prev;
};

/* An empty list head, or a node that belongs to no list. */
#define MPS__LIST_INIT(name) {&(name), &(name)}

static inline void mps__list_init(struct mps__list *l) {
        l->next = l->prev = l;
}

static inline bool mps__list_empty(const struct mps__list *l) {
        return l->next == l;
}

/* Links node at the front of the list (after head). */
static inline void mps__list_push_front(struct mps__list *head, struct mps__list *node) {
        node->next = head->next;
        node->prev = head;
        head->next->prev = node;
        head->next = node;
}

/* Links node at the back of the list (before head). */
static inline void mps__list_push_back(struct mps__list *head, struct mps__list *node) {
        node->prev = head->prev;
        node->next = head;
        head->prev->next = node;
        head->prev = node;
}

/* Unlinks node from whatever list holds it (if any). */
static inline void mps__list_remove(struct mps__list *node) {
        node->prev->next = node->next;
        node->next->prev = node->prev;
        node->next = node->prev = node;
}

/* The element that embeds node as member. */
#define mps__list_entry(node, type, member) \
        ((type *)(void *)((char *)(node) - offsetof(type, member)))

/* The first / last node, or NULL when the list is empty. */
static inline struct mps__list *mps__list_first(const struct mps__list *head) {
        return head->next == head ? NULL : head->next;
}
static inline struct mps__list *mps__list_last(const struct mps__list *head) {
        return head->prev == head ? NULL : head->prev;
}

/* Walks the nodes of head; the current node may be removed (its successor
 * was read first). */
#define mps__list_foreach_safe(node, tmp, head) \
        for ((node) = (head)->next, (tmp) = (node)->next; (node) != (head); \
             (node) = (tmp), (tmp) = (node)->next)

#endif /* MPS_LIST_H */
