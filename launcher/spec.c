/* SPDX-License-Identifier: MIT */
/*
 * spec.c: job specifications. A spec is plain data owned by the caller;
 * mps_process_new() takes a deep copy, so one spec can start many jobs.
 * Its job options live in spec->spawn, the wire-level description (see
 * lib.h), so that a setter is all an option needs here.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "fdutil.h"
#include "lib.h"
#include "rlimits.h"

extern char **environ;

/*
 * The strings of spec->spawn that the spec owns, by offset. Free and copy
 * walk this table, so a new string option is one line here; scalar options
 * need nothing, since the copy starts as a copy of the whole struct.
 */
static const size_t owned_strings[] = {
        offsetof(struct mps__spawn, path),
        offsetof(struct mps__spawn, call_entry),
        offsetof(struct mps__spawn, cwd),
        offsetof(struct mps__spawn, name),
        offsetof(struct mps__spawn, seccomp_name),
        offsetof(struct mps__spawn, seccomp_text),
};
#define N_OWNED_STRINGS (sizeof(owned_strings) / sizeof(owned_strings[0]))

static const char **owned_string(struct mps__spawn *m, size_t i) {
        return (const char **)(void *)((char *)m + owned_strings[i]);
}

MPS_API int mps_spec_new(mps_spec **ret_spec) {
        mps_spec *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->spawn.umask = -1;
        *ret_spec = s;
        return 0;
}

void mps__strv_free(char **v) {
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

/* The spec's argv, which it owns (its const is the server's view). */
static void argv_free(const char **argv) {
        mps__strv_free((char **)argv);
}

static void edits_free(struct env_edit *edits, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(edits[i].name);
                free(edits[i].value);
        }
        free(edits);
}

MPS_API void mps_spec_free(mps_spec *s) {
        if (!s)
                return;
        for (size_t i = 0; i < N_OWNED_STRINGS; i++)
                free((char *)*owned_string(&s->spawn, i));
        argv_free(s->spawn.argv);
        cJSON_Delete((cJSON *)s->spawn.call_args);
        edits_free(s->edits, s->nedits);
        free(s->fds);
        free(s);
}

/* Replaces *slot with a copy of value (NULL allowed). */
static int set_string(const char **slot, const char *value) {
        char *copy = NULL;
        if (value && !(copy = strdup(value)))
                return -ENOMEM;
        free((char *)*slot);
        *slot = copy;
        return 0;
}

static char **strv_copy(const char *const *v, size_t *ret_n) {
        size_t n = 0;
        while (v[n])
                n++;
        char **c = calloc(n + 1, sizeof(*c));
        if (!c)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (!(c[i] = strdup(v[i]))) {
                        mps__strv_free(c);
                        return NULL;
                }
        if (ret_n)
                *ret_n = n;
        return c;
}

/* Drops the spec's program (exec or call) before another is set. */
static void clear_program(mps_spec *s) {
        struct mps__spawn *m = &s->spawn;
        free((char *)m->path);
        free((char *)m->call_entry);
        argv_free(m->argv);
        cJSON_Delete((cJSON *)m->call_args);
        m->path = m->call_entry = NULL;
        m->argv = NULL;
        m->argc = 0;
        m->call_args = NULL;
}

MPS_API int mps_spec_set_exec(mps_spec *s, const char *path,
                              const char *const argv[]) {
        size_t n;
        if (!s || !path || !*path || !argv || !argv[0])
                return -EINVAL;
        char *p = strdup(path);
        char **v = strv_copy(argv, &n);
        if (!p || !v) {
                free(p);
                mps__strv_free(v);
                return -ENOMEM;
        }
        if (n > MPS_WIRE_ARGV_MAX) {
                free(p);
                mps__strv_free(v);
                return -E2BIG;
        }
        clear_program(s);
        s->spawn.path = p;
        s->spawn.argv = (const char **)v;
        s->spawn.argc = n;
        return 0;
}

/* The call arguments as a tree, or -EINVAL for what the server could not
 * parse (refused here and now rather than at the start). */
