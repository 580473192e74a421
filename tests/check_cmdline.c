/* SPDX-License-Identifier: MIT */
/*
 * check_cmdline.c: the batch-mode line splitter (launcher/cmdline.c). Each
 * quoting rule of docs/batch.md with exact words out, comment and blank
 * lines, every error with its exact message and column, outputs untouched
 * on failure, and each bound at its limit and one past it.
 *
 * Inputs are C literals, so a shell line like  "a\"b"  appears here as
 * "\"a\\\"b\""; the comment beside a case gives the line as a user types it
 * where that helps.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../launcher/cmdline.h"
#include "../launcher/wire.h"

#define TIMEOUT_S 30

/* The expected words of a line, NULL-terminated. */
#define W(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Sentinels for the out-parameters, to see that failures leave them be. */
static char *sentinel_word[] = {"untouched", NULL};
#define SENTINEL_ARGC ((size_t)12345)

static void expect_words(const char *line, const char *const *want) {
        char **argv = sentinel_word;
        size_t argc = SENTINEL_ARGC;
        char err[256] = "err untouched";
        size_t nwant = 0;

        while (want[nwant])
                nwant++;
        int r = mps__cmdline_split(line, &argv, &argc, err, sizeof(err));
        ck_assert_msg(r == 0, "split(%s) = %d (%s), expected 0", line, r, err);
        ck_assert_str_eq(err, "err untouched");
        ck_assert_ptr_nonnull(argv);
        ck_assert_ptr_ne(argv, sentinel_word);
        ck_assert_msg(argc == nwant, "split(%s): %zu words, expected %zu",
                      line, argc, nwant);
        for (size_t i = 0; i < nwant; i++)
                ck_assert_msg(strcmp(argv[i], want[i]) == 0,
                              "split(%s): word %zu is \"%s\", expected \"%s\"",
                              line, i, argv[i], want[i]);
        ck_assert_ptr_null(argv[argc]);
        mps__cmdline_free(argv);
}

static void expect_no_words(const char *line) {
        expect_words(line, (const char *const[]){NULL});
}

static void expect_error(const char *line, int want_r, const char *want_msg) {
        char **argv = sentinel_word;
        size_t argc = SENTINEL_ARGC;
        char err[256] = "";

        int r = mps__cmdline_split(line, &argv, &argc, err, sizeof(err));
        ck_assert_msg(r == want_r, "split(%.60s) = %d, expected %d", line, r,
                      want_r);
        ck_assert_str_eq(err, want_msg);
        ck_assert_ptr_eq(argv, sentinel_word);
        ck_assert_uint_eq(argc, SENTINEL_ARGC);
}

/* A malloc()ed string: prefix, then n copies of unit, then suffix. */
static char *build(const char *prefix, const char *unit, size_t n,
                   const char *suffix) {
        size_t lp = strlen(prefix), lu = strlen(unit), ls = strlen(suffix);
        char *s = malloc(lp + lu * n + ls + 1);
        ck_assert_ptr_nonnull(s);
        char *p = s;
        memcpy(p, prefix, lp);
        p += lp;
        for (size_t i = 0; i < n; i++, p += lu)
                memcpy(p, unit, lu);
        memcpy(p, suffix, ls + 1);
        return s;
}

/* ---- words and blanks ------------------------------------------------ */

START_TEST(test_plain_words) {
        expect_words("a", W("a"));
        expect_words("echo hello world", W("echo", "hello", "world"));
        expect_words("/bin/sh -c exit", W("/bin/sh", "-c", "exit"));
        expect_words("--opt=value x=1", W("--opt=value", "x=1"));
}
END_TEST

START_TEST(test_blanks_spaces_and_tabs) {
        expect_words("  a   b\t\tc \t d  \t", W("a", "b", "c", "d"));
        expect_words("\ta", W("a"));
        expect_words("a\t", W("a"));
        expect_words("a \t \t b", W("a", "b"));
}
END_TEST

START_TEST(test_other_whitespace_is_ordinary) {
        /* Only space and tab separate; CR, LF, VT and FF are word bytes. */
        expect_words("a\r", W("a\r"));
        expect_words("a\nb c", W("a\nb", "c"));
        expect_words("a\vb\fc", W("a\vb\fc"));
}
END_TEST

