/* SPDX-License-Identifier: MIT */
/*
 * server.h: the state of mpforkserver, shared by its modules.
 *
 *   main.c        options and main(): hands a configuration to server.c
 *   server.c      start-up order, signals, the stop request, teardown, and
 *                 what happens between event batches (deferred frees)
 *   loop.c        the epoll registry and the loop (knows no module)
 *   listen.c      the listening socket (stale-socket detection,
 *                 permissions) and accepting connections
 *   connection.c  one connection: set-up, requests in, replies out
 *                 (bounded queue), teardown
 *   request.c     the requests other than spawn: hello, signal, wait,
 *                 list, stats
 *   spawn.c       a spawn request: admit, plan, launch, track
 *   job.c         jobs after launch: exec result, exit, termination
 *                 policy, waiters
 *   retain.c      exit records kept for jobs whose client had gone
 *   closer.c      received descriptors closed without blocking the loop
 *   child.c       what a forked child does before it becomes the job
 *   timer.c       deadlines on one timerfd, kept in a min-heap
 *   log.c         one-line log records on stderr
 *   preload.c     --preload libraries, their init hooks and entry points
 *   preload_arena.c  mps_preload_alloc: their read-only-after-init memory
 *   python_preload.c  python_preload: the embedded-CPython preload library
 *   prefork.c     --prefork: children forked ahead of need, waiting for a job
 *   result.c      a call job's result channel: a sealed memfd it writes, read at the reap
 *   config.c      the configuration file: every setting, its default,
 *                 parsing and validation (config.h)
 *   access.c      who may connect: allowed users and groups, at accept
 *   adopt.c       the adopt request: an embedded server's next connection
 *   service.c     systemd: the socket from sd_listen_fds, sd_notify
 *                 readiness and status, idle exit
 *
 * Calls go one way: server.c calls the others and nothing calls it (main.c
 * aside); loop.c and config.c call no other module, and timer.c only log.c
 * (an expired deadline goes to the function given to timer_open). What is
 * left of a circle is a connection and its request handlers (job.c,
 * request.c): a connection dispatches to them and they reply through it;
 * and job.c and prefork.c, which hand each other children.
 */
#ifndef MPS_SERVER_H
#define MPS_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "../include/mpspawn.h"
#include "../launcher/idmap.h"
#include "../launcher/list.h"
#include "../launcher/wire.h"
#include "peer.h"

struct config;
struct server_options;
struct ucred;

/* What an epoll registration points at: the handler of its events and
 * the object it is about. The loop calls fn and knows nothing else. */
struct watch;
typedef void watch_fn(struct watch *w, uint32_t events);
struct watch {
        watch_fn *fn;
        void *data;
};

struct outmsg {
        struct outmsg *next;
        char *buf;
        size_t len;
        int fd; /* one attached descriptor (owned), or -1 */
};

/* Bounds on what a connection may hold in the server. */
#define CLIENT_RECV_BURST 64           /* requests handled per wake-up */
#define CLIENT_REFUSED_MAX 64          /* refused connections kept open to
                                          deliver the reason; past it, closed
                                          at once */

/* An environment stored by an "env" request (envstore.c): the strings in
 * one block, and the vector a spawn's env_ref gives its job. */
struct client_env {
        char *block;      /* NULL: the slot holds nothing */
        const char **vec; /* NULL-terminated, into block */
        size_t count;
        const char *raw;  /* the env request as it came (into block), */
        size_t rawlen;    /* for a pre-forked child (prefork_hand_over) */
        size_t bytes;     /* block and vec, charged to the user (uid_bytes) */
};

