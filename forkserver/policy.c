/* SPDX-License-Identifier: MIT */
/*
 * policy.c: the seccomp policy compiler, its cache, and the loader for the
 * child (see policy.h and docs/policy.md).
 *
 * Compiling happens in two passes. The parser reads the text line by line
 * into a map syscall number -> (action, line), where a later rule replaces
 * an earlier one for the same syscall, and records the default. Only then
 * is libseccomp asked for a filter: one rule per syscall whose action
 * differs from the default, added in syscall order so that the same text
 * always gives the same program. libseccomp cannot hand the program back in
 * memory in 2.5, so it is exported into a memfd and read back.
 *
 * Cleanup style: forward-only "goto out".
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../launcher/fdutil.h"
#include "../launcher/wire.h"
#include "policy.h"

struct policy {
        size_t count;
        struct sock_filter insns[];
};

/* ---- built-in groups ------------------------------------------------------ */

/*
 * Our own lists, in the spirit of systemd's SystemCallFilter= sets. A list
 * may name syscalls of other architectures (mmap2, socketcall, ...): those
 * are skipped where they do not exist. docs/policy.md repeats these lists
 * and a test keeps the two equal.
 */
#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})

static const struct policy_group builtin_groups[] = {
        {"@base",
         LIST("exit", "exit_group", "restart_syscall", "getpid", "getppid",
              "gettid", "getuid", "geteuid", "getgid", "getegid", "getresuid",
              "getresgid", "getgroups", "uname", "arch_prctl",
              "set_tid_address", "set_robust_list", "get_robust_list", "rseq",
              "futex", "getrandom", "sched_yield", "sched_getaffinity",
              "prlimit64", "getrlimit", "ugetrlimit", "clock_gettime",
              "clock_gettime64", "clock_getres", "gettimeofday", "time",
              "nanosleep", "clock_nanosleep")},
        {"@basic-io",
         LIST("read", "write", "readv", "writev", "pread64", "pwrite64",
              "preadv", "pwritev", "preadv2", "pwritev2", "lseek", "_llseek",
              "close", "close_range", "dup", "dup2", "dup3", "fcntl",
              "fcntl64", "pipe", "pipe2")},
        {"@file-system",
         LIST("access", "faccessat", "faccessat2", "open", "openat",
              "openat2", "creat", "stat", "lstat", "fstat", "newfstatat",
              "statx", "stat64", "lstat64", "fstat64", "fstatat64", "statfs",
              "fstatfs", "statfs64", "fstatfs64", "getdents", "getdents64",
              "getcwd", "chdir", "fchdir", "readlink", "readlinkat", "mkdir",
              "mkdirat", "mknod", "mknodat", "rmdir", "unlink", "unlinkat",
              "rename", "renameat", "renameat2", "link", "linkat", "symlink",
              "symlinkat", "chmod", "fchmod", "fchmodat", "chown", "fchown",
              "lchown", "fchownat", "truncate", "ftruncate", "utime",
              "utimes", "utimensat", "futimesat", "fallocate", "fadvise64",
              "fadvise64_64", "fsync", "fdatasync", "flock", "umask")},
        {"@memory",
         LIST("brk", "mmap", "mmap2", "munmap", "mprotect", "mremap",
              "madvise", "msync", "mincore", "mlock", "mlock2", "munlock")},
        {"@signal",
         LIST("rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
              "rt_sigsuspend", "rt_sigpending", "rt_sigtimedwait",
              "sigaltstack", "signalfd", "signalfd4", "pause", "alarm")},
        {"@process",
         LIST("fork", "vfork", "clone", "clone3", "wait4", "waitid", "kill",
              "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
              "pidfd_open", "pidfd_send_signal", "pidfd_getfd", "setpgid",
              "setsid")},
        {"@exec", LIST("execve", "execveat")},
        {"@network-io",
         LIST("socket", "socketpair", "socketcall", "bind", "listen",
              "accept", "accept4", "connect", "getsockname", "getpeername",
              "getsockopt", "setsockopt", "sendto", "recvfrom", "sendmsg",
              "recvmsg", "sendmmsg", "recvmmsg", "shutdown")},
        {"@io-event",
         LIST("poll", "ppoll", "select", "_newselect", "pselect6",
              "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait",
              "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2",
              "timerfd_create", "timerfd_settime", "timerfd_gettime")},
        {"@admin",
         LIST("mount", "umount", "umount2", "pivot_root", "chroot", "swapon",
              "swapoff", "reboot", "kexec_load", "kexec_file_load",
              "init_module", "finit_module", "delete_module",
              "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
              "sethostname", "setdomainname", "acct", "quotactl", "fsopen",
              "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
              "mount_setattr", "unshare", "setns")},
        {"@debug",
         LIST("ptrace", "process_vm_readv", "process_vm_writev",
              "perf_event_open", "kcmp")},
};