START_TEST(test_non_ascii_bytes_pass_through) {
        expect_words("h\xc3\xa9llo 'w\xc3\xb6rld'", W("h\xc3\xa9llo", "w\xc3\xb6rld"));
        expect_words("\xff\xfe", W("\xff\xfe"));
        /* Columns count bytes: the quote after a 2-byte character is at 3. */
        expect_error("\xc3\xa9'x", -EINVAL, "column 3: unterminated single quote");
}
END_TEST

/* ---- quoting ----------------------------------------------------------- */

START_TEST(test_single_quotes) {
        expect_words("'a b'", W("a b"));                 /* 'a b' */
        expect_words("'a\tb'", W("a\tb"));
        expect_words("'  '", W("  "));
        expect_words("'\\'", W("\\"));                   /* '\' */
        expect_words("'a\\b\\\\c'", W("a\\b\\\\c"));     /* 'a\b\\c' */
        expect_words("'\"'", W("\""));                   /* '"' */
        expect_words("'$HOME `id` $(id) *'", W("$HOME `id` $(id) *"));
        expect_words("'#' x", W("#", "x"));
        expect_words("x 'a b' y", W("x", "a b", "y"));
}
END_TEST

START_TEST(test_double_quotes) {
        expect_words("\"a b\"", W("a b"));               /* "a b" */
        expect_words("\"a\tb\"", W("a\tb"));
        expect_words("\"it's\"", W("it's"));             /* "it's" */
        expect_words("\"'\" x", W("'", "x"));            /* "'" x */
        expect_words("\"#\"", W("#"));
        expect_words("x \"a  b\" y", W("x", "a  b", "y"));
}
END_TEST

START_TEST(test_double_quote_backslash_escapes) {
        expect_words("\"\\\"\"", W("\""));               /* "\"" */
        expect_words("\"\\\\\"", W("\\"));               /* "\\" */
        expect_words("\"\\$\"", W("$"));                 /* "\$" */
        expect_words("\"\\`\"", W("`"));                 /* "\`" */
        /* "a\"b\\c\$d\`e" */
        expect_words("\"a\\\"b\\\\c\\$d\\`e\"", W("a\"b\\c$d`e"));
        /* "\\\"" is \ then " */
        expect_words("\"\\\\\\\"\"", W("\\\""));
        /* "a\\" b: the escaped backslash does not escape the quote. */
        expect_words("\"a\\\\\" b", W("a\\", "b"));
}
END_TEST

START_TEST(test_double_quote_other_backslash_kept) {
        expect_words("\"\\n\"", W("\\n"));               /* "\n" */
        expect_words("\"\\a\\'\"", W("\\a\\'"));         /* "\a\'" */
        expect_words("\"\\ \"", W("\\ "));               /* "\ " */
        expect_words("\"\\#\"", W("\\#"));               /* "\#" */
        expect_words("\"C:\\dir\\file\"", W("C:\\dir\\file"));
}
END_TEST

START_TEST(test_backslash_outside_quotes) {
        expect_words("a\\ b", W("a b"));                 /* a\ b */
        expect_words("a\\\tb", W("a\tb"));               /* a\<tab>b */
        expect_words("\\ ", W(" "));                     /* \<space> */
        expect_words("\\'", W("'"));                     /* \' */
        expect_words("\\\"", W("\""));                   /* \" */
        expect_words("\\\\", W("\\"));                   /* \\ */
        expect_words("\\a\\n", W("an"));                 /* \a\n */
        expect_words("\\$HOME", W("$HOME"));             /* \$HOME */
        expect_words("a \\\\", W("a", "\\"));            /* a \\ */
        expect_words("x \\ ", W("x", " "));              /* x \<space> */
}
END_TEST

