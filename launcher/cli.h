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
 *                      forwarded signals
 *   cli_server.c       the per-user server mpspawn starts for itself
 */
#ifndef MPS_CLI_H
#define MPS_CLI_H

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

/* Blocks the forwarded signals and returns a signalfd for them. */
int mps__cli_signalfd(void);

/* cli_batch.c: runs stdin's lines through a pool of `workers`; spec is
 * what every job starts from (env, cwd, limits...; each line sets its
 * program in it); prefix_argv (may be empty) goes before each line's
 * words; sfd is mps__cli_signalfd()'s. Returns the exit status. */
int mps__cli_batch(mps_client *client, mps_spec *spec, unsigned workers,
                   char **prefix_argv, int prefix_argc, bool halt_on_failure,
                   bool json, int sfd);

/* cli_server.c: connects RUN and BATCH as mps_client_open(socket) would,
 * except that with no socket named, no $MPSPAWN_SOCKET and no system or
 * user server answering, the user's own server is started (or found, when
 * another mpspawn just started it) instead of an embedded one;
 * $MPSPAWN_USER_SERVER=0 keeps the embedded one. 0, or -errno with a
 * malloc()ed message in *ret_message (NULL on success or out of memory). */
int mps__cli_open(const char *socket, mps_client **ret_client, char **ret_message);

/* cli_subcommands.c: runs `mpspawn ps|kill|wait|stats` as o describes it
 * (o->mode MPS__CLI_PS..MPS__CLI_STATS) against a shared server. Returns
 * the exit status. */
int mps__cli_subcommand(const struct mps__cli_options *o);

#endif /* MPS_CLI_H */
