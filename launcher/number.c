/* SPDX-License-Identifier: MIT */
/* number.c: whole-string number parsing with bounds (see number.h). */
#include "number.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

/* strto* accept leading space and a sign; we take neither where the caller
 * did not ask for it. */
static int starts_well(const char *s, int allow_sign) {
        if (!s || !*s)
                return 0;
        if (allow_sign && (*s == '-' || *s == '+'))
                s++;
        return isdigit((unsigned char)*s) || (allow_sign > 1 && *s == '.');
}

int mps__parse_unsigned(const char *s, int base, unsigned long long min,
                        unsigned long long max, unsigned long long *ret) {
        if (!starts_well(s, 0) || (base != 10 && base != 8))
                return -EINVAL;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, base);
        if (*end)
                return -EINVAL;
        if (errno == ERANGE || v < min || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

int mps__parse_signed(const char *s, long long min, long long max, long long *ret) {
        if (!starts_well(s, 1))
                return -EINVAL;
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (*end)
                return -EINVAL;
        if (errno == ERANGE || v < min || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

int mps__parse_double(const char *s, double min, double max, double *ret) {
        if (!starts_well(s, 2))
                return -EINVAL;
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (*end || isnan(v))
                return -EINVAL;
        if (isinf(v) || errno == ERANGE || v < min || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}
