/* SPDX-License-Identifier: MIT */
/*
 * pool_call.c: Pool.map for call jobs. Each task is the caller's spec made
 * a call of one entry point with its own arguments, run through the pool
 * as any task is; its callback copies the result and failure message out
 * of the process before the pool closes it, into a slot of its own, so
 * results land in input order whatever order the jobs end in. A task that
 * failed without a message of its entry point's gets one that says how,
 * as Python's Pool re-raises a worker's exception in the parent.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib.h"

struct call_slot {
        mps_call_result res;
        bool failed;
        _Atomic size_t *left; /* the map's tasks not yet done */
};

/* "killed by signal 9 (Killed)", "exited with status 3": malloc()ed. */
static char *exit_message(int exitcode) {
        char *m = NULL;
        int n = exitcode < 0 ? asprintf(&m, "killed by signal %d (%s)", -exitcode,
                                        strsignal(-exitcode))
                             : asprintf(&m, "exited with status %d", exitcode);
        return n < 0 ? NULL : m;
}

static void slot_done(mps_process *proc, int exitcode, void *userdata) {
        struct call_slot *s = userdata;
        const char *result = mps_result(proc), *error = mps_result_error(proc);
        s->res.exitcode = exitcode;
        /* Out of memory a string is lost; whether the task failed is not. */
        s->res.result = result ? strdup(result) : NULL;
        s->failed = error || exitcode != 0;
        s->res.error = error ? strdup(error) : exitcode != 0 ? exit_message(exitcode) : NULL;
        atomic_fetch_sub(s->left, 1);
}

static void slot_failed(int err, const char *message, void *userdata) {
        struct call_slot *s = userdata;
        s->res.exitcode = MPS_EXITCODE_NONE;
        s->failed = true;
        s->res.error = strdup(message && *message ? message : mps_strerror(err));
        atomic_fetch_sub(s->left, 1);
}

/* The tasks' arguments, checked before anything runs: -EINVAL (with the
 * client's error naming the first bad one) or 0. */
static int check_args(mps_client *c, mps_spec *task, const char *entry,
                      const char *const *args_json, size_t count) {
        for (size_t i = 0; i < count; i++) {
                int r = mps_spec_set_call(task, entry, args_json[i]);
                if (r == -EINVAL) {
                        mps__client_set_error(c, "task %zu: its arguments are not JSON "
                                                 "(finite numbers only)", i);
                        return r;
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

MPS_API int mps_pool_map_call(mps_pool *pool, const mps_spec *spec, const char *entry,
                              const char *const *args_json, size_t count,
                              mps_call_result *ret_results) {
        if (!pool || !spec || !entry || (count > 0 && (!args_json || !ret_results)))
                return -EINVAL;
        mps_client *c = mps__pool_client(pool);
        if (spec->spawn.detached) {
                mps__client_set_error(c, "a detached job's end never comes back to a pool");
                return -EINVAL;
        }
        mps_spec *task = NULL;
        struct call_slot *slots = calloc(count + 1, sizeof(*slots));
        int r = slots ? mps__spec_copy(spec, &task) : -ENOMEM;
        if (r == 0 && (r = mps_spec_set_call(task, entry, NULL)) == -EINVAL)
                mps__client_set_error(c, "'%s' is not a valid entry point name", entry);
        if (r == 0)
                r = check_args(c, task, entry, args_json, count);
        if (r < 0) {
                mps_spec_free(task);
                free(slots);
                return r;
        }
        /* Counted up front: a task may end before the next is queued. */
        _Atomic size_t left = count;
        size_t queued = 0;
        for (size_t i = 0; i < count; i++) {
                slots[i].res.exitcode = MPS_EXITCODE_NONE;
                slots[i].left = &left;
        }
        /* All queued first, then started together, as mps_pool_map does. */
        mps__pool_hold(pool);
        for (; queued < count; queued++) {
                /* apply_async copies the spec: one serves every task. */
                r = mps_spec_set_call(task, entry, args_json[queued]);
                if (r == 0)
                        r = mps_pool_apply_async(pool, task, slot_done, slot_failed,
                                                 &slots[queued]);
                if (r < 0)
                        break;
        }
        mps__pool_release(pool);
        mps_spec_free(task);
        /* Tasks already queued still finish before their slots go away;
         * this waits for these tasks only, not for other threads'. */
        if (queued < count)
                atomic_fetch_sub(&left, count - queued);
        int w = mps__pool_wait_tasks(pool, &left);
        if (r == 0 && w < 0)
                r = w;
        size_t failed = 0, first = count;
        for (size_t i = 0; i < count && r == 0; i++)
                if (slots[i].failed && failed++ == 0)
                        first = i;
        if (r < 0) {
                for (size_t i = 0; i < count; i++)
                        mps_call_results_free(&slots[i].res, 1);
                free(slots);
                return r;
        }
        if (failed > 0)
                mps__client_set_error(c, "task %zu: %s", first,
                                      slots[first].res.error ? slots[first].res.error
                                                             : "failed");
        for (size_t i = 0; i < count; i++)
                ret_results[i] = slots[i].res;
        free(slots);
        return failed > (size_t)INT_MAX ? INT_MAX : (int)failed;
}

MPS_API void mps_call_results_free(mps_call_result *results, size_t count) {
        for (size_t i = 0; results && i < count; i++) {
                free(results[i].result);
                free(results[i].error);
                results[i].result = results[i].error = NULL;
        }
}
