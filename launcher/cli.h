/* SPDX-License-Identifier: MIT */
/*
 * cli.h: the mpspawn command as functions, so tests can drive it.
 *
 *   mpspawn.c          main(): mps__cli_main
 *   cli_options.c      argv -> struct mps__cli_options (cli_options.h)
 *   cli.c              running it: one job with signal forwarding, or the
 *                      server, a batch or a subcommand
 *   cli_batch.c        -j N: one command per stdin line through a Pool
 *   cli_subcommands.c  the subcommands ps, kill, wait, stats
 *   cli_common.c       messages, exit statuses, the JSON exit record, the
 *                      forwarded signals, ending by the job's signal
 *   cli_pty.c          a pseudo-terminal for a job run from a terminal
 */
#ifndef MPS_CLI_H
#define MPS_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include "../include/mpspawn.h"
#include "cli_options.h"

/* Runs `mpspawn argv...` and returns its exit status: mps__cli_parse, then
 * mps__cli_run. */
int mps__cli_main(int argc, char **argv);

/* cli.c: does what o describes and returns the exit status. Takes the
 * program into o->spec (RUN); o still needs mps__cli_options_done. */
int mps__cli_run(struct mps__cli_options *o);

/* cli_common.c */

/* Exit status of `mpspawn` for a job that ended with info (code, 128+N,
 * 124 for a timeout as timeout(1) gives it). */
int mps__cli_exit_status(const mps_exit_info *info);

/* Prints the exit record as one JSON line to f. */
void mps__cli_print_json_exit(FILE *f, uint64_t id, pid_t pid,
                              const mps_exit_info *info);

/* Prints "mpspawn: " and the message, and a hint for usage errors.
 * Returns MPS_EXIT_LAUNCHER. */
int mps__cli_usage_error(const char *fmt, const char *arg);

/* Prints a refusal of mps__cli_parse as mps__cli_usage_error would (the
 * hint only for usage errors). Returns MPS_EXIT_LAUNCHER. */
int mps__cli_print_error(const struct mps__cli_error *e);

/* The signals mpspawn forwards to its jobs. */
extern const int mps__cli_forwarded[];
extern const size_t mps__cli_nforwarded;

/* Blocks the forwarded signals (those not ignored when mpspawn started)
 * and returns a signalfd for them, at >= 3; -1 with errno on failure. */
int mps__cli_signalfd(void);

/* The same, with the signals of extra (NULL: none) too. */
int mps__cli_signalfd_with(const sigset_t *extra);

/* Ends mpspawn by sig, as its job ended, so that the shell sees what it
 * would have seen of a direct run (a loop stops on Ctrl-C, "Segmentation
 * fault" is printed): restores the terminal, turns core dumps off (the job
 * dumped its own), resets sig to its default and raises it unblocked.
 * Returns 128+sig only when that did not kill (sig ignored by default). */
int mps__cli_die_by_signal(int sig);

/* cli_batch.c: runs stdin's lines through a pool of `workers`; spec is
 * what every job starts from (env, cwd, limits...; each line sets its
 * program in it); prefix_argv (may be empty) goes before each line's
 * words; sfd is mps__cli_signalfd()'s. Returns the exit status. */
int mps__cli_batch(mps_client *client, mps_spec *spec, unsigned workers,
                   char **prefix_argv, int prefix_argc, bool halt_on_failure,
                   bool json, int sfd);

/* cli_subcommands.c: runs `mpspawn ps|kill|wait|stats` as o describes it
 * (o->mode MPS__CLI_PS..MPS__CLI_STATS) against a shared server. Returns
 * the exit status. */
int mps__cli_subcommand(const struct mps__cli_options *o);

#endif /* MPS_CLI_H */
