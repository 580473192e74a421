/* SPDX-License-Identifier: MIT */
/*
 * steps.c: see steps.h. Compiled into every server, empty unless MPS_STEPS.
 */
#include "steps.h"

#ifdef MPS_STEPS
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "../launcher/fdutil.h"

static uint64_t *stamps;

void steps_init(void) {
        void *p = mmap(NULL, STEP_COUNT * sizeof(uint64_t), PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        stamps = p == MAP_FAILED ? NULL : p;
}

void steps_mark(enum step s) {
        if (stamps)
                stamps[s] = mps__now_ns();
}

void steps_report(void) {
        char line[64 + STEP_COUNT * 24];
        int n;
        if (!stamps)
                return;
        n = snprintf(line, sizeof(line), "steps");
        for (int i = 0; i < STEP_COUNT; i++)
                n += snprintf(line + n, sizeof(line) - (size_t)n, " %" PRIu64, stamps[i]);
        fprintf(stderr, "%s\n", line);
        memset(stamps, 0, STEP_COUNT * sizeof(uint64_t));
}
#else
/* ISO C wants something in a translation unit. */
typedef int steps_unused;
#endif
