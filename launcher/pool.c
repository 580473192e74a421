/* SPDX-License-Identifier: MIT */
/*
 * pool.c: multiprocessing.Pool over one connection. Tasks wait in a FIFO
 * until fewer than `workers` run; each one's end is noticed through the
 * process's change hook, called from dispatch, which runs the task's
 * callback, closes the process and starts the next queued task.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "fdutil.h"
#include "lib.h"
#include "list.h"

struct task {
        struct mps__list node; /* in pending, running or ended */
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
        mps_client *client;
        unsigned workers;
        struct task_list pending, running;
        /* While mps_pool_send_signal walks the running tasks, signalling one
         * may dispatch replies that end others: those are kept here, not
         * freed, until the walk is over. */
        struct task_list ended;
        unsigned signalling;
        bool closed;
        bool terminated;
};

static void list_push(struct task_list *l, struct task *t) {
        mps__list_push_back(&l->head, &t->node);
        l->count++;
}

static void list_unlink(struct task_list *l, struct task *t) {
        mps__list_remove(&t->node);
        l->count--;
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
        p->client = client;
        p->workers = workers;
        mps__list_init(&p->pending.head);
        mps__list_init(&p->running.head);
        mps__list_init(&p->ended.head);
        *ret_pool = p;
        return 0;
}

static void task_free(struct task *t) {
        if (t->proc)
                t->proc->on_change = NULL;
        if (t->pool->signalling) {
                list_push(&t->pool->ended, t);
                return;
        }
        if (t->proc)
                mps_process_close(t->proc);
        free(t);
}

/* The task whose start failure an error callback is being told of, so
 * that the callback can ask for its stage (mps__pool_failing_stage). */
static _Thread_local const mps_process *failing;

const char *mps__pool_failing_stage(void);
const char *mps__pool_failing_stage(void) {
        return failing ? mps_start_failed_stage(failing) : NULL;
}

static void fail_task(struct task *t, int err, const char *message) {
        failing = t->proc;
        if (t->error_callback)
                t->error_callback(err, message, t->userdata);
        failing = NULL;
        task_free(t);
}

static void start_pending(mps_pool *pool);

/* A running task's process has ended, failed to start, or was lost. */
static void on_change(mps_process *proc, void *data) {
        struct task *t = data;
        mps_pool *pool = t->pool;
        list_unlink(&pool->running, t);
        switch (proc->state) {
        case PROC_ENDED:
                if (t->callback)
                        t->callback(proc, proc->info.exitcode, t->userdata);
                task_free(t);
                break;
        case PROC_FAILED:
                fail_task(t, -proc->start_error, mps_client_error(pool->client));
                break;
        default:
                fail_task(t, -ENOTCONN, "lost the connection to the forkserver");
                break;
        }
        start_pending(pool);
}

static void start_pending(mps_pool *pool) {
        while (pool->running.count < pool->workers && pool->pending.count > 0 &&
               !pool->terminated) {
                struct task *t = list_head(&pool->pending);
                list_unlink(&pool->pending, t);
                t->proc->on_change = on_change;
                t->proc->on_change_data = t;
                int r = mps__process_send_start(t->proc);
                if (r < 0) {
                        fail_task(t, r, mps_client_error(pool->client));
                        continue;
                }
                list_push(&pool->running, t);
        }
}

MPS_API int mps_pool_apply_async(mps_pool *pool, const mps_spec *spec,
                                 mps_pool_callback callback,
                                 mps_pool_error_callback error_callback,
                                 void *userdata) {
        if (!pool || !spec)
                return -EINVAL;
        if (pool->closed || pool->terminated) {
                mps__client_set_error(pool->client, "the pool is closed");
                return -EINVAL;
        }
        struct task *t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        mps__list_init(&t->node);
        int r = mps_process_new(pool->client, spec, &t->proc);
        if (r < 0) {
                free(t);
                return r;
        }
        t->pool = pool;
        t->callback = callback;
        t->error_callback = error_callback;
        t->userdata = userdata;
        list_push(&pool->pending, t);
        start_pending(pool);
        return 0;
}

