/* SPDX-License-Identifier: MIT */
/*
 * wire.h: the mpspawn wire protocol, encoded and decoded in one place for
 * both the server and the client library: its transport (transport.c) and
 * its messages (wire.c). docs/protocol.md describes it for people writing
 * other clients.
 *
 * A message is one AF_UNIX SOCK_SEQPACKET datagram holding one JSON object,
 * with up to MPS_WIRE_FDS_MAX descriptors attached as SCM_RIGHTS. Decoded
 * messages point into the cJSON tree they came from: keep the tree alive
 * while the struct is used.
 */
#ifndef MPS_WIRE_H
#define MPS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#define MPS_PROTOCOL_VERSION 1

/* Bounds on everything a message may carry. */
#define MPS_WIRE_MSG_MAX 65536   /* bytes of JSON in one message */
#define MPS_WIRE_FDS_MAX 64      /* descriptors attached to one message */
/* argv and env bound the server's memory, not what a job may be given:
 * the kernel's own limits (ARG_MAX, at most 6 MiB of strings and pointers,
 * so fewer than 2^20 entries; MAX_ARG_STRLEN for one string) are below
 * them, and the client checks those (mps__wire_arg_size). */
#define MPS_WIRE_SPAWN_ARGV_MAX (1 << 20) /* argv entries */
#define MPS_WIRE_ENV_MAX (1 << 20)  /* environment entries */
#define MPS_WIRE_ARG_STRLEN_MAX 131072 /* one argv or env string (MAX_ARG_STRLEN) */
#define MPS_WIRE_STR_MAX 16384   /* any other string */
/* The words of one batch line (cmdline.c), whose 64 KiB bound it shares. */
#define MPS_WIRE_ARGV_MAX 4096
#define MPS_WIRE_NAME_MAX 256    /* job name */
#define MPS_WIRE_TARGET_FD_MAX 1023 /* highest fd number a job may ask for */
/* A spec too big for one message travels as a sealed memfd of at most this
 * many bytes of JSON (spec_memfd): the kernel's largest argument area
 * (6 MiB) with room for JSON's escapes. The server holds one at a time,
 * and frees it after the spawn; its parsed tree can take up to about 32
 * times its size (a cJSON node per "" of 3 bytes), so this bounds the
 * server's memory for it at some 500 MiB in the worst case. */
#define MPS_WIRE_SPEC_MAX (16u << 20)
/* Descriptors one spawn may carry in all, its message's and its fd bundle's
 * together: one per fd a job can be given, plus the working directory. */
#define MPS_WIRE_SPAWN_FDS_MAX (MPS_WIRE_TARGET_FD_MAX + 2)
/* Entries in a spawn's fd map: one per target. */
#define MPS_WIRE_FDMAP_MAX (MPS_WIRE_TARGET_FD_MAX + 1)
#define MPS_WIRE_RLIMITS_MAX 16  /* rlimit entries in a spawn */
#define MPS_WIRE_SECONDS_MAX 1e7 /* any duration (timeout, kill_after) */
#define MPS_WIRE_KILL_AFTER_DEFAULT 5.0
/* Environments one connection may have stored at once ("env" requests,
 * ids 1..this), each one datagram of at most MPS_WIRE_MSG_MAX bytes. */
#define MPS_WIRE_ENV_SLOTS 4

enum mps__op {
        MPS_OP_UNKNOWN = 0,
        /* client -> server */
        MPS_OP_HELLO,
        MPS_OP_SPAWN,
        MPS_OP_SIGNAL,
        MPS_OP_WAIT,
        MPS_OP_LIST,
        MPS_OP_STATS,
        MPS_OP_FOREGROUND, /* a terminal job's foreground (terminal feature) */
        MPS_OP_ADOPT,      /* serve a connection handed over (adopt feature) */
        MPS_OP_ENV,        /* store an environment on the connection (env_ref) */
        MPS_OP_SPAWN_BATCH, /* several spawns in one message (spawn_batch) */
        /* server -> client */
        MPS_OP_WELCOME,
        MPS_OP_SPAWNED,
        MPS_OP_EXITED,
        MPS_OP_SIGNALED,
        MPS_OP_ERROR,
        MPS_OP_JOBS,
        MPS_OP_SERVER_STATS,
        MPS_OP_STOPPED,   /* a report_stops job stopped (terminal feature) */
        MPS_OP_CONTINUED, /* and continued */
        MPS_OP_ADOPTED,   /* the connection handed over is served */
};