#define NBUILTIN (sizeof(builtin_groups) / sizeof(builtin_groups[0]))

const struct policy_group *policy_builtin_group(size_t i) {
        return i < NBUILTIN ? &builtin_groups[i] : NULL;
}

static const struct policy_group *builtin_find(const char *name) {
        for (size_t i = 0; i < NBUILTIN; i++)
                if (strcmp(builtin_groups[i].name, name) == 0)
                        return &builtin_groups[i];
        return NULL;
}

/* ---- parser state ------------------------------------------------------------ */

/* Distinct syscalls of one policy; every architecture has fewer than this,
 * so it is a guard, not a limit anyone meets. */
#define SYSMAP_MAX 1024
#define SYSMAP_SLOTS (2 * SYSMAP_MAX) /* a power of two, half full at most */

struct rule {
        int nr;
        uint32_t action;
        unsigned line; /* where the winning rule is */
};

struct sysmap {
        struct rule slots[SYSMAP_SLOTS];
        bool used[SYSMAP_SLOTS];
        size_t count;
};

struct user_group {
        char name[POLICY_NAME_MAX + 1];
        int *nrs; /* sorted, distinct */
        size_t n;
};

struct parser {
        const char *name;
        char *err;
        size_t errlen;
        unsigned line;
        size_t nrules;
        size_t refs;
        bool has_default;
        unsigned default_line;
        uint32_t default_action;
        unsigned first_allow_line; /* 0: none */
        struct user_group groups[POLICY_GROUPS_MAX];
        size_t ngroups;
        struct sysmap map;
};

static int fail_at(struct parser *ps, int r, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int fail_text(const char *name, char *err, size_t errlen, int r,
                     const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));

/* "NAME:LINE: message" into err; returns r. */
static int fail_at(struct parser *ps, int r, const char *fmt, ...) {
        if (ps->errlen > 0) {
                int n = snprintf(ps->err, ps->errlen, "%s:%u: ", ps->name,
                                 ps->line);
                if (n >= 0 && (size_t)n < ps->errlen) {
                        va_list ap;
                        va_start(ap, fmt);
                        vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
                        va_end(ap);
                }
        }
        return r;
}

/* "NAME: message": about the whole text, not one line. */
static int fail_text(const char *name, char *err, size_t errlen, int r,
                     const char *fmt, ...) {
        if (errlen > 0) {
                int n = snprintf(err, errlen, "%s: ", name);
                if (n >= 0 && (size_t)n < errlen) {
                        va_list ap;
                        va_start(ap, fmt);
                        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
                        va_end(ap);
                }
        }
        return r;
}

static size_t slot_of(int nr) {
        return ((uint32_t)nr * 2654435761u) & (SYSMAP_SLOTS - 1);
}

/* Sets the action for nr; a later rule replaces an earlier one. */
static int map_set(struct parser *ps, int nr, uint32_t action) {
        struct sysmap *m = &ps->map;
        size_t i = slot_of(nr);

        while (m->used[i] && m->slots[i].nr != nr)
                i = (i + 1) & (SYSMAP_SLOTS - 1);
        if (!m->used[i]) {
                if (m->count >= SYSMAP_MAX)
                        return fail_at(ps, -E2BIG,
                                       "more than %d distinct syscalls",
                                       SYSMAP_MAX);
                m->used[i] = true;
                m->slots[i].nr = nr;
                m->count++;
        }
        m->slots[i].action = action;
        m->slots[i].line = ps->line;
        return 0;
}

/* Counts one syscall named, directly or through a group. */
static int count_ref(struct parser *ps) {
        if (++ps->refs > POLICY_REFS_MAX)
                return fail_at(ps, -E2BIG,
                               "more than %d syscalls named (a group counts "
                               "as its size)",
                               POLICY_REFS_MAX);
        return 0;
}