struct client {
        struct server *srv;
        struct watch watch;
        int fd;
        uint64_t serial; /* for log lines */
        uid_t uid;
        gid_t gid;
        pid_t pid;
        struct peer peer;    /* the connected process (peer.c) */
        struct creds *creds; /* set when jobs must drop to the client's */
        struct mps__list jobs; /* jobs that report to this client (job.cnode) */
        unsigned njobs;        /* how many */
        bool refused;     /* told why it may not connect; closed on its next event */
        struct outmsg *out_head, *out_tail;
        size_t out_count;
        size_t out_bytes; /* of the queued replies; also in clients.bytes_by_uid */
        size_t out_peak;  /* the most out_bytes since the queue last emptied */
        bool want_out; /* EPOLLOUT registered */
        bool dead;     /* torn down; freed after the current event batch */
        /* By env id - 1. A spawn copies what it refers to into its child
         * before it returns (the clone execs, a fork copies our memory, a
         * pre-forked child is not used for it), so no job holds on to a
         * slot after its request. */
        struct client_env env[MPS_WIRE_ENV_SLOTS];
        struct client *gnext;
        struct mps__list node; /* in the server's list of live clients */
};

enum job_timer {
        TIMER_NONE,
        TIMER_TIMEOUT, /* deadline: the job's --timeout expires */
        TIMER_KILL,    /* deadline: SIGTERM was sent, SIGKILL is next */
};

/* Someone (not necessarily the job's own client) waiting for its exit. */
struct waiter {
        uint64_t client_serial;
        uint64_t tag;
};

enum job_state {
        JOB_STARTING, /* forked; exec result not known yet */
        JOB_RUNNING,  /* exec'ed; spawned sent */
        JOB_FAILED,   /* exec failed; error sent; waiting to reap */
};

struct job {
        struct server *srv;
        uint64_t id;
        uint64_t tag;
        pid_t pid;
        int pidfd;
        int execpipe; /* read end while JOB_STARTING, else -1 */
        bool execpipe_watched; /* registered in epoll (not for vforked jobs) */
        struct watch pidfd_watch, execpipe_watch;
        enum job_state state;
        struct client *client; /* NULL once the client has gone */
        struct mps__list cnode; /* in client->jobs while client is set */
        uid_t uid; /* the requesting client's, for ownership checks */
        bool uid_counted; /* in jobs.by_uid (job_uid_track) */
        bool daemon;
        bool want_pidfd;
        bool detached; /* its client lets go once it is spawned */
        bool kill_tree; /* signals go to its whole process group */
        bool timed_out;
        enum job_timer timer;
        double kill_after; /* seconds from a timeout's SIGTERM to SIGKILL */
        int timeout_signal; /* sent at the timeout (SIGTERM unless asked) */
        uint64_t timeout_ns; /* 0: none */
        uint64_t request_ns; /* when the spawn request arrived */
        struct waiter *waiters;
        size_t nwaiters;
        char *name;
        char *command; /* argv joined, shortened: for `mpspawn ps` */
        char *path;
        char *cwd; /* as asked, for error messages */
        uint64_t start_ns;
        /* Timer: at most one deadline per job at a time. */
        uint64_t deadline_ns;
        size_t heap_index; /* SIZE_MAX when not armed */
        bool dead; /* reaped; freed after the current event batch */
        struct job *gnext;
        /* Terminal jobs (issue 14): stop reports (job.c) and the keeper
         * that moves the terminal's foreground (keeper.c). */
        bool controlling_terminal;
        bool report_stops;
        int stop_sig;          /* 0 running, else what stopped it */
        int stop_sent;         /* the state last sent to the client */
        struct mps__list snode; /* in jobs.stop_watch while report_stops */
        struct keeper *keeper; /* NULL: none (yet) */
        int keeper_sock;       /* the keeper channel's server end until the
                                  keeper's pidfd arrives, -1 */
        int result_fd; /* a call job's result channel (result.c) until the
                          reap; -1 */
};

/* job.c: the server's record of a terminal job's keeper process (the
 * process itself is keeper.c's). */
struct keeper {
        struct server *srv;
        struct job *job; /* NULL once the job is gone */
        pid_t pid;
        int pidfd;
        int sock; /* commands to the keeper: 'b', 'f' */
        struct watch watch;
        struct mps__list knode; /* in jobs.keepers until reaped */
};

/* The exit of a job whose client had gone, kept for `mpspawn wait ID`. */
struct exit_record {
        struct exit_record *next; /* oldest first */
        uid_t uid;
        uint64_t kept_ns;
        double runtime;
        char *name;
        char *command;
        struct mps__exited exited;
        bool detached; /* a detached job's: it holds off idle exit (service.c) */
        char *result, *failure; /* a call job's (exited points at them), or NULL */
        size_t result_bytes;    /* theirs, counted in retained.result_bytes */
};

