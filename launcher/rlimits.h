/* SPDX-License-Identifier: MIT */
/*
 * rlimits.h: resource-limit names, shared by the CLI (--rlimit NOFILE=64),
 * the wire codec and the server.
 */
#ifndef MPS_RLIMITS_H
#define MPS_RLIMITS_H

/* RLIMIT_* number for a name like "nofile", "NOFILE" or "RLIMIT_NOFILE"
 * (any case), or -1. */
int mps__rlimit_from_name(const char *name);

/* "NOFILE" for RLIMIT_NOFILE, or NULL. */
const char *mps__rlimit_name(int resource);

#endif /* MPS_RLIMITS_H */
