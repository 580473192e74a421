/* SPDX-License-Identifier: MIT */
/*
 * steps.h: timestamps of one job's way through the server and its child,
 * for `make bench-steps`. Only a server built with -DMPS_STEPS takes them;
 * in every other build these are empty macros and cost nothing.
 *
 * The stamps live in one shared anonymous page mapped at start, so that a
 * forked, vforked or pre-forked child writes where the server reads. They
 * describe the last job only: the tool runs one job at a time.
 */
#ifndef MPS_FORKSERVER_STEPS_H
#define MPS_FORKSERVER_STEPS_H

enum step {
        STEP_RECEIVED,    /* server: the spawn request taken off the socket */
        STEP_FORKED,      /* server: fork, clone or hand-over returned */
        STEP_CHILD_START, /* child: first line of child_run */
        STEP_CHILD_READY, /* child: set up, about to exec or to run the entry */
        STEP_PIPE,        /* server: reads the exec pipe */
        STEP_SPAWNED,     /* server: about to encode and send "spawned" */
        STEP_EXIT_SEEN,   /* server: the child's exit noticed */
        STEP_EXITED,      /* server: about to encode and send "exited" */
        STEP_COUNT
};

#ifdef MPS_STEPS
void steps_init(void);
void steps_mark(enum step s);
/* One line on stderr: "steps" and the STEP_COUNT stamps (CLOCK_MONOTONIC
 * ns, 0 for a step the job skipped); then clears them. */
void steps_report(void);
#else
#define steps_init() ((void)0)
#define steps_mark(s) ((void)0)
#define steps_report() ((void)0)
#endif

#endif
