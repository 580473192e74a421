/* SPDX-License-Identifier: MIT */
/*
 * wire.c: the message schema of the mpspawn protocol, each message's typed
 * encoder and decoder (see wire.h and docs/protocol.md). How a message
 * travels (datagrams, SCM_RIGHTS) is transport.c's. Used by mpforkserver and
 * libmpspawn alike.
 */
#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "rlimits.h"
#include "../include/mpspawn.h"
#include "say.h"

/* JSON numbers are doubles: integers are exact up to 2^53. */
#define WIRE_INT_MAX 9007199254740991.0

static const char *const op_names[] = {
        [MPS_OP_UNKNOWN] = "unknown", [MPS_OP_HELLO] = "hello",
        [MPS_OP_SPAWN] = "spawn",     [MPS_OP_SIGNAL] = "signal",
        [MPS_OP_WAIT] = "wait",       [MPS_OP_LIST] = "list",
        [MPS_OP_STATS] = "stats",     [MPS_OP_JOBS] = "jobs",
        [MPS_OP_SERVER_STATS] = "server_stats",
        [MPS_OP_WELCOME] = "welcome", [MPS_OP_SPAWNED] = "spawned",
        [MPS_OP_EXITED] = "exited",   [MPS_OP_SIGNALED] = "signaled",
        [MPS_OP_ERROR] = "error",
        [MPS_OP_FOREGROUND] = "foreground",
        [MPS_OP_STOPPED] = "stopped", [MPS_OP_CONTINUED] = "continued",
        [MPS_OP_ADOPT] = "adopt",     [MPS_OP_ADOPTED] = "adopted",
        [MPS_OP_ENV] = "env",         [MPS_OP_SPAWN_BATCH] = "spawn_batch",
};

const char *mps__op_name(enum mps__op op) {
        if ((size_t)op >= sizeof(op_names) / sizeof(op_names[0]))
                return "unknown";
        return op_names[op];
}

enum mps__op mps__op_from_name(const char *name) {
        for (size_t i = 1; i < sizeof(op_names) / sizeof(op_names[0]); i++)
                if (strcmp(op_names[i], name) == 0)
                        return (enum mps__op)i;
        return MPS_OP_UNKNOWN;
}

uint64_t mps__wire_tag(const cJSON *json) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(json, "tag");
        if (!cJSON_IsNumber(t) || !(t->valuedouble >= 0) ||
            t->valuedouble > WIRE_INT_MAX || t->valuedouble != floor(t->valuedouble))
                return 0;
        return (uint64_t)t->valuedouble;
}

/*
 * Numbers as exact decimal text (cJSON raw items). cJSON 1.7.15 prints every
 * number with %1.15g, reads it back with sscanf and prints it again with
 * %1.17g when the two differ: before these, that was a sixth of the
 * server's instructions per job (make bench-callgrind: 136k -> 114k). And
 * %1.15g rounds integers above about 4.5e15, which ids, tags and counts
 * must never be.
 */
static cJSON *add_raw(cJSON *o, const char *key, const char *text) {
        cJSON *n = cJSON_CreateRaw(text);
        if (!n)
                return NULL;
        if (!cJSON_AddItemToObject(o, key, n)) {
                cJSON_Delete(n);
                return NULL;
        }
        return n;
}

/*
 * Decimal text without snprintf, which was most of the work of printing a
 * reply (make bench-callgrind): the tree encoders' raw numbers and the
 * formatted replies (mps__spawned_format, mps__exited_format) share these,
 * so the two write the very same text.
 */
#define U64_TEXT_MAX 21 /* 20 digits and the NUL */

/* v in decimal at buf (at least U64_TEXT_MAX bytes), NUL-terminated; the
 * length. */
static size_t u64_text(uint64_t v, char *buf) {
        char tmp[U64_TEXT_MAX];
        size_t n = 0;
        do
                tmp[n++] = (char)('0' + v % 10);
        while ((v /= 10) != 0);
        for (size_t i = 0; i < n; i++)
                buf[i] = tmp[n - 1 - i];
        buf[n] = '\0';
        return n;
}

static size_t int_text(long long v, char *buf) {
        if (v >= 0)
                return u64_text((uint64_t)v, buf);
        buf[0] = '-';
        return 1 + u64_text(-(uint64_t)v, buf + 1);
}

/* A duration in seconds (0..1e12, as decoders accept), to the microsecond:
 * what rusage gives, and finer than a job's wall time means anything. At
 * least 32 bytes at buf. */
static size_t seconds_text(double seconds, char *buf) {
        /* Not fmin, which the compiler leaves a libm call (floor and isnan
         * it inlines): without it the CLI and clients need not load libm
         * at every start (linked --as-needed). */
        uint64_t us = seconds > 0 ? (uint64_t)((seconds < 1e12 ? seconds : 1e12) * 1e6 + 0.5) : 0;
        size_t n = u64_text(us / 1000000, buf);
        char frac[U64_TEXT_MAX];
        size_t f = u64_text(us % 1000000 + 1000000, frac); /* "1" and six digits */
        buf[n++] = '.';
        memcpy(buf + n, frac + 1, f);
        return n + f - 1;
}

static cJSON *add_u64(cJSON *o, const char *key, uint64_t v) {
        char buf[U64_TEXT_MAX];
        u64_text(v, buf);
        return add_raw(o, key, buf);
}

static cJSON *add_int(cJSON *o, const char *key, int v) {
        char buf[U64_TEXT_MAX + 1];
        int_text(v, buf);
        return add_raw(o, key, buf);
}

static cJSON *add_seconds(cJSON *o, const char *key, double seconds) {
        char buf[32];
        seconds_text(seconds, buf);
        return add_raw(o, key, buf);
}