static int parse_call_args(const char *args_json, cJSON **ret) {
        if (!args_json) {
                *ret = NULL;
                return 0;
        }
        cJSON *args = cJSON_Parse(args_json);
        if (!args || !mps__wire_numbers_finite(args)) {
                cJSON_Delete(args);
                return -EINVAL;
        }
        *ret = args;
        return 0;
}

MPS_API int mps_spec_set_call(mps_spec *s, const char *entry, const char *args_json) {
        if (!s || !entry || !*entry || strlen(entry) > MPS_WIRE_NAME_MAX)
                return -EINVAL;
        cJSON *a;
        if (parse_call_args(args_json, &a) < 0)
                return -EINVAL;
        char *e = strdup(entry);
        const char *argv[] = {entry, NULL};
        char **v = strv_copy(argv, NULL);
        if (!e || !v) {
                free(e);
                cJSON_Delete(a);
                mps__strv_free(v);
                return -ENOMEM;
        }
        clear_program(s);
        s->spawn.call_entry = e;
        s->spawn.call_args = a;
        s->spawn.argv = (const char **)v;
        s->spawn.argc = 1;
        return 0;
}

MPS_API int mps_spec_env_clear(mps_spec *s) {
        if (!s)
                return -EINVAL;
        s->env_clear = true;
        return 0;
}

static int add_edit(mps_spec *s, const char *name, const char *value) {
        if (!s || !name || !*name || strchr(name, '='))
                return -EINVAL;
        struct env_edit *n = realloc(s->edits, (s->nedits + 1) * sizeof(*n));
        if (!n)
                return -ENOMEM;
        s->edits = n;
        struct env_edit e = {strdup(name), value ? strdup(value) : NULL};
        if (!e.name || (value && !e.value)) {
                free(e.name);
                free(e.value);
                return -ENOMEM;
        }
        s->edits[s->nedits++] = e;
        return 0;
}

MPS_API int mps_spec_env_set(mps_spec *s, const char *name, const char *value) {
        if (!value)
                return -EINVAL;
        return add_edit(s, name, value);
}

MPS_API int mps_spec_env_unset(mps_spec *s, const char *name) {
        return add_edit(s, name, NULL);
}

MPS_API int mps_spec_set_cwd(mps_spec *s, const char *dir) {
        if (!s || (dir && !*dir))
                return -EINVAL;
        return set_string(&s->spawn.cwd, dir);
}

MPS_API int mps_spec_set_name(mps_spec *s, const char *name) {
        if (!s || (name && strlen(name) > MPS_WIRE_NAME_MAX))
                return -EINVAL;
        return set_string(&s->spawn.name, name);
}

MPS_API int mps_spec_map_fd(mps_spec *s, int child_fd, int caller_fd) {
        if (!s || child_fd < 0 || child_fd > MPS_WIRE_TARGET_FD_MAX || caller_fd < -1)
                return -EINVAL;
        for (size_t i = 0; i < s->nfds; i++)
                if (s->fds[i].child_fd == child_fd) {
                        s->fds[i].caller_fd = caller_fd;
                        return 0;
                }
        if (s->nfds >= MPS_WIRE_FDS_MAX)
                return -EMFILE;
        struct fd_pair *n = realloc(s->fds, (s->nfds + 1) * sizeof(*n));
        if (!n)
                return -ENOMEM;
        s->fds = n;
        s->fds[s->nfds++] = (struct fd_pair){child_fd, caller_fd};
        return 0;
}

MPS_API int mps_spec_set_daemon(mps_spec *s, bool daemon) {
        if (!s)
                return -EINVAL;
        s->spawn.daemon = daemon;
        return 0;
}

MPS_API int mps_spec_set_timeout(mps_spec *s, double seconds, double kill_after) {
        if (!s || !(seconds >= 0) || seconds > MPS_WIRE_SECONDS_MAX ||
            kill_after > MPS_WIRE_SECONDS_MAX)
                return -EINVAL;
        s->spawn.timeout = seconds;
        s->spawn.kill_after = kill_after >= 0 ? kill_after : MPS_WIRE_KILL_AFTER_DEFAULT;
        return 0;
}

