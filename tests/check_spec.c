/* SPDX-License-Identifier: MIT */
/*
 * check_spec.c: job specs (launcher/spec.c). Every setter's validation: a
 * bad value gives the documented -errno and leaves the spec as it was; a
 * good one takes effect, seen where it matters, in the spawn message the
 * spec encodes to (mps__spawn_encode, then mps__spawn_decode as the server
 * reads it). The environment edits and fd map, which a start turns into
 * the message, are seen through mps__spec_build_env and the spec itself.
 * And the copy a process takes is deep: the original may change or go.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../launcher/lib.h"

#define TIMEOUT_S 30

/* ---- helpers -------------------------------------------------------------- */

static mps_spec *new_spec(void) {
        mps_spec *s;
        ck_assert_int_eq(mps_spec_new(&s), 0);
        const char *argv[] = {"true", NULL};
        ck_assert_int_eq(mps_spec_set_exec(s, "/bin/true", argv), 0);
        return s;
}

/* The spec's spawn as the server would decode it (sent with no fds);
 * free with done(). The
 * tree comes back in *ret_tree, which the decoded strings point into. */
static struct mps__spawn decoded(const mps_spec *s, cJSON **ret_tree) {
        cJSON *enc = mps__spawn_encode(&s->spawn);
        ck_assert_ptr_nonnull(enc);
        /* As the text it goes out as: the encoder writes numbers as raw
         * text items, which only parsing makes numbers again. */
        size_t len;
        char *text = mps__wire_encode(enc, &len);
        ck_assert_ptr_nonnull(text);
        cJSON_Delete(enc);
        cJSON *json = cJSON_ParseWithLength(text, len);
        cJSON_free(text);
        ck_assert_ptr_nonnull(json);
        struct mps__spawn m;
        char err[256] = "";
        int r = mps__spawn_decode(json, 0, &m, err, sizeof(err));
        ck_assert_msg(r == 0, "decode: %d %s", r, err);
        *ret_tree = json;
        return m;
}

static void done(struct mps__spawn *m, cJSON *tree) {
        mps__spawn_done(m);
        cJSON_Delete(tree);
}

/* Everything the spec holds, as text: its encoded spawn, its environment
 * edits and its fd map. Two specs alike hold the same text. */
static char *snapshot(const mps_spec *s) {
        cJSON *json = mps__spawn_encode(&s->spawn);
        ck_assert_ptr_nonnull(json);
        char *text = cJSON_PrintUnformatted(json);
        cJSON_Delete(json);
        size_t cap = strlen(text) + 64;
        for (size_t i = 0; i < s->nedits; i++)
                cap += strlen(s->edits[i].name) + 2 +
                       (s->edits[i].value ? strlen(s->edits[i].value) : 0) + 8;
        cap += s->nfds * 24;
        char *out = malloc(cap);
        ck_assert_ptr_nonnull(out);
        size_t n = (size_t)snprintf(out, cap, "%s|clear=%d|", text, s->env_clear);
        for (size_t i = 0; i < s->nedits; i++)
                n += (size_t)snprintf(out + n, cap - n, "%s=%s;", s->edits[i].name,
                                      s->edits[i].value ? s->edits[i].value : "(unset)");
        for (size_t i = 0; i < s->nfds; i++)
                n += (size_t)snprintf(out + n, cap - n, "%d<%d;", s->fds[i].child_fd,
                                      s->fds[i].caller_fd);
        free(text);
        return out;
}

/* Asserts that expr returns err and leaves spec s as it was. */
#define ASSERT_REFUSED(s, expr, err)                                           \
        do {                                                                   \
                char *before_ = snapshot(s);                                   \
                ck_assert_int_eq((expr), (err));                               \
                char *after_ = snapshot(s);                                    \
                ck_assert_str_eq(before_, after_);                             \
                free(before_);                                                 \
                free(after_);                                                  \
        } while (0)

/* The value of NAME in a built environment, or NULL. */
static const char *env_get(char **envp, const char *name) {
        size_t len = strlen(name);
        for (char **e = envp; *e; e++)
                if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
                        return *e + len + 1;
        return NULL;
}

/* ---- new / exec / call ------------------------------------------------------ */

