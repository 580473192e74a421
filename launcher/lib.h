/* SPDX-License-Identifier: MIT */
/*
 * lib.h: libmpspawn's internal structures, shared by client.c (connection
 * and dispatch), spec.c (job specs), process.c (process handles), pool.c
 * and job_requests.c (requests about jobs by id).
 */
#ifndef MPS_LIB_H
#define MPS_LIB_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../include/mpspawn.h"
#include "idmap.h"
#include "list.h"
#include "wire.h"

#define MPS__ERROR_MAX 512

/* An environment stored on the server under id slot + 1 (envcache.c). */
struct mps__envslot {
        char *key;      /* its strings, NUL-terminated; NULL: none */
        size_t keylen;
        uint64_t hash;
        uint64_t tag;   /* of the start whose env request stores it */
        uint64_t used;  /* the cache's clock at its last use */
        bool stored;    /* the env request has been sent */
        unsigned users; /* starts that refer to it and have not sent yet */
};

struct mps__envcache {
        struct mps__envslot slot[MPS_WIRE_ENV_SLOTS];
        uint64_t clock;
        uint64_t seen_hash; /* the last environment sent inline */
        size_t seen_len;
};

/*
 * A client is shared by any number of threads (leader/follower, no thread
 * of ours): lock guards every field below that changes after open, and the
 * state of every process, request and pool made from the client. At most
 * one thread at a time is the reader (reading, reader): it polls the
 * socket without the lock, then receives and processes messages in order
 * under it, and runs the callbacks that processing queued (deferred) with
 * the lock released but the role still held. Every other thread that waits
 * sleeps on a waiter of its own (waiters), woken when its target changed or
 * when the role is free for it to take over. fd, server_*, features and
 * server_version are set at open and only read afterwards.
 */
struct mps_client {
        pthread_mutex_t lock;
        int fd;
        unsigned refs;  /* the user's one, one per process handle, and one
                           per call that may wait (so close cannot free
                           what a waiter still uses) */
        bool closed;    /* mps_client_close() was called */
        bool broken;    /* the connection is gone */
        bool forked;    /* a copy in a forked child: never talks */
        pid_t parent_pid; /* (forked) the process the connection is of */
        bool reading;   /* some thread holds the reading role... */
        pthread_t reader; /* ...this one */
        struct mps__list waiters;  /* struct mps__waiter */
        struct mps__list deferred; /* processes whose on_change is due */
        struct mps__list registry_node; /* in the open clients (atfork) */
        pid_t server_pid;
        bool server_pidfd; /* the server sends pidfds */
        /* Exits may be read from the server's pidfds (not forced off by
         * MPSPAWN_NO_PIDFD_EXIT at open; the kernel may still not tell,
         * see pidfd_exit.h). */
        bool pidfd_exit;
        unsigned long pidfd_exits; /* ends taken so (a count for tests) */
        unsigned long batches; /* spawn_batch requests sent (a count for tests) */
        unsigned features; /* MPS_FEATURE_* the server announced */
        char server_version[32];
        uint64_t next_tag;
        struct mps__idmap inflight; /* tag -> mps_process, until its end */
        /* Synchronous requests in progress (signal, wait, list, stats), by
         * tag: struct mps__request, each filled by the reader. */
        struct mps__idmap requests;
        /* The last error no thread's call claimed ("forkserver: ..."), and
         * why the connection went; stamps order errors (see
         * mps_client_error). */
        char async_error[MPS__ERROR_MAX];
        uint64_t async_stamp;
        char broken_reason[MPS__ERROR_MAX];
        /* Waits that timed out stay registered in the server; their late
         * answers are kept here (job id -> exit info) for the next wait. */
        struct mps__idmap stale_waits; /* tag -> job id (as a pointer) */
        struct mps__idmap late_exits;  /* job id -> its "exited" reply (cJSON) */
        struct mps__envcache envcache; /* what the server stores for us */
};

/* One synchronous request awaiting its reply (on the requester's stack). */
struct mps__request {
        uint64_t tag;
        bool done;
        enum mps__op op;
        cJSON *reply; /* owned until taken */
};

struct env_edit {
        char *name;
        char *value; /* NULL: unset */
};

struct fd_pair {
        int child_fd;
        int caller_fd;
};

/*
 * A job spec is the wire-level spawn description itself, so that a job
 * option exists once: its setter fills spawn, the codec carries it, and
 * nothing between needs to know it. The spec owns every string, argv and
 * the call_args tree that spawn points to (the const is the server's view
 * of a decoded message). What belongs to one start rather than to the spec
 * is left empty here and filled in by mps__process_send_start: the tag,
 * envp (the caller's environment, edited), the fd map (the caller's fds),
 * want_pidfd, and cwd made absolute against the caller's directory.
 */
