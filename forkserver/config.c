/* SPDX-License-Identifier: MIT */
/*
 * config.c: reads and validates mpforkserver's configuration file. See
 * config.h for the contract and docs/mpforkserver.conf.5 for the format.
 *
 * Every value goes through one setter per key, whether it comes from the
 * file or from a command-line option, so both are checked the same way.
 * Names of users and groups are resolved once, here, at start-up: the
 * server then compares numbers only.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../launcher/number.h"
#include "server.h"

static const char *const level_names[] = {"error", "warning", "info", "debug"};

int config_parse_log_level(const char *s, int *ret_level) {
        for (int i = 0; i < 4; i++)
                if (strcmp(s, level_names[i]) == 0) {
                        *ret_level = i;
                        return 0;
                }
        return -EINVAL;
}

const char *config_log_level_name(int level) {
        return level >= 0 && level < 4 ? level_names[level] : "?";
}

void config_init(struct config *cfg) {
        *cfg = (struct config){
                .socket_mode = CONFIG_SOCKET_MODE_DEFAULT,
                .max_children = CONFIG_MAX_CHILDREN_DEFAULT,
                .max_connections_per_uid = CONFIG_CONNS_PER_UID_DEFAULT,
                .client_queue = CONFIG_CLIENT_QUEUE_DEFAULT,
                .client_queue_bytes = CONFIG_QUEUE_BYTES_DEFAULT,
                .client_queue_bytes_per_uid = CONFIG_QUEUE_BYTES_PER_UID_DEFAULT,
                .grace_ms = CONFIG_GRACE_MS_DEFAULT,
                .log_level = LOG_LEVEL_INFO,
        };
}

unsigned config_max_jobs_per_client(const struct config *cfg) {
        return cfg->max_jobs_per_client ? cfg->max_jobs_per_client
                                        : CONFIG_JOBS_PER_CLIENT_DEFAULT;
}

unsigned config_max_children_per_uid(const struct config *cfg) {
        if (cfg->max_children_per_uid)
                return cfg->max_children_per_uid;
        return cfg->max_children >= 4 ? cfg->max_children / 4 : 1;
}

void config_free(struct config *cfg) {
        free(cfg->file);
        free(cfg->socket_path);
        free(cfg->allowed_uids);
        free(cfg->allowed_gids);
        for (size_t i = 0; i < cfg->n_preload; i++)
                free(cfg->preload[i]);
        free(cfg->preload);
        free(cfg->default_seccomp_policy);
        for (size_t i = 0; i < cfg->n_python_preload; i++)
                free(cfg->python_preload[i]);
        free(cfg->python_preload);
        config_init(cfg);
}

/* ---- values ----------------------------------------------------------------------- */