#define RETAIN_PER_UID 1024             /* exit records kept per user */
#define RETAIN_MAX 65536                /* and in all: only many users reach it */
#define RETAIN_SECONDS 3600             /* and for at most this long */
/* Bytes of call job results and failure messages kept with them, per
 * user and in all; past either, a record keeps its exit and says its
 * result was not kept. */
#define RETAIN_RESULT_BYTES_PER_UID (8u << 20)
#define RETAIN_RESULT_BYTES_MAX (64u << 20)
#define LATENCY_SAMPLES 1024            /* spawn latencies kept for stats */
#define COMMAND_MAX 200                 /* bytes of a job's command in ps */

struct preload {
        char *path;
        void *handle;
        struct mps_module *module;
        long rss_kib; /* what loading and init added to our RSS */
};

/* An idle pre-forked child, waiting on sock for its one spawn request. */
struct prefork {
        struct prefork *next;
        bool taken; /* handed a job (or discarded): events about it are stale */
        struct server *srv;
        struct watch watch;
        pid_t pid;
        int pidfd;
        int sock;
};

/* timer.c: what an expired deadline is handed to (job_on_deadline). */
typedef void timer_fire_fn(struct job *j);

/* timer.c: the deadlines of jobs, earliest first. */
struct timer_heap {
        int fd; /* a timerfd armed for items[0] */
        struct watch watch;
        timer_fire_fn *fire;
        struct job **items;
        size_t count, cap;
};

/* loop.c */
struct loop_state {
        int epfd;
};

/* listen.c */
struct listen_state {
        int fd;       /* -1 once stopping, and when embedded */
        int spare_fd; /* held open to shed connections when out of fds */
        struct watch watch;
        char *path;   /* unlinked at exit when we created it */
};

/* server.c: signals and the server's life. */
struct life_state {
        int signal_fd;
        struct watch signal_watch;
        bool embedded;       /* serves its host's connections, exits after */
        bool stop_requested; /* by a handler: carried out after the batch */
        bool refill_due;     /* the current wait ends for a pre-fork refill */
        uint64_t start_ns;
        pid_t pid;           /* ours, for welcome and the parent-death check */
        bool stopping;       /* accepting nothing more; daemon jobs ending */
        bool stop_now;       /* second SIGTERM: do not wait for the grace period */
        unsigned grace_ms;   /* SIGTERM -> SIGKILL for daemon jobs */
        struct config *cfg;  /* server.cfg, which SIGHUP updates */
        const struct server_options *opts;
};

/* connection.c: the live connections. */
struct client_state {
        struct mps__list list;    /* client.node */
        size_t count;
        size_t nrefused;          /* among them, ones only told why not */
        uint64_t next_serial;
        struct mps__idmap by_uid; /* uid + 1 -> count (as a pointer) */
        struct mps__idmap by_serial; /* serial -> client (job.c reads it) */
        /* uid + 1 -> bytes queued for all of that user's connections (as a
         * pointer): client_queue_bytes_per_uid. */
        struct mps__idmap bytes_by_uid;
        struct client *dead;      /* torn down this batch; freed after it */
};

/* retain.c: exit records, oldest first, and by job id. */
struct retain_state {
        struct mps__idmap map; /* id -> exit_record */
        struct exit_record *head, *tail;
        struct mps__idmap by_uid; /* uid + 1 -> that user's records (as a
                                     pointer): the per-user share */
        size_t ndetached;         /* records of detached jobs among them */
        /* Bytes of results kept (exit_record.result_bytes), in all and by
         * uid + 1 (as a pointer). */
        size_t result_bytes;
        struct mps__idmap result_bytes_by_uid;
};

/* service.c: what it remembers between event batches. */
struct service_state {
        uint64_t idle_since_ns; /* 0 while not idle */
        bool notify; /* a service manager listens on NOTIFY_SOCKET */
        bool status_sent;
        size_t status_clients, status_jobs; /* as last reported in STATUS= */
};