/*
 * Resolves one syscall name for this architecture into *ret_nr. With
 * skip_foreign, a name that exists only elsewhere yields 1 (built-in lists
 * span architectures); from the user's text it is an error.
 */
static int resolve(struct parser *ps, const char *word, bool skip_foreign,
                   int *ret_nr) {
        int nr = seccomp_syscall_resolve_name(word);

        if (nr == __NR_SCMP_ERROR)
                return fail_at(ps, -EINVAL, "unknown syscall '%s'", word);
        if (nr < 0) {
                /* A pseudo-number: libseccomp knows it, this arch has not. */
                if (skip_foreign)
                        return 1;
                return fail_at(ps, -EINVAL,
                               "syscall '%s' does not exist on this "
                               "architecture",
                               word);
        }
        *ret_nr = nr;
        return 0;
}

static const struct user_group *user_find(const struct parser *ps,
                                          const char *name) {
        for (size_t i = 0; i < ps->ngroups; i++)
                if (strcmp(ps->groups[i].name, name) == 0)
                        return &ps->groups[i];
        return NULL;
}

/* Calls fn for each syscall that word stands for: itself, or the members of
 * a group. */
typedef int (*visit_fn)(struct parser *ps, int nr, void *arg);

static int expand(struct parser *ps, const char *word, visit_fn fn, void *arg) {
        int r, nr = -1;

        if (word[0] != '@') {
                if ((r = resolve(ps, word, false, &nr)) < 0)
                        return r;
                if ((r = count_ref(ps)) < 0)
                        return r;
                return fn(ps, nr, arg);
        }
        const struct user_group *ug = user_find(ps, word);
        if (ug) {
                for (size_t i = 0; i < ug->n; i++) {
                        if ((r = count_ref(ps)) < 0 ||
                            (r = fn(ps, ug->nrs[i], arg)) < 0)
                                return r;
                }
                return 0;
        }
        const struct policy_group *bg = builtin_find(word);
        if (!bg)
                return fail_at(ps, -EINVAL, "unknown group '%s'", word);
        for (const char *const *s = bg->syscalls; *s; s++) {
                r = resolve(ps, *s, true, &nr);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;
                if ((r = count_ref(ps)) < 0 || (r = fn(ps, nr, arg)) < 0)
                        return r;
        }
        return 0;
}

/* ---- actions ------------------------------------------------------------------- */

static int parse_errno(struct parser *ps, const char *word, uint32_t *ret) {
        size_t len = strlen(word);
        char arg[32];
        int e = 0;

        /* word is "errno(...)" */
        if (len < 7 || word[len - 1] != ')')
                return fail_at(ps, -EINVAL, "unknown action '%s'", word);
        if (len - 7 >= sizeof(arg))
                return fail_at(ps, -EINVAL, "unknown errno '%.*s'",
                               (int)(len - 7), word + 6);
        memcpy(arg, word + 6, len - 7);
        arg[len - 7] = '\0';
        if (arg[0] == '\0')
                return fail_at(ps, -EINVAL, "missing errno in '%s'", word);
        if (arg[0] >= '0' && arg[0] <= '9') {
                size_t i;
                for (i = 0; arg[i] >= '0' && arg[i] <= '9'; i++)
                        if (e <= POLICY_ERRNO_MAX)
                                e = e * 10 + (arg[i] - '0');
                if (arg[i] != '\0')
                        return fail_at(ps, -EINVAL, "unknown errno '%s'", arg);
                if (e < 1 || e > POLICY_ERRNO_MAX)
                        return fail_at(ps, -EINVAL,
                                       "errno '%s' is out of range 1..%d", arg,
                                       POLICY_ERRNO_MAX);
        } else {
                e = mps__errno_from_name(arg);
                if (e <= 0 || e > POLICY_ERRNO_MAX)
                        return fail_at(ps, -EINVAL, "unknown errno '%s'", arg);
        }
        *ret = SCMP_ACT_ERRNO((uint32_t)e);
        return 0;
}

