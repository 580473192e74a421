/* SPDX-License-Identifier: MIT */
/*
 * spawn_batch.c: the spawn_batch request, several spawns in one message
 * (docs/protocol.md). Each job is a whole spawn request with its own tag
 * and its slice of the message's descriptors, and goes through spawn.c as
 * if it had come alone: it is answered (spawned, error, exited) under its
 * own tag, and one job's refusal leaves the others alone. What a batch
 * saves is per message, not per job: one datagram and one wake-up, and the
 * client's context read from the kernel once for all its jobs. That read
 * is as good for every job of the request as it is for a single spawn: all
 * were asked for at once, and a spawn reads it when it is handled, not when
 * it was sent, either way.
 *
 * A bad envelope starts nothing: each job whose tag can be read is told why
 * (at most MPS_WIRE_BATCH_MAX of them, so that a big message cannot make
 * the server queue more replies than a batch has jobs), or else the
 * request's own tag is. The message's descriptors are released by the
 * caller, as for any request.
 */
#include <errno.h>
#include <string.h>

#include "server.h"

static void refuse(struct client *c, const struct mps__msg *msg, int err, const char *why) {
        const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(msg->json, "jobs");
        const cJSON *job = cJSON_IsArray(jobs) ? jobs->child : NULL;
        bool told = false;
        log_warn("client %llu (pid %d): bad spawn_batch request: %s",
                 (unsigned long long)c->serial, (int)c->pid, why);
        for (int i = 0; job && i < MPS_WIRE_BATCH_MAX && !c->dead; job = job->next, i++) {
                uint64_t tag = mps__wire_tag(job);
                if (tag == 0)
                        continue;
                client_send_error(c, tag, err, "request", "bad spawn_batch request: %s", why);
                told = true;
        }
        if (!told)
                client_send_error(c, msg->tag, err, "request", "bad spawn_batch request: %s",
                                  why);
}

size_t spawn_batch_request(struct client *c, struct mps__msg *msg) {
        struct mps__spawn_batch b;
        char err[256];
        int r = mps__spawn_batch_decode(msg->json, msg->nfds, &b, err, sizeof(err));
        if (r < 0) {
                refuse(c, msg, -r, err);
                return 1;
        }
        struct spawn_shared shared = {.have_ctx = false};
        for (size_t i = 0; i < b.count && !c->dead; i++) {
                const struct mps__batch_job *job = &b.jobs[i];
                struct mps__msg one = {.op = MPS_OP_SPAWN, .tag = job->tag,
                                       .received_ns = msg->received_ns,
                                       .json = (cJSON *)job->json, .nfds = job->nfds};
                memcpy(one.fds, msg->fds + job->fd_from, job->nfds * sizeof(int));
                spawn_request(c, &one, &shared);
        }
        return b.count;
}