/* server.c, at start-up: how children are launched; spawn.c and child.c
 * read it. */
struct launch_state {
        bool use_pidfd; /* else SIGCHLD + wait4(-1) and jobs.by_pid */
        /* Signals whose disposition is not the default once start-up is
         * over (SIGPIPE, and whatever a preloaded library set): a child
         * resets these, and only these. */
        sigset_t child_reset;
        /* Exec jobs' clones share our fd table (CLONE_FILES) and the child
         * keeps a private copy of only the fds below the highest it needs
         * (close_range CLOSE_RANGE_UNSHARE, Linux 5.9); pidfds are kept at
         * pidfd_floor and above, out of that copy. Otherwise every clone
         * copied one entry per job the server tracks and the child closed
         * them all: posix_spawn of /bin/true from a process holding 10,000
         * fds takes 0.5 ms more than from one holding 10. */
        bool unshare_fds;
        int pidfd_floor; /* 0: pidfds stay where the kernel put them */
        struct rlimit orig_nofile; /* restored in children */
};

/* server.c, from the configuration: past a quota, a spawn gets EAGAIN and
 * nothing else changes (spawn.c checks them). */
struct quota_state {
        unsigned max_children;        /* jobs alive in the whole server */
        unsigned max_jobs_per_client; /* jobs of one connection */
};

/* job.c (spawn.c registers new jobs through it): every tracked job. */
struct job_table {
        uint64_t next_id;
        struct mps__idmap by_id;  /* id -> job */
        struct mps__idmap by_pid; /* pid -> job, without pidfds */
        /* uid + 1 -> jobs of that user in by_id (as a pointer): the
         * per-uid share of max_children (job_uid_track). */
        struct mps__idmap by_uid;
        size_t ndaemon_alive;     /* daemon jobs not yet reaped */
        struct job *dead;         /* reaped this batch; freed after it */
        /* report_stops jobs, checked at each SIGCHLD (job.c); the head is
         * set up at the first one (sigchld_on: SIGCHLD then reaches the
         * signalfd with pidfds too). */
        struct mps__list stop_watch;
        bool sigchld_on;
        /* Keepers not reaped yet (job.c), for job_release_all; set up at
         * the first. */
        struct mps__list keepers;
};

/* job.c and spawn.c: counters for the stats request. */
struct job_stats {
        uint64_t jobs_started, jobs_failed;
        uint64_t exits_zero, exits_nonzero, exits_signaled, exits_timed_out;
        double latency[LATENCY_SAMPLES]; /* ring of spawn latencies, seconds */
        uint64_t latency_count;
};

/* preload.c */
struct preload_state {
        struct preload *libs;
        size_t count;
};

/* The compiled seccomp filters (policy.c's cache; server.c compiles the
 * administrator's at start-up). */
struct policy_state {
        struct policy_cache *cache;
        struct policy *admin; /* default_seccomp_policy: every job's */
};

/* prefork.c */
struct prefork_pool {
        unsigned target;     /* --prefork N */
        unsigned count;      /* idle ones */
        unsigned backoff_ms; /* after a failed pre-fork; 0: none */
        uint64_t retry_ns;   /* no refill before this */
        struct prefork *idle;
        struct prefork *dead; /* handed over or discarded this batch */
};

/*
 * The server. Each sub-struct is written by the one module named above it.
 * Objects torn down while handling an event batch (jobs.dead, clients.dead,
 * prefork.dead) stay allocated until the batch is done, since a later event
 * of the same batch may still point at them (and sees ->dead); server.c
 * frees them after each batch.
 */
struct server {
        const struct config *cfg;
        struct loop_state loop;
        struct listen_state listen;
        struct life_state life;
        struct client_state clients;
        struct timer_heap timers;
        struct retain_state retained;
        struct service_state svc;
        struct launch_state launch;
        struct quota_state quota;
        struct job_table jobs;
        struct job_stats stats;
        struct preload_state preload;
        struct policy_state policy;
        struct prefork_pool prefork;
};

/* ---- server.c -------------------------------------------------------------------- */