START_TEST(test_joins) {
        expect_words("'a'\"b\"c", W("abc"));             /* 'a'"b"c */
        expect_words("a'b c'd", W("ab cd"));             /* a'b c'd */
        expect_words("\"a\"\\ b'c'", W("a bc"));         /* "a"\ b'c' */
        expect_words("x\"\"y", W("xy"));                 /* x""y */
        expect_words("--opt=\"a b\"", W("--opt=a b"));   /* --opt="a b" */
        expect_words("'it'\\''s'", W("it's"));           /* 'it'\''s' */
        expect_words("'a' 'b'", W("a", "b"));
}
END_TEST

START_TEST(test_empty_words) {
        expect_words("''", W(""));
        expect_words("\"\"", W(""));
        expect_words("'' \"\"", W("", ""));
        expect_words("a '' b", W("a", "", "b"));
        expect_words("  ''  ", W(""));
        expect_words("''\"\"", W(""));                   /* one word */
        expect_words("a''", W("a"));                     /* joins: no empty */
        expect_words("\"\"a", W("a"));
}
END_TEST

START_TEST(test_no_expansion) {
        expect_words("echo $HOME ${HOME} $(id) `date` ~ *.c ? [a]",
                     W("echo", "$HOME", "${HOME}", "$(id)", "`date`", "~", "*.c",
                       "?", "[a]"));
        expect_words("\"$HOME `date` $(id) ~\"", W("$HOME `date` $(id) ~"));
        expect_words("$", W("$"));
        /* $'...' is not special: $ then a single-quoted part. */
        expect_words("$'a\\tb'", W("$a\\tb"));
        /* A backquote is an ordinary character: no pairing is required. */
        expect_words("`a b", W("`a", "b"));
}
END_TEST

START_TEST(test_operators_are_ordinary) {
        expect_words("a;b | c && d > out < in 2>&1 &",
                     W("a;b", "|", "c", "&&", "d", ">", "out", "<", "in", "2>&1",
                       "&"));
        expect_words("(x) {y} !z", W("(x)", "{y}", "!z"));
}
END_TEST

/* ---- comments and blank lines ----------------------------------------- */

START_TEST(test_blank_lines) {
        expect_no_words("");
        expect_no_words(" ");
        expect_no_words("\t");
        expect_no_words(" \t \t ");
}
END_TEST

START_TEST(test_comment_lines) {
        expect_no_words("#");
        expect_no_words("# a comment");
        expect_no_words("   # indented");
        expect_no_words("\t#x");
        /* Nothing after the '#' is parsed, so these are not errors. */
        expect_no_words("#'unterminated");
        expect_no_words("#\"unterminated");
        expect_no_words("# ends with a backslash \\");
}
END_TEST

START_TEST(test_hash_elsewhere_is_literal) {
        expect_words("a #b", W("a", "#b"));
        expect_words("a # b", W("a", "#", "b"));
        expect_words("a#b", W("a#b"));
        expect_words("\\#x", W("#x"));                   /* \#x */
        expect_words("'#'x", W("#x"));
        expect_words("\"#\" y", W("#", "y"));
        expect_words("''#", W("#"));
}
END_TEST

/* ---- errors ----------------------------------------------------------- */

START_TEST(test_unterminated_single_quote) {
        expect_error("'", -EINVAL, "column 1: unterminated single quote");
        expect_error("'abc", -EINVAL, "column 1: unterminated single quote");
        expect_error("echo 'a b", -EINVAL, "column 6: unterminated single quote");
        /* a'b"c: the double quote is inside the single quotes. */
        expect_error("a'b\"c", -EINVAL, "column 2: unterminated single quote");
        /* "'" ': the first ' is quoted, the second is not closed. */
        expect_error("\"'\" '", -EINVAL, "column 5: unterminated single quote");
        /* 'a\'': no escapes inside single quotes, so 'a\' is a word and
         * the last quote opens another. */
        expect_words("'a\\'", W("a\\"));
        expect_error("'a\\''", -EINVAL, "column 5: unterminated single quote");
        /* 'a' 'b' 'c: the third one. */
        expect_error("'a' 'b' 'c", -EINVAL, "column 9: unterminated single quote");
}
END_TEST