/* 0 and *ret, or -EINVAL with the message. */
static int parse_action(struct parser *ps, const char *word, uint32_t *ret) {
        static const struct {
                const char *word;
                uint32_t action;
        } simple[] = {
                {"allow", SCMP_ACT_ALLOW},
                {"kill-process", SCMP_ACT_KILL_PROCESS},
                {"kill-thread", SCMP_ACT_KILL_THREAD},
                {"trap", SCMP_ACT_TRAP},
                {"log", SCMP_ACT_LOG},
        };

        for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
                if (strcmp(word, simple[i].word) == 0) {
                        *ret = simple[i].action;
                        return 0;
                }
        }
        if (strncmp(word, "errno(", 6) == 0)
                return parse_errno(ps, word, ret);
        return fail_at(ps, -EINVAL, "unknown action '%s'", word);
}

/* ---- lines --------------------------------------------------------------------------- */

#define WORDS_MAX (POLICY_LINE_MAX / 2 + 1)

static int visit_rule(struct parser *ps, int nr, void *arg) {
        return map_set(ps, nr, *(const uint32_t *)arg);
}

struct collect {
        int *nrs;
        size_t n;
};

static int visit_collect(struct parser *ps, int nr, void *arg) {
        struct collect *c = arg;
        /* Each member was counted as a reference, so n <= POLICY_REFS_MAX
         * and the array (sized for that) cannot overflow. */
        (void)ps;
        c->nrs[c->n++] = nr;
        return 0;
}

static int cmp_int(const void *a, const void *b) {
        int x = *(const int *)a, y = *(const int *)b;
        return (x > y) - (x < y);
}

static bool group_name_ok(const char *name) {
        if (name[0] != '@' || name[1] == '\0')
                return false;
        for (const char *c = name + 1; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
                      *c == '-' || *c == '_'))
                        return false;
        return true;
}

static int line_group(struct parser *ps, char **w, size_t nw) {
        struct collect c = {0};
        int r;

        if (nw < 2)
                return fail_at(ps, -EINVAL, "'group' needs a name");
        const char *name = w[1];
        if (strlen(name) > POLICY_NAME_MAX)
                return fail_at(ps, -E2BIG,
                               "group name '%s' is longer than %d bytes", name,
                               POLICY_NAME_MAX);
        if (!group_name_ok(name))
                return fail_at(ps, -EINVAL,
                               "bad group name '%s' (want '@' and then a-z, "
                               "0-9, '-', '_')",
                               name);
        if (builtin_find(name) || user_find(ps, name))
                return fail_at(ps, -EINVAL, "group '%s' is already defined",
                               name);
        if (nw < 3)
                return fail_at(ps, -EINVAL, "group '%s' names no syscall", name);
        if (ps->ngroups >= POLICY_GROUPS_MAX)
                return fail_at(ps, -E2BIG, "more than %d groups",
                               POLICY_GROUPS_MAX);

        /* At most every reference still allowed can land in this group. */
        c.nrs = malloc(sizeof(int) * (POLICY_REFS_MAX - ps->refs + 1));
        if (!c.nrs)
                return fail_at(ps, -ENOMEM, "out of memory");
        for (size_t i = 2; i < nw; i++) {
                if ((r = expand(ps, w[i], visit_collect, &c)) < 0) {
                        free(c.nrs);
                        return r;
                }
        }
        qsort(c.nrs, c.n, sizeof(int), cmp_int);
        size_t n = 0;
        for (size_t i = 0; i < c.n; i++)
                if (n == 0 || c.nrs[n - 1] != c.nrs[i])
                        c.nrs[n++] = c.nrs[i];

        struct user_group *g = &ps->groups[ps->ngroups++];
        strcpy(g->name, name);
        g->nrs = c.nrs;
        g->n = n;
        return 0;
}

static int line_default(struct parser *ps, char **w, size_t nw) {
        uint32_t action;
        int r;

        if (ps->has_default)
                return fail_at(ps, -EINVAL,
                               "duplicate 'default' (first on line %u)",
                               ps->default_line);
        if (nw < 2)
                return fail_at(ps, -EINVAL, "'default' needs an action");
        if ((r = parse_action(ps, w[1], &action)) < 0)
                return r;
        if (nw > 2)
                return fail_at(ps, -EINVAL,
                               "unexpected '%s' after 'default %s'", w[2],
                               w[1]);
        ps->has_default = true;
        ps->default_line = ps->line;
        ps->default_action = action;
        return 0;
}

