/* SPDX-License-Identifier: MIT */
/*
 * policy.h: seccomp policies for jobs: a small text format, its compiler
 * (libseccomp, in the server) and the loader that runs in the child.
 *
 * docs/policy.md describes the format for users. In short, one rule a line:
 *
 *     # deny-net.policy: no sockets; ptrace ends the job.
 *     default allow
 *     errno(EACCES) @network-io
 *     kill-process ptrace
 *
 *   default ACTION          at most once; without it the default is allow
 *   group @NAME SYSCALL...  names a set for later lines (SYSCALL may be @GROUP)
 *   ACTION SYSCALL...       SYSCALL is a syscall name or a @GROUP
 *
 * ACTION is allow, errno(NAME) or errno(N) with N in 1..4095, kill-process,
 * kill-thread, trap or log. When several rules name one syscall, the last
 * one wins, so "allow @file-system" followed by "errno(EROFS) unlink" does
 * what it says. A file without a default line may not contain allow rules:
 * it would read as an allow-list while allowing everything.
 *
 * Why compile in the server: libseccomp allocates, and a forked child should
 * do nothing that allocates. The compiler turns the text into the classic
 * BPF program the kernel takes; policy_apply() hands those bytes to the
 * kernel with two system calls and nothing else.
 *
 * Architecture: a policy is compiled for the architecture the server runs
 * on (SCMP_ARCH_NATIVE) and only for it. A system call made through another
 * ABI (int 0x80 on x86_64, x32) ends the process as kill-process does.
 * Syscall names must exist on this architecture; the built-in groups list
 * names for several and use those that exist here.
 *
 * Errors: every function that can fail returns a negative errno; parse
 * errors return -EINVAL with "NAME:LINE: MESSAGE" in err, for example
 * "deny-net.policy:3: unknown syscall 'sokcet'"; errors about the whole text
 * (its size, the size of the filter) read "NAME: MESSAGE".
 */
#ifndef MPS_POLICY_H
#define MPS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../launcher/list.h"

/* Bounds on what policy_compile() accepts; beyond them it fails with
 * -E2BIG and a message (an errno(N) beyond the last is -EINVAL). */
#define POLICY_TEXT_MAX 65536    /* bytes of policy text */
#define POLICY_LINE_MAX 1024     /* bytes in one line, without its newline */
#define POLICY_RULES_MAX 1024    /* lines that are not blank or comments */
#define POLICY_GROUPS_MAX 64     /* groups a policy defines */
#define POLICY_NAME_MAX 64       /* bytes in a group name, '@' included */
#define POLICY_REFS_MAX 16384    /* syscalls named, each group by its size */
#define POLICY_ERRNO_MAX 4095    /* highest errno(N) */
/* The filter itself cannot exceed the kernel's BPF_MAXINSNS (4096). */

/* A compiled policy: the BPF program, immutable once made. Opaque. */
struct policy;

/*
 * Compiles len bytes of policy text (no NUL needed; a NUL byte is an error)
 * into a new policy in *ret, owned by the caller (policy_free()). name is
 * used only in error messages (NULL: "policy"). Returns 0; -EINVAL for a
 * policy that is wrong, -E2BIG beyond a bound, -ENOMEM, or another negative
 * errno from libseccomp or memfd; on failure err holds one line (when
 * errlen > 0) and *ret is untouched.
 */
int policy_compile(const char *text, size_t len, const char *name,
                   struct policy **ret, char *err, size_t errlen);

/* Frees a policy from policy_compile(); NULL is a no-op. */
void policy_free(struct policy *p);

/* Number of BPF instructions in the compiled filter. */
size_t policy_instructions(const struct policy *p);

/*
 * Loads the policy into the calling thread, for it and everything it execs
 * or forks from now on: sets no_new_privs (which the kernel requires of an
 * unprivileged caller, and which we set always so that a job behaves the
 * same whatever its credentials), then seccomp(SECCOMP_SET_MODE_FILTER).
 * Allocates nothing and calls no library code but the syscall wrappers, so
 * it is safe in a forked child and async-signal-safe. Call it last before
 * execve, which the policy must allow. Returns 0 or -errno (-EINVAL for
 * NULL).
 */
int policy_apply(const struct policy *p);

/* ---- built-in groups --------------------------------------------------- */

struct policy_group {
        const char *name;            /* "@network-io" */
        const char *const *syscalls; /* NULL-terminated; some may not exist
                                      * on this architecture */
};

/* The i-th built-in group, or NULL past the last one. */
const struct policy_group *policy_builtin_group(size_t i);

/* ---- compile cache ------------------------------------------------------- */

#define POLICY_CACHE_MAX 64 /* entries, when .max is 0 */

struct policy_cache_entry; /* private */

/*
 * Compiled policies keyed by their text: a 64-bit FNV-1a hash of the text,
 * confirmed by comparing the whole text, so a hash collision is only a
 * slower miss. At most max entries (0: POLICY_CACHE_MAX); the least recently
 * used one goes first. Zero-initialise it ({0}, or {.max = N}); below the
 * line are the cache's own state and counters, for reading only.
 *
 * The cache holds a copy of each text, so its memory is bounded by
 * max * (POLICY_TEXT_MAX + the filter): 64 entries of at most 64 KiB text
 * and 32 KiB of filter each, 6 MiB at the very worst.
 */
struct policy_cache {
        size_t max;
        /* For tests: replaces the hash function (NULL: FNV-1a). */
        uint64_t (*hash)(const char *text, size_t len);
        /* ---- */
        /* Entries, most recent first. All zero (as a zeroed cache has it)
         * until the first get, and again after policy_cache_free. */
        struct mps__list lru;
        size_t count;
        uint64_t hits, misses, evictions;
};

/*
 * Returns in *ret the compiled policy for text, compiling it (see
 * policy_compile(); name and err as there) when the cache does not hold it,
 * and sets *ret_hit (may be NULL) to whether it did. Failed compiles are not
 * cached. The policy belongs to the cache and stays valid until the next
 * policy_cache_get() or policy_cache_free() on it: use it, or fork the child
 * that applies it, before asking again. Returns 0 or what policy_compile()
 * returns; on failure *ret and *ret_hit are untouched.
 */
int policy_cache_get(struct policy_cache *c, const char *text, size_t len,
                     const char *name, const struct policy **ret,
                     bool *ret_hit, char *err, size_t errlen);

/* Frees every entry; the cache is empty (counters kept) and usable again. */
void policy_cache_free(struct policy_cache *c);

#endif /* MPS_POLICY_H */