START_TEST(test_unterminated_double_quote) {
        expect_error("\"", -EINVAL, "column 1: unterminated double quote");
        expect_error("\"abc", -EINVAL, "column 1: unterminated double quote");
        /* echo "a\": the quote is escaped. */
        expect_error("echo \"a\\\"", -EINVAL, "column 6: unterminated double quote");
        /* echo "a\  (backslash at the end inside quotes) */
        expect_error("echo \"a\\", -EINVAL, "column 6: unterminated double quote");
        /* '"' ": the first " is quoted. */
        expect_error("'\"' \"", -EINVAL, "column 5: unterminated double quote");
        /* "x' \ : all inside the open double quote. */
        expect_error("\"x' \\", -EINVAL, "column 1: unterminated double quote");
}
END_TEST

START_TEST(test_trailing_backslash) {
        expect_error("\\", -EINVAL, "column 1: backslash at the end of the line");
        expect_error("echo a\\", -EINVAL,
                     "column 7: backslash at the end of the line");
        expect_error("echo  \\", -EINVAL,
                     "column 7: backslash at the end of the line");
        /* a\\\ : an escaped backslash, then one that ends the line. */
        expect_error("a\\\\\\", -EINVAL,
                     "column 4: backslash at the end of the line");
        /* "a"\ */
        expect_error("\"a\"\\", -EINVAL,
                     "column 4: backslash at the end of the line");
}
END_TEST

START_TEST(test_error_precedence) {
        /* 'a \ : the backslash is inside the open quote. */
        expect_error("'a \\", -EINVAL, "column 1: unterminated single quote");
        /* \' ' : the escaped quote is fine, the next one is open. */
        expect_error("\\' '", -EINVAL, "column 4: unterminated single quote");

        /* A quoting error is reported over a bound exceeded before it:
         * an open quote that swallows the rest of the line is the likelier
         * mistake. */
        char *line = build("", "x", MPS_WIRE_STR_MAX + 1, " 'open");
        expect_error(line, -EINVAL, "column 16387: unterminated single quote");
        free(line);
        line = build("'", "x", MPS_WIRE_STR_MAX + 1, "");
        expect_error(line, -EINVAL, "column 1: unterminated single quote");
        free(line);
        line = build("", "a ", MPS_WIRE_ARGV_MAX + 1, "\\");
        expect_error(line, -EINVAL, "column 8195: backslash at the end of the line");
        free(line);
        line = build("", "a ", MPS_WIRE_ARGV_MAX + 1, "\"");
        expect_error(line, -EINVAL, "column 8195: unterminated double quote");
        free(line);

        /* Between bounds, the first from the left: a long word, then too
         * many words... */
        line = build("", "x", MPS_WIRE_STR_MAX + 1, "");
        char *both = build(line, " a", MPS_WIRE_ARGV_MAX, "");
        expect_error(both, -E2BIG, "column 1: word longer than 16384 bytes");
        free(both);
        free(line);
        /* ...or too many words, then a long word (the 4098th). */
        line = build("", "a ", MPS_WIRE_ARGV_MAX + 1, "");
        both = build(line, "x", MPS_WIRE_STR_MAX + 1, "");
        expect_error(both, -E2BIG, "column 8193: more than 4096 words");
        free(both);
        free(line);
}
END_TEST

START_TEST(test_error_buffer_null_small_or_empty) {
        char **argv = sentinel_word;
        size_t argc = SENTINEL_ARGC;
        char small[10];
        char keep[8] = "keep";

        ck_assert_int_eq(mps__cmdline_split("'x", &argv, &argc, NULL, 0), -EINVAL);
        ck_assert_int_eq(mps__cmdline_split("'x", &argv, &argc, NULL, 99), -EINVAL);
        ck_assert_int_eq(mps__cmdline_split("'x", &argv, &argc, keep, 0), -EINVAL);
        ck_assert_str_eq(keep, "keep");
        ck_assert_int_eq(mps__cmdline_split("'x", &argv, &argc, small, sizeof(small)),
                         -EINVAL);
        ck_assert_str_eq(small, "column 1:"); /* truncated, NUL-terminated */
        ck_assert_ptr_eq(argv, sentinel_word);
        ck_assert_uint_eq(argc, SENTINEL_ARGC);

        /* Success with no error buffer at all. */
        ck_assert_int_eq(mps__cmdline_split("a b", &argv, &argc, NULL, 0), 0);
        ck_assert_uint_eq(argc, 2);
        ck_assert_str_eq(argv[0], "a");
        ck_assert_str_eq(argv[1], "b");
        ck_assert_ptr_null(argv[2]);
        mps__cmdline_free(argv);
}
END_TEST