cJSON *mps__wire_new(enum mps__op op) {
        cJSON *o = cJSON_CreateObject();
        if (!o)
                return NULL;
        if (!add_int(o, "v", MPS_PROTOCOL_VERSION) ||
            !cJSON_AddStringToObject(o, "op", mps__op_name(op))) {
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}

/* ---- field helpers ------------------------------------------------------ */

/*
 * A spawn request is searched for some thirty fields, and cJSON finds each
 * by comparing its name with every key before it: that was a sixth of the
 * server's instructions per job (make bench-callgrind). While a spawn is
 * decoded, its keys are listed once, in order, each with a cheap tag
 * (length and first two bytes), so that a look-up compares tags and
 * checks one name. The first of duplicate keys is found first, as cJSON
 * finds it; an object with more keys than fit is searched as before.
 */
#define FIELD_INDEX_MAX 48

struct field_index {
        const cJSON *obj;
        size_t n;
        uint32_t tag[FIELD_INDEX_MAX];
        const cJSON *item[FIELD_INDEX_MAX];
};

/* The index in use on this thread, during mps__spawn_decode. */
static _Thread_local const struct field_index *indexed;

static uint32_t key_tag(const char *key) {
        size_t n = strlen(key);
        return (uint32_t)(n & 0xffff) << 16 | (uint32_t)(unsigned char)key[0] << 8 |
               (n ? (uint32_t)(unsigned char)key[1] : 0);
}

static bool field_index_build(struct field_index *x, const cJSON *obj) {
        x->obj = obj;
        x->n = 0;
        /* (cJSON stops at a child without a name: so do we.) */
        for (const cJSON *c = obj->child; c && c->string; c = c->next) {
                if (x->n == FIELD_INDEX_MAX)
                        return false;
                x->tag[x->n] = key_tag(c->string);
                x->item[x->n++] = c;
        }
        return true;
}

static const cJSON *field(const cJSON *o, const char *key) {
        const struct field_index *x = indexed;
        if (!x || x->obj != o)
                return cJSON_GetObjectItemCaseSensitive(o, key);
        uint32_t t = key_tag(key);
        for (size_t i = 0; i < x->n; i++)
                if (x->tag[i] == t && strcmp(x->item[i]->string, key) == 0)
                        return x->item[i];
        return NULL;
}

/* Each getter returns 0 (absent optional fields keep the default already in
 * *out), or -EINVAL with a reason naming the field. */

static int get_num(const cJSON *o, const char *key, bool required, double lo,
                   double hi, bool integral, double *out, char *err,
                   size_t errlen) {
        const cJSON *it = field(o, key);
        if (!it || cJSON_IsNull(it)) {
                if (!required)
                        return 0;
                mps__say(err, errlen, "field \"%s\" is missing", key);
                return -EINVAL;
        }
        if (!cJSON_IsNumber(it) || isnan(it->valuedouble) ||
            it->valuedouble < lo || it->valuedouble > hi ||
            (integral && it->valuedouble != floor(it->valuedouble))) {
                mps__say(err, errlen, "field \"%s\" must be %s from %g to %g", key,
                    integral ? "an integer" : "a number", lo, hi);
                return -EINVAL;
        }
        *out = it->valuedouble;
        return 0;
}

static int get_u64(const cJSON *o, const char *key, bool required,
                   uint64_t *out, char *err, size_t errlen) {
        double d = (double)*out;
        int r = get_num(o, key, required, 0, WIRE_INT_MAX, true, &d, err, errlen);
        if (r == 0)
                *out = (uint64_t)d;
        return r;
}

static int get_int(const cJSON *o, const char *key, bool required, int lo,
                   int hi, int *out, char *err, size_t errlen) {
        double d = *out;
        int r = get_num(o, key, required, lo, hi, true, &d, err, errlen);
        if (r == 0)
                *out = (int)d;
        return r;
}

static int get_str(const cJSON *o, const char *key, bool required,
                   size_t maxlen, const char **out, char *err, size_t errlen) {
        const cJSON *it = field(o, key);
        if (!it || cJSON_IsNull(it)) {
                if (!required)
                        return 0;
                mps__say(err, errlen, "field \"%s\" is missing", key);
                return -EINVAL;
        }
        if (!cJSON_IsString(it)) {
                mps__say(err, errlen, "field \"%s\" must be a string", key);
                return -EINVAL;
        }
        if (strlen(it->valuestring) > maxlen) {
                mps__say(err, errlen, "field \"%s\" is longer than %zu bytes", key,
                    maxlen);
                return -EINVAL;
        }
        *out = it->valuestring;
        return 0;
}

static int get_bool(const cJSON *o, const char *key, bool *out, char *err,
                    size_t errlen) {
        const cJSON *it = field(o, key);
        if (!it || cJSON_IsNull(it))
                return 0;
        if (!cJSON_IsBool(it)) {
                mps__say(err, errlen, "field \"%s\" must be true or false", key);
                return -EINVAL;
        }
        *out = cJSON_IsTrue(it);
        return 0;
}

/* Decodes an array of strings into a malloc()ed NULL-terminated vector. */
static int get_strv(const cJSON *o, const char *key, bool required,
                    size_t maxcount, bool nonempty, const char ***out,
                    size_t *ret_count, char *err, size_t errlen) {
        const cJSON *arr = field(o, key);
        if (!arr || cJSON_IsNull(arr)) {
                if (!required)
                        return 0;
                mps__say(err, errlen, "field \"%s\" is missing", key);
                return -EINVAL;
        }
        if (!cJSON_IsArray(arr)) {
                mps__say(err, errlen, "field \"%s\" must be an array of strings", key);
                return -EINVAL;
        }
        int n = cJSON_GetArraySize(arr);
        if ((size_t)n > maxcount || (nonempty && n == 0)) {
                mps__say(err, errlen, "field \"%s\" must have %s%zu entries", key,
                    nonempty ? "1 to " : "at most ", maxcount);
                return -EINVAL;
        }
        const char **v = calloc((size_t)n + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        size_t i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) {
                if (!cJSON_IsString(it) ||
                    strlen(it->valuestring) >= MPS_WIRE_ARG_STRLEN_MAX) {
                        mps__say(err, errlen,
                            "field \"%s\" entry %zu must be a string of at "
                            "most %d bytes",
                            key, i, MPS_WIRE_ARG_STRLEN_MAX - 1);
                        free(v);
                        return -EINVAL;
                }
                v[i++] = it->valuestring;
        }
        *out = v;
        *ret_count = i;
        return 0;
}

#define TRY(expr)                                                              \
        do {                                                                   \
                int r_ = (expr);                                               \
                if (r_ < 0)                                                    \
                        return r_;                                             \
        } while (0)

/* Adds a field or fails the encoder with NULL. */
#define ADD(expr)                                                              \
        do {                                                                   \
                if (!(expr))                                                   \
                        goto fail;                                             \
        } while (0)

/* A limit as exact decimal text, -1 for unlimited. */
static cJSON *rlim_json(unsigned long long v) {
        char buf[24];
        if (v == (unsigned long long)RLIM_INFINITY)
                return cJSON_CreateNumber(-1);
        snprintf(buf, sizeof(buf), "%llu", v);
        return cJSON_CreateRaw(buf);
}

/* ---- hello / welcome ------------------------------------------------------ */

cJSON *mps__hello_encode(const struct mps__hello *m) {
        cJSON *o = mps__wire_new(MPS_OP_HELLO);
        if (!o)
                return NULL;
        ADD(add_int(o, "protocol", m->protocol));
        if (m->client)
                ADD(cJSON_AddStringToObject(o, "client", m->client));
        return o;
fail:
        cJSON_Delete(o);
        return NULL;
}

int mps__hello_decode(const cJSON *json, struct mps__hello *ret, char *err,
                      size_t errlen) {
        struct mps__hello m = {0};
        TRY(get_int(json, "protocol", true, 0, INT32_MAX, &m.protocol, err, errlen));
        TRY(get_str(json, "client", false, MPS_WIRE_NAME_MAX, &m.client, err, errlen));
        *ret = m;
        return 0;
}

/* By bit; a NULL is a bit this build does not know (yet). */
static const char *const feature_names[] = {"timeout", "rlimits", "detached", "call",
                                            "jobs",    "policy",   "closed_fds",
                                            "cwd_fd", "terminal", "spec_memfd", "fd_bundle",
                                            "timeout_signal", "call_result", "adopt",
                                            "env_ref", "spawn_batch"};

/* By bit, as feature_names: what a client names when its server lacks one. */
static const char *const feature_descriptions[] = {
        "timeouts", "resource limits", "detached jobs", "call jobs",
        "job requests (wait, list, stats)",
        "job policy (seccomp, nice, umask, no_new_privs, pdeathsig, kill_tree)",
        "closed stdio descriptors",
        "a working directory passed as a descriptor",
        "terminal jobs (controlling terminal, stop reports, foreground)",
        "a spec larger than one message (spec_memfd)",
        "more descriptors than one message carries (fd_bundle)",
        "a timeout signal other than SIGTERM",
        "results of call jobs",
        "connections handed over to a shared embedded server (adopt)",
        "environments stored on the connection (env, env_ref)",
        "several spawns in one request (spawn_batch)",
};

const char *mps__feature_description(unsigned feature) {
        for (size_t i = 0; i < sizeof(feature_descriptions) / sizeof(feature_descriptions[0]); i++)
                if (feature == 1u << i && feature_descriptions[i])
                        return feature_descriptions[i];
        return "an unknown feature";
}

unsigned mps__spawn_features(const struct mps__spawn *m) {
        unsigned need = 0;
        if (m->timeout > 0)
                need |= MPS_FEATURE_TIMEOUT;
        if (m->timeout > 0 && m->timeout_signal > 0 && m->timeout_signal != SIGTERM)
                need |= MPS_FEATURE_TIMEOUT_SIGNAL;
        if (m->nrlimits)
                need |= MPS_FEATURE_RLIMITS;
        if (m->detached)
                need |= MPS_FEATURE_DETACHED;
        if (m->call_entry)
                need |= MPS_FEATURE_CALL;
        if (m->seccomp_text || m->has_nice || m->umask >= 0 || m->no_new_privs ||
            m->pdeathsig || m->kill_tree)
                need |= MPS_FEATURE_POLICY;
        for (size_t i = 0; i < m->nfdmap; i++)
                if (m->fdmap[i].source == MPS_WIRE_FD_CLOSED)
                        need |= MPS_FEATURE_CLOSED_FDS;
        if (m->has_cwd_fd)
                need |= MPS_FEATURE_CWD_FD;
        if (m->controlling_terminal || m->report_stops)
                need |= MPS_FEATURE_TERMINAL;
        if (m->env_ref)
                need |= MPS_FEATURE_ENV_REF;
        return need;
}

cJSON *mps__welcome_encode(const struct mps__welcome *m) {
        cJSON *o = mps__wire_new(MPS_OP_WELCOME);
        if (!o)
                return NULL;
        ADD(add_int(o, "protocol", m->protocol));
        ADD(cJSON_AddStringToObject(o, "version", m->version));
        ADD(add_int(o, "pid", m->pid));
        cJSON *features = cJSON_AddArrayToObject(o, "features");
        ADD(features);
        if (m->pidfd) {
                cJSON *s = cJSON_CreateString("pidfd");
                ADD(s);
                cJSON_AddItemToArray(features, s);
        }
        for (size_t i = 0; i < sizeof(feature_names) / sizeof(feature_names[0]); i++) {
                if (!(m->features & (1u << i)) || !feature_names[i])
                        continue;
                cJSON *s = cJSON_CreateString(feature_names[i]);
                ADD(s);
                cJSON_AddItemToArray(features, s);
        }
        return o;
fail:
        cJSON_Delete(o);
        return NULL;
}

int mps__welcome_decode(const cJSON *json, struct mps__welcome *ret, char *err,
                        size_t errlen) {
        struct mps__welcome m = {0};
        int pid = 0;
        TRY(get_int(json, "protocol", true, 0, INT32_MAX, &m.protocol, err, errlen));
        TRY(get_str(json, "version", true, MPS_WIRE_NAME_MAX, &m.version, err, errlen));
        TRY(get_int(json, "pid", false, 0, INT32_MAX, &pid, err, errlen));
        m.pid = pid;
        const cJSON *f = field(json, "features");
        const cJSON *it;
        cJSON_ArrayForEach(it, f) {
                if (!cJSON_IsString(it))
                        continue;
                if (strcmp(it->valuestring, "pidfd") == 0)
                        m.pidfd = true;
                for (size_t i = 0; i < sizeof(feature_names) / sizeof(feature_names[0]); i++)
                        if (feature_names[i] && strcmp(it->valuestring, feature_names[i]) == 0)
                                m.features |= 1u << i;
        }
        *ret = m;
        return 0;
}

/* ---- spawn ---------------------------------------------------------------- */

/*
 * The spawn encoder, by field group, in the order the fields go out (cJSON
 * keeps insertion order, and the fuzz corpora and tests pin the text).
 * Each returns false when out of memory.
 */

/* What runs: path or call, argv, env, cwd, name. */
static bool encode_program(cJSON *o, const struct mps__spawn *m) {
        if (m->path && !cJSON_AddStringToObject(o, "path", m->path))
                return false;
        if (m->call_entry) {
                cJSON *call = cJSON_AddObjectToObject(o, "call");
                if (!call || !cJSON_AddStringToObject(call, "entry", m->call_entry))
                        return false;
                cJSON *args = m->call_args ? cJSON_Duplicate(m->call_args, true)
                                           : cJSON_CreateNull();
                if (!args)
                        return false;
                cJSON_AddItemToObject(call, "args", args);
        }
        cJSON *argv = cJSON_CreateStringArray(m->argv, (int)m->argc);
        if (!argv)
                return false;
        cJSON_AddItemToObject(o, "argv", argv);
        if (m->env_ref) {
                if (!add_u64(o, "env_ref", m->env_ref))
                        return false;
        } else if (m->envp) {
                cJSON *env = cJSON_CreateStringArray(m->envp, (int)m->envc);
                if (!env)
                        return false;
                cJSON_AddItemToObject(o, "env", env);
        }
        if (m->cwd && !cJSON_AddStringToObject(o, "cwd", m->cwd))
                return false;
        if (m->has_cwd_fd && !cJSON_AddNumberToObject(o, "cwd_fd", m->cwd_fd))
                return false;
        if (m->name && !cJSON_AddStringToObject(o, "name", m->name))
                return false;
        return true;
}

/* The fd map and the flags about the job's place (daemon, session, pidfd,
 * detached). */
static bool encode_fds_flags(cJSON *o, const struct mps__spawn *m) {
        cJSON *fds = cJSON_AddArrayToObject(o, "fds");
        if (!fds)
                return false;
        for (size_t i = 0; i < m->nfdmap; i++) {
                cJSON *pair = cJSON_CreateIntArray(
                        (const int[]){m->fdmap[i].target, m->fdmap[i].source}, 2);
                if (!pair)
                        return false;
                cJSON_AddItemToArray(fds, pair);
        }
        return (!m->daemon || cJSON_AddTrueToObject(o, "daemon")) &&
               (!m->new_session || cJSON_AddTrueToObject(o, "new_session")) &&
               (!m->want_pidfd || cJSON_AddTrueToObject(o, "pidfd")) &&
               (!m->detached || cJSON_AddTrueToObject(o, "detached")) &&
               (!m->controlling_terminal ||
                cJSON_AddTrueToObject(o, "controlling_terminal")) &&
               (!m->report_stops || cJSON_AddTrueToObject(o, "report_stops"));
}

/* The job policy: seccomp, nice, umask, no_new_privs, pdeathsig, kill_tree. */
static bool encode_policy(cJSON *o, const struct mps__spawn *m) {
        if (m->seccomp_text) {
                cJSON *sc = cJSON_AddObjectToObject(o, "seccomp");
                if (!sc ||
                    !cJSON_AddStringToObject(sc, "name",
                                             m->seccomp_name ? m->seccomp_name : "policy") ||
                    !cJSON_AddStringToObject(sc, "text", m->seccomp_text))
                        return false;
        }
        return (!m->has_nice || add_int(o, "nice", m->nice)) &&
               (m->umask < 0 || add_int(o, "umask", m->umask)) &&
               (!m->no_new_privs || cJSON_AddTrueToObject(o, "no_new_privs")) &&
               (m->pdeathsig <= 0 || add_int(o, "pdeathsig", m->pdeathsig)) &&
               (!m->kill_tree || cJSON_AddTrueToObject(o, "kill_tree"));
}

/* One [name, soft, hard] entry; hard is null when kept. */
static bool encode_rlimit(cJSON *rl, const struct mps__rlimit *r) {
        cJSON *e = cJSON_CreateArray();
        if (!e)
                return false;
        cJSON_AddItemToArray(rl, e);
        const char *name = mps__rlimit_name(r->resource);
        if (!name)
                return false;
        cJSON *n = cJSON_CreateString(name);
        cJSON *soft = rlim_json(r->soft);
        cJSON *hard = r->hard_keep ? cJSON_CreateNull() : rlim_json(r->hard);
        if (n)
                cJSON_AddItemToArray(e, n);
        if (soft)
                cJSON_AddItemToArray(e, soft);
        if (hard)
                cJSON_AddItemToArray(e, hard);
        return n && soft && hard;
}

/* The timeout and the resource limits. */
static bool encode_limits(cJSON *o, const struct mps__spawn *m) {
        if (m->timeout > 0 &&
            (!cJSON_AddNumberToObject(o, "timeout", m->timeout) ||
             !cJSON_AddNumberToObject(o, "kill_after", m->kill_after)))
                return false;
        /* Only when it differs from the default, so that an older server,
         * which lacks the feature, is asked for nothing it would ignore. */
        if (m->timeout > 0 && m->timeout_signal > 0 && m->timeout_signal != SIGTERM &&
            !add_int(o, "timeout_signal", m->timeout_signal))
                return false;
        if (m->nrlimits > 0) {
                cJSON *rl = cJSON_AddArrayToObject(o, "rlimits");
                if (!rl)
                        return false;
                for (size_t i = 0; i < m->nrlimits; i++)
                        if (!encode_rlimit(rl, &m->rlimits[i]))
                                return false;
        }
        return true;
}

cJSON *mps__spawn_encode(const struct mps__spawn *m) {
        cJSON *o = mps__wire_new(MPS_OP_SPAWN);
        if (!o)
                return NULL;
        if (!add_u64(o, "tag", m->tag) || !encode_program(o, m) ||
            !encode_fds_flags(o, m) || !encode_policy(o, m) || !encode_limits(o, m)) {
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}

void mps__spawn_done(struct mps__spawn *m) {
        if (!m)
                return;
        free(m->argv);
        free(m->envp);
        free(m->fdmap);
        m->argv = m->envp = NULL;
        m->fdmap = NULL;
}

/* True when every number in the tree is finite. cJSON reads a number
 * beyond the range of a double (1e999) as an infinity and prints that as
 * null, so call arguments holding one would reach the entry point changed.
 * Depth is bounded by cJSON's nesting limit on what it parses. */
bool mps__wire_numbers_finite(const cJSON *j) {
        if (cJSON_IsNumber(j))
                return isfinite(j->valuedouble);
        for (const cJSON *c = j->child; c; c = c->next)
                if (!mps__wire_numbers_finite(c))
                        return false;
        return true;
}

bool mps__wire_utf8_valid(const char *s, size_t len) {
        const unsigned char *p = (const unsigned char *)s, *end = p + len;
        while (p < end) {
                unsigned c = *p++;
                if (c == 0)
                        return false;
                if (c < 0x80)
                        continue;
                size_t more = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC2 ? 1 : 0;
                if (more == 0 || c > 0xF4 || (size_t)(end - p) < more)
                        return false; /* a continuation byte, C0/C1, or cut */
                unsigned cp = c & (0x3Fu >> more);
                for (size_t i = 0; i < more; i++) {
                        if ((p[i] & 0xC0) != 0x80)
                                return false;
                        cp = cp << 6 | (p[i] & 0x3Fu);
                }
                p += more;
                /* Longer than needed, a UTF-16 surrogate, or past U+10FFFF. */
                if ((more == 2 && cp < 0x800) || (more == 3 && cp < 0x10000) ||
                    (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
                        return false;
        }
        return true;
}

/*
 * A call job's result is checked by a strict JSON (RFC 8259) scanner that
 * allocates nothing, not by cJSON: it runs in the job's child, where every
 * malloc of a parse would copy pages of the server's heap (a third of the
 * cost of a job with a result), and in the server at the reap. What it
 * accepts is a subset of what cJSON parses, so that the client can take
 * the text the server passes on as it is (check_call compares the two):
 * no number longer than the 63 characters older cJSONs read of one, no number
 * beyond a double (cJSON would make it an infinity, printed as null),
 * every surrogate escape paired, no \u0000, no raw control character,
 * at most MPS_WIRE_RESULT_DEPTH_MAX arrays or objects deep.
 */
struct json_scan {
        const char *p, *end;
        unsigned depth;
};

static void scan_space(struct json_scan *s) {
        while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
                s->p++;
}

static bool scan_literal(struct json_scan *s, const char *word) {
        size_t n = strlen(word);
        if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
                return false;
        s->p += n;
        return true;
}

static bool scan_hex4(struct json_scan *s, unsigned *ret) {
        unsigned v = 0;
        if (s->end - s->p < 4)
                return false;
        for (int i = 0; i < 4; i++) {
                char c = *s->p++;
                unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                             : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                             : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16u;
                if (d > 15)
                        return false;
                v = v << 4 | d;
        }
        *ret = v;
        return true;
}

/* A string, from its opening quote (UTF-8 is checked over the whole text). */
static bool scan_string(struct json_scan *s) {
        for (s->p++; s->p < s->end;) {
                unsigned char c = (unsigned char)*s->p++;
                if (c == '"')
                        return true;
                if (c < 0x20)
                        return false;
                if (c != '\\')
                        continue;
                if (s->p >= s->end)
                        return false;
                c = (unsigned char)*s->p++;
                if (strchr("\"\\/bfnrt", c) && c != '\0')
                        continue;
                unsigned u, lo;
                if (c != 'u' || !scan_hex4(s, &u) || u == 0 || (u >= 0xDC00 && u <= 0xDFFF))
                        return false;
                if (u >= 0xD800 && u <= 0xDBFF &&
                    (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u' ||
                     (s->p += 2, !scan_hex4(s, &lo)) || lo < 0xDC00 || lo > 0xDFFF))
                        return false;
        }
        return false;
}

static const char *scan_digits(const char *p, const char *end) {
        while (p < end && *p >= '0' && *p <= '9')
                p++;
        return p;
}

/* Whether the number of significant digits sig[0..n) (no leading zero)
 * times 10^(e10 - n + 1) rounds to an infinity: past 2^1024 - 2^970, the
 * first value a double rounds up to one, whose digits begin so. */
static bool beyond_double(const char *sig, size_t n, long e10) {
        static const char limit[] = "1797693134862315807937289714053034150799341327100378269361737789";
        if (n == 0 || e10 < 308)
                return false;
        if (e10 > 308)
                return true;
        for (size_t i = 0; i < n && i < sizeof(limit) - 1; i++)
                if (sig[i] != limit[i])
                        return sig[i] > limit[i];
        return false; /* a prefix of the limit's digits: below it */
}

static bool scan_number(struct json_scan *s) {
        const char *start = s->p, *p = s->p, *end = s->end;
        if (p < end && *p == '-')
                p++;
        const char *int_start = p;
        if (p < end && *p == '0')
                p++;
        else if (p < end && *p >= '1' && *p <= '9')
                p = scan_digits(p, end);
        else
                return false;
        const char *int_end = p, *frac_end = p;
        if (p < end && *p == '.') {
                frac_end = scan_digits(p + 1, end);
                if (frac_end == p + 1)
                        return false;
                p = frac_end;
        }
        long exp = 0;
        if (p < end && (*p == 'e' || *p == 'E')) {
                bool neg = ++p < end && *p == '-';
                if (p < end && (*p == '+' || *p == '-'))
                        p++;
                const char *d = scan_digits(p, end);
                if (d == p)
                        return false;
                for (; p < d; p++)
                        exp = exp < 100000 ? exp * 10 + (*p - '0') : exp;
                exp = neg ? -exp : exp;
        }
        if (p - start > 63)
                return false;
        /* The significant digits, int and fraction, from the first non-zero. */
        char sig[64];
        size_t n = 0, lead = 0;
        for (const char *q = int_start; q < frac_end; q++) {
                if (*q == '.')
                        continue;
                if (n == 0 && *q == '0')
                        lead++;
                else
                        sig[n++] = *q;
        }
        long e10 = exp + (long)(int_end - int_start) - 1 - (long)lead;
        s->p = p;
        return !beyond_double(sig, n, e10);
}

static bool scan_value(struct json_scan *s);

/* An array or object, from its opening bracket. */
static bool scan_container(struct json_scan *s, char close, bool object) {
        if (++s->depth > MPS_WIRE_RESULT_DEPTH_MAX)
                return false;
        s->p++;
        scan_space(s);
        if (s->p < s->end && *s->p == close) {
                s->p++;
                s->depth--;
                return true;
        }
        for (;;) {
                if (object) {
                        if (s->p >= s->end || *s->p != '"' || !scan_string(s))
                                return false;
                        scan_space(s);
                        if (s->p >= s->end || *s->p++ != ':')
                                return false;
                }
                if (!scan_value(s))
                        return false;
                if (s->p >= s->end)
                        return false;
                char c = *s->p++;
                if (c == close) {
                        s->depth--;
                        return true;
                }
                if (c != ',')
                        return false;
                scan_space(s);
        }
}

/* A value with the space around it. */
static bool scan_value(struct json_scan *s) {
        bool ok;
        scan_space(s);
        if (s->p >= s->end)
                return false;
        switch (*s->p) {
        case '{': ok = scan_container(s, '}', true); break;
        case '[': ok = scan_container(s, ']', false); break;
        case '"': ok = scan_string(s); break;
        case 't': ok = scan_literal(s, "true"); break;
        case 'f': ok = scan_literal(s, "false"); break;
        case 'n': ok = scan_literal(s, "null"); break;
        default: ok = scan_number(s); break;
        }
        scan_space(s);
        return ok;
}

int mps__wire_result_check(const char *text, size_t len) {
        if (len > MPS_RESULT_MAX)
                return -E2BIG;
        if (!mps__wire_utf8_valid(text, len))
                return -EINVAL;
        struct json_scan s = {.p = text, .end = text + len};
        return scan_value(&s) && s.p == s.end ? 0 : -EINVAL;
}

static int decode_fdmap(const cJSON *json, size_t nfds, struct mps__spawn *m,
                        char *err, size_t errlen) {
        const cJSON *arr = field(json, "fds");
        if (!arr || cJSON_IsNull(arr))
                return 0;
        int n = cJSON_GetArraySize(arr);
        if (!cJSON_IsArray(arr) || n > MPS_WIRE_FDMAP_MAX) {
                mps__say(err, errlen,
                    "field \"fds\" must be an array of at most %d [target, "
                    "index] pairs",
                    MPS_WIRE_FDMAP_MAX);
                return -EINVAL;
        }
        m->fdmap = calloc((size_t)n + 1, sizeof(*m->fdmap));
        if (!m->fdmap)
                return -ENOMEM;
        /* The targets seen so far, one bit each: up to 1024 entries. */
        uint32_t seen[(MPS_WIRE_TARGET_FD_MAX + 32) / 32] = {0};
        const cJSON *pair;
        cJSON_ArrayForEach(pair, arr) {
                const cJSON *t = cJSON_GetArrayItem(pair, 0);
                const cJSON *s = cJSON_GetArrayItem(pair, 1);
                if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2 ||
                    !cJSON_IsNumber(t) || !cJSON_IsNumber(s) ||
                    t->valuedouble < 0 ||
                    t->valuedouble > MPS_WIRE_TARGET_FD_MAX ||
                    t->valuedouble != (int)t->valuedouble ||
                    s->valuedouble < MPS_WIRE_FD_CLOSED ||
                    s->valuedouble >= (double)nfds ||
                    s->valuedouble != (int)s->valuedouble) {
                        mps__say(err, errlen,
                            "field \"fds\" entry %zu must be [target 0..%d, "
                            "index -2..%zd] (the message carried %zu fds)",
                            m->nfdmap, MPS_WIRE_TARGET_FD_MAX,
                            (ssize_t)nfds - 1, nfds);
                        return -EINVAL;
                }
                int target = (int)t->valuedouble;
                unsigned bit = 1u << (target % 32);
                if (seen[target / 32] & bit) {
                        mps__say(err, errlen, "field \"fds\" maps fd %d twice", target);
                        return -EINVAL;
                }
                seen[target / 32] |= bit;
                m->fdmap[m->nfdmap].target = target;
                m->fdmap[m->nfdmap].source = (int)s->valuedouble;
                m->nfdmap++;
        }
        return 0;
}

/* A limit value: -1 for unlimited, else a whole number up to 2^53-1. */
static int rlim_value(const cJSON *v, unsigned long long *out) {
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
            v->valuedouble < -1 || v->valuedouble > WIRE_INT_MAX)
                return -EINVAL;
        *out = v->valuedouble < 0 ? (unsigned long long)RLIM_INFINITY
                                  : (unsigned long long)v->valuedouble;
        return 0;
}

static int decode_rlimits(const cJSON *json, struct mps__spawn *m, char *err,
                          size_t errlen) {
        const cJSON *arr = field(json, "rlimits");
        if (!arr || cJSON_IsNull(arr))
                return 0;
        if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) > MPS_WIRE_RLIMITS_MAX) {
                mps__say(err, errlen, "field \"rlimits\" must be an array of at most %d "
                                 "[name, soft, hard] entries",
                    MPS_WIRE_RLIMITS_MAX);
                return -EINVAL;
        }
        const cJSON *e;
        cJSON_ArrayForEach(e, arr) {
                struct mps__rlimit *r = &m->rlimits[m->nrlimits];
                const cJSON *name = cJSON_GetArrayItem(e, 0);
                const cJSON *hard = cJSON_GetArrayItem(e, 2);
                if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 3 ||
                    !cJSON_IsString(name)) {
                        mps__say(err, errlen, "field \"rlimits\" entry %zu must be "
                                         "[name, soft, hard]",
                            m->nrlimits);
                        return -EINVAL;
                }
                r->resource = mps__rlimit_from_name(name->valuestring);
                if (r->resource < 0) {
                        mps__say(err, errlen, "unknown resource limit \"%.32s\"",
                            name->valuestring);
                        return -EINVAL;
                }
                r->hard_keep = cJSON_IsNull(hard);
                if (rlim_value(cJSON_GetArrayItem(e, 1), &r->soft) < 0 ||
                    (!r->hard_keep && rlim_value(hard, &r->hard) < 0)) {
                        mps__say(err, errlen, "limit %s: values must be whole numbers, "
                                         "or -1 for unlimited (hard: or null)",
                            mps__rlimit_name(r->resource));
                        return -EINVAL;
                }
                if (!r->hard_keep && r->soft > r->hard) {
                        mps__say(err, errlen, "limit %s: soft limit above hard limit",
                            mps__rlimit_name(r->resource));
                        return -EINVAL;
                }
                for (size_t i = 0; i < m->nrlimits; i++)
                        if (m->rlimits[i].resource == r->resource) {
                                mps__say(err, errlen, "limit %s given twice",
                                    mps__rlimit_name(r->resource));
                                return -EINVAL;
                        }
                m->nrlimits++;
        }
        return 0;
}