START_TEST(test_new_defaults) {
        mps_spec *s = new_spec();
        cJSON *tree;
        struct mps__spawn m = decoded(s, &tree);
        ck_assert_str_eq(m.path, "/bin/true");
        ck_assert_uint_eq(m.argc, 1);
        ck_assert_str_eq(m.argv[0], "true");
        ck_assert_ptr_null(m.call_entry);
        ck_assert_ptr_null(m.cwd);
        ck_assert_ptr_null(m.name);
        ck_assert_ptr_null(m.seccomp_text);
        ck_assert(!m.daemon && !m.new_session && !m.detached && !m.no_new_privs &&
                  !m.kill_tree && !m.has_nice);
        ck_assert_int_eq(m.umask, -1);
        ck_assert_int_eq(m.pdeathsig, 0);
        ck_assert(m.timeout == 0);
        ck_assert_uint_eq(m.nrlimits, 0);
        /* No feature beyond the basics is needed of the server. */
        ck_assert_uint_eq(mps__spawn_features(&s->spawn), 0);
        ck_assert(!s->env_clear);
        ck_assert_uint_eq(s->nedits, 0);
        ck_assert_uint_eq(s->nfds, 0);
        done(&m, tree);
        mps_spec_free(s);
        mps_spec_free(NULL);
}
END_TEST

START_TEST(test_exec_refused) {
        mps_spec *s = new_spec();
        const char *argv[] = {"x", NULL};
        const char *empty[] = {NULL};
        ASSERT_REFUSED(s, mps_spec_set_exec(NULL, "/bin/x", argv), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_exec(s, NULL, argv), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_exec(s, "", argv), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_exec(s, "/bin/x", NULL), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_exec(s, "/bin/x", empty), -EINVAL);
        const char **many = calloc(MPS_WIRE_SPAWN_ARGV_MAX + 2, sizeof(*many));
        ck_assert_ptr_nonnull(many);
        for (size_t i = 0; i < MPS_WIRE_SPAWN_ARGV_MAX + 1; i++)
                many[i] = "a";
        ASSERT_REFUSED(s, mps_spec_set_exec(s, "/bin/x", many), -E2BIG);
        free(many);
        mps_spec_free(s);
}
END_TEST

START_TEST(test_exec_replaces_call) {
        mps_spec *s = new_spec();
        ck_assert_int_eq(mps_spec_set_call(s, "entry", "[1]"), 0);
        const char *argv[] = {"sh", "-c", "exit 3", NULL};
        ck_assert_int_eq(mps_spec_set_exec(s, "/bin/sh", argv), 0);
        cJSON *tree;
        struct mps__spawn m = decoded(s, &tree);
        ck_assert_str_eq(m.path, "/bin/sh");
        ck_assert_ptr_null(m.call_entry);
        ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(tree, "call"));
        ck_assert_uint_eq(m.argc, 3);
        ck_assert_str_eq(m.argv[2], "exit 3");
        ck_assert_ptr_null(m.argv[3]);
        done(&m, tree);
        mps_spec_free(s);
}
END_TEST

