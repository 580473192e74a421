/* SPDX-License-Identifier: MIT */
/*
 * fuzz_replay.c: a fuzz target without libFuzzer. Linked with one of
 * tests/fuzz_*.c (FUZZ_TARGET names it: "wire", "policy", "cmdline") and
 * built by the normal compiler, it runs LLVMFuzzerTestOneInput on files:
 *
 *   fuzz_T_replay FILE|DIR...  each file once, in this process, stopping at
 *                              the first that breaks (for a debugger)
 *   fuzz_T_replay              every file of tests/corpus/T/ and
 *                              tests/regress/T/ under $MPSPAWN_TOP (else
 *                              the current directory), one Check test each,
 *                              in fork mode: `make check`'s regression suite
 *
 * tests/regress/T/ keeps every input that once broke the target, named
 * after what it triggered; the corpus holds the seeds. A file is read into
 * a buffer of exactly its size, as libFuzzer does, so that reading past the
 * input is seen under AddressSanitizer.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#ifndef FUZZ_TARGET
#error "FUZZ_TARGET must name the target"
#endif

#define TIMEOUT_S 60

static char **files;
static size_t nfiles, capfiles;

static void add_file(const char *path) {
        if (nfiles == capfiles) {
                capfiles = capfiles ? 2 * capfiles : 64;
                files = realloc(files, capfiles * sizeof(*files));
        }
        if (!files || !(files[nfiles++] = strdup(path))) {
                fprintf(stderr, "out of memory\n");
                exit(1);
        }
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds path, or the files of the directory path (sorted, no dotfiles);
 * returns how many, or -1 when it cannot be read (a missing directory is 0
 * when optional). */
static long add_path(const char *path, int optional) {
        struct stat st;
        size_t first = nfiles;

        if (stat(path, &st) < 0) {
                if (optional && errno == ENOENT)
                        return 0;
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -1;
        }
        if (!S_ISDIR(st.st_mode)) {
                add_file(path);
                return 1;
        }
        DIR *d = opendir(path);
        if (!d) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -1;
        }
        for (struct dirent *e; (e = readdir(d));) {
                char buf[4096];
                if (e->d_name[0] == '.')
                        continue;
                size_t n = strlen(path);
                snprintf(buf, sizeof(buf), "%.*s/%s",
                         (int)(n > 1 && path[n - 1] == '/' ? n - 1 : n), path,
                         e->d_name);
                add_file(buf);
        }
        closedir(d);
        qsort(files + first, nfiles - first, sizeof(*files), cmp_str);
        return (long)(nfiles - first);
}

/* Runs the target on one file; 0, or -1 when it cannot be read. */
static int replay(const char *path) {
        FILE *f = fopen(path, "rb");
        long size;
        uint8_t *buf;

        if (!f || fseek(f, 0, SEEK_END) < 0 || (size = ftell(f)) < 0 ||
            fseek(f, 0, SEEK_SET) < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                if (f)
                        fclose(f);
                return -1;
        }
        /* malloc(0) may return NULL; the target gets a valid pointer. */
        buf = malloc(size > 0 ? (size_t)size : 1);
        if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
                fprintf(stderr, "%s: cannot read\n", path);
                free(buf);
                fclose(f);
                return -1;
        }
        fclose(f);
        LLVMFuzzerTestOneInput(buf, (size_t)size);
        free(buf);
        return 0;
}

START_TEST(test_replay) {
        ck_assert_msg(replay(files[_i]) == 0, "cannot read %s", files[_i]);
}
END_TEST

int main(int argc, char **argv) {
        if (argc > 1) {
                for (int i = 1; i < argc; i++)
                        if (add_path(argv[i], 0) < 0)
                                return 1;
                for (size_t i = 0; i < nfiles; i++) {
                        if (replay(files[i]) < 0)
                                return 1;
                        printf("%s: ok\n", files[i]);
                }
                return 0;
        }

        const char *top = getenv("MPSPAWN_TOP");
        char corpus[4096], regress[4096];
        snprintf(corpus, sizeof(corpus), "%s/tests/corpus/" FUZZ_TARGET,
                 top ? top : ".");
        snprintf(regress, sizeof(regress), "%s/tests/regress/" FUZZ_TARGET,
                 top ? top : ".");
        long nc = add_path(corpus, 0);
        if (nc <= 0) {
                fprintf(stderr, "%s: no seed corpus\n", corpus);
                return 1;
        }
        if (add_path(regress, 1) < 0)
                return 1;

        /* One test case per file, named by it, so a failure names its input. */
        Suite *s = suite_create("fuzz_" FUZZ_TARGET "_replay");
        for (size_t i = 0; i < nfiles; i++) {
                const char *name = strstr(files[i], "/tests/");
                TCase *tc = tcase_create(name ? name + 7 : files[i]);
                tcase_set_timeout(tc, TIMEOUT_S);
                tcase_add_loop_test(tc, test_replay, (int)i, (int)i + 1);
                suite_add_tcase(s, tc);
        }
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_ENV);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        for (size_t i = 0; i < nfiles; i++)
                free(files[i]);
        free(files);
        return failed == 0 ? 0 : 1;
}