/*
 * The spawn decoder, by field group, in the order the fields were always
 * checked (the first bad one names the error). Each returns 0 or a
 * negative errno with a reason in err; the arrays it allocated stay in *m
 * for mps__spawn_done.
 */

/* "call": {"entry": NAME, "args": JSON}, for a call job. */
static int decode_call(const cJSON *json, struct mps__spawn *m, char *err,
                       size_t errlen) {
        const cJSON *call = field(json, "call");
        if (!call || cJSON_IsNull(call))
                return 0;
        if (!cJSON_IsObject(call)) {
                mps__say(err, errlen, "field \"call\" must be an object "
                                 "{\"entry\": NAME, \"args\": JSON}");
                return -EINVAL;
        }
        TRY(get_str(call, "entry", true, MPS_WIRE_NAME_MAX, &m->call_entry, err, errlen));
        if (m->call_entry[0] == '\0') {
                mps__say(err, errlen, "field \"call.entry\" is empty");
                return -EINVAL;
        }
        m->call_args = field(call, "args");
        if (m->call_args && !mps__wire_numbers_finite(m->call_args)) {
                mps__say(err, errlen, "field \"call.args\" holds a number "
                                 "beyond the range of a double");
                return -EINVAL;
        }
        return 0;
}

/* "env" inline, or "env_ref" naming one stored on the connection. */
static int decode_env(const cJSON *json, struct mps__spawn *m, char *err, size_t errlen) {
        double ref = 0;
        TRY(get_num(json, "env_ref", false, 1, MPS_WIRE_ENV_SLOTS, true, &ref, err, errlen));
        m->env_ref = (uint64_t)ref;
        const cJSON *env = field(json, "env");
        if (m->env_ref && env && !cJSON_IsNull(env)) {
                mps__say(err, errlen, "fields \"env\" and \"env_ref\" exclude each other");
                return -EINVAL;
        }
        return get_strv(json, "env", false, MPS_WIRE_ENV_MAX, false, &m->envp, &m->envc, err,
                        errlen);
}

