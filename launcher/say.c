/* SPDX-License-Identifier: MIT */
/* say.c: the parsers' error formatter (see say.h). */
#include "say.h"

#include <stdarg.h>
#include <stdio.h>

void mps__say(char *err, size_t errlen, const char *fmt, ...) {
        if (!err || errlen == 0)
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
}