const char *mps__op_name(enum mps__op op);
/* The op a message names; MPS_OP_UNKNOWN for any other name. */
enum mps__op mps__op_from_name(const char *name);

/* One decoded message of any kind: the op, its tree and its descriptors. */
struct mps__msg {
        enum mps__op op;
        uint64_t tag; /* the request tag, 0 when absent or invalid */
        uint64_t received_ns; /* set by the server when it takes the message */
        /* The datagram as received; valid until the next mps__wire_recv on
         * this thread (the server forwards it to a pre-forked child). */
        const char *raw;
        size_t rawlen;
        cJSON *json;
        int fds[MPS_WIRE_FDS_MAX];
        size_t nfds;
};

/* ---- transport (transport.c): datagrams and their descriptors --------- */

/* Frees the tree and closes every descriptor still held; fields a caller
 * has taken must be set to -1 first. Keeps errno. */
void mps__msg_release(struct mps__msg *msg);
/* How received descriptors are let go of: close(2) unless a program sets
 * its own (mpforkserver hands those whose close could block to a process
 * of its own). fn must close fd one way or another; NULL: close(2). */
typedef void mps__fd_release_fn(int fd);
void mps__wire_set_release(mps__fd_release_fn *fn);

/*
 * Receives one message without blocking. Returns 1 with *msg filled, 0 on
 * end of stream, -EAGAIN when none is waiting, or another negative errno.
 * A message that is malformed (truncated, too many fds, not JSON, no op,
 * wrong protocol version) has its descriptors closed at once and returns
 * -EBADMSG (or -EPROTO for a version mismatch, -EMFILE when this side
 * could not take the attached descriptors), with a reason in err.
 * Whenever the datagram was a JSON object, *ret_tag receives its tag (0 when
 * absent or invalid; see mps__wire_tag) so that the server can address its
 * error reply; otherwise *ret_tag is left alone.
 */
int mps__wire_recv(int sock, struct mps__msg *msg, char *err, size_t errlen,
                   uint64_t *ret_tag);

/*
 * Sends json with fds attached, without blocking. Returns 0, -EAGAIN if the
 * socket is full, -EMSGSIZE if the encoding exceeds MPS_WIRE_MSG_MAX, or
 * another negative errno. The caller keeps ownership of json and fds.
 */
int mps__wire_send(int sock, const cJSON *json, const int *fds, size_t nfds);

/* Encodes json into a malloc()ed buffer of at most MPS_WIRE_MSG_MAX bytes
 * (for queuing); sets *ret_len. NULL with errno set on failure. */
char *mps__wire_encode(const cJSON *json, size_t *ret_len);

/* Sends an already encoded buffer (see mps__wire_encode). */
int mps__wire_send_raw(int sock, const char *buf, size_t len, const int *fds,
                       size_t nfds);

/* Releases (see mps__wire_set_release) fds[0..n-1], setting each to -1.
 * Keeps errno. */
void mps__wire_release_fds(int *fds, size_t n);

/* spec_memfd: a new memfd (MFD_CLOEXEC) holding buf, sealed against every
 * change (F_SEAL_SHRINK, GROW, WRITE and SEAL). The fd, or -errno. */
int mps__wire_spec_memfd(const char *buf, size_t len);
/* Reads a spec memfd: it must be a memfd with those four seals, of 1..max
 * bytes. Returns 0 with a malloc()ed NUL-terminated copy in *ret_buf
 * (length *ret_len); -EBADMSG (not a memfd, not sealed), -E2BIG (too big),
 * -ENOMEM or -errno, with a reason in err. Never blocks. */
int mps__wire_spec_memfd_read(int fd, size_t max, char **ret_buf, size_t *ret_len,
                              char *err, size_t errlen);

/* fd_bundle: a socket (O_CLOEXEC) whose peer, already closed, queued
 * fds[0..n-1] (1..MPS_WIRE_SPAWN_FDS_MAX) in datagrams of up to SCM_MAX_FD
 * descriptors. The caller keeps its fds. The socket, or -errno. */
int mps__wire_bundle_make(const int *fds, size_t n);
/* Drains a bundle without blocking: exactly expect descriptors (at most
 * max), received MSG_CMSG_CLOEXEC into fds. Returns 0 with *ret_n set, or
 * -EBADMSG (not a SEQPACKET socket, fewer or more than announced, a
 * datagram without descriptors), -E2BIG, -EMFILE or -errno with a reason in
 * err; on failure every descriptor received is released. */