/* What main() hands the server besides the configuration. */
struct server_options {
        const char *const *preload; /* --preload, after the configuration's */
        size_t npreload;
        int embedded_fd; /* --embedded FD, or -1: listen */
        /* --detach: leave the parent (a new session) before anything else,
         * as an embedded server does; how mpspawn starts a per-user one. */
        bool detach;
        /* --ready-fd FD, or -1: the line "1" is written to FD, which is
         * then closed, once the socket is listening; FD closed without it
         * means the start failed. */
        int ready_fd;
        /* SIGHUP: reads the configuration again as main() did (file, then
         * options) into *ret_cfg: 0, or -errno with the reason in err (and
         * *ret_cfg to free either way). NULL: nothing to reload. */
        int (*reload)(const void *data, struct config *ret_cfg, char *err, size_t errlen);
        const void *reload_data;
};

/* Runs the server until it stops; the exit status (0, 1 or 2). SIGHUP
 * updates cfg in place (config_reload_into). */
int server_run(struct config *cfg, const struct server_options *o);

/* --check-config: 0 when default_seccomp_policy (if set) compiles, else
 * -errno with the reason in err. */
int server_check_policy(const struct config *cfg, char *err, size_t errlen);

/* ---- loop.c ---------------------------------------------------------------------- */

/* What the loop asks its caller between waits. */
struct loop_hooks {
        /* How long the next wait may last in ms (-1: until an event). */
        int (*timeout_ms)(void *data);
        /* After each batch of nevents (0: the wait timed out): false ends
         * the loop. */
        bool (*after_batch)(void *data, int nevents);
};

int loop_open(struct server *srv);
void loop_close(struct server *srv);
int loop_add(struct server *srv, int fd, uint32_t events, struct watch *w);
int loop_mod(struct server *srv, int fd, uint32_t events, struct watch *w);
void loop_del(struct server *srv, int fd);
/* Waits and dispatches until after_batch says stop: 0, or -errno of
 * epoll_wait. */
int loop_run(struct server *srv, const struct loop_hooks *hooks, void *data);

/* ---- listen.c -------------------------------------------------------------------- */

/* No socket yet; takes the spare descriptor. 0 or -errno. */
int listen_init(struct server *srv);
/* Takes systemd's socket or opens the configured one, and accepts on it;
 * its name for the log in where. 0, or -errno with the reason in err
 * (-EDESTADDRREQ: no socket was configured). */
int listen_start(struct server *srv, char *where, size_t wherelen, char *err,
                 size_t errlen);
/* Accepts nothing more (the stop): closes and unlinks the socket. */
void listen_stop(struct server *srv);
/* At exit. */
void listen_close(struct server *srv);

/* ---- access.c -------------------------------------------------------------------- */

/* 0 when the peer on fd may connect, else -EACCES or -EPERM with the
 * reason (for the client and the log) in why. */
int access_check(struct server *srv, int fd, const struct ucred *cred, char *why,
                 size_t whylen);

/* ---- service.c ------------------------------------------------------------------- */

int service_listen_fd(int *ret_fd, char *err, size_t errlen);
void service_ready(struct server *srv, const char *where);
void service_after_batch(struct server *srv);
int service_timeout_ms(const struct server *srv);
bool service_idle_expired(const struct server *srv);
void service_stopping(struct server *srv);

/* ---- connection.c ---------------------------------------------------------------- */

int client_new(struct server *srv, int fd);
void client_release_all(struct server *srv);
void client_on_event(struct client *c, uint32_t events);
void client_free(struct client *c);
/* Queues or sends one message, attaching fd if >= 0 (dup'ed when queued).
 * A client that cannot take it is dropped. */
void client_send(struct client *c, cJSON *json, int fd);
/* The same for the hot replies, formatted without a tree (wire.h). */
void client_send_spawned(struct client *c, const struct mps__spawned *m, int fd);
void client_send_exited(struct client *c, const struct mps__exited *m);
void client_send_error(struct client *c, uint64_t tag, int err,
                       const char *stage, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));
/* Charges delta bytes (negative: gives them back) of memory held for c to
 * its user, within client_queue_bytes_per_uid with its queued replies;
 * -ENOBUFS past it, -ENOMEM. */
int client_charge(struct client *c, ssize_t delta);

