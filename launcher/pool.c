/* SPDX-License-Identifier: MIT */
/*
 * pool.c: multiprocessing.Pool over one connection. Tasks wait in a FIFO
 * until fewer than `workers` run; each one's end is noticed through the
 * process's change hook, run by the client's reader (whichever thread is
 * reading) with no lock held, which runs the task's callback, closes the
 * process and starts the next queued task.
 *
 * Threads: the pool's lists and flags are guarded by its client's lock,
 * not a mutex of its own. Its tasks' processes change state under that
 * lock, a pool waits through the client's waiters (target: the pool), and
 * with one lock there is no order between two to get wrong. The lock is
 * released around every callback and every send.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fdutil.h"
#include "lib.h"
#include "list.h"

struct task_list;

struct task {
        struct mps__list node; /* in one of the pool's lists: */
        struct task_list *list;
        mps_pool *pool;
        mps_process *proc;
        mps_pool_callback callback;
        mps_pool_error_callback error_callback;
        void *userdata;
};

/* A list of tasks and its length (the pool compares it with workers). */
struct task_list {
        struct mps__list head;
        size_t count;
};

struct mps_pool {
        mps_client *client; /* a reference of the pool's own */
        unsigned workers;
        struct task_list pending, running;
        /* Dropped by terminate, their error callbacks still to run. */
        struct task_list cancelled;
        /* While mps_pool_send_signal walks the running tasks, another
         * thread (or this one, reading) may end some: those are kept here,
         * not freed, until the walk is over. */
        struct task_list ended;
        unsigned signalling;
        unsigned in_callback; /* callbacks running now (on the reader) */
        /* Callers of mps__pool_hold queueing many tasks in a row
         * (mps_pool_map, mpspawn -j): while > 0, a task is queued even
         * with a worker free, and mps__pool_release starts them together
         * (in batches). */
        unsigned held;
        bool closed;
        bool terminated;
};

static void list_push(struct task_list *l, struct task *t) {
        mps__list_push_back(&l->head, &t->node);
        l->count++;
        t->list = l;
}

static void list_unlink(struct task *t) {
        mps__list_remove(&t->node);
        t->list->count--;
        t->list = NULL;
}

/* The oldest task of l, or NULL when l is empty. */
static struct task *list_head(const struct task_list *l) {
        struct mps__list *n = mps__list_first(&l->head);
        return n ? mps__list_entry(n, struct task, node) : NULL;
}

MPS_API int mps_pool_new(mps_client *client, unsigned workers, mps_pool **ret_pool) {
        if (!client || workers == 0 || !ret_pool)
                return -EINVAL;
        mps_pool *p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        mps__client_lock(client);
        int r = mps__client_check_forked(client);
        if (r == 0)
                mps__client_ref_locked(client);
        mps__client_unlock(client);
        if (r < 0) {
                free(p);
                return r;
        }
        p->client = client;
        p->workers = workers;
        mps__list_init(&p->pending.head);
        mps__list_init(&p->running.head);
        mps__list_init(&p->cancelled.head);
        mps__list_init(&p->ended.head);
        *ret_pool = p;
        return 0;
}

/* With the lock held. */
static void task_free(struct task *t) {
        t->proc->on_change = NULL;
        if (t->pool->signalling) {
                list_push(&t->pool->ended, t);
                return;
        }
        mps__process_release_locked(t->proc);
        free(t);
}

/* The task whose start failure an error callback is being told of, so
 * that the callback can ask for its stage (mps__pool_failing_stage). */
static _Thread_local const mps_process *failing;

const char *mps__pool_failing_stage(void);
const char *mps__pool_failing_stage(void) {
        return failing ? mps_start_failed_stage(failing) : NULL;
}

/* A task's outcome, copied under the lock for its callback. */
struct outcome {
        enum proc_state state;
        int exitcode;
        int err;
        char message[MPS__ERROR_MAX];
};

static void outcome_of(const mps_process *proc, struct outcome *o) {
        o->state = proc->state;
        o->exitcode = proc->info.exitcode;
        switch (proc->state) {
        case PROC_ENDED:
                break;
        case PROC_FAILED:
        case PROC_NEW: /* (the start failed before it was sent) */
                o->err = proc->start_error ? -proc->start_error : -EIO;
                snprintf(o->message, sizeof(o->message), "%s", proc->start_message);
                break;
        default:
                o->err = -ENOTCONN;
                snprintf(o->message, sizeof(o->message), "%s", proc->client->broken_reason);
                break;
        }
}

