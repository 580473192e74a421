/* SPDX-License-Identifier: MIT */
/*
 * python_preload.c: embedded CPython as a server feature (python_preload,
 * --python-preload). The interpreter lives in a preload library of its own,
 * mpspawn_python.so (python/preload/), loaded here through preload_load like
 * any --preload library; its init hook imports the modules that
 * $MPSPAWN_PYTHON_PRELOAD names, which is how they are handed to it.
 *
 * The library is looked for next to the running binary first (the build
 * tree: build/mpforkserver beside build/mpspawn_python.so), then at the
 * path it is installed under, MPS_PYTHON_PRELOAD_PATH.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "../launcher/selfpath.h"
#include "server.h"

#ifndef MPS_PYTHON_PRELOAD_PATH
#define MPS_PYTHON_PRELOAD_PATH "/usr/local/lib/mpspawn/mpspawn_python.so"
#endif

#define PYTHON_PRELOAD_NAME "mpspawn_python.so"

/* The library beside /proc/self/exe if there is one, else the installed
 * one, into buf. */
static void find_library(char *buf, size_t len) {
        if (mps__beside_self(PYTHON_PRELOAD_NAME, R_OK, buf, len) == 0)
                return;
        snprintf(buf, len, "%s", MPS_PYTHON_PRELOAD_PATH);
}

/* The module names, comma-joined, into a malloc()ed string ("" for none). */
static char *join_modules(const struct config *cfg) {
        size_t len = 1;
        for (size_t i = 0; i < cfg->n_python_preload; i++)
                len += strlen(cfg->python_preload[i]) + 1;
        char *list = malloc(len), *p = list;
        if (!list)
                return NULL;
        *p = '\0';
        for (size_t i = 0; i < cfg->n_python_preload; i++)
                p += sprintf(p, "%s%s", i ? "," : "", cfg->python_preload[i]);
        return list;
}

int python_preload_load(struct server *srv, char *err, size_t errlen) {
        const struct config *cfg = srv->cfg;
        char path[PATH_MAX];
        if (!cfg->python)
                return 0;
        char *list = join_modules(cfg);
        if (!list) {
                snprintf(err, errlen, "python_preload: out of memory");
                return -ENOMEM;
        }
        /* The library's init reads it; a value from our own environment
         * (the old way of naming the modules) is replaced. Jobs never see
         * it: each gets its client's environment. */
        int r = setenv("MPSPAWN_PYTHON_PRELOAD", list, 1) < 0 ? -errno : 0;
        if (r < 0) {
                snprintf(err, errlen, "python_preload: %s", strerror(-r));
                goto out;
        }
        find_library(path, sizeof(path));
        /* A failed import has printed its traceback to stderr already;
         * preload_load says which library's init failed. */
        char why[1024];
        if ((r = preload_load(srv, path, why, sizeof(why))) < 0) {
                snprintf(err, errlen, "python_preload: %s", why);
                goto out;
        }
        log_info("python_preload: imported %s", *list ? list : "nothing");
out:
        free(list);
        return r;
}