START_TEST(test_call_refused) {
        mps_spec *s = new_spec();
        char longname[MPS_WIRE_NAME_MAX + 2];
        memset(longname, 'e', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        ASSERT_REFUSED(s, mps_spec_set_call(NULL, "entry", NULL), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_call(s, NULL, NULL), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_call(s, "", NULL), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_call(s, longname, NULL), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_call(s, "entry", "{"), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_call(s, "entry", "not json"), -EINVAL);
        /* 1e999 parses as infinity, which would reach the entry as null. */
        ASSERT_REFUSED(s, mps_spec_set_call(s, "entry", "[1e999]"), -EINVAL);
        mps_spec_free(s);
}
END_TEST

START_TEST(test_call_takes_effect) {
        mps_spec *s = new_spec();
        ck_assert_int_eq(mps_spec_set_call(s, "sum", "{\"a\": [1, 2.5, \"x\"]}"), 0);
        cJSON *tree;
        struct mps__spawn m = decoded(s, &tree);
        ck_assert_ptr_null(m.path);
        ck_assert_str_eq(m.call_entry, "sum");
        ck_assert_uint_eq(m.argc, 1);
        ck_assert_str_eq(m.argv[0], "sum");
        char *args = cJSON_PrintUnformatted(m.call_args);
        ck_assert_str_eq(args, "{\"a\":[1,2.5,\"x\"]}");
        free(args);
        ck_assert_uint_eq(mps__spawn_features(&s->spawn), MPS_FEATURE_CALL);
        done(&m, tree);

        /* No arguments go as null. */
        ck_assert_int_eq(mps_spec_set_call(s, "other", NULL), 0);
        m = decoded(s, &tree);
        ck_assert_str_eq(m.call_entry, "other");
        ck_assert(cJSON_IsNull(m.call_args));
        done(&m, tree);
        mps_spec_free(s);
}
END_TEST

/* ---- environment, cwd, name, fds ------------------------------------------ */

START_TEST(test_env_refused) {
        mps_spec *s = new_spec();
        ASSERT_REFUSED(s, mps_spec_env_set(NULL, "A", "1"), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_env_set(s, NULL, "1"), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_env_set(s, "", "1"), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_env_set(s, "A=B", "1"), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_env_set(s, "A", NULL), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_env_unset(s, "A=B"), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_env_unset(NULL, "A"), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_env_clear(NULL), -EINVAL);
        mps_spec_free(s);
}
END_TEST

START_TEST(test_env_takes_effect) {
        ck_assert_int_eq(setenv("CHECK_SPEC_INHERITED", "yes", 1), 0);
        ck_assert_int_eq(setenv("CHECK_SPEC_GONE", "no", 1), 0);
        mps_spec *s = new_spec();
        ck_assert_int_eq(mps_spec_env_set(s, "CHECK_SPEC_NEW", "1"), 0);
        ck_assert_int_eq(mps_spec_env_set(s, "CHECK_SPEC_NEW", "2"), 0);
        ck_assert_int_eq(mps_spec_env_unset(s, "CHECK_SPEC_GONE"), 0);
        char **envp;
        size_t n;
        ck_assert_int_eq(mps__spec_build_env(s, &envp, &n), 0);
        ck_assert_str_eq(env_get(envp, "CHECK_SPEC_INHERITED"), "yes");
        ck_assert_str_eq(env_get(envp, "CHECK_SPEC_NEW"), "2");
        ck_assert_ptr_null(env_get(envp, "CHECK_SPEC_GONE"));
        ck_assert_ptr_null(envp[n]);
        mps__strv_free(envp);

        /* Clearing applies before the edits, whenever it is called. */
        ck_assert_int_eq(mps_spec_env_clear(s), 0);
        ck_assert_int_eq(mps__spec_build_env(s, &envp, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_str_eq(envp[0], "CHECK_SPEC_NEW=2");
        mps__strv_free(envp);
        mps_spec_free(s);
}
END_TEST

START_TEST(test_cwd_and_name) {
        mps_spec *s = new_spec();
        char longname[MPS_WIRE_NAME_MAX + 2];
        memset(longname, 'n', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        ASSERT_REFUSED(s, mps_spec_set_cwd(NULL, "/tmp"), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_cwd(s, ""), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_name(NULL, "n"), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_name(s, longname), -EINVAL);
        longname[MPS_WIRE_NAME_MAX] = '\0'; /* at the bound: accepted */
        ck_assert_int_eq(mps_spec_set_name(s, longname), 0);
        ck_assert_int_eq(mps_spec_set_name(s, "worker"), 0);
        ck_assert_int_eq(mps_spec_set_cwd(s, "/tmp"), 0);
        cJSON *tree;
        struct mps__spawn m = decoded(s, &tree);
        ck_assert_str_eq(m.cwd, "/tmp");
        ck_assert_str_eq(m.name, "worker");
        done(&m, tree);
        /* NULL takes either back to its default. */
        ck_assert_int_eq(mps_spec_set_cwd(s, NULL), 0);
        ck_assert_int_eq(mps_spec_set_name(s, NULL), 0);
        m = decoded(s, &tree);
        ck_assert_ptr_null(m.cwd);
        ck_assert_ptr_null(m.name);
        done(&m, tree);
        mps_spec_free(s);
}
END_TEST

START_TEST(test_map_fd) {
        mps_spec *s = new_spec();
        ASSERT_REFUSED(s, mps_spec_map_fd(NULL, 3, 0), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_map_fd(s, -1, 0), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_map_fd(s, MPS_WIRE_TARGET_FD_MAX + 1, 0), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_map_fd(s, 3, -2), -EINVAL);
        ck_assert_int_eq(mps_spec_map_fd(s, 5, 1), 0);
        ck_assert_int_eq(mps_spec_map_fd(s, 5, 2), 0); /* a map again replaces */
        ck_assert_int_eq(mps_spec_map_fd(s, 0, -1), 0);
        ck_assert_uint_eq(s->nfds, 2);
        ck_assert_int_eq(s->fds[0].child_fd, 5);
        ck_assert_int_eq(s->fds[0].caller_fd, 2);
        ck_assert_int_eq(s->fds[1].child_fd, 0);
        ck_assert_int_eq(s->fds[1].caller_fd, -1);
        /* Every target a job can have, far more than one message carries
         * (the rest travel in a bundle). */
        for (int t = 0; t <= MPS_WIRE_TARGET_FD_MAX; t++)
                ck_assert_int_eq(mps_spec_map_fd(s, t, 0), 0);
        ck_assert_uint_eq(s->nfds, MPS_WIRE_FDMAP_MAX);
        ck_assert_int_eq(mps_spec_map_fd(s, 5, 0), 0); /* a known one still may */
        ck_assert_uint_eq(s->nfds, MPS_WIRE_FDMAP_MAX);
        mps_spec_free(s);
}
END_TEST

/* ---- flags ---------------------------------------------------------------- */

START_TEST(test_flags) {
        mps_spec *s = new_spec();
        ASSERT_REFUSED(s, mps_spec_set_daemon(NULL, true), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_new_session(NULL, true), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_detached(NULL, true), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_no_new_privs(NULL, true), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_kill_tree(NULL, true), -EINVAL);
        ck_assert_int_eq(mps_spec_set_daemon(s, true), 0);
        ck_assert_int_eq(mps_spec_set_new_session(s, true), 0);
        ck_assert_int_eq(mps_spec_set_detached(s, true), 0);
        ck_assert_int_eq(mps_spec_set_no_new_privs(s, true), 0);
        ck_assert_int_eq(mps_spec_set_kill_tree(s, true), 0);
        cJSON *tree;
        struct mps__spawn m = decoded(s, &tree);
        ck_assert(m.daemon && m.new_session && m.detached && m.no_new_privs && m.kill_tree);
        ck_assert_uint_eq(mps__spawn_features(&s->spawn),
                          MPS_FEATURE_DETACHED | MPS_FEATURE_POLICY);
        done(&m, tree);
        ck_assert_int_eq(mps_spec_set_daemon(s, false), 0);
        ck_assert_int_eq(mps_spec_set_kill_tree(s, false), 0);
        m = decoded(s, &tree);
        ck_assert(!m.daemon && !m.kill_tree);
        done(&m, tree);
        mps_spec_free(s);
}
END_TEST

/* ---- timeout and limits ------------------------------------------------------ */

START_TEST(test_timeout) {
        mps_spec *s = new_spec();
        ASSERT_REFUSED(s, mps_spec_set_timeout(NULL, 1, 1), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_timeout(s, -1, 1), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_timeout(s, NAN, 1), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_timeout(s, MPS_WIRE_SECONDS_MAX * 2, 1), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_timeout(s, 1, MPS_WIRE_SECONDS_MAX * 2), -EINVAL);
        ck_assert_int_eq(mps_spec_set_timeout(s, 2.5, 0.5), 0);
        cJSON *tree;
        struct mps__spawn m = decoded(s, &tree);
        ck_assert(m.timeout == 2.5);
        ck_assert(m.kill_after == 0.5);
        ck_assert_uint_eq(mps__spawn_features(&s->spawn), MPS_FEATURE_TIMEOUT);
        done(&m, tree);
        /* A negative grace is the default one. */
        ck_assert_int_eq(mps_spec_set_timeout(s, 1, -1), 0);
        m = decoded(s, &tree);
        ck_assert(m.kill_after == MPS_WIRE_KILL_AFTER_DEFAULT);
        done(&m, tree);
        /* 0 removes it: nothing goes on the wire. */
        ck_assert_int_eq(mps_spec_set_timeout(s, 0, 1), 0);
        m = decoded(s, &tree);
        ck_assert(m.timeout == 0);
        ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(tree, "timeout"));
        done(&m, tree);
        mps_spec_free(s);
}
END_TEST

START_TEST(test_rlimit) {
        mps_spec *s = new_spec();
        ASSERT_REFUSED(s, mps_spec_set_rlimit(NULL, RLIMIT_NOFILE, 1, 2), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_rlimit(s, -1, 1, 2), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_rlimit(s, 9999, 1, 2), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_rlimit(s, RLIMIT_NOFILE, 3, 2), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_rlimit(s, RLIMIT_NOFILE, MPS_RLIM_KEEP, 2), -EINVAL);
        ck_assert_int_eq(mps_spec_set_rlimit(s, RLIMIT_NOFILE, 64, 128), 0);
        ck_assert_int_eq(mps_spec_set_rlimit(s, RLIMIT_CORE, 0, MPS_RLIM_KEEP), 0);
        ck_assert_int_eq(mps_spec_set_rlimit(s, RLIMIT_STACK, RLIM_INFINITY, RLIM_INFINITY), 0);
        /* Setting one again replaces it in place. */
        ck_assert_int_eq(mps_spec_set_rlimit(s, RLIMIT_NOFILE, 32, 128), 0);
        cJSON *tree;
        struct mps__spawn m = decoded(s, &tree);
        ck_assert_uint_eq(m.nrlimits, 3);
        ck_assert_int_eq(m.rlimits[0].resource, RLIMIT_NOFILE);
        ck_assert_uint_eq(m.rlimits[0].soft, 32);
        ck_assert_uint_eq(m.rlimits[0].hard, 128);
        ck_assert(!m.rlimits[0].hard_keep);
        ck_assert_int_eq(m.rlimits[1].resource, RLIMIT_CORE);
        ck_assert(m.rlimits[1].hard_keep);
        ck_assert_int_eq(m.rlimits[2].resource, RLIMIT_STACK);
        ck_assert(m.rlimits[2].soft == (unsigned long long)RLIM_INFINITY);
        ck_assert(m.rlimits[2].hard == (unsigned long long)RLIM_INFINITY);
        ck_assert_uint_eq(mps__spawn_features(&s->spawn), MPS_FEATURE_RLIMITS);
        done(&m, tree);
        mps_spec_free(s);
}
END_TEST

/* ---- policy ---------------------------------------------------------------- */

START_TEST(test_seccomp) {
        mps_spec *s = new_spec();
        char longname[MPS_WIRE_NAME_MAX + 2];
        memset(longname, 'p', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        size_t big = MPS_WIRE_MSG_MAX / 2 + 1;
        char *text = malloc(big + 1);
        ck_assert_ptr_nonnull(text);
        memset(text, '#', big);
        text[big] = '\0';
        ASSERT_REFUSED(s, mps_spec_set_seccomp(NULL, "p", "allow"), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_seccomp(s, "p", text), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_seccomp(s, longname, "allow"), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_seccomp_file(s, NULL), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_seccomp_file(NULL, "/etc/hostname"), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_seccomp_file(s, "/nonexistent/check-spec.policy"),
                       -ENOENT);
        free(text);

        ck_assert_int_eq(mps_spec_set_seccomp(s, "mine.policy", "default allow\n"), 0);
        cJSON *tree;
        struct mps__spawn m = decoded(s, &tree);
        ck_assert_str_eq(m.seccomp_name, "mine.policy");
        ck_assert_str_eq(m.seccomp_text, "default allow\n");
        ck_assert_uint_eq(mps__spawn_features(&s->spawn), MPS_FEATURE_POLICY);
        done(&m, tree);

        /* From a file: named by the file's base name. */
        char path[] = "/tmp/check-spec-XXXXXX";
        int fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, "x\n", 2), 2);
        close(fd);
        ck_assert_int_eq(mps_spec_set_seccomp_file(s, path), 0);
        unlink(path);
        m = decoded(s, &tree);
        ck_assert_str_eq(m.seccomp_name, strrchr(path, '/') + 1);
        ck_assert_str_eq(m.seccomp_text, "x\n");
        done(&m, tree);

        /* No text: no filter, nothing on the wire. */
        ck_assert_int_eq(mps_spec_set_seccomp(s, NULL, NULL), 0);
        m = decoded(s, &tree);
        ck_assert_ptr_null(m.seccomp_text);
        ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(tree, "seccomp"));
        done(&m, tree);
        mps_spec_free(s);
}
END_TEST

START_TEST(test_nice_umask_pdeathsig) {
        mps_spec *s = new_spec();
        ASSERT_REFUSED(s, mps_spec_set_nice(NULL, 1), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_nice(s, -21), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_nice(s, 20), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_umask(NULL, 022), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_umask(s, 01000), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_pdeathsig(NULL, 9), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_pdeathsig(s, -1), -EINVAL);
        ASSERT_REFUSED(s, mps_spec_set_pdeathsig(s, 65), -EINVAL);

        ck_assert_int_eq(mps_spec_set_nice(s, 0), 0); /* 0 is a nice too */
        cJSON *tree;
        struct mps__spawn m = decoded(s, &tree);
        ck_assert(m.has_nice);
        ck_assert_int_eq(m.nice, 0);
        ck_assert_int_eq(m.umask, -1);
        ck_assert_uint_eq(mps__spawn_features(&s->spawn), MPS_FEATURE_POLICY);
        done(&m, tree);

        ck_assert_int_eq(mps_spec_set_nice(s, 19), 0);
        ck_assert_int_eq(mps_spec_set_umask(s, 027), 0);
        ck_assert_int_eq(mps_spec_set_pdeathsig(s, 9), 0);
        m = decoded(s, &tree);
        ck_assert_int_eq(m.nice, 19);
        ck_assert_int_eq(m.umask, 027);
        ck_assert_int_eq(m.pdeathsig, 9);
        done(&m, tree);

        ck_assert_int_eq(mps_spec_set_umask(s, 0), 0);
        ck_assert_int_eq(mps_spec_set_pdeathsig(s, 0), 0);
        m = decoded(s, &tree);
        ck_assert_int_eq(m.umask, 0);
        ck_assert_int_eq(m.pdeathsig, 0);
        done(&m, tree);
        mps_spec_free(s);
}
END_TEST

/* ---- copy ---------------------------------------------------------------- */

/* A spec with every option set. */
static mps_spec *full_spec(void) {
        mps_spec *s = new_spec();
        ck_assert_int_eq(mps_spec_set_call(s, "entry", "{\"k\": [1, {\"n\": null}]}"), 0);
        ck_assert_int_eq(mps_spec_env_clear(s), 0);
        ck_assert_int_eq(mps_spec_env_set(s, "A", "1"), 0);
        ck_assert_int_eq(mps_spec_env_unset(s, "B"), 0);
        ck_assert_int_eq(mps_spec_set_cwd(s, "rel/dir"), 0);
        ck_assert_int_eq(mps_spec_set_name(s, "copy-me"), 0);
        ck_assert_int_eq(mps_spec_map_fd(s, 3, 1), 0);
        ck_assert_int_eq(mps_spec_map_fd(s, 0, -1), 0);
        ck_assert_int_eq(mps_spec_set_daemon(s, true), 0);
        ck_assert_int_eq(mps_spec_set_new_session(s, true), 0);
        ck_assert_int_eq(mps_spec_set_detached(s, true), 0);
        ck_assert_int_eq(mps_spec_set_timeout(s, 3, 1), 0);
        ck_assert_int_eq(mps_spec_set_rlimit(s, RLIMIT_NOFILE, 10, 20), 0);
        ck_assert_int_eq(mps_spec_set_seccomp(s, "p", "default allow\n"), 0);
        ck_assert_int_eq(mps_spec_set_nice(s, 5), 0);
        ck_assert_int_eq(mps_spec_set_umask(s, 077), 0);
        ck_assert_int_eq(mps_spec_set_no_new_privs(s, true), 0);
        ck_assert_int_eq(mps_spec_set_pdeathsig(s, 15), 0);
        ck_assert_int_eq(mps_spec_set_kill_tree(s, true), 0);
        return s;
}

START_TEST(test_copy_is_equal_and_deep) {
        mps_spec *s = full_spec();
        mps_spec *c;
        ck_assert_int_eq(mps__spec_copy(s, &c), 0);
        char *want = snapshot(s);
        char *got = snapshot(c);
        ck_assert_str_eq(want, got);
        free(got);
        /* Nothing is shared. */
        ck_assert_ptr_ne(c->spawn.call_entry, s->spawn.call_entry);
        ck_assert_ptr_ne(c->spawn.call_args, s->spawn.call_args);
        ck_assert_ptr_ne(c->spawn.argv, s->spawn.argv);
        ck_assert_ptr_ne(c->spawn.argv[0], s->spawn.argv[0]);
        ck_assert_ptr_ne(c->spawn.cwd, s->spawn.cwd);
        ck_assert_ptr_ne(c->spawn.name, s->spawn.name);
        ck_assert_ptr_ne(c->spawn.seccomp_name, s->spawn.seccomp_name);
        ck_assert_ptr_ne(c->spawn.seccomp_text, s->spawn.seccomp_text);
        ck_assert_ptr_ne(c->edits, s->edits);
        ck_assert_ptr_ne(c->edits[0].name, s->edits[0].name);
        ck_assert_ptr_ne(c->fds, s->fds);

        /* Changing the original leaves the copy as it was... */
        const char *argv[] = {"other", NULL};
        ck_assert_int_eq(mps_spec_set_exec(s, "/bin/other", argv), 0);
        ck_assert_int_eq(mps_spec_env_set(s, "A", "changed"), 0);
        ck_assert_int_eq(mps_spec_set_cwd(s, "/elsewhere"), 0);
        ck_assert_int_eq(mps_spec_set_name(s, NULL), 0);
        ck_assert_int_eq(mps_spec_map_fd(s, 3, 2), 0);
        ck_assert_int_eq(mps_spec_set_seccomp(s, NULL, NULL), 0);
        ck_assert_int_eq(mps_spec_set_pdeathsig(s, 0), 0);
        ck_assert_int_eq(mps_spec_set_rlimit(s, RLIMIT_NOFILE, 1, 2), 0);
        got = snapshot(c);
        ck_assert_str_eq(want, got);
        free(got);

        /* ...and so does freeing it. */
        mps_spec_free(s);
        got = snapshot(c);
        ck_assert_str_eq(want, got);
        free(got);
        free(want);
        mps_spec_free(c);
}
END_TEST

START_TEST(test_copy_of_copy_and_of_plain) {
        /* A fresh spec (no program) and an exec one copy too. */
        mps_spec *s, *c;
        ck_assert_int_eq(mps_spec_new(&s), 0);
        ck_assert_int_eq(mps__spec_copy(s, &c), 0);
        ck_assert_ptr_null(c->spawn.path);
        ck_assert_ptr_null(c->spawn.argv);
        ck_assert_int_eq(c->spawn.umask, -1);
        mps_spec_free(c);
        mps_spec_free(s);

        s = full_spec();
        mps_spec *c2;
        ck_assert_int_eq(mps__spec_copy(s, &c), 0);
        mps_spec_free(s);
        ck_assert_int_eq(mps__spec_copy(c, &c2), 0);
        char *a = snapshot(c), *b = snapshot(c2);
        ck_assert_str_eq(a, b);
        free(a);
        free(b);
        mps_spec_free(c);
        mps_spec_free(c2);
}
END_TEST

/* ---- suite ---------------------------------------------------------------- */

static TCase *new_tcase(Suite *s, const char *name) {
        TCase *tc = tcase_create(name);
        tcase_set_timeout(tc, TIMEOUT_S);
        suite_add_tcase(s, tc);
        return tc;
}

static Suite *spec_suite(void) {
        Suite *s = suite_create("spec");
        TCase *tc;

        tc = new_tcase(s, "program");
        tcase_add_test(tc, test_new_defaults);
        tcase_add_test(tc, test_exec_refused);
        tcase_add_test(tc, test_exec_replaces_call);
        tcase_add_test(tc, test_call_refused);
        tcase_add_test(tc, test_call_takes_effect);

        tc = new_tcase(s, "context");
        tcase_add_test(tc, test_env_refused);
        tcase_add_test(tc, test_env_takes_effect);
        tcase_add_test(tc, test_cwd_and_name);
        tcase_add_test(tc, test_map_fd);

        tc = new_tcase(s, "options");
        tcase_add_test(tc, test_flags);
        tcase_add_test(tc, test_timeout);
        tcase_add_test(tc, test_rlimit);
        tcase_add_test(tc, test_seccomp);
        tcase_add_test(tc, test_nice_umask_pdeathsig);

        tc = new_tcase(s, "copy");
        tcase_add_test(tc, test_copy_is_equal_and_deep);
        tcase_add_test(tc, test_copy_of_copy_and_of_plain);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(spec_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