/* The tag and what runs: path (unless a call), argv, env, cwd, name. */
static int decode_program(const cJSON *json, struct mps__spawn *m, char *err,
                          size_t errlen) {
        TRY(get_u64(json, "tag", true, &m->tag, err, errlen));
        TRY(get_str(json, "path", !m->call_entry, MPS_WIRE_STR_MAX, &m->path, err, errlen));
        TRY(get_strv(json, "argv", true, MPS_WIRE_SPAWN_ARGV_MAX, true, &m->argv, &m->argc, err,
                     errlen));
        TRY(decode_env(json, m, err, errlen));
        TRY(get_str(json, "cwd", false, MPS_WIRE_STR_MAX, &m->cwd, err, errlen));
        TRY(get_str(json, "name", false, MPS_WIRE_NAME_MAX, &m->name, err, errlen));
        return 0;
}

/* The fd map and the flags about the job's place. */
static int decode_fds_flags(const cJSON *json, size_t nfds, struct mps__spawn *m,
                            char *err, size_t errlen) {
        TRY(decode_fdmap(json, nfds, m, err, errlen));
        if (field(json, "cwd_fd")) {
                if (nfds == 0) {
                        mps__say(err, errlen, "field \"cwd_fd\" names a descriptor, and "
                                              "the message carried none");
                        return -EINVAL;
                }
                m->has_cwd_fd = true;
                TRY(get_int(json, "cwd_fd", true, 0, (int)nfds - 1, &m->cwd_fd, err, errlen));
        }
        TRY(get_bool(json, "daemon", &m->daemon, err, errlen));
        TRY(get_bool(json, "new_session", &m->new_session, err, errlen));
        TRY(get_bool(json, "pidfd", &m->want_pidfd, err, errlen));
        TRY(get_bool(json, "detached", &m->detached, err, errlen));
        TRY(get_bool(json, "controlling_terminal", &m->controlling_terminal, err, errlen));
        TRY(get_bool(json, "report_stops", &m->report_stops, err, errlen));
        /* A controlling terminal comes with a session of its own. */
        if (m->controlling_terminal)
                m->new_session = true;
        return 0;
}