static int fail(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

static bool all_digits(const char *s) {
        if (!*s)
                return false;
        for (; *s; s++)
                if (*s < '0' || *s > '9')
                        return false;
        return true;
}

/* A whole number in [min, max], decimal digits only (no sign, no spaces). */
static int parse_uint(const char *s, unsigned long min, unsigned long max,
                      unsigned long *ret) {
        unsigned long long v = 0;
        int r = mps__parse_unsigned(s, 10, min, max, &v);
        if (r == 0)
                *ret = (unsigned long)v;
        return r;
}

/* Seconds as digits with an optional decimal fraction, 0 to max, in ms
 * (a positive value never rounds down to 0, which would mean "never"). */
static int parse_seconds(const char *s, unsigned max, unsigned *ret_ms) {
        const char *p = s;
        size_t intdigits = 0, fracdigits = 0;
        while (*p >= '0' && *p <= '9')
                p++, intdigits++;
        if (*p == '.') {
                p++;
                while (*p >= '0' && *p <= '9')
                        p++, fracdigits++;
                if (fracdigits == 0)
                        return -EINVAL;
        }
        if (*p || intdigits == 0)
                return -EINVAL;
        double v = 0;
        int r = mps__parse_double(s, 0, max, &v);
        if (r < 0)
                return r;
        unsigned ms = (unsigned)(v * 1000 + 0.5);
        if (ms == 0 && v > 0)
                ms = 1;
        *ret_ms = ms;
        return 0;
}

static int parse_mode(const char *s, unsigned *ret) {
        size_t n = strlen(s);
        if (n == 0 || n > 4)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (s[i] < '0' || s[i] > '7')
                        return -EINVAL;
        unsigned long long m = 0;
        int r = mps__parse_unsigned(s, 8, 0, 0777, &m);
        if (r == 0)
                *ret = (unsigned)m;
        return r;
}

static int parse_user(const char *s, uid_t *ret, char *err, size_t errlen) {
        unsigned long v = 0;
        if (all_digits(s)) {
                if (parse_uint(s, 0, (uid_t)-2, &v) < 0)
                        return fail(err, errlen, "'%s' is not a valid user id", s);
                *ret = (uid_t)v;
                return 0;
        }
        errno = 0;
        struct passwd *pw = getpwnam(s);
        if (!pw)
                return fail(err, errlen, "no user named '%s'%s%s", s,
                            errno ? ": " : "", errno ? strerror(errno) : "");
        *ret = pw->pw_uid;
        return 0;
}

static int parse_group(const char *s, gid_t *ret, char *err, size_t errlen) {
        unsigned long v = 0;
        if (all_digits(s)) {
                if (parse_uint(s, 0, (gid_t)-2, &v) < 0)
                        return fail(err, errlen, "'%s' is not a valid group id", s);
                *ret = (gid_t)v;
                return 0;
        }
        errno = 0;
        struct group *gr = getgrnam(s);
        if (!gr)
                return fail(err, errlen, "no group named '%s'%s%s", s,
                            errno ? ": " : "", errno ? strerror(errno) : "");
        *ret = gr->gr_gid;
        return 0;
}

/* An absolute path to a regular file the server can read. */
static int check_readable_file(const char *s, char *err, size_t errlen) {
        struct stat st;
        if (s[0] != '/')
                return fail(err, errlen, "'%s' is not an absolute path", s);
        if (stat(s, &st) < 0)
                return fail(err, errlen, "'%s': %s", s, strerror(errno));
        if (!S_ISREG(st.st_mode))
                return fail(err, errlen, "'%s' is not a regular file", s);
        if (access(s, R_OK) < 0)
                return fail(err, errlen, "'%s': %s", s, strerror(errno));
        return 0;
}

static int store_string(char **slot, const char *s, char *err, size_t errlen) {
        char *copy = strdup(s);
        if (!copy)
                return fail(err, errlen, "out of memory");
        free(*slot);
        *slot = copy;
        return 0;
}

/* Grows an array of n elements of size sz by one. */
static int grow(void **arr, size_t n, size_t sz) {
        if (n >= CONFIG_LIST_MAX)
                return -E2BIG;
        void *p = realloc(*arr, (n + 1) * sz);
        if (!p)
                return -ENOMEM;
        *arr = p;
        return 0;
}

static int list_full(int r, char *err, size_t errlen) {
        if (r == -E2BIG)
                return fail(err, errlen, "more than %d entries", CONFIG_LIST_MAX);
        return fail(err, errlen, "out of memory");
}

/* ---- keys -------------------------------------------------------------------------- */

/* Setters get one value (one list entry for list keys) and write only "what
 * is wrong" into err; the caller adds where. */
typedef int (*setter)(struct config *cfg, const char *v, char *err, size_t errlen);

static int set_socket(struct config *cfg, const char *v, char *err, size_t errlen) {
        struct sockaddr_un sa;
        if (v[0] != '/')
                return fail(err, errlen, "'%s' is not an absolute path", v);
        if (strlen(v) >= sizeof(sa.sun_path))
                return fail(err, errlen, "'%s' is longer than %zu bytes", v,
                            sizeof(sa.sun_path) - 1);
        return store_string(&cfg->socket_path, v, err, errlen);
}

static int set_socket_mode(struct config *cfg, const char *v, char *err,
                           size_t errlen) {
        if (parse_mode(v, &cfg->socket_mode) < 0)
                return fail(err, errlen, "'%s' is not an octal mode from 0000 to 0777", v);
        return 0;
}

static int set_socket_group(struct config *cfg, const char *v, char *err,
                            size_t errlen) {
        int r = parse_group(v, &cfg->socket_group, err, errlen);
        if (r == 0)
                cfg->has_socket_group = true;
        return r;
}

static int add_allowed_user(struct config *cfg, const char *v, char *err,
                            size_t errlen) {
        uid_t uid = 0;
        int r = parse_user(v, &uid, err, errlen);
        if (r < 0)
                return r;
        if ((r = grow((void **)&cfg->allowed_uids, cfg->n_allowed_uids, sizeof(uid_t))) < 0)
                return list_full(r, err, errlen);
        cfg->allowed_uids[cfg->n_allowed_uids++] = uid;
        return 0;
}

static int add_allowed_group(struct config *cfg, const char *v, char *err,
                             size_t errlen) {
        gid_t gid = 0;
        int r = parse_group(v, &gid, err, errlen);
        if (r < 0)
                return r;
        if ((r = grow((void **)&cfg->allowed_gids, cfg->n_allowed_gids, sizeof(gid_t))) < 0)
                return list_full(r, err, errlen);
        cfg->allowed_gids[cfg->n_allowed_gids++] = gid;
        return 0;
}

static int set_max_jobs_per_client(struct config *cfg, const char *v, char *err,
                                   size_t errlen) {
        unsigned long n = 0;
        if (parse_uint(v, 0, CONFIG_JOBS_PER_CLIENT_MAX, &n) < 0)
                return fail(err, errlen, "'%s' is not a whole number from 0 to %d", v,
                            CONFIG_JOBS_PER_CLIENT_MAX);
        cfg->max_jobs_per_client = (unsigned)n;
        return 0;
}

/* max_children, max_connections_per_uid and client_queue: 1 to
 * CONFIG_LIMIT_MAX (0 would refuse everything). */
static int set_limit(unsigned *slot, const char *v, char *err, size_t errlen) {
        unsigned long n = 0;
        if (parse_uint(v, 1, CONFIG_LIMIT_MAX, &n) < 0)
                return fail(err, errlen, "'%s' is not a whole number from 1 to %d", v,
                            CONFIG_LIMIT_MAX);
        *slot = (unsigned)n;
        return 0;
}

static int set_max_children(struct config *cfg, const char *v, char *err,
                            size_t errlen) {
        return set_limit(&cfg->max_children, v, err, errlen);
}

static int set_max_connections_per_uid(struct config *cfg, const char *v, char *err,
                                       size_t errlen) {
        return set_limit(&cfg->max_connections_per_uid, v, err, errlen);
}

static int set_client_queue(struct config *cfg, const char *v, char *err,
                            size_t errlen) {
        return set_limit(&cfg->client_queue, v, err, errlen);
}

static int set_max_children_per_uid(struct config *cfg, const char *v, char *err,
                                    size_t errlen) {
        unsigned long n = 0;
        if (parse_uint(v, 0, CONFIG_LIMIT_MAX, &n) < 0)
                return fail(err, errlen, "'%s' is not a whole number from 0 to %d", v,
                            CONFIG_LIMIT_MAX);
        cfg->max_children_per_uid = (unsigned)n;
        return 0;
}

/* client_queue_bytes and client_queue_bytes_per_uid: at least one reply of
 * the largest size must fit. */
static int set_bytes(unsigned long *slot, const char *v, char *err, size_t errlen) {
        unsigned long n = 0;
        if (parse_uint(v, CONFIG_QUEUE_BYTES_MIN, CONFIG_QUEUE_BYTES_MAX, &n) < 0)
                return fail(err, errlen, "'%s' is not a whole number of bytes from %d to %lu",
                            v, CONFIG_QUEUE_BYTES_MIN, CONFIG_QUEUE_BYTES_MAX);
        *slot = n;
        return 0;
}

static int set_client_queue_bytes(struct config *cfg, const char *v, char *err,
                                  size_t errlen) {
        return set_bytes(&cfg->client_queue_bytes, v, err, errlen);
}

static int set_client_queue_bytes_per_uid(struct config *cfg, const char *v, char *err,
                                          size_t errlen) {
        return set_bytes(&cfg->client_queue_bytes_per_uid, v, err, errlen);
}

static int set_grace(struct config *cfg, const char *v, char *err, size_t errlen) {
        if (parse_seconds(v, CONFIG_SECONDS_MAX, &cfg->grace_ms) < 0)
                return fail(err, errlen, "'%s' is not a number of seconds from 0 to %d",
                            v, CONFIG_SECONDS_MAX);
        return 0;
}

static int set_idle_exit(struct config *cfg, const char *v, char *err,
                         size_t errlen) {
        if (parse_seconds(v, CONFIG_SECONDS_MAX, &cfg->idle_exit_ms) < 0)
                return fail(err, errlen,
                            "'%s' is not a number of seconds from 0 (never) to %d", v,
                            CONFIG_SECONDS_MAX);
        return 0;
}

static int set_log_level(struct config *cfg, const char *v, char *err,
                         size_t errlen) {
        if (config_parse_log_level(v, &cfg->log_level) < 0)
                return fail(err, errlen,
                            "'%s' is not a log level (error, warning, info or debug)", v);
        return 0;
}

static int add_preload(struct config *cfg, const char *v, char *err, size_t errlen) {
        int r = check_readable_file(v, err, errlen);
        if (r < 0)
                return r;
        if ((r = grow((void **)&cfg->preload, cfg->n_preload, sizeof(char *))) < 0)
                return list_full(r, err, errlen);
        if (!(cfg->preload[cfg->n_preload] = strdup(v)))
                return fail(err, errlen, "out of memory");
        cfg->n_preload++;
        return 0;
}

static int set_prefork(struct config *cfg, const char *v, char *err, size_t errlen) {
        unsigned long n = 0;
        if (parse_uint(v, 0, CONFIG_PREFORK_MAX, &n) < 0)
                return fail(err, errlen, "'%s' is not a whole number from 0 to %d", v,
                            CONFIG_PREFORK_MAX);
        cfg->prefork = (unsigned)n;
        return 0;
}

static int set_default_seccomp_policy(struct config *cfg, const char *v, char *err,
                                      size_t errlen) {
        int r = check_readable_file(v, err, errlen);
        if (r < 0)
                return r;
        return store_string(&cfg->default_seccomp_policy, v, err, errlen);
}

/* A Python module as an import statement names it: identifiers of ASCII
 * letters, digits and '_' (not starting with a digit), joined by dots. The
 * names end up comma-joined in an environment variable, so nothing else
 * may get through. */
static bool is_module_name(const char *s) {
        bool start = true;
        for (; *s; s++) {
                bool alpha = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                             *s == '_';
                if (*s == '.' && !start)
                        start = true;
                else if (alpha || (!start && *s >= '0' && *s <= '9'))
                        start = false;
                else
                        return false;
        }
        return !start;
}

static bool has_module(const struct config *cfg, const char *name) {
        for (size_t i = 0; i < cfg->n_python_preload; i++)
                if (strcmp(cfg->python_preload[i], name) == 0)
                        return true;
        return false;
}

/* One list entry: module names separated by commas as well ("json,os"),
 * as $MPSPAWN_PYTHON_PRELOAD has them. A name already listed is not added
 * again: the key's and the option's make a union. */
static int add_python_preload(struct config *cfg, const char *v, char *err,
                              size_t errlen) {
        char name[CONFIG_MODULE_NAME_MAX + 1];
        for (const char *p = v; *p;) {
                size_t n = strcspn(p, ",");
                if (n > CONFIG_MODULE_NAME_MAX)
                        return fail(err, errlen, "'%.64s...' is longer than %d bytes", p,
                                    CONFIG_MODULE_NAME_MAX);
                memcpy(name, p, n);
                name[n] = '\0';
                p += n + (p[n] == ',');
                if (!n)
                        continue;
                if (!is_module_name(name))
                        return fail(err, errlen,
                                    "'%s' is not a Python module name (identifiers of "
                                    "letters, digits and '_', joined by dots)",
                                    name);
                if (has_module(cfg, name))
                        continue;
                int r = grow((void **)&cfg->python_preload, cfg->n_python_preload,
                             sizeof(char *));
                if (r < 0)
                        return list_full(r, err, errlen);
                if (!(cfg->python_preload[cfg->n_python_preload] = strdup(name)))
                        return fail(err, errlen, "out of memory");
                cfg->n_python_preload++;
        }
        cfg->python = true;
        return 0;
}

static const struct key_info {
        const char *name;
        setter set;
        bool list; /* whitespace-separated entries; the key may repeat */
} keys[] = {
        {"socket", set_socket, false},
        {"socket_mode", set_socket_mode, false},
        {"socket_group", set_socket_group, false},
        {"allowed_users", add_allowed_user, true},
        {"allowed_groups", add_allowed_group, true},
        {"max_children", set_max_children, false},
        {"max_jobs_per_client", set_max_jobs_per_client, false},
        {"max_connections_per_uid", set_max_connections_per_uid, false},
        {"client_queue", set_client_queue, false},
        {"max_children_per_uid", set_max_children_per_uid, false},
        {"client_queue_bytes", set_client_queue_bytes, false},
        {"client_queue_bytes_per_uid", set_client_queue_bytes_per_uid, false},
        {"grace", set_grace, false},
        {"idle_exit", set_idle_exit, false},
        {"log_level", set_log_level, false},
        {"preload", add_preload, true},
        {"prefork", set_prefork, false},
        {"default_seccomp_policy", set_default_seccomp_policy, false},
        {"python_preload", add_python_preload, true},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const struct key_info *find_key(const char *name) {
        for (size_t i = 0; i < NKEYS; i++)
                if (strcmp(keys[i].name, name) == 0)
                        return &keys[i];
        return NULL;
}

static bool is_blank(char c) {
        return c == ' ' || c == '\t';
}

/* Applies value to key: each whitespace-separated entry for list keys. */
static int apply(struct config *cfg, const struct key_info *k, char *value, char *err,
                 size_t errlen) {
        if (!k->list)
                return k->set(cfg, value, err, errlen);
        char *save = NULL;
        for (char *tok = strtok_r(value, " \t", &save); tok;
             tok = strtok_r(NULL, " \t", &save)) {
                int r = k->set(cfg, tok, err, errlen);
                if (r < 0)
                        return r;
        }
        return 0;
}

int config_set(struct config *cfg, const char *key, const char *value, char *err,
               size_t errlen) {
        char why[512];
        const struct key_info *k = find_key(key);
        if (!k)
                return fail(err, errlen, "%s: unknown key", key);
        char *copy = strdup(value);
        if (!copy)
                return fail(err, errlen, "%s: out of memory", key);
        int r = apply(cfg, k, copy, why, sizeof(why));
        free(copy);
        if (r < 0)
                return fail(err, errlen, "%s: %s", key, why);
        /* --python-preload '': Python embedded, nothing imported. */
        if (k->set == add_python_preload)
                cfg->python = true;
        return 0;
}

static char *trim(char *s) {
        while (is_blank(*s))
                s++;
        size_t n = strlen(s);
        while (n > 0 && (is_blank(s[n - 1]) || s[n - 1] == '\n' || s[n - 1] == '\r'))
                s[--n] = '\0';
        return s;
}

static bool is_key_name(const char *s) {
        if (!*s)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
                        return false;
        return true;
}

int config_load_stream(struct config *cfg, FILE *f, const char *name, char *err,
                       size_t errlen) {
        unsigned set_on_line[NKEYS] = {0};
        char *buf = NULL, why[512];
        size_t cap = 0;
        unsigned lineno = 0;
        ssize_t n;
        int r = 0;

        while ((n = getline(&buf, &cap, f)) >= 0) {
                lineno++;
                if ((size_t)n > CONFIG_LINE_MAX) {
                        r = fail(err, errlen, "%s:%u: line longer than %d bytes", name,
                                 lineno, CONFIG_LINE_MAX);
                        goto out;
                }
                if (strlen(buf) != (size_t)n) {
                        r = fail(err, errlen, "%s:%u: line contains a NUL byte", name,
                                 lineno);
                        goto out;
                }
                char *line = trim(buf);
                if (!*line || *line == '#')
                        continue;
                char *eq = strchr(line, '=');
                if (!eq) {
                        r = fail(err, errlen, "%s:%u: expected 'key = value', got '%.64s'",
                                 name, lineno, line);
                        goto out;
                }
                *eq = '\0';
                char *key = trim(line), *value = trim(eq + 1);
                if (!is_key_name(key)) {
                        r = fail(err, errlen,
                                 "%s:%u: '%.64s' is not a key (lower-case letters, "
                                 "digits and '_')",
                                 name, lineno, key);
                        goto out;
                }
                const struct key_info *k = find_key(key);
                if (!k) {
                        r = fail(err, errlen, "%s:%u: %s: unknown key", name, lineno, key);
                        goto out;
                }
                size_t idx = (size_t)(k - keys);
                if (!*value) {
                        r = fail(err, errlen, "%s:%u: %s: no value", name, lineno, key);
                        goto out;
                }
                if (!k->list && set_on_line[idx]) {
                        r = fail(err, errlen, "%s:%u: %s: already set on line %u", name,
                                 lineno, key, set_on_line[idx]);
                        goto out;
                }
                if (apply(cfg, k, value, why, sizeof(why)) < 0) {
                        r = fail(err, errlen, "%s:%u: %s: %s", name, lineno, key, why);
                        goto out;
                }
                set_on_line[idx] = lineno;
        }
        if (ferror(f))
                r = fail(err, errlen, "%s: cannot read: %s", name, strerror(errno));
out:
        free(buf);
        return r;
}

int config_load(struct config *cfg, const char *path, char *err, size_t errlen) {
        struct stat st;
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return fail(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(fd);
                return fail(err, errlen, "%s: not a regular file", path);
        }
        /* The file says who may run programs through a server that may run
         * as root: one that anybody can rewrite is never trusted. */
        if (st.st_mode & S_IWOTH) {
                close(fd);
                return fail(err, errlen,
                            "%s: writable by every user (mode %04o); refusing it", path,
                            (unsigned)(st.st_mode & 07777));
        }
        FILE *f = fdopen(fd, "r");
        if (!f) {
                int e = errno;
                close(fd);
                return fail(err, errlen, "%s: cannot read: %s", path, strerror(e));
        }
        int r = config_load_stream(cfg, f, path, err, errlen);
        fclose(f);
        if (r == 0 && store_string(&cfg->file, path, err, errlen) < 0)
                r = -ENOMEM;
        return r;
}

/* ---- questions ----------------------------------------------------------------------- */

bool config_allows(const struct config *cfg, uid_t uid, gid_t gid,
                   const gid_t *groups, size_t ngroups) {
        if (cfg->n_allowed_uids == 0 && cfg->n_allowed_gids == 0)
                return true;
        for (size_t i = 0; i < cfg->n_allowed_uids; i++)
                if (cfg->allowed_uids[i] == uid)
                        return true;
        for (size_t i = 0; i < cfg->n_allowed_gids; i++) {
                if (cfg->allowed_gids[i] == gid)
                        return true;
                for (size_t j = 0; j < ngroups; j++)
                        if (cfg->allowed_gids[i] == groups[j])
                                return true;
        }
        return false;
}

static void print_seconds(FILE *out, const char *key, unsigned ms) {
        if (ms % 1000 == 0)
                fprintf(out, "%s = %u\n", key, ms / 1000);
        else
                fprintf(out, "%s = %u.%03u\n", key, ms / 1000, ms % 1000);
}

void config_print(const struct config *cfg, FILE *out) {
        fprintf(out, "# Effective settings: built-in defaults, then %s%s, then the "
                     "command line.\n",
                cfg->file ? "the file " : "no file", cfg->file ? cfg->file : "");
        fprintf(out, "# socket, socket_mode and socket_group apply only without "
                     "socket activation.\n");
        if (cfg->socket_path)
                fprintf(out, "socket = %s\n", cfg->socket_path);
        else
                fprintf(out, "# socket is not set (needed without socket activation)\n");
        fprintf(out, "socket_mode = %04o\n", cfg->socket_mode);
        if (cfg->has_socket_group) {
                struct group *gr = getgrgid(cfg->socket_group);
                if (gr)
                        fprintf(out, "socket_group = %s\n", gr->gr_name);
                else
                        fprintf(out, "socket_group = %u\n", (unsigned)cfg->socket_group);
        } else {
                fprintf(out, "# socket_group is not set (the server's own group)\n");
        }
        if (!cfg->n_allowed_uids && !cfg->n_allowed_gids)
                fprintf(out, "# allowed_users and allowed_groups are not set: anyone "
                             "who can open the socket may connect\n");
        if (cfg->n_allowed_uids) {
                fprintf(out, "allowed_users =");
                for (size_t i = 0; i < cfg->n_allowed_uids; i++) {
                        struct passwd *pw = getpwuid(cfg->allowed_uids[i]);
                        if (pw)
                                fprintf(out, " %s", pw->pw_name);
                        else
                                fprintf(out, " %u", (unsigned)cfg->allowed_uids[i]);
                }
                fprintf(out, "\n");
        }
        if (cfg->n_allowed_gids) {
                fprintf(out, "allowed_groups =");
                for (size_t i = 0; i < cfg->n_allowed_gids; i++) {
                        struct group *gr = getgrgid(cfg->allowed_gids[i]);
                        if (gr)
                                fprintf(out, " %s", gr->gr_name);
                        else
                                fprintf(out, " %u", (unsigned)cfg->allowed_gids[i]);
                }
                fprintf(out, "\n");
        }
        fprintf(out, "max_children = %u\n", cfg->max_children);
        fprintf(out, "max_jobs_per_client = %u\n", cfg->max_jobs_per_client);
        fprintf(out, "max_connections_per_uid = %u\n", cfg->max_connections_per_uid);
        fprintf(out, "client_queue = %u\n", cfg->client_queue);
        fprintf(out, "max_children_per_uid = %u\n", cfg->max_children_per_uid);
        fprintf(out, "client_queue_bytes = %lu\n", cfg->client_queue_bytes);
        fprintf(out, "client_queue_bytes_per_uid = %lu\n", cfg->client_queue_bytes_per_uid);
        print_seconds(out, "grace", cfg->grace_ms);
        print_seconds(out, "idle_exit", cfg->idle_exit_ms);
        fprintf(out, "log_level = %s\n", config_log_level_name(cfg->log_level));

        if (cfg->n_preload) {
                fprintf(out, "preload =");
                for (size_t i = 0; i < cfg->n_preload; i++)
                        fprintf(out, " %s", cfg->preload[i]);
                fprintf(out, "\n");
        } else {
                fprintf(out, "# preload is not set\n");
        }
        fprintf(out, "prefork = %u\n", cfg->prefork);

        if (cfg->default_seccomp_policy)
                fprintf(out, "default_seccomp_policy = %s\n", cfg->default_seccomp_policy);
        else
                fprintf(out, "# default_seccomp_policy is not set\n");

        if (cfg->n_python_preload) {
                fprintf(out, "python_preload =");
                for (size_t i = 0; i < cfg->n_python_preload; i++)
                        fprintf(out, " %s", cfg->python_preload[i]);
                fprintf(out, "\n");
        } else if (cfg->python) {
                fprintf(out, "# python_preload names no module: Python is embedded "
                             "and imports nothing (--python-preload '')\n");
        } else {
                fprintf(out, "# python_preload is not set (no embedded Python)\n");
        }
}

/* ---- reload ------------------------------------------------------------------------ */

static bool same_string(const char *a, const char *b) {
        return a == b || (a && b && strcmp(a, b) == 0);
}

static bool same_preload(const struct config *a, const struct config *b) {
        if (a->n_preload != b->n_preload)
                return false;
        for (size_t i = 0; i < a->n_preload; i++)
                if (strcmp(a->preload[i], b->preload[i]) != 0)
                        return false;
        return true;
}

static bool same_python(const struct config *a, const struct config *b) {
        if (a->python != b->python || a->n_python_preload != b->n_python_preload)
                return false;
        for (size_t i = 0; i < a->n_python_preload; i++)
                if (strcmp(a->python_preload[i], b->python_preload[i]) != 0)
                        return false;
        return true;
}

#define SWAP(a, b)                                                                   \
        do {                                                                         \
                __typeof__(a) swap_tmp_ = (a);                                       \
                (a) = (b);                                                           \
                (b) = swap_tmp_;                                                     \
        } while (0)

void config_reload_into(struct config *live, struct config *fresh, char *restart,
                        size_t restartlen) {
        /* What was set up once at start: the socket, the libraries, the
         * pre-forked pool's size, the compiled admin policy and the
         * embedded interpreter's imports. */
        size_t n = 0;
        restart[0] = '\0';
#define RESTART_ONLY(changed, key)                                                     \
        if ((changed) && n < restartlen)                                               \
                n += (size_t)snprintf(restart + n, restartlen - n, "%s%s", n ? ", " : "", \
                                      key)
        RESTART_ONLY(!same_string(live->socket_path, fresh->socket_path), "socket");
        RESTART_ONLY(live->socket_mode != fresh->socket_mode, "socket_mode");
        RESTART_ONLY(live->has_socket_group != fresh->has_socket_group ||
                             live->socket_group != fresh->socket_group,
                     "socket_group");
        RESTART_ONLY(!same_preload(live, fresh), "preload");
        RESTART_ONLY(live->prefork != fresh->prefork, "prefork");
        RESTART_ONLY(!same_string(live->default_seccomp_policy, fresh->default_seccomp_policy),
                     "default_seccomp_policy");
        RESTART_ONLY(!same_python(live, fresh), "python_preload");
#undef RESTART_ONLY
        /* What is read where it is used: taken over whole. */
        SWAP(live->file, fresh->file);
        SWAP(live->allowed_uids, fresh->allowed_uids);
        SWAP(live->n_allowed_uids, fresh->n_allowed_uids);
        SWAP(live->allowed_gids, fresh->allowed_gids);
        SWAP(live->n_allowed_gids, fresh->n_allowed_gids);
        live->max_children = fresh->max_children;
        live->max_jobs_per_client = fresh->max_jobs_per_client;
        live->max_connections_per_uid = fresh->max_connections_per_uid;
        live->client_queue = fresh->client_queue;
        live->max_children_per_uid = fresh->max_children_per_uid;
        live->client_queue_bytes = fresh->client_queue_bytes;
        live->client_queue_bytes_per_uid = fresh->client_queue_bytes_per_uid;
        live->grace_ms = fresh->grace_ms;
        live->idle_exit_ms = fresh->idle_exit_ms;
        live->log_level = fresh->log_level;
}
