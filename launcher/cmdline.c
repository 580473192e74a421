/* SPDX-License-Identifier: MIT */
/*
 * cmdline.c: one left-to-right pass over the line. Each word is built in a
 * scratch buffer of MPS_WIRE_STR_MAX bytes and copied out when it ends; the
 * vector grows by doubling up to MPS_WIRE_ARGV_MAX. Every exit goes through
 * `out`, which frees what was not handed to the caller.
 */
#include "cmdline.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "say.h"
#include "wire.h"

_Static_assert(MPS_CMDLINE_LINE_MAX == MPS_WIRE_MSG_MAX,
               "a batch line is bounded like one wire message");


static bool is_blank(char c) {
        return c == ' ' || c == '\t';
}

/* The characters a backslash escapes inside double quotes (POSIX sh,
 * 2.2.3, less <newline>: a line holds none that matters). */
static bool dquote_escapable(char c) {
        return c == '"' || c == '\\' || c == '$' || c == '`';
}

void mps__cmdline_free(char **argv) {
        if (!argv)
                return;
        for (char **p = argv; *p; p++)
                free(*p);
        free(argv);
}

/*
 * The scan of one line. Quoting errors can only show at the end of the line
 * (an open quote, a final backslash), so the whole line is always scanned:
 * once a bound is exceeded the scan records the first such place and stops
 * storing, and that bound is reported only if the line's quoting is sound.
 */
enum bound {
        BOUND_NONE,
        BOUND_WORDS,    /* more than MPS_WIRE_ARGV_MAX words */
        BOUND_WORD_LEN, /* a word longer than MPS_WIRE_STR_MAX */
};

struct scan {
        char *word;    /* the word being built */
        size_t n;      /* its length so far */
        size_t start;  /* its offset in the line */
        enum bound bound;
        size_t bound_col; /* 1-based column of the first bound exceeded */
};

static void exceed(struct scan *s, enum bound b) {
        if (s->bound != BOUND_NONE)
                return;
        s->bound = b;
        s->bound_col = s->start + 1;
}

static void put(struct scan *s, char c) {
        if (s->n < MPS_WIRE_STR_MAX)
                s->word[s->n++] = c;
        else
                exceed(s, BOUND_WORD_LEN);
}

/*
 * Scans the word that starts at line[*pos] (not a blank) up to the next
 * unquoted blank or the end, and leaves *pos there; with whole_line, an
 * unquoted blank is part of the word and only the end of the line ends it
 * (an -I item). Returns 0, or -EINVAL with a message when the line ends
 * inside quotes or with a backslash.
 */
static int scan_word(const char *line, size_t *pos, struct scan *s, bool whole_line,
                     char *err, size_t errlen) {
        size_t i = *pos;

        while (line[i] && (whole_line || !is_blank(line[i]))) {
                size_t open = i;
                switch (line[i]) {
                case '\'':
                        for (i++; line[i] && line[i] != '\''; i++)
                                put(s, line[i]);
                        if (!line[i]) {
                                mps__say(err, errlen,
                                    "column %zu: unterminated single quote",
                                    open + 1);
                                return -EINVAL;
                        }
                        i++;
                        break;
                case '"':
                        for (i++; line[i] && line[i] != '"'; i++) {
                                if (line[i] == '\\' && line[i + 1] &&
                                    dquote_escapable(line[i + 1]))
                                        i++;
                                put(s, line[i]);
                        }
                        if (!line[i]) {
                                mps__say(err, errlen,
                                    "column %zu: unterminated double quote",
                                    open + 1);
                                return -EINVAL;
                        }
                        i++;
                        break;
                case '\\':
                        if (!line[i + 1]) {
                                mps__say(err, errlen,
                                    "column %zu: backslash at the end of the line",
                                    i + 1);
                                return -EINVAL;
                        }
                        put(s, line[i + 1]);
                        i += 2;
                        break;
                default:
                        put(s, line[i]);
                        i++;
                        break;
                }
        }
        *pos = i;
        return 0;
}