/* The timeout and the resource limits. */
static int decode_limits(const cJSON *json, struct mps__spawn *m, char *err,
                         size_t errlen) {
        TRY(get_num(json, "timeout", false, 0, MPS_WIRE_SECONDS_MAX, false, &m->timeout,
                    err, errlen));
        TRY(get_num(json, "kill_after", false, 0, MPS_WIRE_SECONDS_MAX, false,
                    &m->kill_after, err, errlen));
        TRY(get_int(json, "timeout_signal", false, 0, 64, &m->timeout_signal, err, errlen));
        TRY(decode_rlimits(json, m, err, errlen));
        return 0;
}

/* "seccomp": {"name": FILE, "text": POLICY}. */
static int decode_seccomp(const cJSON *json, struct mps__spawn *m, char *err,
                          size_t errlen) {
        const cJSON *sc = field(json, "seccomp");
        if (!sc || cJSON_IsNull(sc))
                return 0;
        if (!cJSON_IsObject(sc)) {
                mps__say(err, errlen, "field \"seccomp\" must be an object "
                                 "{\"name\": FILE, \"text\": POLICY}");
                return -EINVAL;
        }
        TRY(get_str(sc, "name", false, MPS_WIRE_NAME_MAX, &m->seccomp_name, err, errlen));
        TRY(get_str(sc, "text", true, MPS_WIRE_MSG_MAX, &m->seccomp_text, err, errlen));
        return 0;
}

/* The job policy: umask, no_new_privs, pdeathsig, kill_tree, nice, seccomp. */
static int decode_policy(const cJSON *json, struct mps__spawn *m, char *err,
                         size_t errlen) {
        TRY(get_int(json, "umask", false, 0, 0777, &m->umask, err, errlen));
        TRY(get_bool(json, "no_new_privs", &m->no_new_privs, err, errlen));
        TRY(get_int(json, "pdeathsig", false, 0, 64, &m->pdeathsig, err, errlen));
        TRY(get_bool(json, "kill_tree", &m->kill_tree, err, errlen));
        if (field(json, "nice")) {
                m->has_nice = true;
                TRY(get_int(json, "nice", true, -20, 19, &m->nice, err, errlen));
        }
        return decode_seccomp(json, m, err, errlen);
}