struct mps_spec {
        struct mps__spawn spawn;
        bool env_clear;
        struct env_edit *edits;
        size_t nedits;
        struct fd_pair *fds;
        size_t nfds;
};

enum proc_state {
        PROC_NEW,
        PROC_STARTING, /* spawn sent, no answer yet */
        PROC_RUNNING,
        /* Reaped: the exit code (and core dump bit) came from the pidfd,
         * the server's record is on its way (see process.c). */
        PROC_EXITED,
        PROC_ENDED,  /* exit record received */
        PROC_FAILED, /* the start failed; start_error says why */
        PROC_LOST,   /* the connection went before the end was seen */
        PROC_DETACHED, /* started detached: its end is the server's to keep */
};

struct mps_process {
        mps_client *client;
        mps_spec *spec;
        enum proc_state state;
        uint64_t tag;
        uint64_t id;
        pid_t pid;
        int pidfd;
        /* The pidfd is the server's and may give the exit (cleared when
         * the kernel could not tell for it). */
        bool pidfd_exit;
        int start_error; /* positive errno */
        char start_stage[16]; /* where the start failed, from the server */
        /* Why, for the starting thread (the reader that received the
         * failure may be another). */
        char start_message[MPS__ERROR_MAX];
        mps_exit_info info;
        /* The signal that stopped the job, 0 while it runs: from the
         * server's stopped/continued reports (report_stops jobs). */
        int stop_signal;
        /* Called by the reader, without the lock, after the process left
         * STARTING or RUNNING (used by the Pool); queued in the client's
         * deferred list (deferred_node) until then. */
        void (*on_change)(mps_process *proc, void *data);
        void *on_change_data;
        struct mps__list deferred_node;
        /* A call job's result (JSON text) and failure message, malloc()ed,
         * from its exit record; NULL when none. */
        char *result;
        char *result_error;
};