START_TEST(test_free_null) {
        mps__cmdline_free(NULL);
}
END_TEST

START_TEST(test_words_are_separately_owned) {
        /* The vector is a plain strv: each word is its own allocation and
         * can be taken out and freed apart (ASan would object otherwise). */
        char **argv = NULL;
        size_t argc = 0;

        ck_assert_int_eq(mps__cmdline_split("one 'two' three", &argv, &argc,
                                            NULL, 0), 0);
        ck_assert_uint_eq(argc, 3);
        char *taken = argv[1];
        argv[1] = argv[2];
        argv[2] = NULL;
        ck_assert_str_eq(taken, "two");
        free(taken);
        mps__cmdline_free(argv);
}
END_TEST

/* ---- bounds ------------------------------------------------------------ */

START_TEST(test_line_bound) {
        char **argv = NULL;
        size_t argc = 0;

        /* Exactly MPS_CMDLINE_LINE_MAX bytes: 4096 words of 15 bytes, each
         * with a blank after it. */
        _Static_assert(MPS_CMDLINE_LINE_MAX == 16 * MPS_WIRE_ARGV_MAX,
                       "the test line below fills the limit exactly");
        char *line = build("", "aaaaaaaaaaaaaaa ", MPS_WIRE_ARGV_MAX, "");
        ck_assert_uint_eq(strlen(line), MPS_CMDLINE_LINE_MAX);
        ck_assert_int_eq(mps__cmdline_split(line, &argv, &argc, NULL, 0), 0);
        ck_assert_uint_eq(argc, MPS_WIRE_ARGV_MAX);
        ck_assert_str_eq(argv[MPS_WIRE_ARGV_MAX - 1], "aaaaaaaaaaaaaaa");
        ck_assert_ptr_null(argv[MPS_WIRE_ARGV_MAX]);
        mps__cmdline_free(argv);
        free(line);

        /* One byte more, even a blank, is too long. */
        line = build("", "aaaaaaaaaaaaaaa ", MPS_WIRE_ARGV_MAX, " ");
        expect_error(line, -E2BIG, "line longer than 65536 bytes");
        free(line);

        /* The bound comes first: a long comment line is refused too. */
        line = build("#", " ", MPS_CMDLINE_LINE_MAX, "");
        expect_error(line, -E2BIG, "line longer than 65536 bytes");
        free(line);

        /* Far longer lines are not read past the limit, and give the same. */
        line = build("'", "b", 4 * MPS_CMDLINE_LINE_MAX, "");
        expect_error(line, -E2BIG, "line longer than 65536 bytes");
        free(line);
}
END_TEST

START_TEST(test_word_count_bound) {
        char **argv = NULL;
        size_t argc = 0;

        char *line = build("", "a ", MPS_WIRE_ARGV_MAX, "\t ");
        ck_assert_int_eq(mps__cmdline_split(line, &argv, &argc, NULL, 0), 0);
        ck_assert_uint_eq(argc, MPS_WIRE_ARGV_MAX);
        for (size_t i = 0; i < argc; i++)
                ck_assert_str_eq(argv[i], "a");
        ck_assert_ptr_null(argv[MPS_WIRE_ARGV_MAX]);
        mps__cmdline_free(argv);
        free(line);

        /* Word 4097 starts at column 2 * 4096 + 1. */
        line = build("", "a ", MPS_WIRE_ARGV_MAX, "b");
        expect_error(line, -E2BIG, "column 8193: more than 4096 words");
        free(line);

        /* Empty words count as words: '' is 3 bytes with its blank. */
        line = build("", "'' ", MPS_WIRE_ARGV_MAX, "''");
        expect_error(line, -E2BIG, "column 12289: more than 4096 words");
        free(line);
}
END_TEST