int mps__wire_bundle_recv(int sock, size_t expect, int *fds, size_t max,
                          size_t *ret_n, char *err, size_t errlen);

/* ---- envelope and schema (wire.c) ------------------------------------ */

/* The "tag" of a message: a whole number 0..2^53-1, else 0. Every error
 * reply about a request addresses it with this. */
uint64_t mps__wire_tag(const cJSON *json);

/* A new message object carrying the protocol version and op; NULL on ENOMEM. */
cJSON *mps__wire_new(enum mps__op op);

/* ---- typed messages -------------------------------------------------- */

struct mps__hello {
        int protocol;
        const char *client; /* free-form client name and version */
};

/* Capabilities a server announces in welcome.features (besides "pidfd"):
 * a client must not rely on a spawn field or request its server does not
 * name, since an older server would ignore the field or refuse the op. */
enum {
        MPS_FEATURE_TIMEOUT = 1 << 0,  /* "timeout": spawn timeout, kill_after */
        MPS_FEATURE_RLIMITS = 1 << 1,  /* "rlimits" */
        MPS_FEATURE_DETACHED = 1 << 2, /* "detached" */
        MPS_FEATURE_CALL = 1 << 3,     /* "call": call jobs */
        MPS_FEATURE_JOBS = 1 << 4,     /* "jobs": wait, list, stats */
        MPS_FEATURE_POLICY = 1 << 5,   /* "policy": seccomp, nice, umask,
                                          no_new_privs, pdeathsig, kill_tree */
        MPS_FEATURE_CLOSED_FDS = 1 << 6, /* "closed_fds": source
                                            MPS_WIRE_FD_CLOSED */
        MPS_FEATURE_CWD_FD = 1 << 7,   /* "cwd_fd": the cwd as a directory fd */
        /* "terminal": spawn controlling_terminal and report_stops, the
         * stopped/continued reports, the foreground request. */
        MPS_FEATURE_TERMINAL = 1 << 8,
        MPS_FEATURE_SPEC_MEMFD = 1 << 9, /* "spec_memfd": a spec in a sealed memfd */
        MPS_FEATURE_FD_BUNDLE = 1 << 10, /* "fd_bundle": more fds than one
                                            message carries */
        MPS_FEATURE_TIMEOUT_SIGNAL = 1 << 11, /* "timeout_signal": the signal
                                                 sent at a timeout */
        /* "call_result": a call job's result and failure message come
         * with its exit (struct mps__exited). */
        MPS_FEATURE_CALL_RESULT = 1 << 12,
        /* "adopt": the adopt request, which an embedded server alone
         * announces and takes (one server shared by a process's clients). */
        MPS_FEATURE_ADOPT = 1 << 13,
        /* "env_ref": the env request, and spawn's env_ref naming what it
         * stored, so that a connection sends its environment once. */
        MPS_FEATURE_ENV_REF = 1 << 14,
        /* "spawn_batch": the spawn_batch request, several spawns in one
         * message, each answered under its own tag as if sent alone. */
        MPS_FEATURE_SPAWN_BATCH = 1 << 15,
        MPS_FEATURES_ALL = (1 << 16) - 1,
};

struct mps__welcome {
        int protocol;
        const char *version; /* server version */
        pid_t pid;
        bool pidfd; /* the server can send pidfds with spawned */
        unsigned features; /* MPS_FEATURE_* */
};

struct mps__fd_map {
        int target; /* fd number in the job */
        int source; /* index into the message's fds, -1: /dev/null for 0-2
                       (else closed), or MPS_WIRE_FD_CLOSED */
};

/* A map source: the target stays closed in the job, 0-2 included (the
 * caller's own fd was closed, as a direct exec would leave it). Only to
 * servers that announce MPS_FEATURE_CLOSED_FDS. */
#define MPS_WIRE_FD_CLOSED (-2)

/* RLIM_INFINITY on the wire is -1; hard_keep leaves the hard limit as the
 * job inherits it and sets only the soft one. */
struct mps__rlimit {
        int resource;
        unsigned long long soft, hard; /* rlim_t values */
        bool hard_keep;
};