static int spawn_decode(const cJSON *json, size_t nfds, struct mps__spawn *ret, char *err,
                        size_t errlen) {
        struct mps__spawn m = {.kill_after = MPS_WIRE_KILL_AFTER_DEFAULT, .umask = -1};
        int r;

        if ((r = decode_call(json, &m, err, errlen)) < 0 ||
            (r = decode_program(json, &m, err, errlen)) < 0 ||
            (r = decode_fds_flags(json, nfds, &m, err, errlen)) < 0 ||
            (r = decode_limits(json, &m, err, errlen)) < 0 ||
            (r = decode_policy(json, &m, err, errlen)) < 0)
                goto fail;
        if (m.path && m.path[0] == '\0') {
                mps__say(err, errlen, "field \"path\" is empty");
                r = -EINVAL;
                goto fail;
        }
        if (!m.envp) {
                /* An absent environment means an empty one: the server never
                 * passes its own environment to a job by accident. */
                m.envp = calloc(1, sizeof(*m.envp));
                if (!m.envp) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        *ret = m;
        return 0;
fail:
        mps__spawn_done(&m);
        return r;
}

int mps__spawn_decode(const cJSON *json, size_t nfds, struct mps__spawn *ret,
                      char *err, size_t errlen) {
        struct field_index x;
        indexed = json && field_index_build(&x, json) ? &x : NULL;
        int r = spawn_decode(json, nfds, ret, err, errlen);
        indexed = NULL;
        return r;
}

/* ---- env -------------------------------------------------------------------- */

cJSON *mps__env_encode(const struct mps__env *m) {
        cJSON *o = mps__wire_new(MPS_OP_ENV);
        if (!o)
                return NULL;
        ADD(add_u64(o, "tag", m->tag));
        ADD(add_u64(o, "id", m->id));
        cJSON *env = cJSON_CreateStringArray(m->envp, (int)m->envc);
        ADD(env);
        cJSON_AddItemToObject(o, "env", env);
        return o;
fail:
        cJSON_Delete(o);
        return NULL;
}

int mps__env_decode(const cJSON *json, struct mps__env *ret, char *err, size_t errlen) {
        struct mps__env m = {0};
        double id = 0;
        TRY(get_u64(json, "tag", true, &m.tag, err, errlen));
        TRY(get_num(json, "id", true, 1, MPS_WIRE_ENV_SLOTS, true, &id, err, errlen));
        m.id = (uint64_t)id;
        TRY(get_strv(json, "env", true, MPS_WIRE_ENV_MAX, false, &m.envp, &m.envc, err,
                     errlen));
        *ret = m;
        return 0;
}

/* ---- spawn_batch ------------------------------------------------------------ */

int mps__spawn_batch_decode(const cJSON *json, size_t nfds, struct mps__spawn_batch *ret,
                            char *err, size_t errlen) {
        const cJSON *jobs = field(json, "jobs"), *counts = field(json, "nfds");
        struct mps__spawn_batch m = {0};
        size_t fd_from = 0;
        TRY(get_u64(json, "tag", false, &m.tag, err, errlen));
        if (!cJSON_IsArray(jobs) || !cJSON_IsArray(counts)) {
                mps__say(err, errlen, "fields \"jobs\" and \"nfds\" must be arrays");
                return -EINVAL;
        }
        int n = cJSON_GetArraySize(jobs);
        if (n < 1 || n > MPS_WIRE_BATCH_MAX || cJSON_GetArraySize(counts) != n) {
                mps__say(err, errlen, "a batch holds 1 to %d jobs, and \"nfds\" one count "
                         "per job", MPS_WIRE_BATCH_MAX);
                return -EINVAL;
        }
        const cJSON *job = jobs->child, *count = counts->child;
        for (int i = 0; i < n; i++, job = job->next, count = count->next) {
                const cJSON *op = field(job, "op"), *v = field(job, "v");
                if (!cJSON_IsObject(job) || !cJSON_IsString(op) ||
                    strcmp(op->valuestring, "spawn") != 0 || !cJSON_IsNumber(v) ||
                    v->valuedouble != MPS_PROTOCOL_VERSION) {
                        mps__say(err, errlen, "job %d is not a spawn request of protocol %d",
                                 i, MPS_PROTOCOL_VERSION);
                        return -EINVAL;
                }
                if (!cJSON_IsNumber(count) || !(count->valuedouble >= 0) ||
                    count->valuedouble > (double)(nfds - fd_from) ||
                    count->valuedouble != floor(count->valuedouble)) {
                        mps__say(err, errlen, "job %d's descriptor count is not one of the "
                                 "%zu the message has left", i, nfds - fd_from);
                        return -EINVAL;
                }
                m.jobs[i] = (struct mps__batch_job){.json = job, .tag = mps__wire_tag(job),
                                                    .fd_from = fd_from,
                                                    .nfds = (size_t)count->valuedouble};
                fd_from += m.jobs[i].nfds;
        }
        if (fd_from != nfds) {
                mps__say(err, errlen, "the jobs take %zu descriptors; the message has %zu",
                         fd_from, nfds);
                return -EINVAL;
        }
        m.count = (size_t)n;
        *ret = m;
        return 0;
}

/* ---- spawn carrier: spec_memfd and fd_bundle -------------------------------- */

cJSON *mps__spawn_carrier_encode(cJSON *o, uint64_t tag, const struct mps__spawn_carrier *m) {
        bool fresh = !o;
        if (fresh && (!(o = mps__wire_new(MPS_OP_SPAWN)) || !add_u64(o, "tag", tag)))
                goto fail;
        if (m->has_memfd)
                ADD(add_int(o, "spec_memfd", m->memfd));
        if (m->has_bundle) {
                cJSON *b = cJSON_AddObjectToObject(o, "fd_bundle");
                ADD(b);
                ADD(add_int(b, "fd", m->bundle));
                ADD(add_u64(b, "count", m->bundle_nfds));
        }
        return o;
fail:
        if (fresh)
                cJSON_Delete(o);
        return NULL;
}

int mps__spawn_carrier_decode(const cJSON *json, size_t nfds,
                              struct mps__spawn_carrier *ret, char *err, size_t errlen) {
        struct mps__spawn_carrier m = {0};
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(json, "fd_bundle");
        m.has_memfd = cJSON_GetObjectItemCaseSensitive(json, "spec_memfd") != NULL;
        m.has_bundle = b && !cJSON_IsNull(b);
        size_t nspecial = (size_t)m.has_memfd + (size_t)m.has_bundle;
        if (nspecial > nfds) {
                mps__say(err, errlen, "fields \"spec_memfd\"/\"fd_bundle\" name %zu "
                                      "descriptors, and the message carried %zu",
                         nspecial, nfds);
                return -EINVAL;
        }
        /* They come last, so that the job's own descriptors keep their
         * indices: the message's first ones, then the bundle's. */
        int memfd_at = (int)(nfds - nspecial), bundle_at = (int)nfds - 1;
        if (m.has_memfd)
                TRY(get_int(json, "spec_memfd", true, memfd_at, memfd_at, &m.memfd, err,
                            errlen));
        if (m.has_bundle) {
                double count;
                if (!cJSON_IsObject(b)) {
                        mps__say(err, errlen, "field \"fd_bundle\" must be an object "
                                              "{\"fd\": INDEX, \"count\": N}");
                        return -EINVAL;
                }
                TRY(get_int(b, "fd", true, bundle_at, bundle_at, &m.bundle, err, errlen));
                TRY(get_num(b, "count", true, 1, MPS_WIRE_SPAWN_FDS_MAX, true, &count, err,
                            errlen));
                m.bundle_nfds = (size_t)count;
        }
        m.own_nfds = nfds - nspecial;
        *ret = m;
        return 0;
}

/* ---- spawned / exited ------------------------------------------------------ */

cJSON *mps__spawned_encode(const struct mps__spawned *m) {
        cJSON *o = mps__wire_new(MPS_OP_SPAWNED);
        if (!o)
                return NULL;
        ADD(add_u64(o, "tag", m->tag));
        ADD(add_u64(o, "id", m->id));
        ADD(add_int(o, "pid", m->pid));
        ADD(cJSON_AddBoolToObject(o, "pidfd", m->has_pidfd));
        return o;
fail:
        cJSON_Delete(o);
        return NULL;
}

int mps__spawned_decode(const cJSON *json, struct mps__spawned *ret, char *err,
                        size_t errlen) {
        struct mps__spawned m = {0};
        int pid = 0;
        TRY(get_u64(json, "tag", true, &m.tag, err, errlen));
        TRY(get_u64(json, "id", true, &m.id, err, errlen));
        TRY(get_int(json, "pid", true, 1, INT32_MAX, &pid, err, errlen));
        TRY(get_bool(json, "pidfd", &m.has_pidfd, err, errlen));
        m.pid = pid;
        *ret = m;
        return 0;
}

cJSON *mps__exited_encode(const struct mps__exited *m) {
        cJSON *o = mps__wire_new(MPS_OP_EXITED);
        if (!o)
                return NULL;
        ADD(add_u64(o, "tag", m->tag));
        ADD(add_u64(o, "id", m->id));
        ADD(add_int(o, "pid", m->pid));
        ADD(add_int(o, "exitcode", m->exitcode));
        if (m->exitcode < 0)
                ADD(add_int(o, "signal", -m->exitcode));
        ADD(cJSON_AddBoolToObject(o, "core_dumped", m->core_dumped));
        ADD(cJSON_AddBoolToObject(o, "timed_out", m->timed_out));
        ADD(add_seconds(o, "utime", m->utime));
        ADD(add_seconds(o, "stime", m->stime));
        ADD(add_u64(o, "maxrss_kib", m->maxrss_kib > 0 ? (uint64_t)m->maxrss_kib : 0));
        ADD(add_seconds(o, "wall", m->wall));
        /* Checked JSON already (the server's reap): sent as it is, not
         * parsed again into a tree only to be printed. */
        if (m->result)
                ADD(add_raw(o, "result", m->result));
        if (m->failure)
                ADD(cJSON_AddStringToObject(o, "failure", m->failure));
        return o;
fail:
        cJSON_Delete(o);
        return NULL;
}

/*
 * The two replies of every job, written straight into a buffer: the same
 * text as printing mps__spawned_encode's or mps__exited_encode's tree
 * (check_wire compares the two), without building, printing and freeing a
 * tree per message, which was a fifth of the server's instructions per
 * exec job (make bench-callgrind).
 */
struct text {
        char *p;
        size_t left; /* room, the NUL's included */
        bool full;
};

static void put(struct text *t, const char *s, size_t n) {
        if (n >= t->left) {
                t->full = true;
                return;
        }
        memcpy(t->p, s, n);
        t->p += n;
        t->left -= n;
        *t->p = '\0';
}

#define PUT(t, literal) put(t, literal, sizeof(literal) - 1)

static void put_u64(struct text *t, uint64_t v) {
        char b[U64_TEXT_MAX];
        put(t, b, u64_text(v, b));
}

static void put_int(struct text *t, long long v) {
        char b[U64_TEXT_MAX + 1];
        put(t, b, int_text(v, b));
}

static void put_seconds(struct text *t, double seconds) {
        char b[32];
        put(t, b, seconds_text(seconds, b));
}

static void put_bool(struct text *t, bool v) {
        if (v)
                PUT(t, "true");
        else
                PUT(t, "false");
}

static int text_done(const struct text *t, const char *buf) {
        return t->full ? -EMSGSIZE : (int)(t->p - buf);
}

int mps__spawned_format(const struct mps__spawned *m, char *buf, size_t len) {
        struct text t = {buf, len, len == 0};
        PUT(&t, "{\"v\":1,\"op\":\"spawned\",\"tag\":");
        put_u64(&t, m->tag);
        PUT(&t, ",\"id\":");
        put_u64(&t, m->id);
        PUT(&t, ",\"pid\":");
        put_int(&t, m->pid);
        PUT(&t, ",\"pidfd\":");
        put_bool(&t, m->has_pidfd);
        PUT(&t, "}");
        return text_done(&t, buf);
}

int mps__exited_format(const struct mps__exited *m, char *buf, size_t len) {
        struct text t = {buf, len, len == 0};
        if (m->result || m->failure)
                return -ENOTSUP; /* JSON and a string to escape: the tree's */
        PUT(&t, "{\"v\":1,\"op\":\"exited\",\"tag\":");
        put_u64(&t, m->tag);
        PUT(&t, ",\"id\":");
        put_u64(&t, m->id);
        PUT(&t, ",\"pid\":");
        put_int(&t, m->pid);
        PUT(&t, ",\"exitcode\":");
        put_int(&t, m->exitcode);
        if (m->exitcode < 0) {
                PUT(&t, ",\"signal\":");
                put_int(&t, -(long long)m->exitcode);
        }
        PUT(&t, ",\"core_dumped\":");
        put_bool(&t, m->core_dumped);
        PUT(&t, ",\"timed_out\":");
        put_bool(&t, m->timed_out);
        PUT(&t, ",\"utime\":");
        put_seconds(&t, m->utime);
        PUT(&t, ",\"stime\":");
        put_seconds(&t, m->stime);
        PUT(&t, ",\"maxrss_kib\":");
        put_u64(&t, m->maxrss_kib > 0 ? (uint64_t)m->maxrss_kib : 0);
        PUT(&t, ",\"wall\":");
        put_seconds(&t, m->wall);
        PUT(&t, "}");
        return text_done(&t, buf);
}

int mps__exited_decode(const cJSON *json, struct mps__exited *ret, char *err,
                       size_t errlen) {
        struct mps__exited m = {0};
        int pid = 0;
        double maxrss = 0;
        TRY(get_u64(json, "tag", true, &m.tag, err, errlen));
        TRY(get_u64(json, "id", true, &m.id, err, errlen));
        TRY(get_int(json, "pid", true, 1, INT32_MAX, &pid, err, errlen));
        TRY(get_int(json, "exitcode", true, -128, 255, &m.exitcode, err, errlen));
        TRY(get_bool(json, "core_dumped", &m.core_dumped, err, errlen));
        TRY(get_bool(json, "timed_out", &m.timed_out, err, errlen));
        TRY(get_num(json, "utime", false, 0, 1e12, false, &m.utime, err, errlen));
        TRY(get_num(json, "stime", false, 0, 1e12, false, &m.stime, err, errlen));
        TRY(get_num(json, "wall", false, 0, 1e12, false, &m.wall, err, errlen));
        TRY(get_num(json, "maxrss_kib", false, 0, WIRE_INT_MAX, true, &maxrss,
                    err, errlen));
        /* Any JSON value, null included (a result of null). */
        m.result_value = cJSON_GetObjectItemCaseSensitive(json, "result");
        TRY(get_str(json, "failure", false, MPS_RESULT_ERROR_MAX, &m.failure, err, errlen));
        m.pid = pid;
        m.maxrss_kib = (long)maxrss;
        *ret = m;
        return 0;
}

/* ---- signal ----------------------------------------------------------------- */

cJSON *mps__signal_encode(const struct mps__signal *m) {
        cJSON *o = mps__wire_new(MPS_OP_SIGNAL);
        if (!o)
                return NULL;
        ADD(add_u64(o, "tag", m->tag));
        ADD(add_u64(o, "id", m->id));
        ADD(add_int(o, "signal", m->signo));
        if (m->group)
                ADD(cJSON_AddTrueToObject(o, "group"));
        return o;
fail:
        cJSON_Delete(o);
        return NULL;
}

int mps__signal_decode(const cJSON *json, struct mps__signal *ret, char *err,
                       size_t errlen) {
        struct mps__signal m = {0};
        TRY(get_u64(json, "tag", true, &m.tag, err, errlen));
        TRY(get_u64(json, "id", true, &m.id, err, errlen));
        TRY(get_int(json, "signal", true, 0, 64, &m.signo, err, errlen));
        TRY(get_bool(json, "group", &m.group, err, errlen));
        *ret = m;
        return 0;
}

cJSON *mps__signaled_encode(uint64_t tag, uint64_t id) {
        cJSON *o = mps__wire_new(MPS_OP_SIGNALED);
        if (!o)
                return NULL;
        ADD(add_u64(o, "tag", tag));
        ADD(add_u64(o, "id", id));
        return o;
fail:
        cJSON_Delete(o);
        return NULL;
}

int mps__signaled_decode(const cJSON *json, uint64_t *ret_tag, uint64_t *ret_id,
                         char *err, size_t errlen) {
        uint64_t tag = 0, id = 0;
        TRY(get_u64(json, "tag", true, &tag, err, errlen));
        TRY(get_u64(json, "id", true, &id, err, errlen));
        *ret_tag = tag;
        *ret_id = id;
        return 0;
}

/* ---- adopt / adopted ---------------------------------------------------------------- */

static cJSON *tag_only_encode(enum mps__op op, uint64_t tag) {
        cJSON *o = mps__wire_new(op);
        if (!o)
                return NULL;
        ADD(add_u64(o, "tag", tag));
        return o;
fail:
        cJSON_Delete(o);
        return NULL;
}

cJSON *mps__adopt_encode(uint64_t tag) {
        return tag_only_encode(MPS_OP_ADOPT, tag);
}

cJSON *mps__adopted_encode(uint64_t tag) {
        return tag_only_encode(MPS_OP_ADOPTED, tag);
}

int mps__adopt_decode(const cJSON *json, uint64_t *ret_tag, char *err, size_t errlen) {
        uint64_t tag = 0;
        TRY(get_u64(json, "tag", true, &tag, err, errlen));
        *ret_tag = tag;
        return 0;
}

/* ---- stopped / continued / foreground -------------------------------------------- */

cJSON *mps__stop_report_encode(enum mps__op op, const struct mps__stop_report *m) {
        cJSON *o = mps__wire_new(op);
        if (!o)
                return NULL;
        ADD(add_u64(o, "tag", m->tag));
        ADD(add_u64(o, "id", m->id));
        if (op == MPS_OP_STOPPED)
                ADD(add_int(o, "signal", m->signo));
        return o;
fail:
        cJSON_Delete(o);
        return NULL;
}

int mps__stop_report_decode(const cJSON *json, bool need_signal,
                            struct mps__stop_report *ret, char *err, size_t errlen) {
        struct mps__stop_report m = {0};
        TRY(get_u64(json, "tag", true, &m.tag, err, errlen));
        TRY(get_u64(json, "id", true, &m.id, err, errlen));
        if (need_signal)
                TRY(get_int(json, "signal", true, 1, 64, &m.signo, err, errlen));
        *ret = m;
        return 0;
}

cJSON *mps__foreground_encode(const struct mps__foreground *m) {
        cJSON *o = mps__wire_new(MPS_OP_FOREGROUND);
        if (!o)
                return NULL;
        ADD(add_u64(o, "tag", m->tag));
        ADD(add_u64(o, "id", m->id));
        ADD(cJSON_AddBoolToObject(o, "foreground", m->foreground));
        return o;
fail:
        cJSON_Delete(o);
        return NULL;
}

int mps__foreground_decode(const cJSON *json, struct mps__foreground *ret, char *err,
                           size_t errlen) {
        struct mps__foreground m = {0};
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(json, "foreground");
        TRY(get_u64(json, "tag", true, &m.tag, err, errlen));
        TRY(get_u64(json, "id", true, &m.id, err, errlen));
        if (!cJSON_IsBool(f)) {
                mps__say(err, errlen, "field \"foreground\" must be true or false");
                return -EINVAL;
        }
        m.foreground = cJSON_IsTrue(f);
        *ret = m;
        return 0;
}

/* ---- error --------------------------------------------------------------------- */

cJSON *mps__error_encode(const struct mps__error *m) {
        cJSON *o = mps__wire_new(MPS_OP_ERROR);
        const char *name = mps__errno_name(m->err);
        if (!o)
                return NULL;
        ADD(add_u64(o, "tag", m->tag));
        ADD(cJSON_AddStringToObject(o, "errno", name ? name : "EIO"));
        ADD(add_int(o, "code", m->err));
        ADD(cJSON_AddStringToObject(o, "stage", m->stage ? m->stage : "request"));
        ADD(cJSON_AddStringToObject(o, "message", m->message ? m->message : ""));
        return o;
fail:
        cJSON_Delete(o);
        return NULL;
}

int mps__error_decode(const cJSON *json, struct mps__error *ret, char *err,
                      size_t errlen) {
        struct mps__error m = {.stage = "request", .message = ""};
        const char *name = NULL;
        TRY(get_u64(json, "tag", false, &m.tag, err, errlen));
        TRY(get_str(json, "errno", true, 64, &name, err, errlen));
        TRY(get_str(json, "stage", false, 64, &m.stage, err, errlen));
        TRY(get_str(json, "message", false, MPS_WIRE_STR_MAX, &m.message, err, errlen));
        /* The name is authoritative (numbers differ between architectures);
         * the number is the fallback for a name this side does not know. */
        m.err = mps__errno_from_name(name);
        if (m.err == 0) {
                /* A code out of range is no reason to lose the message. */
                const cJSON *code = cJSON_GetObjectItemCaseSensitive(json, "code");
                m.err = cJSON_IsNumber(code) && code->valuedouble >= 1 &&
                                code->valuedouble <= 4095
                        ? (int)code->valuedouble : EIO;
        }
        *ret = m;
        return 0;
}

/* ---- wait / list / stats requests ------------------------------------------ */

cJSON *mps__wait_encode(enum mps__op op, const struct mps__wait *m) {
        cJSON *o = mps__wire_new(op);
        if (!o)
                return NULL;
        ADD(add_u64(o, "tag", m->tag));
        if (op == MPS_OP_WAIT)
                ADD(add_u64(o, "id", m->id));
        return o;
fail:
        cJSON_Delete(o);
        return NULL;
}

int mps__wait_decode(const cJSON *json, bool need_id, struct mps__wait *ret,
                     char *err, size_t errlen) {
        struct mps__wait m = {0};
        TRY(get_u64(json, "tag", true, &m.tag, err, errlen));
        TRY(get_u64(json, "id", need_id, &m.id, err, errlen));
        *ret = m;
        return 0;
}

/* ---- jobs --------------------------------------------------------------------- */

cJSON *mps__jobs_encode(uint64_t tag) {
        cJSON *o = mps__wire_new(MPS_OP_JOBS);
        if (!o)
                return NULL;
        ADD(add_u64(o, "tag", tag));
        ADD(cJSON_AddArrayToObject(o, "jobs"));
        return o;
fail:
        cJSON_Delete(o);
        return NULL;
}

int mps__jobs_add(cJSON *jobs_msg, const struct mps__job_entry *e) {
        cJSON *arr = cJSON_GetObjectItemCaseSensitive(jobs_msg, "jobs");
        cJSON *o = cJSON_CreateObject();
        if (!o || !arr || !cJSON_AddItemToArray(arr, o)) {
                cJSON_Delete(o);
                return -ENOMEM;
        }
        ADD(add_u64(o, "id", e->id));
        ADD(add_int(o, "pid", e->pid));
        ADD(cJSON_AddStringToObject(o, "name", e->name ? e->name : ""));
        ADD(cJSON_AddStringToObject(o, "state", e->state));
        ADD(cJSON_AddStringToObject(o, "command", e->command ? e->command : ""));
        ADD(cJSON_AddNumberToObject(o, "runtime", e->runtime));
        ADD(cJSON_AddBoolToObject(o, "daemon", e->daemon));
        if (strcmp(e->state, "exited") == 0) {
                ADD(add_int(o, "exitcode", e->exitcode));
                ADD(cJSON_AddBoolToObject(o, "timed_out", e->timed_out));
        }
        return 0;
fail:
        return -ENOMEM;
}

int mps__jobs_decode(const cJSON *json, struct mps__job_entry **ret,
                     size_t *ret_n, char *err, size_t errlen) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(json, "jobs");
        if (!cJSON_IsArray(arr)) {
                mps__say(err, errlen, "field \"jobs\" must be an array");
                return -EINVAL;
        }
        int n = cJSON_GetArraySize(arr);
        struct mps__job_entry *v = calloc((size_t)n + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        size_t i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) {
                struct mps__job_entry *e = &v[i];
                int pid = 0;
                e->name = e->command = "";
                e->state = "running";
                int r;
                if ((r = get_u64(it, "id", true, &e->id, err, errlen)) < 0 ||
                    (r = get_int(it, "pid", true, 0, INT32_MAX, &pid, err, errlen)) < 0 ||
                    (r = get_str(it, "name", false, MPS_WIRE_NAME_MAX, &e->name, err,
                                 errlen)) < 0 ||
                    (r = get_str(it, "state", true, 32, &e->state, err, errlen)) < 0 ||
                    (r = get_str(it, "command", false, MPS_WIRE_STR_MAX, &e->command,
                                 err, errlen)) < 0 ||
                    (r = get_num(it, "runtime", false, 0, 1e12, false, &e->runtime, err,
                                 errlen)) < 0 ||
                    (r = get_int(it, "exitcode", false, -128, 255, &e->exitcode, err,
                                 errlen)) < 0 ||
                    (r = get_bool(it, "timed_out", &e->timed_out, err, errlen)) < 0 ||
                    (r = get_bool(it, "daemon", &e->daemon, err, errlen)) < 0) {
                        free(v);
                        return r;
                }
                e->pid = pid;
                i++;
        }
        *ret = v;
        *ret_n = i;
        return 0;
}