/* ---- envstore.c: environments stored on a connection (env, env_ref) -------------- */

void request_env(struct client *c, const struct mps__msg *msg);
/* The environment stored under id, NULL when none. */
const struct client_env *client_env_get(const struct client *c, uint64_t id);
/* Frees every stored environment and gives its bytes back. */
void client_env_release(struct client *c);

/* ---- request.c: the requests other than spawn ------------------------------------ */

void request_hello(struct client *c, const struct mps__msg *msg);
void request_signal(struct client *c, const struct mps__msg *msg);
void request_wait(struct client *c, const struct mps__msg *msg);
void request_list(struct client *c, const struct mps__msg *msg);
void request_stats(struct client *c, const struct mps__msg *msg);
void request_foreground(struct client *c, const struct mps__msg *msg);

/* ---- adopt.c: a connection handed over to an embedded server --------------------- */

/* Whether this server announces and takes adopt: an embedded one does. */
bool adopt_offered(const struct server *srv);
/* Takes the message's one descriptor when it serves it as a connection. */
void request_adopt(struct client *c, struct mps__msg *msg);

/* ---- retain.c: exits nobody was connected to hear, kept for a later wait --------- */

void retain_add(struct server *srv, const struct job *j, const struct mps__exited *e);
/* Takes the record of job id if uid may see it (the caller frees it). */
struct exit_record *retain_take(struct server *srv, uint64_t id, uid_t uid);
void retain_free(struct exit_record *rec);
void retain_expire(struct server *srv); /* drops records past their age */
void retain_release_all(struct server *srv);

/* ---- job.c ----------------------------------------------------------------------- */

void job_spawn(struct client *c, struct mps__msg *msg);
void job_on_execpipe(struct job *j);
void job_on_exit(struct job *j);
void job_reap_any(struct server *srv);
int job_kill(struct job *j, int sig);
/* Signals the job's whole process group (its leader, if it left it). */
int job_kill_group(struct job *j, int sig);
/* pidfd moved to srv->pidfd_floor or above when it can be; negative stays. */
int job_pidfd_high(const struct server *srv, int pidfd);
void job_on_deadline(struct job *j);
void job_client_gone(struct job *j);
void job_stop_daemon(struct job *j);
/* A job record for request sp of user uid, not yet tracked; NULL: ENOMEM. */
struct job *job_new(struct server *srv, const struct mps__spawn *sp, uid_t uid,
                    uint64_t request_ns);
/* Counts tracked job j against its user's share of max_children (spawn.c,
 * once j is in jobs.by_id; forgetting j uncounts it). 0 or -ENOMEM. */
int job_uid_track(struct job *j);
/* Jobs of user uid alive in the server. */
unsigned job_uid_count(const struct server *srv, uid_t uid);
/* Puts j on c's list of jobs that report to it. */
void job_link_client(struct job *j, struct client *c);
void job_free(struct job *j);
void job_release_all(struct server *srv);
/* A report_stops job, tracked: watched for stops from now on. */
void job_watch_stops(struct job *j);
/* Sends the stop reports held back while c's queue was not empty
 * (connection.c, once it drained). */
void job_flush_stop_reports(struct client *c);

/* job.c: terminal keepers */
/* Takes the keeper's pidfd from j->keeper_sock once the child has passed
 * exec or failed (job.c); nothing when none came. */
void keeper_adopt(struct job *j);
/* The job has been reaped: the keeper ends on its own (it watches the
 * job's pidfd and its channel) and is reaped when it does. */
void keeper_job_gone(struct job *j);
/* Asks the keeper to make the job foreground (true) or background. 0, or
 * -ENOTSUP (no keeper), -EAGAIN (channel full), -errno. */
int keeper_command(struct job *j, bool foreground);
/* keeper.c: in the child, once it has its controlling terminal: starts the keeper
 * (and its anchor in the job's group) and hands its pidfd over sock,
 * which it closes.
 * 0 or -errno. */
int keeper_start(int sock);

/* What a call job runs, resolved by the server before it forks. */
struct child_call {
        mps_entry_fn fn;
        const char *entry;
        const char *args_json;
};