struct mps__spawn {
        uint64_t tag;
        const char *path;        /* exec jobs; NULL for a call */
        const char *call_entry;  /* call jobs: the entry point's name */
        const cJSON *call_args;  /* call jobs: the arguments (in the tree) */
        const char **argv; /* malloc()ed, NULL-terminated; strings in tree */
        size_t argc;
        const char **envp; /* malloc()ed, NULL-terminated */
        size_t envc;
        /* Non-zero: the job's environment is the one stored on the
         * connection under this id (1..MPS_WIRE_ENV_SLOTS) by an earlier
         * "env" request, and envp is not sent; the decoder leaves envp
         * empty for the server to fill in. */
        uint64_t env_ref;
        const char *cwd;   /* NULL: the server's own */
        /* The caller's directory itself (O_PATH): the job starts there, so
         * the path resolves in the caller's mount namespace, not the
         * server's, and cannot be swapped between look-up and use; cwd is
         * then only its name, for messages. */
        bool has_cwd_fd;
        int cwd_fd;        /* index into the message's fds */
        const char *name;  /* NULL: none */
        struct mps__fd_map *fdmap; /* malloc()ed */
        size_t nfdmap;
        bool daemon;
        bool new_session;
        bool want_pidfd;
        bool detached; /* exit kept by the server, never sent to this client */
        double timeout;    /* seconds; 0: none */
        double kill_after; /* SIGTERM -> SIGKILL after a timeout, seconds */
        int timeout_signal; /* sent at the timeout; 0: SIGTERM */
        struct mps__rlimit rlimits[MPS_WIRE_RLIMITS_MAX];
        size_t nrlimits;
        const char *seccomp_name; /* the policy's file name, for errors */
        const char *seccomp_text; /* NULL: no filter */
        bool has_nice;
        int nice;          /* -20..19 */
        int umask;         /* -1: the server's; else 0..0777 */
        bool no_new_privs;
        int pdeathsig;     /* 0: none; the signal when the server dies */
        bool kill_tree;    /* signals reach the job's process group */
        /* The terminal feature: fd 0 (after the map) becomes the job's
         * controlling terminal in a session of its own, the job its
         * foreground; report_stops: stopped/continued reports. */
        bool controlling_terminal;
        bool report_stops;
};

/* The MPS_FEATURE_* a server must announce to carry out spawn m. */
unsigned mps__spawn_features(const struct mps__spawn *m);
/* What one MPS_FEATURE_* bit stands for, for a message ("timeouts"). */
const char *mps__feature_description(unsigned feature);

/*
 * Where a spawn request's spec and descriptors are when one datagram cannot
 * carry them (docs/protocol.md): "spec_memfd" names a sealed memfd holding
 * the spawn message's JSON; "fd_bundle" names a socket queueing count more
 * descriptors. The descriptors they name come last in the message, memfd
 * first, so the job's own are the message's first own_nfds, then the
 * bundle's, in that order, indexed as one list.
 */
struct mps__spawn_carrier {
        bool has_memfd;
        int memfd;          /* index into the message's fds */
        bool has_bundle;
        int bundle;         /* index into the message's fds */
        size_t bundle_nfds; /* 1..MPS_WIRE_SPAWN_FDS_MAX */
        size_t own_nfds;    /* the message's fds that are the job's */
};

/* Adds the carrier's fields to o, or with o NULL makes a spawn message of
 * only a tag and them (the request whose spec is in the memfd). NULL on
 * ENOMEM (o, when given, is then the caller's to delete). */
cJSON *mps__spawn_carrier_encode(cJSON *o, uint64_t tag,
                                 const struct mps__spawn_carrier *m);
/* Reads the carrier fields of a spawn message of nfds descriptors (both
 * absent: own_nfds = nfds). 0, or -EINVAL with a reason in err. */
int mps__spawn_carrier_decode(const cJSON *json, size_t nfds,
                              struct mps__spawn_carrier *ret, char *err, size_t errlen);

struct mps__spawned {
        uint64_t tag;
        uint64_t id;
        pid_t pid;
        bool has_pidfd; /* the pidfd is the message's first fd */
};

struct mps__exited {
        uint64_t tag;
        uint64_t id;
        pid_t pid;
        int exitcode; /* Python's convention: code, or -signal */
        bool core_dumped;
        bool timed_out;
        double utime, stime, wall;
        long maxrss_kib;
        /* A call job's result and failure message (the "call_result"
         * feature), NULL when none. The encoder sends result, JSON text
         * that passed mps__wire_result_check, as it is (a "result" value);
         * the decoder leaves result NULL and points result_value at that
         * value in the tree instead. failure is a string of at most
         * MPS_RESULT_ERROR_MAX bytes (in the tree, when decoded). */
        const char *result;
        const cJSON *result_value;
        const char *failure;
};

