/* SPDX-License-Identifier: MIT */
/*
 * fuzz_cmdline.c: the batch-mode line splitter (launcher/cmdline.c) on any
 * line. The input, up to its first NUL, is one line as `mpspawn -j N`
 * reads it.
 *
 * Two oracles:
 *   - a second splitter written here from the rules in cmdline.h alone,
 *     small and slow, must agree on the result, the words and the exact
 *     error message;
 *   - the words of a line that splits, each put in single quotes, must
 *     split back into the same words.
 * And the contract: out-parameters untouched on failure, a NULL-terminated
 * vector on success, every word within MPS_WIRE_STR_MAX bytes.
 *
 * The same line as an -I item (mps__cmdline_item) must meet the same
 * quoting errors as the split (blanks change no quoting state), be the line
 * itself less its leading blanks when it has no quotes or backslashes, and
 * the split's words with "{}" replaced (mps__cmdline_replace) must match a
 * naive replacement.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "../launcher/cmdline.h"
#include "../launcher/wire.h"
#include "fuzz.h"

/* ---- the reference splitter ------------------------------------------------ */

struct ref {
        int r;
        char msg[128];
        char **words; /* NULL-terminated, each malloc()ed */
        size_t n, cap;
};

static void ref_push(struct ref *f, const char *w, size_t len) {
        /* Doubling: thousands of words must stay cheap. */
        if (f->n + 2 > f->cap) {
                f->cap = f->cap ? 2 * f->cap : 16;
                f->words = realloc(f->words, f->cap * sizeof(*f->words));
        }
        FUZZ_CHECK(f->words, "out of memory");
        f->words[f->n] = strndup(w, len);
        FUZZ_CHECK(f->words[f->n], "out of memory");
        f->words[++f->n] = NULL;
}

static void ref_free(struct ref *f) {
        for (size_t i = 0; i < f->n; i++)
                free(f->words[i]);
        free(f->words);
}

static bool blank(char c) {
        return c == ' ' || c == '\t';
}

/*
 * The rules as cmdline.h states them. Quoting errors are found where the
 * line ends, so they win over bounds; of the bounds the leftmost counts,
 * and a word's bound is placed at the word's start.
 */
static void ref_split(const char *line, struct ref *f) {
        static char word[MPS_CMDLINE_LINE_MAX + 1];
        size_t len = strlen(line), i = 0;
        char bound[64] = "";
        size_t bound_col = 0;

        memset(f, 0, sizeof(*f));
        if (len > MPS_CMDLINE_LINE_MAX) {
                f->r = -E2BIG;
                snprintf(f->msg, sizeof(f->msg), "line longer than %d bytes",
                         MPS_CMDLINE_LINE_MAX);
                return;
        }
        while (blank(line[i]))
                i++;
        if (line[i] == '#')
                i = len;
        for (;;) {
                while (blank(line[i]))
                        i++;
                if (!line[i])
                        break;
                size_t start = i, n = 0;
                if (f->n == MPS_WIRE_ARGV_MAX && !bound[0]) {
                        snprintf(bound, sizeof(bound), "more than %d words",
                                 MPS_WIRE_ARGV_MAX);
                        bound_col = start + 1;
                }
                while (line[i] && !blank(line[i])) {
                        char c = line[i];
                        if (c == '\'') {
                                const char *q = strchr(line + i + 1, '\'');
                                if (!q) {
                                        f->r = -EINVAL;
                                        snprintf(f->msg, sizeof(f->msg),
                                                 "column %zu: unterminated single quote",
                                                 i + 1);
                                        return;
                                }
                                size_t k = (size_t)(q - (line + i + 1));
                                memcpy(word + n, line + i + 1, k);
                                n += k;
                                i += k + 2;
                        } else if (c == '"') {
                                size_t open = i++;
                                while (line[i] != '"') {
                                        if (!line[i]) {
                                                f->r = -EINVAL;
                                                snprintf(f->msg, sizeof(f->msg),
                                                         "column %zu: unterminated double quote",
                                                         open + 1);
                                                return;
                                        }
                                        if (line[i] == '\\' && line[i + 1] &&
                                            strchr("\"\\$`", line[i + 1]))
                                                i++;
                                        word[n++] = line[i++];
                                }
                                i++;
                        } else if (c == '\\') {
                                if (!line[i + 1]) {
                                        f->r = -EINVAL;
                                        snprintf(f->msg, sizeof(f->msg),
                                                 "column %zu: backslash at the end of the line",
                                                 i + 1);
                                        return;
                                }
                                word[n++] = line[i + 1];
                                i += 2;
                        } else {
                                word[n++] = line[i++];
                        }
                }
                if (n > MPS_WIRE_STR_MAX && !bound[0]) {
                        snprintf(bound, sizeof(bound), "word longer than %d bytes",
                                 MPS_WIRE_STR_MAX);
                        bound_col = start + 1;
                }
                if (!bound[0])
                        ref_push(f, word, n);
        }
        if (bound[0]) {
                ref_free(f);
                f->words = NULL;
                f->n = 0;
                f->r = -E2BIG;
                snprintf(f->msg, sizeof(f->msg), "column %zu: %s", bound_col, bound);
                return;
        }
        if (!f->words) {
                f->words = calloc(1, sizeof(*f->words));
                FUZZ_CHECK(f->words, "out of memory");
        }
}