/* A client's credentials, applied to its jobs when the server is root. */
struct creds {
        uid_t uid;
        gid_t gid;
        gid_t *groups; /* the peer's supplementary groups (SO_PEERGROUPS) */
        size_t ngroups;
};

struct policy;

/* What the server decided for a child before forking it. */
struct child_plan {
        const struct child_call *call; /* NULL: exec */
        const struct policy *admin;    /* the administrator's filter, first */
        const struct policy *policy;   /* the client's, on top; NULL: none */
        const struct creds *creds;     /* NULL: keep the server's */
        /* The client's context, read for this spawn (peer.c); NULL: the
         * same as the server's, nothing to apply. */
        const struct peer_context *ctx;
        pid_t server_pid;              /* for the parent-death check */
        /* > 0: the fd table is shared with the server (CLONE_FILES); the
         * child's first act is to keep a copy of the fds below this only. */
        unsigned unshare_fds_below;
        /* The child's mask once it has reset the server's dispositions,
         * until it unblocks everything for the job: the server's own, as it
         * was before every signal was blocked across the fork. */
        sigset_t setup_mask;
        /* A controlling-terminal job: the child's end of the keeper
         * channel (keeper.c); -1: none. */
        int keeper_sock;
        /* A call job's result channel (result.c); -1: none (exec jobs). */
        int result_fd;
};

/* ---- spawn.c: the spawn request, from decoding to a tracked child -------------- */

/* What the spawns of one spawn_batch request share: the client's context,
 * read from the kernel once for the whole request, as for a single spawn
 * (spawn_batch.c). */
struct spawn_shared {
        bool have_ctx;
        struct peer_context ctx;
};
/* A spawn request; shared NULL. Or one job of a batch: msg is then a view
 * of it (its JSON, its slice of the batch's descriptors, no datagram of
 * its own), shared its batch's. */
void spawn_request(struct client *c, struct mps__msg *msg, struct spawn_shared *shared);
/* The spawn_batch request; returns how many jobs it held (at least 1), for
 * the receive burst's count. */
size_t spawn_batch_request(struct client *c, struct mps__msg *msg);

/* A child_plan and what it points at. */
struct spawn_plan {
        struct child_plan plan;
        struct child_call call; /* plan.call points here for a call job */
        char *args_text;        /* the call's arguments as JSON text, or NULL */
};

/* The plan for request sp, as both the server and a pre-forked child make
 * it: a call job's entry point and arguments, the administrator's and the
 * request's seccomp policies (from the cache), creds (NULL: keep ours),
 * the client's context ctx (NULL: ours).
 * 0, or -errno with *failed_stage set ("call": no such entry point;
 * "request": out of memory; "policy": err says why). Either way p is
 * released with spawn_plan_done, and must not move: p->plan points into it. */
int spawn_plan_build(struct server *srv, const struct mps__spawn *sp,
                     const struct creds *creds, const struct peer_context *ctx,
                     pid_t server_pid,
                     struct spawn_plan *p, const char **failed_stage, char *err,
                     size_t errlen);
void spawn_plan_done(struct spawn_plan *p);

/* Every signal blocked (the old mask saved), and the old mask back: around
 * each fork or clone of a child, as posix_spawn does. */
void spawn_block_signals(sigset_t *ret_old);
void spawn_restore_signals(const sigset_t *old);

/* ---- closer.c: received descriptors let go of without blocking ------------------ */

/* Routes every descriptor the transport releases through closer_release,
 * in this process only (server.c, at start-up). */
void closer_install(void);
/* Closes fd, or hands it to the closer process when its close could block. */
void closer_release(int fd);
/* Receives and discards up to max datagrams queued on sock, releasing the
 * descriptors they carry (before a connection is closed: the kernel would
 * otherwise release them in close, here). */
void closer_drain(int sock, unsigned max);

/* ---- child.c, prefork.c, preload.c ---------------------------------------------- */

/* child.c: runs in the forked child and never returns. */
_Noreturn void child_run(const struct server *srv, const struct mps__spawn *spec,
                         const int *fds, size_t nfds, int errpipe,
                         const struct child_plan *plan);