/* ---- server_stats ------------------------------------------------------------- */

cJSON *mps__server_stats_encode(uint64_t tag, const struct mps__server_stats *m) {
        cJSON *o = mps__wire_new(MPS_OP_SERVER_STATS);
        if (!o)
                return NULL;
        ADD(add_u64(o, "tag", tag));
        ADD(cJSON_AddNumberToObject(o, "uptime", m->uptime));
        ADD(add_u64(o, "clients", m->clients));
        ADD(add_u64(o, "jobs_started", m->jobs_started));
        ADD(add_u64(o, "jobs_running", m->jobs_running));
        ADD(add_u64(o, "jobs_failed", m->jobs_failed));
        ADD(add_u64(o, "exits_zero", m->exits_zero));
        ADD(add_u64(o, "exits_nonzero", m->exits_nonzero));
        ADD(add_u64(o, "signaled", m->signaled));
        ADD(add_u64(o, "timed_out", m->timed_out));
        ADD(add_u64(o, "latency_samples", m->latency_samples));
        ADD(cJSON_AddNumberToObject(o, "latency_p50", m->latency_p50));
        ADD(cJSON_AddNumberToObject(o, "latency_p90", m->latency_p90));
        ADD(cJSON_AddNumberToObject(o, "latency_p99", m->latency_p99));
        ADD(cJSON_AddNumberToObject(o, "latency_max", m->latency_max));
        ADD(add_u64(o, "preloaded", m->preloaded));
        ADD(add_u64(o, "preloaded_rss_kib", m->preloaded_rss_kib));
        ADD(add_u64(o, "prefork_idle", m->prefork_idle));
        ADD(add_u64(o, "policy_compiles", m->policy_compiles));
        ADD(add_u64(o, "policy_cache_hits", m->policy_cache_hits));
        return o;
fail:
        cJSON_Delete(o);
        return NULL;
}