static int line_rule(struct parser *ps, char **w, size_t nw) {
        uint32_t action;
        int r;

        if ((r = parse_action(ps, w[0], &action)) < 0)
                return r;
        if (nw < 2)
                return fail_at(ps, -EINVAL, "'%s' names no syscall", w[0]);
        if (action == SCMP_ACT_ALLOW && ps->first_allow_line == 0)
                ps->first_allow_line = ps->line;
        for (size_t i = 1; i < nw; i++)
                if ((r = expand(ps, w[i], visit_rule, &action)) < 0)
                        return r;
        return 0;
}

/* One line (without its newline), len <= POLICY_LINE_MAX. */
static int parse_line(struct parser *ps, const char *text, size_t len) {
        char buf[POLICY_LINE_MAX + 1];
        char *w[WORDS_MAX];
        size_t nw = 0;

        for (size_t i = 0; i < len; i++) {
                unsigned char ch = (unsigned char)text[i];
                if (ch == '#') {
                        /* A comment may hold anything but NUL. */
                        if (memchr(text + i, '\0', len - i))
                                return fail_at(ps, -EINVAL, "NUL byte");
                        len = i;
                        break;
                }
                if (ch != ' ' && ch != '\t' && ch != '\r' &&
                    (ch < 0x21 || ch > 0x7e))
                        return fail_at(ps, -EINVAL, "unexpected byte 0x%02x",
                                       ch);
        }
        memcpy(buf, text, len);
        buf[len] = '\0';
        for (char *p = buf;;) {
                while (*p == ' ' || *p == '\t' || *p == '\r')
                        *p++ = '\0';
                if (*p == '\0')
                        break;
                w[nw++] = p;
                while (*p && *p != ' ' && *p != '\t' && *p != '\r')
                        p++;
        }
        if (nw == 0)
                return 0;
        if (++ps->nrules > POLICY_RULES_MAX)
                return fail_at(ps, -E2BIG, "more than %d rules",
                               POLICY_RULES_MAX);
        if (strcmp(w[0], "default") == 0)
                return line_default(ps, w, nw);
        if (strcmp(w[0], "group") == 0)
                return line_group(ps, w, nw);
        return line_rule(ps, w, nw);
}

static int parse(struct parser *ps, const char *text, size_t len) {
        size_t pos = 0;
        int r;

        while (pos < len) {
                const char *nl = memchr(text + pos, '\n', len - pos);
                size_t end = nl ? (size_t)(nl - text) : len;
                ps->line++;
                if (end - pos > POLICY_LINE_MAX)
                        return fail_at(ps, -E2BIG,
                                       "line is longer than %d bytes",
                                       POLICY_LINE_MAX);
                if ((r = parse_line(ps, text + pos, end - pos)) < 0)
                        return r;
                pos = end + 1;
        }
        if (!ps->has_default && ps->first_allow_line) {
                ps->line = ps->first_allow_line;
                return fail_at(ps, -EINVAL,
                               "'allow' without a 'default' line, whose "
                               "absence means allow; add one, e.g. "
                               "'default kill-process'");
        }
        if (!ps->has_default)
                ps->default_action = SCMP_ACT_ALLOW;
        return 0;
}

/* ---- filter ---------------------------------------------------------------------------- */

static int cmp_rule(const void *a, const void *b) {
        return cmp_int(&((const struct rule *)a)->nr,
                       &((const struct rule *)b)->nr);
}

