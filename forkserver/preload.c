/* SPDX-License-Identifier: MIT */
/*
 * preload.c: libraries loaded into the server at start (--preload LIB.so).
 * Each is dlopen'ed with RTLD_NOW, its MPS_MODULE's init hook runs once
 * here, and its MPS_ENTRY names become what call jobs may run: a client
 * names an entry point, never a symbol or a path. Call-job children are
 * copy-on-write copies of this server, so what init built is there, warm;
 * what it built with mps_preload_alloc (preload_arena.c) is shared with
 * them instead, read-only, and costs their fork nothing.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"

/* The server's resident set, in KiB (0 if unknown). */
static long rss_kib(void) {
        FILE *f = fopen("/proc/self/statm", "re");
        long size = 0, resident = 0;
        if (!f)
                return 0;
        if (fscanf(f, "%ld %ld", &size, &resident) != 2)
                resident = 0;
        fclose(f);
        return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

const struct mps_entry *preload_find(const struct server *srv, const char *name) {
        for (size_t i = 0; i < srv->preload.count; i++)
                for (const struct mps_entry *e = srv->preload.libs[i].module->entries; e;
                     e = e->next)
                        if (strcmp(e->name, name) == 0)
                                return e;
        return NULL;
}

/*
 * The library's init, with mps_preload_alloc open to it alone: what it
 * allocated is sealed read-only when init returns, before the next
 * library's init runs and before any child is forked.
 */
static int run_init(const struct preload *p, const char *path, char *err, size_t errlen) {
        struct arena_usage u;
        arena_open();
        int r = p->module->init();
        int rs = arena_seal(&u);
        if (r != 0) {
                snprintf(err, errlen, "cannot preload '%s': its init hook returned %d", path, r);
                return -ECANCELED;
        }
        if (rs < 0) {
                snprintf(err, errlen, "cannot preload '%s': cannot seal its preload memory: %s",
                         path, strerror(-rs));
                return rs;
        }
        if (u.chunks)
                log_debug("%s: %zu KiB from mps_preload_alloc, in %zu KiB of sealed memfd "
                          "chunks (%zu)",
                          path, u.requested >> 10, u.mapped >> 10, u.chunks);
        return 0;
}

int preload_load(struct server *srv, const char *path, char *err, size_t errlen) {
        int r;
        struct preload *n = realloc(srv->preload.libs, (srv->preload.count + 1) * sizeof(*n));
        if (!n) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        srv->preload.libs = n;
        struct preload *p = &srv->preload.libs[srv->preload.count];
        memset(p, 0, sizeof(*p));

        long before = rss_kib();
        /* RTLD_LOCAL: two libraries may use the same names internally, and
         * each one's mps_module is its own. */
        p->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!p->handle) {
                snprintf(err, errlen, "cannot preload '%s': %s", path, dlerror());
                return -ENOENT;
        }
        p->module = dlsym(p->handle, "mps_module");
        if (!p->module) {
                snprintf(err, errlen,
                         "cannot preload '%s': it has no MPS_MODULE (no symbol "
                         "mps_module)",
                         path);
                dlclose(p->handle);
                return -EINVAL;
        }
        /* ABI 2 only added to what a call job's context holds: a module
         * built for 1 reads a prefix of it. */
        if (p->module->abi < 1 || p->module->abi > MPS_MODULE_ABI) {
                snprintf(err, errlen,
                         "cannot preload '%s': built for module ABI %d, this server "
                         "speaks %d",
                         path, p->module->abi, MPS_MODULE_ABI);
                dlclose(p->handle);
                return -EINVAL;
        }
        for (const struct mps_entry *e = p->module->entries; e; e = e->next) {
                if (!e->name || !e->name[0] || strlen(e->name) > MPS_WIRE_NAME_MAX ||
                    !e->fn) {
                        snprintf(err, errlen, "cannot preload '%s': an entry point has "
                                              "no name or no function",
                                 path);
                        dlclose(p->handle);
                        return -EINVAL;
                }
                if (preload_find(srv, e->name)) {
                        snprintf(err, errlen,
                                 "cannot preload '%s': entry point '%s' is already "
                                 "registered by another library",
                                 path, e->name);
                        dlclose(p->handle);
                        return -EEXIST;
                }
        }
        if (p->module->init && (r = run_init(p, path, err, errlen)) < 0) {
                dlclose(p->handle);
                return r;
        }
        if (!(p->path = strdup(path))) {
                snprintf(err, errlen, "cannot preload '%s': out of memory", path);
                dlclose(p->handle);
                return -ENOMEM;
        }
        long after = rss_kib();
        p->rss_kib = after > before ? after - before : 0;
        srv->preload.count++;
        size_t count = 0;
        for (const struct mps_entry *e = p->module->entries; e; e = e->next)
                count++;
        log_info("preloaded %s: %zu entry points, %ld KiB resident", path, count,
                 p->rss_kib);
        return 0;
}

void preload_release_all(struct server *srv) {
        /* The libraries stay mapped until exit: children of theirs may still
         * be in the middle of a job, and unloading gains nothing. */
        for (size_t i = 0; i < srv->preload.count; i++)
                free(srv->preload.libs[i].path);
        free(srv->preload.libs);
        srv->preload.libs = NULL;
        srv->preload.count = 0;
}
