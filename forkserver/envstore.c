/* SPDX-License-Identifier: MIT */
/*
 * envstore.c: environments a connection stores once ("env" requests, the
 * env_ref feature) and its spawns name by id instead of sending their
 * whole environment each time: most of a spawn request's bytes, and so of
 * the server's parsing, were the client's environment, the same for every
 * job. A connection has MPS_WIRE_ENV_SLOTS of them; each is at most one
 * datagram's worth, copied out of the message into one block, and charged
 * to the user as queued replies are, so that connections do not buy
 * memory. They go with the connection.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

static void slot_free(struct client *c, struct client_env *e) {
        if (!e->block)
                return;
        client_charge(c, -(ssize_t)e->bytes);
        free(e->block);
        *e = (struct client_env){0};
}

/* Copies env's strings into one block with the vector before them and the
 * request's text after (a pre-forked child is handed that). */
static int slot_fill(struct client_env *e, const char *const *envp, size_t envc,
                     const char *raw, size_t rawlen) {
        size_t text = rawlen;
        for (size_t i = 0; i < envc; i++)
                text += strlen(envp[i]) + 1;
        /* The vector goes first, so that it is aligned. */
        size_t vbytes = (envc + 1) * sizeof(char *);
        char *block = malloc(vbytes + text);
        if (!block)
                return -ENOMEM;
        const char **vec = (const char **)(void *)block;
        char *p = block + vbytes;
        memcpy(p, raw, rawlen);
        p += rawlen;
        for (size_t i = 0; i < envc; i++) {
                size_t n = strlen(envp[i]) + 1;
                memcpy(p, envp[i], n);
                vec[i] = p;
                p += n;
        }
        vec[envc] = NULL;
        *e = (struct client_env){.block = block, .vec = vec, .count = envc,
                                 .raw = block + vbytes, .rawlen = rawlen,
                                 .bytes = vbytes + text};
        return 0;
}

void request_env(struct client *c, const struct mps__msg *msg) {
        struct mps__env m;
        char err[256];
        int r = mps__env_decode(msg->json, &m, err, sizeof(err));
        if (r < 0) {
                client_send_error(c, msg->tag, -r, "request", "bad env request: %s", err);
                return;
        }
        /* What the id held goes first: a refused store must not leave a
         * later env_ref to it the environment before. */
        struct client_env *e = &c->env[m.id - 1];
        slot_free(c, e);
        r = slot_fill(e, m.envp, m.envc, msg->raw, msg->rawlen);
        free(m.envp);
        if (r == 0 && (r = client_charge(c, (ssize_t)e->bytes)) < 0) {
                free(e->block);
                *e = (struct client_env){0};
        }
        if (r == -ENOBUFS)
                client_send_error(c, m.tag, ENOBUFS, "env",
                                  "environment %llu not stored: this user's connections "
                                  "hold too much already (client_queue_bytes_per_uid)",
                                  (unsigned long long)m.id);
        else if (r < 0)
                client_send_error(c, m.tag, -r, "env",
                                  "environment %llu not stored: out of memory",
                                  (unsigned long long)m.id);
}

const struct client_env *client_env_get(const struct client *c, uint64_t id) {
        if (id < 1 || id > MPS_WIRE_ENV_SLOTS || !c->env[id - 1].block)
                return NULL;
        return &c->env[id - 1];
}

void client_env_release(struct client *c) {
        for (size_t i = 0; i < MPS_WIRE_ENV_SLOTS; i++)
                slot_free(c, &c->env[i]);
}
