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
 *   cli_server.c       the per-user server mpspawn starts for itself
 *   cli_pty.c          a pseudo-terminal for a job run from a terminal
 */
#ifndef MPS_CLI_H
#define MPS_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include <cjson/cJSON.h>

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

/* --- JSON records that scripts can trust (issue 14, item 8) --- */

/* What a record says about its command: the batch input item's number
 * ("line", from 1; 0: not in a batch, no field) and the argv ("command",
 * NULL-terminated; NULL: no field). */
struct mps__cli_job_ref {
        unsigned long line;
        const char *const *argv;
};

/* The exit record of mps__cli_print_json_exit, after ref's fields. */
void mps__cli_json_exit(FILE *f, const struct mps__cli_job_ref *ref, uint64_t id,
                        pid_t pid, const mps_exit_info *info);

/* The record of a job that did not start: ref's fields, "error" (message),
 * "stage" (mps_start_failed_stage; null if none), "errno" (positive; null
 * if none) and "exitcode" (the status mpspawn gives it: 127, 126, 125). */
void mps__cli_json_start_failure(FILE *f, const struct mps__cli_job_ref *ref, int err,
                                 const char *stage, const char *message, int exitcode);

/* Exit status for a start that failed with err (negative) at stage (may
 * be NULL): 127 or 126 for an exec that failed, as a shell gives them, else
 * MPS_EXIT_LAUNCHER. */
int mps__cli_start_status(int err, const char *stage);

/* Adds bytes as the string member key of o, valid JSON whatever they are:
 * valid UTF-8 goes as it is; otherwise every byte becomes the code point of
 * the same value (Latin-1) and member "<key>_latin1": true says so.
 * Returns false on ENOMEM. */
bool mps__cli_json_add_bytes(cJSON *o, const char *key, const char *bytes);

/* The same for an array of strings (argv): if any is not valid UTF-8, all
 * of them are Latin-1 coded and "<key>_latin1": true is added. */
bool mps__cli_json_add_argv(cJSON *o, const char *key, const char *const *argv);

/* Whether s is valid UTF-8 (no overlong forms, surrogates or code points
 * past U+10FFFF). */
bool mps__cli_utf8_valid(const char *s);

/* Where JSON records go: stderr for json_fd -1, else a stream on json_fd
 * (opened once, kept to the end). NULL if it cannot be opened. */
FILE *mps__cli_json_stream(int json_fd);

/* mpspawn's exit status for a job that ended with info, with
 * --preserve-status (preserve): as timeout(1) --preserve-status, the job's
 * own status (N or 128+N) even when it timed out. */
int mps__cli_job_exit_status(const mps_exit_info *info, bool preserve);

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

/* cli_fds.c: maps into o->spec the caller's fds the job gets (every one
 * not close-on-exec, or those --pass-fd/--preserve-fds name). Call once,
 * after the spec is built. Returns 0, or MPS_EXIT_LAUNCHER after saying
 * why. */
int mps__cli_fds_apply(const struct mps__cli_options *o);

/* cli_batch.c: runs stdin's items (lines, or -0/-d items) through a pool
 * of o->jobs workers; o->spec is what every job starts from (env, cwd,
 * limits...; each item sets its program in it); o->command (may be empty)
 * goes before each line's words, or takes the -I item; sfd is
 * mps__cli_signalfd()'s. Returns the exit status. */
int mps__cli_batch(mps_client *client, const struct mps__cli_options *o, int sfd);

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
