/* SPDX-License-Identifier: MIT */
/*
 * check_arena.c: mps_preload_alloc (forkserver/preload_arena.c) as a unit:
 * refused outside the window, 64-byte steps, zeroed, 4 MiB chunks and
 * bigger requests in chunks of their own, and after arena_seal memory that
 * no one can write (a write is SIGSEGV, mprotect is refused, the mapping
 * has no may-write flag) but that keeps what was written. preload_arena.o
 * is linked alone; log_msg is stubbed here.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../forkserver/server.h"

enum log_level log_max_level = LOG_LEVEL_ERR;
void log_msg(enum log_level level, const char *fmt, ...) {
        (void)level;
        (void)fmt;
}

#define MIB ((size_t)1 << 20)

/* The mapping that holds addr, from /proc/self/smaps: its length, name
 * (the path column) and VmFlags. False if none holds it. */
struct mapping {
        size_t len;
        char name[256];
        char flags[256];
};

static bool mapping_of(const void *addr, struct mapping *m) {
        FILE *f = fopen("/proc/self/smaps", "re");
        char line[512];
        bool in = false, found = false;
        ck_assert_ptr_nonnull(f);
        memset(m, 0, sizeof(*m));
        while (!found && fgets(line, sizeof(line), f)) {
                uintptr_t lo, hi;
                char name[256] = "";
                if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %255s", &lo, &hi, name) >= 2 &&
                    strchr(line, '-') < strchr(line, ' ')) {
                        in = lo <= (uintptr_t)addr && (uintptr_t)addr < hi;
                        if (in) {
                                m->len = hi - lo;
                                snprintf(m->name, sizeof(m->name), "%s", name);
                        }
                } else if (in && sscanf(line, "VmFlags: %255[^\n]", m->flags) == 1) {
                        found = true;
                }
        }
        fclose(f);
        return found;
}

/* Whether VmFlags lists flag (two letters). */
static bool has_flag(const struct mapping *m, const char *flag) {
        char padded[260];
        snprintf(padded, sizeof(padded), " %s ", m->flags);
        char want[8];
        snprintf(want, sizeof(want), " %s ", flag);
        return strstr(padded, want) != NULL;
}

/* errno of a read(2) of /dev/zero into p, 0 if it wrote there. */
static int errno_of_kernel_write(unsigned char *p) {
        int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ssize_t n = read(fd, p, 1);
        int e = n < 0 ? errno : 0;
        close(fd);
        return e;
}

#ifndef __SANITIZE_ADDRESS__
/* The wait status of a child that writes one byte at p. (Not under
 * AddressSanitizer: its handler would take the SIGSEGV over.) */
static int status_of_write(unsigned char *p) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                *(volatile unsigned char *)p = 1;
                _exit(0);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0)
                ck_assert_int_eq(errno, EINTR);
        return st;
}
#endif

START_TEST(test_outside_init_it_refuses) {
        errno = 0;
        ck_assert_ptr_null(mps_preload_alloc(64));
        ck_assert_int_eq(errno, EPERM);
        arena_open();
        ck_assert_ptr_nonnull(mps_preload_alloc(64));
        ck_assert_int_eq(arena_seal(NULL), 0);
        errno = 0;
        ck_assert_ptr_null(mps_preload_alloc(64));
        ck_assert_int_eq(errno, EPERM);
}
END_TEST

START_TEST(test_steps_of_64_bytes_zeroed) {
        arena_open();
        unsigned char *a = mps_preload_alloc(1), *b = mps_preload_alloc(65),
                      *c = mps_preload_alloc(0), *d = mps_preload_alloc(64);
        ck_assert_ptr_nonnull(a);
        ck_assert_uint_eq((uintptr_t)a % 64, 0);
        ck_assert_ptr_eq(b, a + 64);
        ck_assert_ptr_eq(c, b + 128); /* 0 is taken as 1: a distinct pointer */
        ck_assert_ptr_eq(d, c + 64);
        for (size_t i = 0; i < 320; i++)
                ck_assert_uint_eq(a[i], 0);
        memset(a, 0xab, 320); /* writable while the window is open */
        errno = 0;
        ck_assert_ptr_null(mps_preload_alloc(SIZE_MAX));
        ck_assert_int_eq(errno, ENOMEM);
        struct mapping m;
        ck_assert(mapping_of(a, &m));
        ck_assert_str_eq(m.name, "/memfd:mpspawn-preload");
        ck_assert_uint_eq(m.len, 4 * MIB);
        ck_assert_int_eq(arena_seal(NULL), 0);
}
END_TEST