/* Reads the exported program back from the memfd into a new policy. */
static int read_back(struct parser *ps, int fd, struct policy **ret) {
        struct stat st;
        struct policy *p;
        size_t size, done = 0;

        if (fstat(fd, &st) < 0)
                return fail_text(ps->name, ps->err, ps->errlen, -errno,
                                 "cannot read the filter back: %s",
                                 strerror(errno));
        size = (size_t)st.st_size;
        if (size == 0 || size % sizeof(struct sock_filter) != 0)
                return fail_text(ps->name, ps->err, ps->errlen, -EIO,
                                 "libseccomp exported %zu bytes, not a "
                                 "whole program",
                                 size);
        if (size / sizeof(struct sock_filter) > BPF_MAXINSNS)
                return fail_text(ps->name, ps->err, ps->errlen, -E2BIG,
                                 "the filter has %zu instructions, more "
                                 "than the kernel's %d",
                                 size / sizeof(struct sock_filter),
                                 BPF_MAXINSNS);
        p = malloc(sizeof(*p) + size);
        if (!p)
                return fail_text(ps->name, ps->err, ps->errlen, -ENOMEM,
                                 "out of memory");
        p->count = size / sizeof(struct sock_filter);
        if (lseek(fd, 0, SEEK_SET) < 0)
                goto fail_errno;
        while (done < size) {
                ssize_t n = mps__read_retry(fd, (char *)p->insns + done,
                                            size - done);
                if (n < 0) {
                        errno = (int)-n;
                        goto fail_errno;
                }
                if (n == 0) {
                        errno = EIO;
                        goto fail_errno;
                }
                done += (size_t)n;
        }
        *ret = p;
        return 0;
fail_errno:;
        int e = errno;
        free(p);
        return fail_text(ps->name, ps->err, ps->errlen, -e,
                         "cannot read the filter back: %s", strerror(e));
}

static int build(struct parser *ps, struct policy **ret) {
        struct rule *rules = NULL;
        scmp_filter_ctx ctx = NULL;
        size_t n = 0;
        int fd = -1, r;

        rules = malloc(sizeof(*rules) * (ps->map.count + 1));
        if (!rules) {
                r = fail_text(ps->name, ps->err, ps->errlen, -ENOMEM,
                              "out of memory");
                goto out;
        }
        for (size_t i = 0; i < SYSMAP_SLOTS; i++)
                if (ps->map.used[i] &&
                    ps->map.slots[i].action != ps->default_action)
                        rules[n++] = ps->map.slots[i];
        qsort(rules, n, sizeof(*rules), cmp_rule);

        ctx = seccomp_init(ps->default_action);
        if (!ctx) {
                r = fail_text(ps->name, ps->err, ps->errlen, -ENOMEM,
                              "libseccomp cannot start a filter");
                goto out;
        }
        /* Another ABI's syscall numbers mean other syscalls: end the job
         * rather than let the call through unchecked. A binary tree over
         * the syscall numbers instead of a list: a few more instructions
         * and a slower compile (which is cached), but the kernel runs the
         * filter once for every syscall number when it loads it (to learn
         * which it may skip later), so the tree halves the time the child
         * spends in policy_apply() for an allow-list. */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
                             SCMP_ACT_KILL_PROCESS);
        if (r == 0)
                r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
        if (r < 0) {
                r = fail_text(ps->name, ps->err, ps->errlen, r,
                              "libseccomp: %s", strerror(-r));
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                r = seccomp_rule_add(ctx, rules[i].action, rules[i].nr, 0);
                if (r < 0) {
                        ps->line = rules[i].line;
                        r = fail_at(ps, r, "libseccomp rejects the rule: %s",
                                    strerror(-r));
                        goto out;
                }
        }
        fd = memfd_create("mpspawn-policy", MFD_CLOEXEC);
        if (fd < 0) {
                r = fail_text(ps->name, ps->err, ps->errlen, -errno,
                              "memfd_create: %s", strerror(errno));
                goto out;
        }
        r = seccomp_export_bpf(ctx, fd);
        if (r < 0) {
                r = fail_text(ps->name, ps->err, ps->errlen, r,
                              "libseccomp cannot export the filter: %s",
                              strerror(-r));
                goto out;
        }
        r = read_back(ps, fd, ret);
out:
        mps__safe_close(fd);
        seccomp_release(ctx);
        free(rules);
        return r;
}

int policy_compile(const char *text, size_t len, const char *name,
                   struct policy **ret, char *err, size_t errlen) {
        struct parser *ps;
        int r;

        if (!name)
                name = "policy";
        if (!ret || (!text && len > 0))
                return fail_text(name, err, errlen, -EINVAL,
                                 "no policy text");
        if (len > POLICY_TEXT_MAX)
                return fail_text(name, err, errlen, -E2BIG,
                                 "policy text is longer than %d bytes",
                                 POLICY_TEXT_MAX);
        /* About 32 KiB: too much for the stack of a server function. */
        ps = calloc(1, sizeof(*ps));
        if (!ps)
                return fail_text(name, err, errlen, -ENOMEM, "out of memory");
        ps->name = name;
        ps->err = err;
        ps->errlen = errlen;

        r = parse(ps, text, len);
        if (r >= 0)
                r = build(ps, ret);

        for (size_t i = 0; i < ps->ngroups; i++)
                free(ps->groups[i].nrs);
        free(ps);
        return r;
}

