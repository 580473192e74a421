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
 * unquoted blank or the end, and leaves *pos there. Returns 0, or -EINVAL
 * with a message when the line ends inside quotes or with a backslash.
 */
static int scan_word(const char *line, size_t *pos, struct scan *s,
                     char *err, size_t errlen) {
        size_t i = *pos;

        while (line[i] && !is_blank(line[i])) {
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

                r = scan_word(line, &i, &s, err, errlen);
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