/* A chunk is 4 MiB; what does not fit starts a fresh one; a request
 * bigger than a chunk has its own (rounded to 2 MiB), and the small ones
 * after it go on in the chunk they were in. */
START_TEST(test_chunks) {
        struct mapping m;
        struct arena_usage u = {0};
        arena_open();
        unsigned char *a = mps_preload_alloc(64);
        unsigned char *rest = mps_preload_alloc(4 * MIB - 64);
        ck_assert_ptr_eq(rest, a + 64);
        unsigned char *b = mps_preload_alloc(64);
        ck_assert(mapping_of(b, &m));
        ck_assert_uint_eq(m.len, 4 * MIB);
        ck_assert(b < a || b >= a + 4 * MIB);
        unsigned char *big = mps_preload_alloc(5 * MIB);
        ck_assert_ptr_nonnull(big);
        ck_assert(mapping_of(big, &m));
        ck_assert_uint_eq(m.len, 6 * MIB);
        ck_assert_ptr_eq(mps_preload_alloc(64), b + 64);
        ck_assert_int_eq(arena_seal(&u), 0);
        ck_assert_uint_eq(u.chunks, 3);
        ck_assert_uint_eq(u.mapped, 14 * MIB);
        ck_assert_uint_eq(u.requested, 4 * MIB + 64 + 5 * MIB + 64);
}
END_TEST

/* After the seal: the same bytes, read-only in this process and in its
 * children, with no way back to writable. */
START_TEST(test_sealed_memory_is_read_only_for_good) {
        struct mapping m;
        arena_open();
        unsigned char *p = mps_preload_alloc(3 * MIB), *big = mps_preload_alloc(9 * MIB);
        memset(p, 0x5a, 3 * MIB);
        big[9 * MIB - 1] = 7;
        ck_assert_int_eq(arena_seal(NULL), 0);
        ck_assert_uint_eq(p[0], 0x5a);
        ck_assert_uint_eq(p[3 * MIB - 1], 0x5a);
        ck_assert_uint_eq(big[9 * MIB - 1], 7);
        for (unsigned char *q = p; q; q = q == p ? big : NULL) {
                ck_assert(mapping_of(q, &m));
                ck_assert_msg(has_flag(&m, "rd") && has_flag(&m, "sh"), "%s", m.flags);
                ck_assert_msg(!has_flag(&m, "wr") && !has_flag(&m, "mw"), "%s", m.flags);
                ck_assert_int_eq(mprotect(q, 4096, PROT_READ | PROT_WRITE), -1);
                ck_assert_int_eq(errno, EACCES);
                ck_assert_int_eq(errno_of_kernel_write(q), EFAULT);
#ifndef __SANITIZE_ADDRESS__
                int st = status_of_write(q);
                ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "status %#x", st);
#endif
        }
        /* The next library's window: chunks of its own, writable. */
        arena_open();
        unsigned char *n = mps_preload_alloc(64);
        ck_assert(n < p || n >= p + 4 * MIB);
        ck_assert_int_eq(errno_of_kernel_write(n), 0);
        ck_assert_int_eq(arena_seal(NULL), 0);
        ck_assert_uint_eq(p[1], 0x5a);
}
END_TEST

static Suite *arena_suite(void) {
        Suite *s = suite_create("arena");
        TCase *t = tcase_create("arena");
        tcase_set_timeout(t, 60);
        tcase_add_test(t, test_outside_init_it_refuses);
        tcase_add_test(t, test_steps_of_64_bytes_zeroed);
        tcase_add_test(t, test_chunks);
        tcase_add_test(t, test_sealed_memory_is_read_only_for_good);
        suite_add_tcase(s, t);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(arena_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
