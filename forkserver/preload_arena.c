/* SPDX-License-Identifier: MIT */
/*
 * preload_arena.c: mps_preload_alloc(), the memory a preload library's
 * init builds its warm state in (include/mpspawn.h, "writing a preload
 * library"). A bump allocator over memfd chunks mapped MAP_SHARED: fork
 * copies no page table of a shared file mapping that has no anonymous
 * pages, so a call job's fork costs the same whatever the libraries hold,
 * and a job faults in only the pages it reads.
 *
 * preload.c opens the arena around one library's init and seals it when
 * init returns: each chunk is then read-only in this server and in every
 * child forked after, with no VM_MAYWRITE (mprotect cannot make it
 * writable) and sealed against write(2), resizing and new writable
 * mappings. The next library's allocations go to chunks of its own. The
 * chunks stay mapped until exit (libraries are never unloaded); their
 * memfds are closed once sealed.
 *
 * The order of the sealing matters (measured on 6.18): a read-only
 * MAP_SHARED mapping made through the writable memfd keeps VM_MAYWRITE,
 * counts as a writable mapping, and makes F_SEAL_WRITE fail with EBUSY.
 * F_SEAL_FUTURE_WRITE can be added while the writable mapping is there,
 * and a mapping made after it has no VM_MAYWRITE; so: FUTURE_WRITE, remap
 * read-only over the chunk (MAP_FIXED: the address never goes unmapped),
 * then F_SEAL_WRITE, which kernels before 6.7 refuse (EBUSY: they count any
 * shared mapping) and which FUTURE_WRITE already stands in for there.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../launcher/fdutil.h"
#include "server.h"

/* What mps_preload_alloc promises (include/mpspawn.h): 64-byte alignment,
 * chunks of 4 MiB, bigger requests in chunks of their own rounded to 2 MiB
 * (so that each chunk is a whole number of huge pages). */
#define ARENA_ALIGN ((size_t)64)
#define ARENA_CHUNK ((size_t)4 << 20)
#define ARENA_HUGE ((size_t)2 << 20)

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21u << 26) /* MFD_HUGE_SHIFT 26 */
#endif

struct arena_chunk {
        struct arena_chunk *next;
        unsigned char *base;
        size_t len, used;
        int fd;
};

/* The chunks of the library whose init runs; the head is the one small
 * requests are cut from. open is read without the lock by a caller outside
 * init (a job: the lock may have been held by another thread at the fork). */
static struct {
        pthread_mutex_t lock;
        atomic_bool open;
        struct arena_chunk *chunks;
        size_t requested; /* bytes handed out since arena_open, rounded */
} arena = {.lock = PTHREAD_MUTEX_INITIALIZER};

static size_t round_up(size_t n, size_t to) {
        return (n + to - 1) / to * to;
}

/* A memfd of len bytes mapped read-write at *ret_base: of 2 MiB huge pages
 * when the kernel has them to give (memfd_create, ftruncate or the mmap's
 * reservation fails otherwise), else of normal shmem pages. fd or -errno. */
static int chunk_map_huge(size_t len, bool huge, unsigned char **ret_base) {
        unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING | (huge ? MFD_HUGETLB | MFD_HUGE_2MB : 0);
        int fd = memfd_create("mpspawn-preload", flags);
        if (fd < 0)
                return -errno;
        void *p = MAP_FAILED;
        if (ftruncate(fd, (off_t)len) == 0)
                p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
                int e = errno;
                mps__safe_close(fd);
                return -e;
        }
        *ret_base = p;
        return fd;
}

static struct arena_chunk *chunk_new(size_t len) {
        struct arena_chunk *c = calloc(1, sizeof(*c));
        if (!c)
                return NULL;
        c->len = len;
        c->fd = chunk_map_huge(len, true, &c->base);
        if (c->fd < 0)
                c->fd = chunk_map_huge(len, false, &c->base);
        if (c->fd < 0) {
                errno = -c->fd;
                free(c);
                return NULL;
        }
        /* Transparent huge pages for shmem, where the administrator enabled
         * them ("advise"); nothing where they are off. */
        madvise(c->base, len, MADV_HUGEPAGE);
        return c;
}