int mps__server_stats_decode(const cJSON *json, struct mps__server_stats *ret,
                             char *err, size_t errlen) {
        struct mps__server_stats m = {0};
        TRY(get_num(json, "uptime", true, 0, 1e12, false, &m.uptime, err, errlen));
        TRY(get_u64(json, "clients", false, &m.clients, err, errlen));
        TRY(get_u64(json, "jobs_started", false, &m.jobs_started, err, errlen));
        TRY(get_u64(json, "jobs_running", false, &m.jobs_running, err, errlen));
        TRY(get_u64(json, "jobs_failed", false, &m.jobs_failed, err, errlen));
        TRY(get_u64(json, "exits_zero", false, &m.exits_zero, err, errlen));
        TRY(get_u64(json, "exits_nonzero", false, &m.exits_nonzero, err, errlen));
        TRY(get_u64(json, "signaled", false, &m.signaled, err, errlen));
        TRY(get_u64(json, "timed_out", false, &m.timed_out, err, errlen));
        TRY(get_u64(json, "latency_samples", false, &m.latency_samples, err, errlen));
        TRY(get_num(json, "latency_p50", false, 0, 1e12, false, &m.latency_p50, err, errlen));
        TRY(get_num(json, "latency_p90", false, 0, 1e12, false, &m.latency_p90, err, errlen));
        TRY(get_num(json, "latency_p99", false, 0, 1e12, false, &m.latency_p99, err, errlen));
        TRY(get_num(json, "latency_max", false, 0, 1e12, false, &m.latency_max, err, errlen));
        TRY(get_u64(json, "preloaded", false, &m.preloaded, err, errlen));
        TRY(get_u64(json, "preloaded_rss_kib", false, &m.preloaded_rss_kib, err, errlen));
        TRY(get_u64(json, "prefork_idle", false, &m.prefork_idle, err, errlen));
        TRY(get_u64(json, "policy_compiles", false, &m.policy_compiles, err, errlen));
        TRY(get_u64(json, "policy_cache_hits", false, &m.policy_cache_hits, err, errlen));
        *ret = m;
        return 0;
}

/* ---- errno names ------------------------------------------------------------- */

const char *mps__errno_name(int err) {
        return err > 0 ? strerrorname_np(err) : NULL;
}

int mps__errno_from_name(const char *name) {
        if (!name)
                return 0;
        for (int e = 1; e < 4096; e++) {
                const char *n = strerrorname_np(e);
                if (n && strcmp(n, name) == 0)
                        return e;
        }
        return 0;
}