/* "stopped" (signo: what stopped it) and "continued" (signo 0), about the
 * job of spawn tag `tag`: only the latest state is sent when reports pile
 * up, so a report may be followed by the same state's next one missing. */
struct mps__stop_report {
        uint64_t tag;
        uint64_t id;
        int signo;
};

/* "foreground": puts a controlling-terminal job back in its terminal's
 * foreground (true) or makes it background there (false). No reply unless
 * refused (an error with this tag). */
struct mps__foreground {
        uint64_t tag;
        uint64_t id;
        bool foreground;
};

struct mps__signal {
        uint64_t tag;
        uint64_t id;
        int signo;
        bool group; /* to the job's whole process group */
};

/* wait and list carry only a tag (and an id); stats only a tag. */
struct mps__wait {
        uint64_t tag;
        uint64_t id;
};

/* One entry of a "jobs" reply (mpspawn ps). */
struct mps__job_entry {
        uint64_t id;
        pid_t pid;
        const char *name;    /* "" when none */
        const char *state;   /* "starting", "running" or "exited" */
        const char *command; /* argv joined by spaces, shortened */
        double runtime;      /* seconds since start (to the end if exited) */
        int exitcode;        /* valid when state is "exited" */
        bool timed_out;
        bool daemon;
};

struct mps__server_stats {
        double uptime;
        uint64_t clients;
        uint64_t jobs_started, jobs_running, jobs_failed;
        uint64_t exits_zero, exits_nonzero, signaled, timed_out;
        uint64_t latency_samples;
        double latency_p50, latency_p90, latency_p99, latency_max; /* s */
        uint64_t preloaded, preloaded_rss_kib, prefork_idle;
        uint64_t policy_compiles, policy_cache_hits;
};

struct mps__error {
        uint64_t tag;  /* 0 when not about a request */
        int err;       /* positive errno */
        const char *stage; /* where it failed: "request", "exec", "chdir", ... */
        const char *message;
};

cJSON *mps__hello_encode(const struct mps__hello *m);
cJSON *mps__welcome_encode(const struct mps__welcome *m);
cJSON *mps__spawn_encode(const struct mps__spawn *m);
cJSON *mps__spawned_encode(const struct mps__spawned *m);
cJSON *mps__exited_encode(const struct mps__exited *m);
/* The text of the encoders above (the same bytes as printing their tree,
 * NUL-terminated) in buf[0..len): its length, or -EMSGSIZE when len is too
 * short (MPS_WIRE_REPLY_TEXT_MAX always suffices); the exited one
 * -ENOTSUP for a call job's result or failure, which the tree encodes. */
#define MPS_WIRE_REPLY_TEXT_MAX 512
int mps__spawned_format(const struct mps__spawned *m, char *buf, size_t len);
int mps__exited_format(const struct mps__exited *m, char *buf, size_t len);
cJSON *mps__signal_encode(const struct mps__signal *m);
cJSON *mps__signaled_encode(uint64_t tag, uint64_t id);
/* op is MPS_OP_STOPPED or MPS_OP_CONTINUED. */
cJSON *mps__stop_report_encode(enum mps__op op, const struct mps__stop_report *m);
cJSON *mps__foreground_encode(const struct mps__foreground *m);
cJSON *mps__error_encode(const struct mps__error *m);
cJSON *mps__wait_encode(enum mps__op op, const struct mps__wait *m);
cJSON *mps__jobs_encode(uint64_t tag); /* then mps__jobs_add per entry */
int mps__jobs_add(cJSON *jobs_msg, const struct mps__job_entry *e);
cJSON *mps__server_stats_encode(uint64_t tag, const struct mps__server_stats *m);
/* adopt carries one descriptor, a connected AF_UNIX SOCK_SEQPACKET socket,
 * which the (embedded) server then serves as a client connection of its
 * own; adopted answers it. */
cJSON *mps__adopt_encode(uint64_t tag);
cJSON *mps__adopted_encode(uint64_t tag);

/* "env" (the env_ref feature): stores envp under id (1..MPS_WIRE_ENV_SLOTS)
 * on this connection, replacing what that id held, for later spawns'
 * env_ref. No reply unless refused (an error with this tag; the id then
 * holds nothing). */
struct mps__env {
        uint64_t tag;
        uint64_t id;
        const char **envp; /* decoded: malloc()ed, strings in the tree */
        size_t envc;
};
cJSON *mps__env_encode(const struct mps__env *m);

/*
 * Decoders check every field's type and bound and return 0, or -EINVAL with
 * a reason in err naming the field. nfds is the number of descriptors the
 * message carried, which fd maps must not exceed.
 */