int mps__cmdline_split(const char *line, char ***ret_argv, size_t *ret_argc,
                       char *err, size_t errlen) {
        struct scan s = {0};
        char **argv = NULL;
        size_t argc = 0, cap = 0;
        int r;

        size_t len = strnlen(line, (size_t)MPS_CMDLINE_LINE_MAX + 1);
        if (len > MPS_CMDLINE_LINE_MAX) {
                mps__say(err, errlen, "line longer than %d bytes",
                    MPS_CMDLINE_LINE_MAX);
                r = -E2BIG;
                goto out;
        }

        /* Quote removal only shortens, so no word is longer than the line. */
        s.word = malloc(len < MPS_WIRE_STR_MAX ? len + 1 : MPS_WIRE_STR_MAX);
        if (!s.word)
                goto oom;

        size_t i = 0;
        while (is_blank(line[i]))
                i++;
        /* Only a '#' that starts the line's first word makes a comment,
         * so "a #b" is two words; see docs/batch.md. */
        if (line[i] == '#')
                i = len;

        while (line[i]) {
                if (is_blank(line[i])) {
                        i++;
                        continue;
                }

                s.start = i;
                s.n = 0;
                if (argc == MPS_WIRE_ARGV_MAX)
                        exceed(&s, BOUND_WORDS);

                r = scan_word(line, &i, &s, false, err, errlen);
                if (r < 0)
                        goto out;
                if (s.bound != BOUND_NONE)
                        continue; /* the line fails; only scanning goes on */

                /* Room for this word and the terminating NULL. */
                if (argc + 1 >= cap) {
                        size_t ncap = cap ? cap * 2 : 8;
                        char **nv = realloc(argv, ncap * sizeof(*nv));
                        if (!nv)
                                goto oom;
                        argv = nv;
                        cap = ncap;
                }
                argv[argc] = strndup(s.word, s.n);
                if (!argv[argc])
                        goto oom;
                argc++;
        }

        switch (s.bound) {
        case BOUND_NONE:
                break;
        case BOUND_WORDS:
                mps__say(err, errlen, "column %zu: more than %d words", s.bound_col,
                    MPS_WIRE_ARGV_MAX);
                r = -E2BIG;
                goto out;
        case BOUND_WORD_LEN:
                mps__say(err, errlen, "column %zu: word longer than %d bytes",
                    s.bound_col, MPS_WIRE_STR_MAX);
                r = -E2BIG;
                goto out;
        }

        if (!argv) {
                /* A blank or comment line: a vector holding only NULL. */
                argv = malloc(sizeof(*argv));
                if (!argv)
                        goto oom;
        }
        argv[argc] = NULL;
        *ret_argv = argv;
        *ret_argc = argc;
        argv = NULL;
        r = 0;
        goto out;

oom:
        mps__say(err, errlen, "out of memory");
        r = -ENOMEM;
out:
        /* argv[0..argc) are the words stored so far and argv has room past
         * them; terminate it before freeing. */
        if (argv) {
                argv[argc] = NULL;
                mps__cmdline_free(argv);
        }
        free(s.word);
        return r;
}

/* ---- -I items, replacement, -d delimiters ------------------------------ */

int mps__cmdline_item(const char *line, char **ret_item, char *err, size_t errlen) {
        struct scan s = {0};
        int r;

        size_t len = strnlen(line, (size_t)MPS_CMDLINE_LINE_MAX + 1);
        if (len > MPS_CMDLINE_LINE_MAX) {
                mps__say(err, errlen, "line longer than %d bytes", MPS_CMDLINE_LINE_MAX);
                return -E2BIG;
        }
        size_t i = 0;
        while (is_blank(line[i]))
                i++;
        if (!line[i]) {
                *ret_item = NULL; /* blank: no item, as GNU xargs -I skips it */
                return 0;
        }
        s.word = malloc(len < MPS_WIRE_STR_MAX ? len + 1 : MPS_WIRE_STR_MAX);
        if (!s.word) {
                mps__say(err, errlen, "out of memory");
                return -ENOMEM;
        }
        s.start = i;
        r = scan_word(line, &i, &s, true, err, errlen);
        if (r == 0 && s.bound != BOUND_NONE) {
                mps__say(err, errlen, "column %zu: word longer than %d bytes", s.bound_col,
                    MPS_WIRE_STR_MAX);
                r = -E2BIG;
        }
        if (r == 0) {
                char *item = strndup(s.word, s.n);
                if (item)
                        *ret_item = item;
                else {
                        mps__say(err, errlen, "out of memory");
                        r = -ENOMEM;
                }
        }
        free(s.word);
        return r;
}

