/* SPDX-License-Identifier: MIT */
/*
 * peer.h: what the kernel says about the process at the other end of a
 * connection. Nothing here comes from the client's own messages: a job
 * starts with its client's context, and the client's word is never taken
 * for anything that bounds privilege.
 */
#ifndef MPS_PEER_H
#define MPS_PEER_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

struct creds;

/* RLIM_NLIMITS as /proc/PID/limits lists them, in resource order. */
#define PEER_RLIMITS 16

/* The connected process itself, as found at accept. */
struct peer {
        pid_t pid;
        uid_t uid;
        gid_t gid;
        int sockfd; /* the connection (not ours): SO_PEERPIDFD for each read */
        int pidfd;  /* held only where SO_PEERPIDFD is missing (before 6.5):
                       pidfd_open(pid) at accept; else -1 */
};

/* ioprio_get(2)/ioprio_set(2)'s "which" for one process (glibc has no
 * wrapper and older kernel headers no linux/ioprio.h). */
#define PEER_IOPRIO_WHO_PROCESS 1

/* What can change while a client is connected: read for each spawn. */
struct peer_context {
        uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb;
        bool no_new_privs;
        int seccomp;          /* 0 none, 1 strict, 2 filter */
        unsigned seccomp_filters;
        int umask;            /* -1: the kernel does not say */
        uint64_t sig_ign;     /* bit n-1: signal n is ignored */
        struct rlimit rlim[PEER_RLIMITS];
        int nice;
        int ioprio;           /* ioprio_get(2)'s value: class and level */
        int oom_score_adj;
        cpu_set_t affinity;
};

/* At accept: pid, uid, gid (SO_PEERCRED), checked against a pidfd of the
 * process to be the same live one. 0, or -errno with
 * the reason in err (-ESRCH: the peer is gone or its pid was reused). */
int peer_open(int sockfd, struct peer *ret_peer, char *err, size_t errlen);
void peer_close(struct peer *p);

/* At accept: the peer's supplementary groups as the kernel has them
 * (SO_PEERGROUPS: what the process holds, never the group database), into
 * cr->groups (malloc()ed) with uid and gid. 0 or -errno. */
int peer_creds(int sockfd, const struct peer *p, struct creds *cr);

/* For each spawn: the peer's context, read from /proc/PID, then a pidfd
 * of the peer checked to be alive (-ESRCH: gone; a
 * recycled pid is refused, never trusted). 0, or -errno with the reason in err. */
int peer_read_context(const struct peer *p, struct peer_context *ret_ctx, char *err,
                      size_t errlen);
/* The same for this process (the server): what a job would have if it
 * got nothing of its client's. */
int peer_read_self(struct peer_context *ret_ctx);
bool peer_context_equal(const struct peer_context *a, const struct peer_context *b);

/* For the tests and the reader: parses /proc/PID/status and
 * /proc/PID/limits text into ctx. 0 or -EINVAL. */
int peer_parse_status(const char *text, struct peer_context *ctx);
int peer_parse_limits(const char *text, struct peer_context *ctx);

#endif /* MPS_PEER_H */
