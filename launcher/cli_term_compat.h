/* SPDX-License-Identifier: MIT */
/*
 * cli_term_compat.h: TEMPORARY stand-ins for the terminal API that the
 * wt-term branch adds to the library (controlling terminal, stop reports,
 * terminal foreground), so that the relay builds and is tested before
 * that branch is merged. Removed by the merge.
 */
#ifndef MPS_CLI_TERM_COMPAT_H
#define MPS_CLI_TERM_COMPAT_H
#include <errno.h>
static inline int mps_spec_set_controlling_terminal(mps_spec *s, bool on) {
        (void)s, (void)on;
        return 0;
}
static inline int mps_spec_set_report_stops(mps_spec *s, bool on) {
        (void)s, (void)on;
        return 0;
}
static inline int mps_stop_signal(const mps_process *p) {
        (void)p;
        return 0;
}
static inline int mps_set_terminal_foreground(mps_process *p, bool fg) {
        (void)p, (void)fg;
        return -ENOTSUP;
}
#endif