/* With the lock held: runs t's callback without it, then frees t. */
static void finish_task(struct task *t, const struct outcome *o) {
        mps_pool *pool = t->pool;
        mps_client *c = pool->client;
        pool->in_callback++;
        mps__client_unlock(c);
        if (o->state == PROC_ENDED) {
                if (t->callback)
                        t->callback(t->proc, o->exitcode, t->userdata);
        } else if (t->error_callback) {
                failing = t->proc;
                t->error_callback(o->err, o->message, t->userdata);
                failing = NULL;
        }
        mps__client_lock(c);
        pool->in_callback--;
        task_free(t);
}

static void start_pending(mps_pool *pool, bool reader);

static void on_change(mps_process *proc, void *data);

/* With the lock held, in a hook of this pool's: another of its tasks'
 * hooks is due in this run of the reader's (client.c runs them after a
 * burst of messages), which starts the next tasks then, together. */
static bool more_ends_due(const mps_pool *pool) {
        struct mps__list *n, *next;
        mps__list_foreach_safe(n, next, &pool->client->deferred) {
                const mps_process *p = mps__list_entry(n, mps_process, deferred_node);
                if (p->on_change == on_change &&
                    ((const struct task *)p->on_change_data)->pool == pool)
                        return true;
        }
        return false;
}

/* A running (or cancelled) task's process has ended, failed to start, or
 * was lost: run by the reader, without the lock. */
static void on_change(mps_process *proc, void *data) {
        struct task *t = data;
        mps_pool *pool = t->pool;
        struct outcome o;
        mps__client_lock(pool->client);
        list_unlink(t);
        outcome_of(proc, &o);
        finish_task(t, &o);
        if (!more_ends_due(pool))
                start_pending(pool, true);
        mps__client_wake(pool->client, pool);
        mps__client_unlock(pool->client);
}

/* With the lock held: t's start failed with r before anything was sent.
 * The reader runs its error callback now; another thread leaves it to the
 * reader (mps__client_run_deferred after the lock is let go), so that no
 * two callbacks run at once. */
static void start_failed(struct task *t, int r, bool reader) {
        if (reader) {
                struct outcome o;
                list_unlink(t);
                outcome_of(t->proc, &o);
                o.err = r;
                finish_task(t, &o);
                return;
        }
        t->proc->state = PROC_FAILED;
        t->proc->start_error = -r;
        mps__client_defer(t->pool->client, t->proc);
}

/* With the lock held: starts queued tasks while workers are free, in
 * batches of up to MPS_WIRE_BATCH_MAX (one request each where the server
 * takes it). */
static void start_pending(mps_pool *pool, bool reader) {
        mps_client *c = pool->client;
        while (pool->running.count < pool->workers && pool->pending.count > 0 &&
               !pool->terminated) {
                struct task *batch[MPS_WIRE_BATCH_MAX];
                mps_process *procs[MPS_WIRE_BATCH_MAX];
                int results[MPS_WIRE_BATCH_MAX];
                size_t n = 0;
                while (n < MPS_WIRE_BATCH_MAX && pool->running.count < pool->workers &&
                       pool->pending.count > 0) {
                        struct task *t = list_head(&pool->pending);
                        list_unlink(t);
                        t->proc->on_change = on_change;
                        t->proc->on_change_data = t;
                        list_push(&pool->running, t);
                        batch[n] = t;
                        procs[n++] = t->proc;
                }
                mps__client_unlock(c);
                mps__process_send_start_batch(procs, n, results);
                mps__client_lock(c);
                /* (A task whose start went out may have ended meanwhile,
                 * and be gone: only failed ones are looked at.) */
                for (size_t i = 0; i < n; i++)
                        if (results[i] < 0)
                                start_failed(batch[i], results[i], reader);
        }
}

/*
 * A task starts at once when a worker is free and none is queued, else it
 * queues, started later by the reader as others end. One that fails at
 * once (before anything is sent) is dropped and its error returned here:
 * its error callback would otherwise run on this thread, perhaps while the
 * reader runs another's.
 */