int mps__hello_decode(const cJSON *json, struct mps__hello *ret, char *err,
                      size_t errlen);
int mps__welcome_decode(const cJSON *json, struct mps__welcome *ret, char *err,
                        size_t errlen);
int mps__spawn_decode(const cJSON *json, size_t nfds, struct mps__spawn *ret,
                      char *err, size_t errlen);
void mps__spawn_done(struct mps__spawn *m); /* frees the decoder's arrays */
/* An env request; free ret->envp after. */
int mps__env_decode(const cJSON *json, struct mps__env *ret, char *err, size_t errlen);

/*
 * spawn_batch: up to MPS_WIRE_BATCH_MAX spawn messages ("jobs", each a
 * whole spawn request with its own tag) and how many of the message's
 * descriptors each takes, in order ("nfds"). A job may carry a spec memfd
 * or a bundle in its slice, as it would alone; libmpspawn sends such a job
 * alone. The decoder checks
 * the envelope only (each job is then decoded as a spawn request); the
 * jobs point into json.
 */
#define MPS_WIRE_BATCH_MAX 16
struct mps__batch_job {
        const cJSON *json;
        uint64_t tag;
        size_t fd_from, nfds; /* its slice of the message's descriptors */
};
struct mps__spawn_batch {
        uint64_t tag;
        size_t count;
        struct mps__batch_job jobs[MPS_WIRE_BATCH_MAX];
};
int mps__spawn_batch_decode(const cJSON *json, size_t nfds, struct mps__spawn_batch *ret,
                            char *err, size_t errlen);
int mps__spawned_decode(const cJSON *json, struct mps__spawned *ret,
                        char *err, size_t errlen);
int mps__exited_decode(const cJSON *json, struct mps__exited *ret, char *err,
                       size_t errlen);
int mps__signal_decode(const cJSON *json, struct mps__signal *ret, char *err,
                       size_t errlen);
int mps__signaled_decode(const cJSON *json, uint64_t *ret_tag,
                         uint64_t *ret_id, char *err, size_t errlen);
/* adopt and adopted alike: the tag, required. */
int mps__adopt_decode(const cJSON *json, uint64_t *ret_tag, char *err, size_t errlen);
int mps__error_decode(const cJSON *json, struct mps__error *ret, char *err,
                      size_t errlen);
/* stopped (need_signal) or continued. */
int mps__stop_report_decode(const cJSON *json, bool need_signal,
                            struct mps__stop_report *ret, char *err, size_t errlen);
int mps__foreground_decode(const cJSON *json, struct mps__foreground *ret, char *err,
                           size_t errlen);
/* wait, list and stats requests (list and stats: id is absent and 0). */
int mps__wait_decode(const cJSON *json, bool need_id, struct mps__wait *ret,
                     char *err, size_t errlen);
/* A "jobs" reply: its entries, as a malloc()ed array pointing into json. */
int mps__jobs_decode(const cJSON *json, struct mps__job_entry **ret,
                     size_t *ret_n, char *err, size_t errlen);
int mps__server_stats_decode(const cJSON *json, struct mps__server_stats *ret,
                             char *err, size_t errlen);

/* True when every number in the tree is finite (1e999 parses as infinity,
 * which cJSON would print back as null). */
bool mps__wire_numbers_finite(const cJSON *json);

/* How deep a call job's result may nest: within cJSON's own limit on the
 * exited message that carries it. */
#define MPS_WIRE_RESULT_DEPTH_MAX 512

/* True when s[0..len) is UTF-8 (shortest forms, no surrogates, at most
 * U+10FFFF) with no NUL byte. */
bool mps__wire_utf8_valid(const char *s, size_t len);

/* Whether text[0..len) may be a call job's result: one JSON value of RFC
 * 8259 (white space around it allowed), UTF-8, every number finite and of
 * at most 63 characters, no \u0000, nested at most MPS_WIRE_RESULT_DEPTH_MAX
 * deep, at most MPS_RESULT_MAX bytes; a subset of what cJSON parses. It
 * allocates nothing (a call job's child calls it). 0, -E2BIG (too long) or
 * -EINVAL. */
int mps__wire_result_check(const char *text, size_t len);

/* errno <-> its symbolic name ("ENOENT"); 0 / NULL when unknown. */
const char *mps__errno_name(int err);
int mps__errno_from_name(const char *name);

#endif /* MPS_WIRE_H */