MPS_API int mps_spec_set_rlimit(mps_spec *s, int resource, rlim_t soft, rlim_t hard) {
        bool keep = hard == MPS_RLIM_KEEP;
        if (!s || !mps__rlimit_name(resource) || soft == MPS_RLIM_KEEP ||
            (!keep && soft > hard))
                return -EINVAL;
        struct mps__spawn *m = &s->spawn;
        size_t i = 0;
        while (i < m->nrlimits && m->rlimits[i].resource != resource)
                i++;
        if (i == MPS_WIRE_RLIMITS_MAX)
                return -E2BIG;
        m->rlimits[i] = (struct mps__rlimit){
                .resource = resource,
                .soft = soft,
                .hard = keep ? 0 : hard,
                .hard_keep = keep,
        };
        if (i == m->nrlimits)
                m->nrlimits++;
        return 0;
}

MPS_API int mps_spec_set_seccomp(mps_spec *s, const char *name, const char *text) {
        if (!s || (text && strlen(text) > MPS_WIRE_MSG_MAX / 2) ||
            (name && strlen(name) > MPS_WIRE_NAME_MAX))
                return -EINVAL;
        char *n = name ? strdup(name) : NULL;
        char *t = text ? strdup(text) : NULL;
        if ((name && !n) || (text && !t)) {
                free(n);
                free(t);
                return -ENOMEM;
        }
        free((char *)s->spawn.seccomp_name);
        free((char *)s->spawn.seccomp_text);
        s->spawn.seccomp_name = n;
        s->spawn.seccomp_text = t;
        return 0;
}

MPS_API int mps_spec_set_seccomp_file(mps_spec *s, const char *path) {
        if (!s || !path)
                return -EINVAL;
        char *buf;
        size_t n;
        int r = mps__read_file(path, MPS_WIRE_MSG_MAX / 2, &buf, &n);
        if (r < 0)
                return r;
        const char *base = strrchr(path, '/');
        r = mps_spec_set_seccomp(s, base ? base + 1 : path, buf);
        free(buf);
        return r;
}

MPS_API int mps_spec_set_nice(mps_spec *s, int nice) {
        if (!s || nice < -20 || nice > 19)
                return -EINVAL;
        s->spawn.has_nice = true;
        s->spawn.nice = nice;
        return 0;
}

MPS_API int mps_spec_set_umask(mps_spec *s, mode_t mask) {
        if (!s || mask > 0777)
                return -EINVAL;
        s->spawn.umask = (int)mask;
        return 0;
}

MPS_API int mps_spec_set_no_new_privs(mps_spec *s, bool on) {
        if (!s)
                return -EINVAL;
        s->spawn.no_new_privs = on;
        return 0;
}

MPS_API int mps_spec_set_pdeathsig(mps_spec *s, int sig) {
        if (!s || sig < 0 || sig > 64)
                return -EINVAL;
        s->spawn.pdeathsig = sig;
        return 0;
}

MPS_API int mps_spec_set_kill_tree(mps_spec *s, bool on) {
        if (!s)
                return -EINVAL;
        s->spawn.kill_tree = on;
        return 0;
}

MPS_API int mps_spec_set_detached(mps_spec *s, bool detached) {
        if (!s)
                return -EINVAL;
        s->spawn.detached = detached;
        return 0;
}

MPS_API int mps_spec_set_new_session(mps_spec *s, bool new_session) {
        if (!s)
                return -EINVAL;
        s->spawn.new_session = new_session;
        return 0;
}

/* A controlling terminal needs a session that has none yet: the job's own. */
MPS_API int mps_spec_set_controlling_terminal(mps_spec *s, bool on) {
        if (!s)
                return -EINVAL;
        s->spawn.controlling_terminal = on;
        if (on)
                s->spawn.new_session = true;
        return 0;
}

