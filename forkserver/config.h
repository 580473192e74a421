/* SPDX-License-Identifier: MIT */
/*
 * config.h: mpforkserver's configuration file (docs/mpforkserver.conf.5).
 *
 * A plain "key = value" file, one setting per line, '#' comments. Every key
 * is validated when the file is read, and an error names the file, the line
 * and the key. Command-line options that set a key go through config_set,
 * so they are checked the same way.
 *
 * This module only parses, validates and answers questions about the
 * settings: it does not log, touch sockets or exit.
 */
#ifndef MPS_CONFIG_H
#define MPS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

/* Bounds on what a file may ask for. */
#define CONFIG_LINE_MAX 4096          /* bytes in one line */
#define CONFIG_LIST_MAX 1024          /* entries in one list key, in total */
#define CONFIG_SECONDS_MAX 86400      /* grace and idle_exit */
#define CONFIG_JOBS_PER_CLIENT_MAX 1000000
#define CONFIG_LIMIT_MAX 1000000      /* max_children, max_connections_per_uid,
                                         client_queue */
#define CONFIG_PREFORK_MAX 1024
#define CONFIG_MODULE_NAME_MAX 255    /* bytes in one python_preload name */
#define CONFIG_QUEUE_BYTES_MIN 65536  /* client_queue_bytes(_per_uid): one
                                         reply of the largest size fits */
#define CONFIG_QUEUE_BYTES_MAX (1ul << 40)

/* The built-in defaults. */
#define CONFIG_SOCKET_MODE_DEFAULT 0600
#define CONFIG_GRACE_MS_DEFAULT 5000
#define CONFIG_JOBS_PER_CLIENT_DEFAULT 16384 /* what max_jobs_per_client = 0 means */
#define CONFIG_MAX_CHILDREN_DEFAULT 65536
#define CONFIG_CONNS_PER_UID_DEFAULT 256
#define CONFIG_CLIENT_QUEUE_DEFAULT 4096
#define CONFIG_QUEUE_BYTES_DEFAULT (4ul << 20)          /* 4 MiB */
#define CONFIG_QUEUE_BYTES_PER_UID_DEFAULT (16ul << 20) /* 16 MiB */

struct config {
        char *file; /* the file read, NULL when none */

        /* Only when not socket-activated (the socket unit decides then). */
        char *socket_path;
        unsigned socket_mode;
        bool has_socket_group;
        gid_t socket_group;

        /* Who may connect. Both empty: anyone who can open the socket. */
        uid_t *allowed_uids;
        size_t n_allowed_uids;
        gid_t *allowed_gids;
        size_t n_allowed_gids;

        /* Quotas: past one, a request gets EAGAIN and nothing else changes. */
        unsigned max_children;            /* jobs alive in the whole server */
        unsigned max_jobs_per_client;     /* 0: the built-in limit (16384) */
        unsigned max_connections_per_uid; /* connections of one user */
        unsigned client_queue; /* replies queued for a slow reader; past it,
                                  the client is dropped */
        /* Fair shares: one user cannot hold more of the server than these
         * (issue 13). */
        unsigned max_children_per_uid;    /* 0: a quarter of max_children; the
                                             server's own uid is exempt */
        unsigned long client_queue_bytes; /* bytes of replies queued for one
                                             connection; past it, dropped */
        unsigned long client_queue_bytes_per_uid; /* the same for all the
                                                     connections of a user */
        unsigned grace_ms;
        unsigned idle_exit_ms; /* 0: never */
        int log_level;         /* enum log_level */

        /* Pre-warming and policy. */
        char **preload;
        size_t n_preload;
        unsigned prefork;
        char *default_seccomp_policy;

        /* Embedded CPython (python_preload, --python-preload): python says
         * whether to load the Python preload library at all, which an empty
         * --python-preload '' asks for with no module; python_preload holds
         * the dotted module names it imports at start, each once, in the
         * order given. */
        bool python;
        char **python_preload;
        size_t n_python_preload;
};

/* Fills cfg with the built-in defaults. */
void config_init(struct config *cfg);

/* Frees what cfg holds; cfg can be initialised again afterwards. */
void config_free(struct config *cfg);

/*
 * Reads the file at path into cfg: settings it has replace the defaults.
 * Returns 0, or a negative errno with a one-line message in err, of the form
 * "FILE:LINE: KEY: what is wrong" (or "FILE: ..." when the file itself cannot
 * be read). On failure cfg holds what was read before the bad line; free it.
 */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);

/* The same from an open stream; name is used in messages only. */
int config_load_stream(struct config *cfg, FILE *f, const char *name, char *err,
                       size_t errlen);

/*
 * Validates one value as the file would and stores it (for command-line
 * options that override a key). List keys append. Unlike the file, an
 * empty value is allowed for python_preload (--python-preload ''): it sets
 * python and adds no module. Returns 0 or -EINVAL with "KEY: what is wrong"
 * in err.
 */
int config_set(struct config *cfg, const char *key, const char *value, char *err,
               size_t errlen);

/* max_jobs_per_client as the server applies it (0 is the built-in limit). */
unsigned config_max_jobs_per_client(const struct config *cfg);

/* max_children_per_uid as the server applies it: 0 means a quarter of
 * max_children (at least 1). */
unsigned config_max_children_per_uid(const struct config *cfg);

/* Log level names: "error", "warning", "info", "debug". */
int config_parse_log_level(const char *s, int *ret_level);
const char *config_log_level_name(int level);

/*
 * Whether a peer with these credentials may connect: true when no
 * allowed_users and no allowed_groups are set, or when uid is listed, or when
 * gid or one of the supplementary groups is listed.
 */
bool config_allows(const struct config *cfg, uid_t uid, gid_t gid,
                   const gid_t *groups, size_t ngroups);

/*
 * SIGHUP: takes from fresh (a configuration read again, as at start) the
 * settings that apply at run time: allowed_users, allowed_groups,
 * max_children, max_jobs_per_client, max_connections_per_uid, client_queue,
 * grace, idle_exit and log_level. What was set up once at start (socket,
 * socket_mode, socket_group, preload, prefork, default_seccomp_policy,
 * python_preload) stays as it is; the keys among those that fresh changes
 * are listed in restart ("socket_mode, prefork", or ""). fresh keeps live's
 * old values: free it.
 */
void config_reload_into(struct config *live, struct config *fresh, char *restart,
                        size_t restartlen);

/* Writes the effective settings in the file's own syntax (--check-config). */
void config_print(const struct config *cfg, FILE *out);

#endif /* MPS_CONFIG_H */
