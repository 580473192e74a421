/*
 * cli.h: the mpspawn command as functions, so tests can drive it.
 *
 *   cli.c        options, running one job, exit-status conventions
 *   cli_batch.c  -j N: one command per stdin line through a Pool
 *   cli_subcommands.c  the subcommands ps, kill, wait, stats
 */
#ifndef MPS_CLI_H
#define MPS_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "../include/mpspawn.h"

/* Runs `mpspawn argv...` and returns its exit status. */
int mps__cli_main(int argc, char **argv);

/* Exit status of `mpspawn` for a job that ended with info (code, 128+N,
 * 124 for a timeout as timeout(1) gives it). */
int mps__cli_exit_status(const mps_exit_info *info);

/* Prints the exit record as one JSON line to f. */
void mps__cli_print_json_exit(FILE *f, uint64_t id, pid_t pid,
                              const mps_exit_info *info);

/* A signal by name (TERM, SIGTERM, term) or number; -1 if neither. */
int mps__cli_parse_signal(const char *s);

/* Prints "mpspawn: " and the message, and a hint for usage errors. */
int mps__cli_usage_error(const char *fmt, const char *arg);

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

/* cli_subcommands.c: `mpspawn ps|kill|wait|stats ...`; argv[0] is the subcommand. */
int mps__cli_jobs_main(int argc, char **argv, const char *socket);

#endif /* MPS_CLI_H */
