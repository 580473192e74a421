/* SPDX-License-Identifier: MIT */
/*
 * lib.h: libmpspawn's internal structures, shared by client.c (connection
 * and dispatch), spec.c (job specs), process.c (process handles), pool.c
 * and job_requests.c (requests about jobs by id).
 */
#ifndef MPS_LIB_H
#define MPS_LIB_H

#include <stdbool.h>
#include <stdint.h>

#include "../include/mpspawn.h"
#include "idmap.h"
#include "wire.h"

struct mps_client {
        int fd;
        unsigned refs;  /* the user's one, plus one per process handle */
        bool closed;    /* mps_client_close() was called */
        bool broken;    /* the connection is gone */
        pid_t server_pid;
        bool server_pidfd; /* the server sends pidfds */
        unsigned features; /* MPS_FEATURE_* the server announced */
        char server_version[32];
        uint64_t next_tag;
        struct mps__idmap inflight; /* tag -> mps_process, until its end */
        /* One synchronous request at a time (signal, wait, list, stats):
         * its tag, and the reply once it came (owned until taken). */
        uint64_t req_tag;
        uint64_t last_req_tag; /* the tag the last request went out with */
        bool req_done;
        enum mps__op req_op;
        cJSON *req_reply;
        char error[512];
        /* Waits that timed out stay registered in the server; their late
         * answers are kept here (job id -> exit info) for the next wait. */
        struct mps__idmap stale_waits; /* tag -> job id (as a pointer) */
        struct mps__idmap late_exits;  /* job id -> malloc()ed mps_exit_info */
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
        int start_error; /* positive errno */
        char start_stage[16]; /* where the start failed, from the server */
        mps_exit_info info;
        /* The signal that stopped the job, 0 while it runs: from the
         * server's stopped/continued reports (report_stops jobs). */
        int stop_signal;
        /* Called from dispatch when the process leaves STARTING or RUNNING
         * (used by the Pool). */
        void (*on_change)(mps_process *proc, void *data);
        void *on_change_data;
        /* A call job's result (JSON text) and failure message, malloc()ed,
         * from its exit record; NULL when none. */
        char *result;
        char *result_error;
};

/* client.c */
void mps__client_set_error(mps_client *c, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
void mps__client_unref(mps_client *c);
/* Sends a message, waiting for room when the socket is full. */
int mps__client_send(mps_client *c, const cJSON *json, const int *fds,
                     size_t nfds);
/* The same for a message already encoded (up to MPS_WIRE_MSG_MAX bytes). */
int mps__client_send_raw(mps_client *c, const char *buf, size_t len, const int *fds,
                         size_t nfds);
/* Waits until the socket is readable (or timeout_ms passes, -1: forever),
 * then dispatches. Returns >0 handled, 0 on timeout, -errno. */
int mps__client_wait(mps_client *c, int timeout_ms);
/* Sends a request carrying a fresh tag (set into json as "tag") and waits
 * for the reply with that tag, processing everything else meanwhile. On
 * success *ret_reply (owned by the caller) and *ret_op hold the reply; an
 * error reply becomes its negative errno with the message set. */
int mps__client_request(mps_client *c, cJSON *json, int timeout_ms,
                        cJSON **ret_reply, enum mps__op *ret_op);
/* Waits for the reply to a request already sent with tag. */
int mps__client_await(mps_client *c, uint64_t tag, int timeout_ms,
                      cJSON **ret_reply, enum mps__op *ret_op);
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
void mps__process_on_msg(mps_client *c, struct mps__msg *msg);
void mps__process_lost(mps_process *p);

/* pool.c, for pool_call.c: the pool's client, and a wait until no task of
 * the pool is pending or running (0 or -errno). */
mps_client *mps__pool_client(const mps_pool *pool);
int mps__pool_wait_idle(mps_pool *pool);

#endif /* MPS_LIB_H */