MPS_API int mps_spec_set_report_stops(mps_spec *s, bool on) {
        if (!s)
                return -EINVAL;
        s->spawn.report_stops = on;
        return 0;
}

/* Replaces every pointer of dst (a shallow copy of src) with a copy of what
 * it points to; on failure the pointers not yet copied are NULL, so that
 * mps_spec_free(dst) frees exactly what was copied. */
static int copy_pointees(mps_spec *dst, const mps_spec *src) {
        struct mps__spawn *m = &dst->spawn;
        const char *strings[N_OWNED_STRINGS];
        for (size_t i = 0; i < N_OWNED_STRINGS; i++) {
                strings[i] = *owned_string(m, i);
                *owned_string(m, i) = NULL;
        }
        m->argv = NULL;
        m->call_args = NULL;
        dst->edits = NULL;
        dst->nedits = 0;
        dst->fds = NULL;
        dst->nfds = 0;

        for (size_t i = 0; i < N_OWNED_STRINGS; i++)
                if (set_string(owned_string(m, i), strings[i]) < 0)
                        return -ENOMEM;
        if (src->spawn.argv &&
            !(m->argv = (const char **)strv_copy(src->spawn.argv, NULL)))
                return -ENOMEM;
        if (src->spawn.call_args &&
            !(m->call_args = cJSON_Duplicate(src->spawn.call_args, true)))
                return -ENOMEM;
        for (size_t i = 0; i < src->nedits; i++)
                if (add_edit(dst, src->edits[i].name, src->edits[i].value) < 0)
                        return -ENOMEM;
        if (src->nfds) {
                dst->fds = malloc(src->nfds * sizeof(*dst->fds));
                if (!dst->fds)
                        return -ENOMEM;
                memcpy(dst->fds, src->fds, src->nfds * sizeof(*dst->fds));
                dst->nfds = src->nfds;
        }
        return 0;
}

int mps__spec_copy(const mps_spec *src, mps_spec **ret) {
        mps_spec *s = malloc(sizeof(*s));
        if (!s)
                return -ENOMEM;
        /* Every scalar option comes with the struct; copy_pointees then
         * makes the copy own what it points to. */
        *s = *src;
        if (copy_pointees(s, src) < 0) {
                mps_spec_free(s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}

/* Index of NAME in a vector of "NAME=VALUE" strings, or -1. */
static ssize_t env_find(char **v, size_t n, const char *name) {
        size_t len = strlen(name);
        for (size_t i = 0; i < n; i++)
                if (strncmp(v[i], name, len) == 0 && v[i][len] == '=')
                        return (ssize_t)i;
        return -1;
}

int mps__spec_build_env(const mps_spec *spec, char ***ret_envp, size_t *ret_n) {
        size_t n = 0, cap = spec->nedits + 1;
        char **base = spec->env_clear ? NULL : environ;
        if (base)
                while (base[cap - spec->nedits - 1])
                        cap++;
        char **v = calloc(cap, sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; base && base[i]; i++)
                if (!(v[n++] = strdup(base[i])))
                        goto oom;
        for (size_t i = 0; i < spec->nedits; i++) {
                const struct env_edit *e = &spec->edits[i];
                ssize_t at = env_find(v, n, e->name);
                if (!e->value) {
                        if (at >= 0) {
                                free(v[at]);
                                v[at] = v[--n];
                                v[n] = NULL;
                        }
                        continue;
                }
                size_t len = strlen(e->name) + 1 + strlen(e->value) + 1;
                char *kv = malloc(len);
                if (!kv)
                        goto oom;
                snprintf(kv, len, "%s=%s", e->name, e->value);
                if (at >= 0) {
                        free(v[at]);
                        v[at] = kv;
                } else {
                        v[n++] = kv;
                }
        }
        if (n > MPS_WIRE_ENV_MAX) {
                mps__strv_free(v);
                return -E2BIG;
        }
        *ret_envp = v;
        *ret_n = n;
        return 0;
oom:
        mps__strv_free(v);
        return -ENOMEM;
}