/* Dispatches until no task is pending or running, or the deadline. */
static int wait_idle(mps_pool *pool, int timeout_ms) {
        uint64_t deadline = timeout_ms >= 0
                ? mps__now_ns() + (uint64_t)timeout_ms * 1000000u : 0;
        while (pool->running.count > 0 || pool->pending.count > 0) {
                int wait_ms = -1;
                if (timeout_ms >= 0) {
                        uint64_t now = mps__now_ns();
                        if (now >= deadline)
                                return -ETIMEDOUT;
                        wait_ms = (int)((deadline - now + 999999) / 1000000);
                }
                int r = mps__client_wait(pool->client, wait_ms);
                if (r < 0 && r != -EINTR)
                        return r;
        }
        return 0;
}

struct slot {
        int *exitcode;
        int *error;
};

static void slot_done(mps_process *proc, int exitcode, void *userdata) {
        struct slot *s = userdata;
        (void)proc;
        *s->exitcode = exitcode;
}

static void slot_failed(int err, const char *message, void *userdata) {
        struct slot *s = userdata;
        (void)message;
        *s->exitcode = MPS_EXITCODE_NONE;
        if (*s->error == 0)
                *s->error = err;
}

MPS_API int mps_pool_map(mps_pool *pool, const mps_spec *const *specs, size_t count,
                         int *ret_exitcodes) {
        if (!pool || (count > 0 && (!specs || !ret_exitcodes)))
                return -EINVAL;
        struct slot *slots = calloc(count + 1, sizeof(*slots));
        int *codes = malloc((count + 1) * sizeof(*codes));
        int first_error = 0, r = 0;
        if (!slots || !codes) {
                free(slots);
                free(codes);
                return -ENOMEM;
        }
        for (size_t i = 0; i < count; i++) {
                codes[i] = MPS_EXITCODE_NONE;
                slots[i] = (struct slot){&codes[i], &first_error};
                r = mps_pool_apply_async(pool, specs[i], slot_done, slot_failed, &slots[i]);
                if (r < 0)
                        break;
        }
        /* Tasks already queued still finish before their slots go away. */
        int w = wait_idle(pool, -1);
        if (r == 0 && w < 0)
                r = w;
        if (r == 0)
                memcpy(ret_exitcodes, codes, count * sizeof(*codes));
        free(slots);
        free(codes);
        return r < 0 ? r : first_error;
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
        /* The tasks running now, by value: signalling one dispatches
         * replies, which may end (not free: see task_free) any of them and
         * start queued ones. */
        size_t n = pool->running.count, i = 0;
        struct task **now = malloc((n + 1) * sizeof(*now));
        if (!now)
                return -ENOMEM;
        struct mps__list *node, *tmp;
        mps__list_foreach_safe(node, tmp, &pool->running.head)
                now[i++] = mps__list_entry(node, struct task, node);
        int first = 0;
        pool->signalling++;
        for (i = 0; i < n; i++) {
                int r = mps_send_signal(now[i]->proc, sig);
                if (r < 0 && first == 0)
                        first = r;
        }
        pool->signalling--;
        free(now);
        while (!pool->signalling && pool->ended.count > 0) {
                struct task *t = list_head(&pool->ended);
                list_unlink(&pool->ended, t);
                task_free(t);
        }
        return first;
}

MPS_API int mps_pool_close(mps_pool *pool) {
        if (!pool)
                return -EINVAL;
        pool->closed = true;
        return 0;
}

MPS_API int mps_pool_terminate(mps_pool *pool) {
        if (!pool)
                return -EINVAL;
        pool->closed = pool->terminated = true;
        while (pool->pending.count > 0) {
                struct task *t = list_head(&pool->pending);
                list_unlink(&pool->pending, t);
                fail_task(t, -ECANCELED, "the pool was terminated");
        }
        return mps_pool_send_signal(pool, SIGTERM);
}

MPS_API int mps_pool_join(mps_pool *pool, int timeout_ms) {
        if (!pool)
                return -EINVAL;
        if (!pool->closed) {
                mps__client_set_error(pool->client,
                                      "join a pool only after close or terminate");
                return -EINVAL;
        }
        return wait_idle(pool, timeout_ms);
}

MPS_API int mps_pool_free(mps_pool *pool) {
        if (!pool)
                return 0;
        if (pool->running.count > 0 || pool->pending.count > 0 || pool->signalling)
                return -EBUSY;
        free(pool);
        return 0;
}

/* For pool_call.c, which builds on the pool from outside. */
mps_client *mps__pool_client(const mps_pool *pool) {
        return pool->client;
}

int mps__pool_wait_idle(mps_pool *pool) {
        return wait_idle(pool, -1);
}
