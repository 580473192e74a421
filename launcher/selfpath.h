/* SPDX-License-Identifier: MIT */
/*
 * selfpath.h: files found beside the running program, how an uninstalled
 * build finds its own pieces (the library its server, the server its
 * embedded-Python preload). Shared by the server, the library and the CLI.
 */
#ifndef MPS_SELFPATH_H
#define MPS_SELFPATH_H

#include <stddef.h>

/* Writes "<directory of /proc/self/exe>/name" to buf and returns 0 if that
 * file passes access(mode) (X_OK, R_OK); else -errno, buf unspecified. */
int mps__beside_self(const char *name, int mode, char *buf, size_t len);

#endif
