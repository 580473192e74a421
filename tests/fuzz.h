/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h: what the fuzz targets (tests/fuzz_*.c) share. Each target is one
 * LLVMFuzzerTestOneInput, built twice: with clang -fsanitize=fuzzer for
 * `make fuzz`, and with the normal compiler and tests/fuzz_replay.c for the
 * regression suites of `make check`.
 */
#ifndef MPS_FUZZ_H
#define MPS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test. Unlike assert() it holds with
 * NDEBUG too, and it names the invariant: a broken one is a finding, and
 * abort() is how both libFuzzer and Check's fork mode see it. */
#define FUZZ_CHECK(cond, ...)                                                  \
        do {                                                                   \
                if (!(cond)) {                                                 \
                        fprintf(stderr, "%s:%d: invariant broken: %s: ",      \
                                __FILE__, __LINE__, #cond);                    \
                        fprintf(stderr, __VA_ARGS__);                          \
                        fputc('\n', stderr);                                   \
                        abort();                                               \
                }                                                              \
        } while (0)

#endif /* MPS_FUZZ_H */
