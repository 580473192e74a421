/* SPDX-License-Identifier: MIT */
/*
 * say.h: the one error formatter of the parsers of untrusted text (the
 * wire codec, the batch splitter). Kept apart from the codec so that a
 * parser which needs no JSON links without it.
 */
#ifndef MPS_SAY_H
#define MPS_SAY_H

#include <stddef.h>

/* Formats a reason into err (if err and errlen allow). */
void mps__say(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#endif