MPS_API int mps_pool_apply_async(mps_pool *pool, const mps_spec *spec,
                                 mps_pool_callback callback,
                                 mps_pool_error_callback error_callback,
                                 void *userdata) {
        if (!pool || !spec)
                return -EINVAL;
        mps_client *c = pool->client;
        struct task *t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        mps__list_init(&t->node);
        int r = mps_process_new(c, spec, &t->proc);
        if (r < 0) {
                free(t);
                return r;
        }
        t->pool = pool;
        t->callback = callback;
        t->error_callback = error_callback;
        t->userdata = userdata;
        mps__client_lock(c);
        if (pool->closed || pool->terminated) {
                mps__client_set_error(c, "the pool is closed");
                task_free(t);
                mps__client_unlock(c);
                return -EINVAL;
        }
        if (pool->running.count >= pool->workers || pool->pending.count > 0 || pool->held) {
                list_push(&pool->pending, t);
                mps__client_unlock(c);
                return 0;
        }
        t->proc->on_change = on_change;
        t->proc->on_change_data = t;
        list_push(&pool->running, t);
        mps__client_unlock(c);
        r = mps__process_send_start(t->proc);
        if (r < 0) {
                mps__client_lock(c);
                list_unlink(t);
                task_free(t);
                mps__client_wake(c, pool);
                mps__client_unlock(c);
        }
        return r;
}

static bool pool_idle(void *arg) {
        const mps_pool *pool = arg;
        return pool->running.count == 0 && pool->pending.count == 0 &&
               pool->cancelled.count == 0 && pool->in_callback == 0;
}

/* With the lock held: waits until no task is pending, running or in its
 * callback, or the deadline. */
static int wait_idle(mps_pool *pool, int timeout_ms) {
        return mps__client_wait_until(pool->client, pool_idle, pool, pool,
                                      mps__deadline(timeout_ms));
}

/* One map call's results; its tasks' callbacks fill them on the reader,
 * and the map's thread reads them once `left` is 0 (atomic: written
 * without the lock, in a callback). */
struct map_state {
        int *codes;
        int first_error;
        char message[MPS__ERROR_MAX];
        _Atomic size_t left;
};

struct slot {
        struct map_state *m;
        size_t i;
};

static void slot_done(mps_process *proc, int exitcode, void *userdata) {
        struct slot *s = userdata;
        (void)proc;
        s->m->codes[s->i] = exitcode;
        atomic_fetch_sub(&s->m->left, 1);
}

static void slot_failed(int err, const char *message, void *userdata) {
        struct slot *s = userdata;
        struct map_state *m = s->m;
        m->codes[s->i] = MPS_EXITCODE_NONE;
        if (m->first_error == 0) {
                m->first_error = err;
                snprintf(m->message, sizeof(m->message), "%s", message);
        }
        atomic_fetch_sub(&m->left, 1);
}

static bool map_done(void *arg) {
        return atomic_load(&((struct map_state *)arg)->left) == 0;
}

void mps__pool_hold(mps_pool *pool) {
        mps__client_lock(pool->client);
        pool->held++;
        mps__client_unlock(pool->client);
}

void mps__pool_release(mps_pool *pool) {
        mps__client_lock(pool->client);
        pool->held--;
        start_pending(pool, false);
        mps__client_unlock(pool->client);
        mps__client_run_deferred(pool->client);
}

MPS_API int mps_pool_map(mps_pool *pool, const mps_spec *const *specs, size_t count,
                         int *ret_exitcodes) {
        if (!pool || (count > 0 && (!specs || !ret_exitcodes)))
                return -EINVAL;
        struct slot *slots = calloc(count + 1, sizeof(*slots));
        struct map_state m = {.codes = malloc((count + 1) * sizeof(int))};
        size_t queued = 0;
        int r = 0;
        if (!slots || !m.codes) {
                free(slots);
                free(m.codes);
                return -ENOMEM;
        }
        /* Counted up front: a task may end before the next is queued. */
        atomic_store(&m.left, count);
        for (size_t i = 0; i < count; i++) {
                m.codes[i] = MPS_EXITCODE_NONE;
                slots[i] = (struct slot){&m, i};
        }
        /* All queued first, then started together: the first workers'
         * tasks go out in batches. */
        mps__pool_hold(pool);
        for (; queued < count; queued++) {
                r = mps_pool_apply_async(pool, specs[queued], slot_done, slot_failed,
                                         &slots[queued]);
                if (r < 0)
                        break;
        }
        mps__pool_release(pool);
        /* Tasks already queued still finish before their slots go away;
         * this waits for these tasks only, not for other threads'. */
        if (queued < count)
                atomic_fetch_sub(&m.left, count - queued);
        mps__client_lock(pool->client);
        int w = mps__client_wait_until(pool->client, map_done, &m, pool, 0);
        if (r == 0 && w < 0)
                r = w;
        if (r == 0 && m.first_error)
                mps__client_set_error(pool->client, "%s", m.message);
        mps__client_unlock(pool->client);
        if (r == 0)
                memcpy(ret_exitcodes, m.codes, count * sizeof(int));
        free(slots);
        free(m.codes);
        return r < 0 ? r : m.first_error;
}

