/* SPDX-License-Identifier: MIT */
/*
 * number.h: the one parser of numbers given as text (command-line options,
 * configuration values, subcommand arguments). Each takes the whole string
 * (no leading space, no sign where none is allowed, nothing after the
 * digits), checks it against inclusive bounds, and leaves *ret alone on
 * failure, so that a caller says only what the number is for.
 */
#ifndef MPS_NUMBER_H
#define MPS_NUMBER_H

/* An unsigned integer in base 10, or base 8 when base is 8 ("0755" and
 * "755" alike). 0, -EINVAL when s is not such a number, -ERANGE when it
 * is outside [min, max]. */
int mps__parse_unsigned(const char *s, int base, unsigned long long min,
                        unsigned long long max, unsigned long long *ret);

/* A signed integer in base 10: 0, -EINVAL or -ERANGE as above. */
int mps__parse_signed(const char *s, long long min, long long max, long long *ret);

/* A finite decimal number ("1", "0.5", "1e3"): 0, -EINVAL when s is not
 * one (NaN and infinities included), -ERANGE outside [min, max]. */
int mps__parse_double(const char *s, double min, double max, double *ret);

#endif /* MPS_NUMBER_H */