/* ---- the target ---------------------------------------------------------------- */

/* The words in single quotes ('\'' for a quote), joined by spaces; NULL
 * when that line would be too long to split. */
static char *requote(char **argv, size_t argc) {
        size_t len = 0;
        for (size_t i = 0; i < argc; i++)
                for (const char *p = argv[i]; *p; p++)
                        len += *p == '\'' ? 4 : 1;
        len += 3 * argc + 1;
        if (len > MPS_CMDLINE_LINE_MAX)
                return NULL;
        char *line = malloc(len), *o = line;
        FUZZ_CHECK(line, "out of memory");
        for (size_t i = 0; i < argc; i++) {
                if (i > 0)
                        *o++ = ' ';
                *o++ = '\'';
                for (const char *p = argv[i]; *p; p++) {
                        if (*p == '\'') {
                                memcpy(o, "'\\''", 4);
                                o += 4;
                        } else {
                                *o++ = *p;
                        }
                }
                *o++ = '\'';
        }
        *o = '\0';
        return line;
}

/* ---- -I items and replacement ------------------------------------------------- */

static void check_item(const char *line, int split_r, const char *split_err) {
        char *item = (char *)"untouched", err[256] = "";
        int r = mps__cmdline_item(line, &item, err, sizeof(err));
        size_t lead = strspn(line, " \t");
        if (strlen(line) > MPS_CMDLINE_LINE_MAX) {
                FUZZ_CHECK(r == -E2BIG, "item of an over-long line: %d", r);
                return;
        }
        if (split_r == -EINVAL && line[lead] != '#') {
                FUZZ_CHECK(r == -EINVAL && strcmp(err, split_err) == 0,
                           "item says %d \"%s\", split says \"%s\"", r, err, split_err);
        }
        if (r < 0) {
                FUZZ_CHECK(strcmp(item, "untouched") == 0, "a failed item set *ret_item");
                return;
        }
        FUZZ_CHECK((item == NULL) == (line[lead] == '\0'), "item NULL iff the line is blank");
        if (!item)
                return;
        FUZZ_CHECK(strlen(item) <= MPS_WIRE_STR_MAX, "item of %zu bytes", strlen(item));
        if (!strpbrk(line, "'\"\\"))
                FUZZ_CHECK(strcmp(item, line + lead) == 0, "item \"%s\" of a plain line", item);
        free(item);
}