MPS_API int mps_pool_apply(mps_pool *pool, const mps_spec *spec, int *ret_exitcode) {
        const mps_spec *one[1] = {spec};
        int code = MPS_EXITCODE_NONE;
        int r = mps_pool_map(pool, one, 1, &code);
        if (r == 0 && ret_exitcode)
                *ret_exitcode = code;
        return r;
}

MPS_API int mps_pool_send_signal(mps_pool *pool, int sig) {
        if (!pool)
                return -EINVAL;
        mps_client *c = pool->client;
        mps__client_lock(c);
        /* The tasks running now, by value: while they are signalled
         * (without the lock), any may end, and is then kept, not freed
         * (see task_free). */
        size_t n = pool->running.count, i = 0;
        mps_process **now = malloc((n + 1) * sizeof(*now));
        if (!now) {
                mps__client_unlock(c);
                return -ENOMEM;
        }
        struct mps__list *node, *tmp;
        mps__list_foreach_safe(node, tmp, &pool->running.head)
                now[i++] = mps__list_entry(node, struct task, node)->proc;
        pool->signalling++;
        mps__client_unlock(c);
        int first = 0;
        for (i = 0; i < n; i++) {
                int r = mps_send_signal(now[i], sig);
                if (r < 0 && first == 0)
                        first = r;
        }
        free(now);
        mps__client_lock(c);
        pool->signalling--;
        while (!pool->signalling && pool->ended.count > 0) {
                struct task *t = list_head(&pool->ended);
                list_unlink(t);
                task_free(t);
        }
        mps__client_wake(c, pool);
        mps__client_unlock(c);
        return first;
}

MPS_API int mps_pool_close(mps_pool *pool) {
        if (!pool)
                return -EINVAL;
        mps__client_lock(pool->client);
        pool->closed = true;
        mps__client_unlock(pool->client);
        return 0;
}

/* Queued tasks are cancelled as if their start had failed: their error
 * callbacks run where every callback runs, on the reader (this thread,
 * at once, when no other is reading). */
MPS_API int mps_pool_terminate(mps_pool *pool) {
        if (!pool)
                return -EINVAL;
        mps_client *c = pool->client;
        mps__client_lock(c);
        pool->closed = pool->terminated = true;
        while (pool->pending.count > 0) {
                struct task *t = list_head(&pool->pending);
                list_unlink(t);
                t->proc->state = PROC_FAILED;
                t->proc->start_error = ECANCELED;
                snprintf(t->proc->start_message, sizeof(t->proc->start_message),
                         "the pool was terminated");
                t->proc->on_change = on_change;
                t->proc->on_change_data = t;
                list_push(&pool->cancelled, t);
                mps__client_defer(c, t->proc);
        }
        mps__client_unlock(c);
        mps__client_run_deferred(c);
        return mps_pool_send_signal(pool, SIGTERM);
}

MPS_API int mps_pool_join(mps_pool *pool, int timeout_ms) {
        if (!pool)
                return -EINVAL;
        mps_client *c = pool->client;
        mps__client_lock(c);
        int r;
        if (!pool->closed) {
                mps__client_set_error(c, "join a pool only after close or terminate");
                r = -EINVAL;
        } else {
                r = wait_idle(pool, timeout_ms);
        }
        mps__client_unlock(c);
        return r;
}

MPS_API int mps_pool_free(mps_pool *pool) {
        if (!pool)
                return 0;
        mps_client *c = pool->client;
        mps__client_lock(c);
        if (!c->forked && !pool_idle(pool)) {
                mps__client_unlock(c);
                return -EBUSY;
        }
        if (pool->signalling) {
                mps__client_unlock(c);
                return -EBUSY;
        }
        free(pool);
        mps__client_unlock_unref(c);
        return 0;
}

/* For pool_call.c, which builds on the pool from outside. */
mps_client *mps__pool_client(const mps_pool *pool) {
        return pool->client;
}

static bool count_done(void *arg) {
        return atomic_load((_Atomic size_t *)arg) == 0;
}

int mps__pool_wait_tasks(mps_pool *pool, _Atomic size_t *left) {
        mps__client_lock(pool->client);
        int r = mps__client_wait_until(pool->client, count_done, (void *)left, pool, 0);
        mps__client_unlock(pool->client);
        return r;
}