/* Length of word with every pat replaced by item; SIZE_MAX past max. */
static size_t replaced_length(const char *word, const char *pat, size_t patlen,
                              size_t itemlen, size_t max) {
        size_t n = 0;
        for (const char *p = word; *p;) {
                if (strncmp(p, pat, patlen) == 0) {
                        n += itemlen;
                        p += patlen;
                } else {
                        n++;
                        p++;
                }
                if (n > max)
                        return SIZE_MAX;
        }
        return n;
}

int mps__cmdline_replace(char *const *words, size_t nwords, const char *pat,
                         const char *item, char ***ret_argv, char *err, size_t errlen) {
        size_t patlen = strlen(pat), itemlen = strlen(item);
        char **argv = calloc(nwords + 1, sizeof(*argv));
        if (!argv || patlen == 0)
                goto oom_or_inval;
        for (size_t w = 0; w < nwords; w++) {
                size_t n = replaced_length(words[w], pat, patlen, itemlen, MPS_WIRE_STR_MAX);
                if (n == SIZE_MAX) {
                        mps__say(err, errlen, "word %zu longer than %d bytes with the item in it",
                            w + 1, MPS_WIRE_STR_MAX);
                        mps__cmdline_free(argv);
                        return -E2BIG;
                }
                char *out = malloc(n + 1), *o = out;
                if (!out)
                        goto oom_or_inval;
                for (const char *p = words[w]; *p;) {
                        if (strncmp(p, pat, patlen) == 0) {
                                memcpy(o, item, itemlen);
                                o += itemlen;
                                p += patlen;
                        } else {
                                *o++ = *p++;
                        }
                }
                *o = '\0';
                argv[w] = out;
        }
        *ret_argv = argv;
        return 0;

oom_or_inval:
        mps__cmdline_free(argv);
        if (patlen == 0) {
                mps__say(err, errlen, "empty replacement string");
                return -EINVAL;
        }
        mps__say(err, errlen, "out of memory");
        return -ENOMEM;
}

/* GNU xargs' get_char_oct_or_hex_escape: "\NNN" octal (so "\0" is NUL),
 * "\xHH" hex, the whole rest of s, at most 255. */
static int delim_number(const char *s, char *ret) {
        int base = s[1] == 'x' ? 16 : 8;
        const char *p = base == 16 ? s + 2 : s + 1;
        unsigned long v = 0;
        if (!*p)
                return -EINVAL;
        for (; *p; p++) {
                int d;
                if (*p >= '0' && *p <= '7')
                        d = *p - '0';
                else if (base == 16 && *p >= '8' && *p <= '9')
                        d = *p - '0';
                else if (base == 16 && *p >= 'a' && *p <= 'f')
                        d = *p - 'a' + 10;
                else if (base == 16 && *p >= 'A' && *p <= 'F')
                        d = *p - 'A' + 10;
                else
                        return -EINVAL;
                v = v * (unsigned long)base + (unsigned long)d;
                if (v > 255)
                        return -ERANGE;
        }
        *ret = (char)v;
        return 0;
}

int mps__cmdline_parse_delim(const char *s, char *ret) {
        static const char escapes[] = "a\ab\bf\fn\nr\rt\tv\v\\\\";
        if (s[0] && !s[1]) {
                *ret = s[0];
                return 0;
        }
        if (s[0] != '\\' || !s[1])
                return -EINVAL;
        if (!s[2])
                for (const char *e = escapes; *e; e += 2)
                        if (e[0] == s[1]) {
                                *ret = e[1];
                                return 0;
                        }
        if (s[1] == 'x' || (s[1] >= '0' && s[1] <= '9'))
                return delim_number(s, ret);
        return -EINVAL;
}