START_TEST(test_word_length_bound) {
        char **argv = NULL;
        size_t argc = 0;
        char *want = build("", "x", MPS_WIRE_STR_MAX, "");

        /* A word of exactly MPS_WIRE_STR_MAX bytes, written four ways. */
        const char *ways[][3] = {
                {"", "x", ""},         /* xxx...     */
                {"'", "x", "'"},       /* 'xxx...'   */
                {"\"", "x", "\""},     /* "xxx..."   */
                {"", "\\x", ""},       /* \x\x\x...  */
        };
        for (size_t w = 0; w < sizeof(ways) / sizeof(ways[0]); w++) {
                char *line = build(ways[w][0], ways[w][1], MPS_WIRE_STR_MAX,
                                   ways[w][2]);
                ck_assert_int_eq(mps__cmdline_split(line, &argv, &argc, NULL, 0), 0);
                ck_assert_uint_eq(argc, 1);
                ck_assert_str_eq(argv[0], want);
                mps__cmdline_free(argv);
                free(line);

                /* One byte more, after the closing part, is refused. */
                line = build(ways[w][0], ways[w][1], MPS_WIRE_STR_MAX, "");
                char *longer = build(line, ways[w][2], 1, "y");
                expect_error(longer, -E2BIG,
                             "column 1: word longer than 16384 bytes");
                free(longer);
                free(line);
        }
        free(want);

        /* The length is after quote removal, over all the joined parts:
         * 'x...' "x...\$" is 8191 + 8192 + 1 = 16384 bytes... */
        char *a = build("echo '", "x", 8191, "'\"");
        char *line = build(a, "x", 8192, "\\$\" next");
        ck_assert_int_eq(mps__cmdline_split(line, &argv, &argc, NULL, 0), 0);
        ck_assert_uint_eq(argc, 3);
        ck_assert_uint_eq(strlen(argv[1]), MPS_WIRE_STR_MAX);
        ck_assert_int_eq(argv[1][MPS_WIRE_STR_MAX - 1], '$');
        ck_assert_str_eq(argv[2], "next");
        mps__cmdline_free(argv);
        free(line);
        /* ...and one more x is too many; the column is the word's start. */
        line = build(a, "x", 8193, "\\$\" next");
        expect_error(line, -E2BIG, "column 6: word longer than 16384 bytes");
        free(line);
        free(a);
}
END_TEST


/* --- -I items, replacement, -d delimiters (issue 14, item 7) ----------------- */

static void expect_item(const char *line, const char *want) {
        char *item = (char *)"untouched";
        char err[256] = "err untouched";
        int r = mps__cmdline_item(line, &item, err, sizeof(err));
        ck_assert_msg(r == 0, "item(%s) = %d (%s)", line, r, err);
        ck_assert_str_eq(err, "err untouched");
        if (!want) {
                ck_assert_ptr_null(item);
                return;
        }
        ck_assert_ptr_nonnull(item);
        ck_assert_str_eq(item, want);
        free(item);
}

START_TEST(test_item_is_the_whole_line) {
        /* As GNU xargs -I: leading blanks go, inner and trailing ones stay. */
        expect_item("  my file.txt  ", "my file.txt  ");
        expect_item("\ta\tb", "a\tb");
        expect_item("plain", "plain");
        /* The quoting rules of a line still apply, blanks inside them too. */
        expect_item("it\\'s 'a  b' \"c\\\"d\"", "it's a  b c\"d");
        expect_item("x\\ y", "x y");
        /* '#' is an ordinary character: an item is never a comment. */
        expect_item("# not a comment", "# not a comment");
        /* Blank lines have no item (skipped, as xargs -I skips them). */
        expect_item("", NULL);
        expect_item("   \t ", NULL);
}
END_TEST

