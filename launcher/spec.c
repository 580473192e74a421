/*
 * spec.c: job specifications. A spec is plain data owned by the caller;
 * mps_process_new() takes a deep copy, so one spec can start many jobs.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "fdutil.h"
#include "lib.h"
#include "rlimits.h"

extern char **environ;

MPS_API int mps_spec_new(mps_spec **ret_spec) {
        mps_spec *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->umask = -1;
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

MPS_API void mps_spec_free(mps_spec *s) {
        if (!s)
                return;
        free(s->path);
        free(s->call_entry);
        free(s->call_args_json);
        mps__strv_free(s->argv);
        for (size_t i = 0; i < s->nedits; i++) {
                free(s->edits[i].name);
                free(s->edits[i].value);
        }
        free(s->edits);
        free(s->cwd);
        free(s->name);
        free(s->fds);
        free(s->seccomp_name);
        free(s->seccomp_text);
        free(s);
}

/* Replaces *slot with a copy of value (NULL allowed). */
static int set_string(char **slot, const char *value) {
        char *copy = NULL;
        if (value && !(copy = strdup(value)))
                return -ENOMEM;
        free(*slot);
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
        free(s->path);
        mps__strv_free(s->argv);
        s->path = p;
        s->argv = v;
        s->argc = n;
        free(s->call_entry);
        free(s->call_args_json);
        s->call_entry = s->call_args_json = NULL;
        return 0;
}

MPS_API int mps_spec_set_call(mps_spec *s, const char *entry, const char *args_json) {
        if (!s || !entry || !*entry || strlen(entry) > MPS_WIRE_NAME_MAX)
                return -EINVAL;
        if (args_json) {
                /* Refuse what the server could not parse, here and now. */
                cJSON *probe = cJSON_Parse(args_json);
                bool finite = probe && mps__wire_numbers_finite(probe);
                cJSON_Delete(probe);
                if (!finite)
                        return -EINVAL;
        }
        char *e = strdup(entry);
        char *a = args_json ? strdup(args_json) : NULL;
        const char *argv[] = {entry, NULL};
        char **v = strv_copy(argv, NULL);
        if (!e || (args_json && !a) || !v) {
                free(e);
                free(a);
                mps__strv_free(v);
                return -ENOMEM;
        }
        free(s->call_entry);
        free(s->call_args_json);
        free(s->path);
        mps__strv_free(s->argv);
        s->call_entry = e;
        s->call_args_json = a;
        s->path = NULL;
        s->argv = v;
        s->argc = 1;
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
        return set_string(&s->cwd, dir);
}

MPS_API int mps_spec_set_name(mps_spec *s, const char *name) {
        if (!s || (name && strlen(name) > MPS_WIRE_NAME_MAX))
                return -EINVAL;
        return set_string(&s->name, name);
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
        s->daemon = daemon;
        return 0;
}

MPS_API int mps_spec_set_timeout(mps_spec *s, double seconds, double kill_after) {
        if (!s || !(seconds >= 0) || seconds > MPS_WIRE_SECONDS_MAX ||
            kill_after > MPS_WIRE_SECONDS_MAX)
                return -EINVAL;
        s->timeout = seconds;
        s->kill_after = kill_after >= 0 ? kill_after : MPS_WIRE_KILL_AFTER_DEFAULT;
        return 0;
}

MPS_API int mps_spec_set_rlimit(mps_spec *s, int resource, rlim_t soft, rlim_t hard) {
        bool keep = hard == MPS_RLIM_KEEP;
        if (!s || !mps__rlimit_name(resource) || soft == MPS_RLIM_KEEP ||
            (!keep && soft > hard))
                return -EINVAL;
        size_t i = 0;
        while (i < s->nrlimits && s->rlimits[i].resource != resource)
                i++;
        if (i == MPS_WIRE_RLIMITS_MAX)
                return -E2BIG;
        s->rlimits[i] = (struct mps__rlimit){
                .resource = resource,
                .soft = soft,
                .hard = keep ? 0 : hard,
                .hard_keep = keep,
        };
        if (i == s->nrlimits)
                s->nrlimits++;
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
        free(s->seccomp_name);
        free(s->seccomp_text);
        s->seccomp_name = n;
        s->seccomp_text = t;
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
        s->has_nice = true;
        s->nice = nice;
        return 0;
}

MPS_API int mps_spec_set_umask(mps_spec *s, mode_t mask) {
        if (!s || mask > 0777)
                return -EINVAL;
        s->umask = (int)mask;
        return 0;
}

MPS_API int mps_spec_set_no_new_privs(mps_spec *s, bool on) {
        if (!s)
                return -EINVAL;
        s->no_new_privs = on;
        return 0;
}

MPS_API int mps_spec_set_pdeathsig(mps_spec *s, int sig) {
        if (!s || sig < 0 || sig > 64)
                return -EINVAL;
        s->pdeathsig = sig;
        return 0;
}

MPS_API int mps_spec_set_kill_tree(mps_spec *s, bool on) {
        if (!s)
                return -EINVAL;
        s->kill_tree = on;
        return 0;
}

MPS_API int mps_spec_set_detached(mps_spec *s, bool detached) {
        if (!s)
                return -EINVAL;
        s->detached = detached;
        return 0;
}

MPS_API int mps_spec_set_new_session(mps_spec *s, bool new_session) {
        if (!s)
                return -EINVAL;
        s->new_session = new_session;
        return 0;
}

int mps__spec_copy(const mps_spec *src, mps_spec **ret) {
        mps_spec *s;
        int r = mps_spec_new(&s);
        if (r < 0)
                return r;
        s->argc = src->argc;
        s->env_clear = src->env_clear;
        s->daemon = src->daemon;
        s->new_session = src->new_session;
        s->detached = src->detached;
        s->has_nice = src->has_nice;
        s->nice = src->nice;
        s->umask = src->umask;
        s->no_new_privs = src->no_new_privs;
        s->pdeathsig = src->pdeathsig;
        s->kill_tree = src->kill_tree;
        if ((src->seccomp_name && !(s->seccomp_name = strdup(src->seccomp_name))) ||
            (src->seccomp_text && !(s->seccomp_text = strdup(src->seccomp_text))))
                goto oom;
        s->timeout = src->timeout;
        s->kill_after = src->kill_after;
        s->nrlimits = src->nrlimits;
        memcpy(s->rlimits, src->rlimits, sizeof(s->rlimits));
        if ((src->path && !(s->path = strdup(src->path))) ||
            (src->call_entry && !(s->call_entry = strdup(src->call_entry))) ||
            (src->call_args_json && !(s->call_args_json = strdup(src->call_args_json))) ||
            (src->argv && !(s->argv = strv_copy((const char *const *)src->argv, NULL))) ||
            (src->cwd && !(s->cwd = strdup(src->cwd))) ||
            (src->name && !(s->name = strdup(src->name))))
                goto oom;
        for (size_t i = 0; i < src->nedits; i++)
                if (add_edit(s, src->edits[i].name, src->edits[i].value) < 0)
                        goto oom;
        if (src->nfds) {
                s->fds = malloc(src->nfds * sizeof(*s->fds));
                if (!s->fds)
                        goto oom;
                memcpy(s->fds, src->fds, src->nfds * sizeof(*s->fds));
                s->nfds = src->nfds;
        }
        *ret = s;
        return 0;
oom:
        mps_spec_free(s);
        return -ENOMEM;
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
