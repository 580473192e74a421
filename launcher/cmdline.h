/* SPDX-License-Identifier: MIT */
/*
 * cmdline.h: splits one line of `mpspawn -j N` batch input into an argv,
 * with POSIX-sh-like quoting and no expansion of any kind. docs/batch.md
 * states the rules for users; the tests in tests/check_cmdline.c pin them.
 *
 * The module is pure: no I/O, no globals, nothing but malloc().
 */
#ifndef MPS_CMDLINE_H
#define MPS_CMDLINE_H

#include <stddef.h>

/* The longest line accepted, in bytes without the terminating NUL. It is
 * MPS_WIRE_MSG_MAX (checked in cmdline.c): a longer command could never
 * travel in one spawn message anyway. */
#define MPS_CMDLINE_LINE_MAX 65536

/*
 * Splits line (a C string without its newline; the caller strips it) into
 * words:
 *   - words are separated by unquoted blanks (space, tab); leading and
 *     trailing blanks are ignored;
 *   - '...' keeps everything literal up to the next single quote;
 *   - "..." keeps everything literal except that a backslash before one of
 *     " \ $ ` stands for that character; before any other character the
 *     backslash stays;
 *   - outside quotes a backslash makes the next character literal; a
 *     backslash that ends the line is an error (lines do not continue);
 *   - adjacent parts join into one word, and '' or "" is an empty word;
 *   - nothing is expanded: $VAR, `cmd`, globs and ~ stay as written.
 * A line that is empty, only blanks, or whose first non-blank character is
 * '#' has no words. A '#' anywhere else is an ordinary character.
 *
 * On success returns 0, sets *ret_argv to a malloc()ed NULL-terminated
 * vector of malloc()ed strings (the caller frees it with mps__cmdline_free)
 * and *ret_argc to the number of words, which is 0 for a blank or comment
 * line (the vector then holds only NULL). err is not touched.
 *
 * On failure returns a negative errno, leaves *ret_argv and *ret_argc
 * untouched and, unless err is NULL or errlen is 0, writes a one-line
 * message to err (truncated to errlen). Columns in messages count bytes
 * from 1.
 *   -EINVAL  "column C: unterminated single quote" (C: the opening quote)
 *            "column C: unterminated double quote" (C: the opening quote)
 *            "column C: backslash at the end of the line" (C: the backslash)
 *   -E2BIG   "line longer than 65536 bytes" (MPS_CMDLINE_LINE_MAX; checked
 *            before anything else, comment lines included)
 *            "column C: more than 4096 words" (MPS_WIRE_ARGV_MAX; C: where
 *            the first word too many starts)
 *            "column C: word longer than 16384 bytes" (MPS_WIRE_STR_MAX,
 *            counting the word after quote removal; C: where it starts)
 *   -ENOMEM  "out of memory"
 * A line that ends inside quotes or with a backslash is reported as such
 * whatever else is wrong with it; otherwise the first bound exceeded, from
 * the left, is reported.
 */
int mps__cmdline_split(const char *line, char ***ret_argv, size_t *ret_argc,
                       char *err, size_t errlen);

/*
 * One -I item (`mpspawn -j N -I {} ...`, as GNU xargs -I): the whole line is
 * one item: leading blanks are dropped, the quoting rules above apply, but
 * an unquoted blank is part of the item (trailing ones included), so that
 * `  my file.txt` is "my file.txt". Returns 0 with *ret_item malloc()ed, or
 * NULL for a line of blanks only (no item: skip it; there are no comment
 * lines here). On failure as mps__cmdline_split: the quoting errors, -E2BIG
 * for a line or item over the bounds, -ENOMEM; *ret_item untouched.
 */
int mps__cmdline_item(const char *line, char **ret_item, char *err, size_t errlen);

/*
 * The command of an -I item: each of the nwords words with every
 * occurrence of pat (not empty) replaced by item, left to right, not
 * rescanned. Returns 0 with *ret_argv a NULL-terminated vector for
 * mps__cmdline_free; -E2BIG ("word W longer than 16384 bytes with the item
 * in it", W from 1) when a word would exceed MPS_WIRE_STR_MAX; -EINVAL for
 * an empty pat; -ENOMEM. *ret_argv untouched on failure.
 */
int mps__cmdline_replace(char *const *words, size_t nwords, const char *pat,
                         const char *item, char ***ret_argv, char *err, size_t errlen);

/*
 * An -d DELIM argument, as GNU xargs takes it: one character, or an escape:
 * \a \b \f \n \r \t \v \\, octal \NNN (\0 is NUL) or hex \xHH, up to 255,
 * nothing after it. 0 with *ret set; -EINVAL (-ERANGE past 255) otherwise.
 */
int mps__cmdline_parse_delim(const char *s, char *ret);

/* Frees a vector from mps__cmdline_split and its strings; NULL is a no-op. */
void mps__cmdline_free(char **argv);

#endif /* MPS_CMDLINE_H */
