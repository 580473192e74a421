/* SPDX-License-Identifier: MIT */
/*
 * clientutil.h: library-client helpers the end-to-end suites share (the
 * server side is testutil.h's). Failures are Check assertions.
 */
#ifndef MPS_TESTS_CLIENTUTIL_H
#define MPS_TESTS_CLIENTUTIL_H

#include "../include/mpspawn.h"

/* A client of the server at path. */
mps_client *cu_client_open(const char *path);
/* A spec running /bin/sh -c script. */
mps_spec *cu_sh_spec(const char *script);

#endif