/* Every "{}" in word replaced by "<>", naively. */
static char *naive_replace(const char *word) {
        char *out = malloc(strlen(word) + 1), *o = out;
        FUZZ_CHECK(out, "out of memory");
        for (const char *p = word; *p;) {
                if (p[0] == '{' && p[1] == '}') {
                        *o++ = '<';
                        *o++ = '>';
                        p += 2;
                } else {
                        *o++ = *p++;
                }
        }
        *o = '\0';
        return out;
}

static void check_replace(char **words, size_t n) {
        char **argv = NULL, err[256] = "";
        int r = mps__cmdline_replace(words, n, "{}", "<>", &argv, err, sizeof(err));
        FUZZ_CHECK(r == 0, "replace of a same-length item: %d (%s)", r, err);
        for (size_t i = 0; i < n; i++) {
                char *want = naive_replace(words[i]);
                FUZZ_CHECK(strcmp(argv[i], want) == 0, "replaced \"%s\", not \"%s\"", argv[i],
                           want);
                free(want);
        }
        FUZZ_CHECK(!argv[n], "the vector is not NULL-terminated");
        mps__cmdline_free(argv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static char *sentinel_argv[] = {"untouched", NULL};
        char *line = malloc(size + 1);
        char **argv = sentinel_argv;
        size_t argc = 12345;
        char err[256] = "";
        struct ref want;

        FUZZ_CHECK(line, "out of memory");
        memcpy(line, data, size);
        line[size] = '\0';

        int r = mps__cmdline_split(line, &argv, &argc, err, sizeof(err));
        ref_split(line, &want);
        FUZZ_CHECK(r == want.r, "split returned %d (%s), the rules say %d (%s)",
                   r, err, want.r, want.msg);
        check_item(line, r, err);
        if (r < 0) {
                FUZZ_CHECK(argv == sentinel_argv && argc == 12345,
                           "a failed split set its out-parameters");
                FUZZ_CHECK(strcmp(err, want.msg) == 0,
                           "split says \"%s\", the rules say \"%s\"", err, want.msg);
                ref_free(&want);
                free(line);
                return 0;
        }
        FUZZ_CHECK(err[0] == '\0', "a split that worked wrote \"%s\"", err);
        FUZZ_CHECK(argv && argv != sentinel_argv, "no vector");
        FUZZ_CHECK(argc == want.n, "%zu words, the rules say %zu", argc, want.n);
        FUZZ_CHECK(argc <= MPS_WIRE_ARGV_MAX, "%zu words", argc);
        FUZZ_CHECK(!argv[argc], "the vector is not NULL-terminated");
        for (size_t i = 0; i < argc; i++) {
                FUZZ_CHECK(strlen(argv[i]) <= MPS_WIRE_STR_MAX, "word %zu: %zu bytes",
                           i, strlen(argv[i]));
                FUZZ_CHECK(strcmp(argv[i], want.words[i]) == 0,
                           "word %zu is \"%s\", the rules say \"%s\"", i, argv[i],
                           want.words[i]);
        }

        check_replace(argv, argc);

        char *again = requote(argv, argc);
        if (again) {
                char **argv2 = NULL;
                size_t argc2 = 0;
                r = mps__cmdline_split(again, &argv2, &argc2, err, sizeof(err));
                FUZZ_CHECK(r == 0, "the words quoted again do not split: %s", err);
                FUZZ_CHECK(argc2 == argc, "quoted again: %zu words, not %zu",
                           argc2, argc);
                for (size_t i = 0; i < argc; i++)
                        FUZZ_CHECK(strcmp(argv[i], argv2[i]) == 0,
                                   "quoted again, word %zu is \"%s\", not \"%s\"",
                                   i, argv2[i], argv[i]);
                mps__cmdline_free(argv2);
                free(again);
        }
        mps__cmdline_free(argv);
        ref_free(&want);
        free(line);
        return 0;
}