/* client.c */
/* The calling thread's message for c (thread-local, tagged with c). */
void mps__client_set_error(mps_client *c, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* Copies the calling thread's last message (whichever client). */
void mps__client_copy_error(char *buf, size_t len);
void mps__client_lock(mps_client *c);
void mps__client_unlock(mps_client *c);
/* With the lock held: -ENOTCONN (and the message) for a client that is a
 * forked child's copy, else 0. */
int mps__client_check_forked(mps_client *c);
/* With the lock held: takes a reference. */
void mps__client_ref_locked(mps_client *c);
/* Drops a reference and the lock; the last reference frees c. */
void mps__client_unlock_unref(mps_client *c);
/* Takes the lock and drops a reference. */
void mps__client_unref(mps_client *c);
/*
 * With the lock held: waits until done(arg) holds (0), deadline_ns passes
 * (-ETIMEDOUT; 0 = never), or the connection is gone (-ENOTCONN, message
 * set). Reads as the reader when the role is free (or already the calling
 * thread's), else sleeps on a waiter for target, which the reader wakes
 * when target changed (mps__client_wake). Returns with the lock held.
 */
int mps__client_wait_until(mps_client *c, bool (*done)(void *arg), void *arg,
                           const void *target, uint64_t deadline_ns);
/* The same for a wait on process p (target and arg): the reader polls
 * p's pidfd too while p's exit may be read from it (mps__process_exit_pidfd),
 * as it does for every process another thread waits on this way. */
int mps__client_wait_process(mps_client *c, bool (*done)(void *arg), mps_process *p,
                             uint64_t deadline_ns);
/* With the lock held: how many ends were read from pidfds (for tests). */
unsigned long mps__client_pidfd_exits(const mps_client *c);
/* How many spawn_batch requests this client has sent (for tests). */
unsigned long mps__client_batches(mps_client *c);
/* With the lock held: wakes the waiters of target (after its change). */
void mps__client_wake(mps_client *c, const void *target);
/* With the lock held: queues p's on_change for the reader to run. */
void mps__client_defer(mps_client *c, mps_process *p);
/* A deadline timeout_ms from now for mps__client_wait_until (0 when
 * timeout_ms < 0: none). */
uint64_t mps__deadline(int timeout_ms);
/* Sends a message, waiting for room when the socket is full. */
int mps__client_send(mps_client *c, const cJSON *json, const int *fds,
                     size_t nfds);
/* The same for a message already encoded (up to MPS_WIRE_MSG_MAX bytes). */
int mps__client_send_raw(mps_client *c, const char *buf, size_t len, const int *fds,
                         size_t nfds);
/* Sends a request carrying a fresh tag (set into json as "tag") and waits
 * for the reply with that tag, processing everything else meanwhile. On
 * success *ret_reply (owned by the caller) and *ret_op hold the reply; an
 * error reply becomes its negative errno with the message set. A wait
 * that times out with stale_id (a job id) nonzero stays registered in the
 * server, and its answer is kept for the next wait of that job. Takes the
 * lock itself. */
int mps__client_request(mps_client *c, cJSON *json, int timeout_ms, uint64_t stale_id,
                        cJSON **ret_reply, enum mps__op *ret_op);
/* The same, with the lock held, for a request already sent with tag. */
int mps__client_await_locked(mps_client *c, uint64_t tag, int timeout_ms, uint64_t stale_id,
                             cJSON **ret_reply, enum mps__op *ret_op);
/* With the lock held: what mps_client_dispatch does (nothing while another
 * thread reads). */
int mps__client_drain_locked(mps_client *c);
/* Runs the queued change hooks now if no other thread reads (that reader
 * runs them otherwise). Takes the lock itself. */
void mps__client_run_deferred(mps_client *c);
/* The forkserver binary the embedded default starts. */
int mps__forkserver_path(char *buf, size_t len);
/* The per-user server's directory: $XDG_RUNTIME_DIR, or else the private
 * one, ${MPSPAWN_TMPDIR:-/tmp}/mpspawn-EUID (*ret_private true then). 0 or
 * -ENAMETOOLONG. */
int mps__user_dir(char *buf, size_t len, bool *ret_private);
/* Whether dir is fit to hold the user's socket: a real directory (not a
 * symlink) owned by the effective user, without group or other access.
 * With create, a missing one is made 0700 first. 0, or -errno with the
 * reason in msg. */
int mps__user_dir_check(const char *dir, bool create, char *msg, size_t msglen);

/* envcache.c */
/* Before a start's spawn is encoded: when the server stores environments,
 * points m at a stored one (env_ref) holding exactly m's, sending the env
 * request first when it is new, and sets *ret_slot (else -1, and m goes
 * with its environment inline). Takes the lock itself. 0 or -errno (the
 * send failed). */
int mps__envcache_attach(mps_client *c, struct mps__spawn *m, int *ret_slot);
/* After the spawn was sent (or not): lets go of the slot. */
void mps__envcache_detach(mps_client *c, int slot);
/* With the lock held, for an error reply: one at stage "env" means the
 * server holds nothing for the env request of that tag. */
void mps__envcache_on_error(mps_client *c, uint64_t tag, const char *stage);
/* With c unused by any thread: frees the cache. */
void mps__envcache_free(mps_client *c);

/* spec.c */
/* A deep copy of src, independent of it; 0 or -ENOMEM. */
int mps__spec_copy(const mps_spec *src, mps_spec **ret);

/* Builds the job's environment: a malloc()ed NULL-terminated vector of
 * malloc()ed strings; free with mps__strv_free. */
int mps__spec_build_env(const mps_spec *spec, char ***ret_envp, size_t *ret_n);
void mps__strv_free(char **v);

/* process.c */
/* The public exit record of a decoded "exited" message. */
mps_exit_info mps__exit_info_of(const struct mps__exited *e);
/* Sends the spawn request without waiting for the answer. */
int mps__process_send_start(mps_process *p);
/* Starts procs[0..n-1], new processes of one client, as that many
 * mps__process_send_start calls would (results[i] is each one's), but in
 * spawn_batch requests of up to MPS_WIRE_BATCH_MAX jobs where the server
 * takes them: a start the request of which needs a memfd or a bundle goes
 * alone. Once a start is sent, procs[i] is never touched again here (its
 * job may have ended and its handle be gone). */
/* Between these, mps_pool_apply_async only queues, even with a worker
 * free; release starts what it can, together (in batches), and leaves the
 * error callbacks of starts that failed at once to the reader. For a
 * caller that queues many tasks in a row (mps_pool_map, mpspawn -j). */
void mps__pool_hold(mps_pool *pool);
void mps__pool_release(mps_pool *pool);
void mps__process_send_start_batch(mps_process *const *procs, size_t n, int *results);
/* With the lock held, as the reader: one message about a process. */
void mps__process_on_msg(mps_client *c, struct mps__msg *msg);
/* With the lock held: the pidfd to poll (for POLLHUP, with no events)
 * until p is reaped, while its exit may be read from it; else -1. */
int mps__process_exit_pidfd(const mps_process *p);
/* With the lock held: ends p from its pidfd if it has been reaped (known
 * so already: reaped) and the kernel gives the status (RUNNING -> EXITED,
 * its waiters woken); whether it did. */
bool mps__process_take_pidfd_exit(mps_process *p, bool reaped);
/* With the lock held: the connection went before p's end was seen. */
void mps__process_lost(mps_process *p);
/* With the lock held: frees a process that is not in flight. */
void mps__process_release_locked(mps_process *p);

/* pool.c, for pool_call.c: the pool's client, and a wait until *left (a
 * count the tasks' callbacks decrement) is 0, as mps_pool_map waits for
 * its own tasks only (0 or -errno). */
mps_client *mps__pool_client(const mps_pool *pool);
int mps__pool_wait_tasks(mps_pool *pool, _Atomic size_t *left);

#endif /* MPS_LIB_H */