START_TEST(test_item_errors) {
        char *item = (char *)"untouched";
        char err[256] = "";
        ck_assert_int_eq(mps__cmdline_item("a 'b", &item, err, sizeof(err)), -EINVAL);
        ck_assert_str_eq(err, "column 3: unterminated single quote");
        ck_assert_str_eq(item, "untouched");
        ck_assert_int_eq(mps__cmdline_item("  \"b", &item, err, sizeof(err)), -EINVAL);
        ck_assert_str_eq(err, "column 3: unterminated double quote");
        ck_assert_int_eq(mps__cmdline_item("ab\\", &item, err, sizeof(err)), -EINVAL);
        ck_assert_str_eq(err, "column 3: backslash at the end of the line");
        /* One item is one word: MPS_WIRE_STR_MAX bytes at most. */
        char *line = malloc(MPS_WIRE_STR_MAX + 3);
        ck_assert_ptr_nonnull(line);
        memset(line, 'x', MPS_WIRE_STR_MAX + 2);
        line[0] = ' ';
        line[MPS_WIRE_STR_MAX + 1] = '\0'; /* one blank and STR_MAX bytes: fits */
        ck_assert_int_eq(mps__cmdline_item(line, &item, err, sizeof(err)), 0);
        ck_assert_uint_eq(strlen(item), MPS_WIRE_STR_MAX);
        free(item);
        item = (char *)"untouched";
        line[MPS_WIRE_STR_MAX + 1] = 'x';
        line[MPS_WIRE_STR_MAX + 2] = '\0';
        ck_assert_int_eq(mps__cmdline_item(line, &item, err, sizeof(err)), -E2BIG);
        ck_assert_str_eq(err, "column 2: word longer than 16384 bytes");
        ck_assert_str_eq(item, "untouched");
        free(line);
}
END_TEST

static void expect_replaced(const char *const *words, const char *pat, const char *item,
                            const char *const *want) {
        size_t n = 0, nwant = 0;
        while (words[n])
                n++;
        while (want[nwant])
                nwant++;
        ck_assert_uint_eq(n, nwant);
        char **argv = NULL, err[256] = "err untouched";
        int r = mps__cmdline_replace((char *const *)words, n, pat, item, &argv, err,
                                     sizeof(err));
        ck_assert_msg(r == 0, "replace = %d (%s)", r, err);
        for (size_t i = 0; i < n; i++)
                ck_assert_str_eq(argv[i], want[i]);
        ck_assert_ptr_null(argv[n]);
        mps__cmdline_free(argv);
}

START_TEST(test_replace_every_occurrence) {
        expect_replaced(W("cp", "{}", "{}.bak"), "{}", "a b", W("cp", "a b", "a b.bak"));
        expect_replaced(W("echo", "x{}y{}z", "{"), "{}", "-", W("echo", "x-y-z", "{"));
        /* Not rescanned: an item that holds the pattern stays as it is. */
        expect_replaced(W("echo", "{}"), "{}", "{}{}", W("echo", "{}{}"));
        /* Left to right, without overlaps. */
        expect_replaced(W("aaa"), "aa", "b", W("ba"));
        /* No occurrence: the words as they are (GNU xargs runs them). */
        expect_replaced(W("true"), "{}", "x", W("true"));
        expect_replaced(W("echo", "{}"), "{}", "", W("echo", ""));
}
END_TEST

START_TEST(test_replace_bounds) {
        const char *words[] = {"echo", "{}{}", NULL};
        char *item = malloc(MPS_WIRE_STR_MAX / 2 + 2);
        ck_assert_ptr_nonnull(item);
        memset(item, 'x', MPS_WIRE_STR_MAX / 2);
        item[MPS_WIRE_STR_MAX / 2] = '\0';
        char **argv = NULL, err[256] = "";
        ck_assert_int_eq(mps__cmdline_replace((char *const *)words, 2, "{}", item, &argv, err,
                                              sizeof(err)),
                         0);
        ck_assert_uint_eq(strlen(argv[1]), MPS_WIRE_STR_MAX);
        mps__cmdline_free(argv);
        argv = NULL;
        strcat(item, "x");
        ck_assert_int_eq(mps__cmdline_replace((char *const *)words, 2, "{}", item, &argv, err,
                                              sizeof(err)),
                         -E2BIG);
        ck_assert_str_eq(err, "word 2 longer than 16384 bytes with the item in it");
        ck_assert_ptr_null(argv);
        ck_assert_int_eq(mps__cmdline_replace((char *const *)words, 2, "", "x", &argv, err,
                                              sizeof(err)),
                         -EINVAL);
        ck_assert_ptr_null(argv);
        free(item);
}
END_TEST