/* child.c */
void close_range_except(unsigned lo, unsigned hi, int keep);

/* prefork.c */
/* Forks idle children until there are prefork.target of them; at most
 * `budget` forks (the loop calls it between event batches). */
void prefork_refill(struct server *srv, unsigned budget);
/* -1: nothing to refill; 0: a refill is due; else ms until one is. */
int prefork_wait_ms(const struct server *srv);
/* Takes an idle child for a job, or NULL. The caller owns it. */
struct prefork *prefork_take(struct server *srv);
/* Hands call job spawn message msg to p, with errpipe and resultfd (its
 * result channel) as two extra first fds, after the env request that
 * stored env when the spawn names one (env_ref); 0 or -errno (then p is
 * still the caller's to dispose of). */
int prefork_hand_over(struct prefork *p, const struct mps__msg *msg,
                      const struct client_env *env, int errpipe, int resultfd);
void prefork_discard(struct prefork *p);
/* After hand-over: frees p once the current event batch is done. */
void prefork_retire(struct prefork *p);
void prefork_on_exit(struct prefork *p);
void prefork_release_all(struct server *srv);

/* result.c: a call job's result channel. */
/* A sealed memfd of a fixed size, for one call job: fd or -errno. */
int result_channel_new(void);
/* In a call job's child: the channel set_result and set_error write to. */
void result_child_attach(int fd);
int result_child_set_result(const mps_call_context *ctx, const char *json);
int result_child_set_error(const mps_call_context *ctx, const char *message);
/* After the reap: the result (checked JSON text) and the failure message
 * the job left, malloc()ed, each NULL when none; a channel the job damaged
 * gives a failure saying so. -ENOMEM only. */
int result_channel_read(int fd, char **ret_result, char **ret_failure);

/* preload.c */
int preload_load(struct server *srv, const char *path, char *err, size_t errlen);
const struct mps_entry *preload_find(const struct server *srv, const char *name);
void preload_release_all(struct server *srv);

/* preload_arena.c: mps_preload_alloc's chunks. arena_open lets it hand
 * out memory (one library's init); arena_seal ends that, makes all it handed
 * out read-only and sealed, and says how much: 0 or -errno (then some of it
 * may still be writable, and the server must not go on). */
struct arena_usage {
        size_t requested, mapped, chunks;
};
void arena_open(void);
int arena_seal(struct arena_usage *ret_usage);

/* python_preload.c: with cfg->python, sets $MPSPAWN_PYTHON_PRELOAD to the
 * comma-joined python_preload modules and loads mpspawn_python.so (beside
 * the running binary, else the installed one) through preload_load. 0 (also
 * when Python is not asked for), or -errno with the reason in err. */
int python_preload_load(struct server *srv, char *err, size_t errlen);

/* What the child writes to the exec pipe before it gives up. */
struct child_failure {
        int stage; /* enum child_stage */
        int err;
};
enum child_stage {
        CHILD_STAGE_FDS = 1,
        CHILD_STAGE_SESSION,
        CHILD_STAGE_CHDIR,
        CHILD_STAGE_EXEC,
        CHILD_STAGE_RLIMIT,
        CHILD_STAGE_CALL,
        CHILD_STAGE_CREDENTIALS,
        CHILD_STAGE_NICE,
        CHILD_STAGE_SECCOMP,
        CHILD_STAGE_CONTEXT,
        CHILD_STAGE_TERMINAL,
};
const char *child_stage_name(int stage);

/* ---- timer.c --------------------------------------------------------------------- */

/* Creates the timerfd and its watch (the caller adds it to the loop). */
int timer_open(struct server *srv, timer_fire_fn *fire);
void timer_close(struct server *srv);
int timer_arm(struct server *srv, struct job *j, uint64_t deadline_ns);
void timer_disarm(struct server *srv, struct job *j);
/* Fires every deadline that has passed, earliest first. */
void timer_on_expiry(struct server *srv);

/* ---- log.c ----------------------------------------------------------------------- */
enum log_level { LOG_LEVEL_ERR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };
extern enum log_level log_max_level;
void log_msg(enum log_level level, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
#define log_err(...) log_msg(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif /* MPS_SERVER_H */