/* Where `need` bytes (a multiple of ARENA_ALIGN) go: the head chunk if they
 * fit; a request bigger than a chunk gets one of its own, kept behind the
 * head so that small requests go on filling that; else a fresh head. */
static void *arena_take(size_t need) {
        struct arena_chunk *h = arena.chunks;
        if (h && h->len - h->used >= need) {
                void *p = h->base + h->used;
                h->used += need;
                return p;
        }
        bool own = need > ARENA_CHUNK;
        struct arena_chunk *c = chunk_new(own ? round_up(need, ARENA_HUGE) : ARENA_CHUNK);
        if (!c)
                return NULL;
        c->used = need;
        if (own && h) {
                c->next = h->next;
                h->next = c;
        } else {
                c->next = h;
                arena.chunks = c;
        }
        return c->base;
}

__attribute__((visibility("default"))) void *mps_preload_alloc(size_t size) {
        if (!atomic_load(&arena.open)) {
                errno = EPERM;
                return NULL;
        }
        if (size > SIZE_MAX / 2) {
                errno = ENOMEM;
                return NULL;
        }
        size_t need = round_up(size ? size : 1, ARENA_ALIGN);
        pthread_mutex_lock(&arena.lock);
        void *p = NULL;
        if (!atomic_load(&arena.open))
                errno = EPERM;
        else if ((p = arena_take(need)))
                arena.requested += need;
        pthread_mutex_unlock(&arena.lock);
        return p;
}

void arena_open(void) {
        pthread_mutex_lock(&arena.lock);
        arena.requested = 0;
        atomic_store(&arena.open, true);
        pthread_mutex_unlock(&arena.lock);
}

/* Read-only for good, as the header comment says; then the memfd goes. */
static int chunk_seal(struct arena_chunk *c) {
        if (fcntl(c->fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK | F_SEAL_GROW) < 0)
                return -errno;
        if (mmap(c->base, c->len, PROT_READ, MAP_SHARED | MAP_FIXED, c->fd, 0) == MAP_FAILED)
                return -errno;
        madvise(c->base, c->len, MADV_HUGEPAGE);
        /* The new mapping has no pages mapped yet: map the ones init used
         * (not the rest, which reading would fill with zero pages). Then
         * they count in our resident set as before, and a job that reads
         * them shares them with us (Shared_*, not Private_* in its smaps).
         * Best effort: before 5.14 jobs just map them first. */
        size_t used = round_up(c->used, (size_t)sysconf(_SC_PAGESIZE));
        (void)madvise(c->base, used < c->len ? used : c->len, MADV_POPULATE_READ);
        if (fcntl(c->fd, F_ADD_SEALS, F_SEAL_WRITE) < 0 && errno != EBUSY)
                return -errno;
        if (fcntl(c->fd, F_ADD_SEALS, F_SEAL_SEAL) < 0)
                return -errno;
        c->fd = mps__safe_close(c->fd);
        return 0;
}

int arena_seal(struct arena_usage *ret_usage) {
        struct arena_usage u = {0};
        int r = 0;
        pthread_mutex_lock(&arena.lock);
        atomic_store(&arena.open, false);
        u.requested = arena.requested;
        while (arena.chunks) {
                struct arena_chunk *c = arena.chunks;
                arena.chunks = c->next;
                int rc = chunk_seal(c);
                if (rc < 0 && r == 0)
                        r = rc;
                if (c->fd >= 0)
                        mps__safe_close(c->fd);
                u.mapped += c->len;
                u.chunks++;
                free(c);
        }
        pthread_mutex_unlock(&arena.lock);
        if (r == 0 && ret_usage)
                *ret_usage = u;
        return r;
}