START_TEST(test_delimiters_as_gnu_xargs) {
        static const struct {
                const char *arg;
                char want;
        } ok[] = {{",", ','},     {"\\", '\\'},   {"x", 'x'},      {"\\n", '\n'},
                  {"\\t", '\t'},  {"\\\\", '\\'}, {"\\0", '\0'},   {"\\a", '\a'},
                  {"\\b", '\b'},  {"\\f", '\f'},  {"\\r", '\r'},   {"\\v", '\v'},
                  {"\\012", '\n'}, {"\\177", 127}, {"\\377", (char)255}, {"\\x41", 'A'},
                  {"\\x7e", '~'}, {"\\xFF", (char)255}, {"\\000", '\0'}, {" ", ' '}};
        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                char d = 'Z';
                ck_assert_msg(mps__cmdline_parse_delim(ok[i].arg, &d) == 0, "%s", ok[i].arg);
                ck_assert_msg(d == ok[i].want, "%s: %d", ok[i].arg, d);
        }
        static const char *const bad[] = {"", "ab", "\\q", "\\x", "\\xg", "\\08", "\\n1",
                                          "\\x41z", "\\9", "\\tt"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char d = 'Z';
                ck_assert_msg(mps__cmdline_parse_delim(bad[i], &d) == -EINVAL, "%s", bad[i]);
                ck_assert_int_eq(d, 'Z');
        }
        char d = 'Z';
        ck_assert_int_eq(mps__cmdline_parse_delim("\\400", &d), -ERANGE);
        ck_assert_int_eq(mps__cmdline_parse_delim("\\x100", &d), -ERANGE);
        ck_assert_int_eq(d, 'Z');
}
END_TEST

static Suite *cmdline_suite(void) {
        Suite *s = suite_create("cmdline");
        TCase *tc = tcase_create("cmdline");

        tcase_set_timeout(tc, TIMEOUT_S);
        tcase_add_test(tc, test_plain_words);
        tcase_add_test(tc, test_blanks_spaces_and_tabs);
        tcase_add_test(tc, test_other_whitespace_is_ordinary);
        tcase_add_test(tc, test_non_ascii_bytes_pass_through);
        tcase_add_test(tc, test_single_quotes);
        tcase_add_test(tc, test_double_quotes);
        tcase_add_test(tc, test_double_quote_backslash_escapes);
        tcase_add_test(tc, test_double_quote_other_backslash_kept);
        tcase_add_test(tc, test_backslash_outside_quotes);
        tcase_add_test(tc, test_joins);
        tcase_add_test(tc, test_empty_words);
        tcase_add_test(tc, test_no_expansion);
        tcase_add_test(tc, test_operators_are_ordinary);
        tcase_add_test(tc, test_blank_lines);
        tcase_add_test(tc, test_comment_lines);
        tcase_add_test(tc, test_hash_elsewhere_is_literal);
        tcase_add_test(tc, test_unterminated_single_quote);
        tcase_add_test(tc, test_unterminated_double_quote);
        tcase_add_test(tc, test_trailing_backslash);
        tcase_add_test(tc, test_error_precedence);
        tcase_add_test(tc, test_error_buffer_null_small_or_empty);
        tcase_add_test(tc, test_free_null);
        tcase_add_test(tc, test_words_are_separately_owned);
        tcase_add_test(tc, test_line_bound);
        tcase_add_test(tc, test_word_count_bound);
        tcase_add_test(tc, test_word_length_bound);
        tcase_add_test(tc, test_item_is_the_whole_line);
        tcase_add_test(tc, test_item_errors);
        tcase_add_test(tc, test_replace_every_occurrence);
        tcase_add_test(tc, test_replace_bounds);
        tcase_add_test(tc, test_delimiters_as_gnu_xargs);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(cmdline_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