void policy_free(struct policy *p) {
        free(p);
}

size_t policy_instructions(const struct policy *p) {
        return p ? p->count : 0;
}

int policy_apply(const struct policy *p) {
        if (!p)
                return -EINVAL;
        /* The kernel only reads the program; sock_fprog is not const. */
        struct sock_fprog prog = {
                .len = (unsigned short)p->count,
                .filter = (struct sock_filter *)p->insns,
        };
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return -errno;
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
                return -errno;
        return 0;
}

/* ---- cache ------------------------------------------------------------------------------ */

struct policy_cache_entry {
        struct mps__list node; /* in the cache's lru */
        uint64_t hash;
        struct policy *policy;
        size_t len;
        char text[];
};

static uint64_t fnv1a(const char *text, size_t len) {
        uint64_t h = 14695981039346656037ull;
        for (size_t i = 0; i < len; i++) {
                h ^= (unsigned char)text[i];
                h *= 1099511628211ull;
        }
        return h;
}

static void entry_unlink(struct policy_cache *c, struct policy_cache_entry *e) {
        mps__list_remove(&e->node);
        c->count--;
}

static void entry_push_front(struct policy_cache *c,
                             struct policy_cache_entry *e) {
        mps__list_push_front(&c->lru, &e->node);
        c->count++;
}

static void entry_free(struct policy_cache_entry *e) {
        policy_free(e->policy);
        free(e);
}

int policy_cache_get(struct policy_cache *c, const char *text, size_t len,
                     const char *name, const struct policy **ret,
                     bool *ret_hit, char *err, size_t errlen) {
        size_t max = c->max ? c->max : POLICY_CACHE_MAX;
        struct policy_cache_entry *e;
        struct policy *p;
        uint64_t h;
        int r;

        /* Not worth hashing: policy_compile() refuses it with a message. */
        if (len > POLICY_TEXT_MAX || (!text && len > 0))
                return policy_compile(text, len, name, &p, err, errlen);
        h = c->hash ? c->hash(text, len) : fnv1a(text, len);
        /* A zeroed cache (how callers make one) has no list yet. */
        if (!c->lru.next)
                mps__list_init(&c->lru);
        struct mps__list *n, *tmp;
        mps__list_foreach_safe(n, tmp, &c->lru) {
                e = mps__list_entry(n, struct policy_cache_entry, node);
                if (e->hash == h && e->len == len &&
                    (len == 0 || memcmp(e->text, text, len) == 0)) {
                        c->hits++;
                        if (n != mps__list_first(&c->lru)) {
                                entry_unlink(c, e);
                                entry_push_front(c, e);
                        }
                        *ret = e->policy;
                        if (ret_hit)
                                *ret_hit = true;
                        return 0;
                }
        }

        c->misses++;
        r = policy_compile(text, len, name, &p, err, errlen);
        if (r < 0)
                return r;
        e = malloc(sizeof(*e) + len);
        if (!e) {
                policy_free(p);
                return fail_text(name ? name : "policy", err, errlen, -ENOMEM,
                                 "out of memory");
        }
        e->hash = h;
        e->policy = p;
        e->len = len;
        if (len > 0)
                memcpy(e->text, text, len);
        while (c->count >= max) {
                struct policy_cache_entry *old =
                        mps__list_entry(mps__list_last(&c->lru), struct policy_cache_entry, node);
                entry_unlink(c, old);
                entry_free(old);
                c->evictions++;
        }
        entry_push_front(c, e);
        *ret = p;
        if (ret_hit)
                *ret_hit = false;
        return 0;
}

void policy_cache_free(struct policy_cache *c) {
        struct mps__list *n;
        while (c->lru.next && (n = mps__list_first(&c->lru))) {
                struct policy_cache_entry *e = mps__list_entry(n, struct policy_cache_entry, node);
                entry_unlink(c, e);
                entry_free(e);
        }
        /* As a zeroed cache: empty, and usable again. */
        c->lru = (struct mps__list){NULL, NULL};
}
