/* SPDX-License-Identifier: MIT */
/*
 * check_cli_parse.c: the mpspawn command line through mps__cli_parse(),
 * without running anything: each option in its short and long forms, what
 * it puts into the job's spec, the modes and subcommands, and every refusal
 * with its exact message. check_cli runs the same command end to end.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../launcher/cli.h"
#include "../launcher/cli_options.h"
#include "../launcher/lib.h"
#include "../launcher/wire.h"
#include "testutil.h"

static struct mps__cli_options opt;
static struct mps__cli_error err;

static void release(void) {
        mps__cli_options_done(&opt);
        mps__cli_error_done(&err);
        memset(&opt, 0, sizeof(opt));
        memset(&err, 0, sizeof(err));
}

/* Parses `mpspawn args...` (args NULL-terminated) into opt or err. The
 * parser writes nothing into argv, so the literals can be its strings. */
static int parse(const char *const *args) {
        static char *argv[64];
        int argc = 0;
        release();
        argv[argc++] = "mpspawn";
        for (size_t i = 0; args[i]; i++) {
                ck_assert_int_lt(argc, 63);
                argv[argc++] = (char *)args[i];
        }
        argv[argc] = NULL;
        return mps__cli_parse(argc, argv, &opt, &err);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Expects `mpspawn ...` to parse. */
#define PARSES(...)                                                                        \
        do {                                                                               \
                int r_ = parse(ARGS(__VA_ARGS__));                                         \
                ck_assert_msg(r_ == 0, "refused: %s", err.message ? err.message : "?");    \
        } while (0)

/* Expects `mpspawn ...` to be refused with exactly this message, a usage
 * error (which gets the --help hint) or not. */
static void refused_as(const char *const *args, const char *message, bool usage) {
        ck_assert_int_eq(parse(args), -EINVAL);
        ck_assert_ptr_nonnull(err.message);
        ck_assert_str_eq(err.message, message);
        ck_assert_int_eq(err.usage, usage);
}
#define REFUSED(message, ...) refused_as(ARGS(__VA_ARGS__), message, true)

static void teardown(void) {
        release();
}

/* --- PROGRAM, "--" and the modes ----------------------------------------------- */

START_TEST(test_program_and_its_own_options) {
        PARSES("true");
        ck_assert_int_eq(opt.mode, MPS__CLI_RUN);
        ck_assert_int_eq(opt.ncommand, 1);
        ck_assert_str_eq(opt.command[0], "true");
        ck_assert_ptr_null(opt.command[1]);
        ck_assert_ptr_null(opt.socket);
        ck_assert_ptr_nonnull(opt.spec);
        /* The program goes into the spec only when the job is run. */
        ck_assert_ptr_null(opt.spec->spawn.path);
        /* Options after PROGRAM are its own. */
        PARSES("echo", "-e", "--help", "-s", "x");
        ck_assert_int_eq(opt.ncommand, 5);
        ck_assert_str_eq(opt.command[1], "-e");
        ck_assert_str_eq(opt.command[4], "x");
        ck_assert_ptr_null(opt.socket);
}
END_TEST

START_TEST(test_double_dash_ends_the_options) {
        PARSES("--", "-e", "A=1");
        ck_assert_int_eq(opt.mode, MPS__CLI_RUN);
        ck_assert_int_eq(opt.ncommand, 2);
        ck_assert_str_eq(opt.command[0], "-e");
        ck_assert_int_eq(opt.spec->nedits, 0);
        /* After "--" a subcommand's name is a PROGRAM's. */
        PARSES("-s", "sock", "--", "ps", "aux");
        ck_assert_int_eq(opt.mode, MPS__CLI_RUN);
        ck_assert_str_eq(opt.command[0], "ps");
        ck_assert_str_eq(opt.socket, "sock");
        PARSES("--", "server");
        ck_assert_int_eq(opt.mode, MPS__CLI_RUN);
        ck_assert_str_eq(opt.command[0], "server");
        REFUSED("no PROGRAM given", "--");
        REFUSED("no PROGRAM given", "-e", "A=1");
        ck_assert_int_eq(parse((const char *const[]){NULL}), -EINVAL);
        ck_assert_str_eq(err.message, "no PROGRAM given");
}
END_TEST

START_TEST(test_help_and_version_end_the_parsing) {
        PARSES("-h");
        ck_assert_int_eq(opt.mode, MPS__CLI_HELP);
        ck_assert_ptr_null(opt.spec);
        PARSES("--help", "--no-such-option");
        ck_assert_int_eq(opt.mode, MPS__CLI_HELP);
        PARSES("-V");
        ck_assert_int_eq(opt.mode, MPS__CLI_VERSION);
        PARSES("--version");
        ck_assert_int_eq(opt.mode, MPS__CLI_VERSION);
        PARSES("-hV");
        ck_assert_int_eq(opt.mode, MPS__CLI_HELP);
        /* A parse that stopped inside "-hV" does not leak into the next. */
        PARSES("-Vh");
        ck_assert_int_eq(opt.mode, MPS__CLI_VERSION);
        PARSES("true");
        ck_assert_int_eq(opt.mode, MPS__CLI_RUN);
        /* What comes before is checked first. */
        REFUSED("bad --env 'BAD' (NAME=VALUE)", "-e", "BAD", "-h");
        ck_assert_ptr_nonnull(strstr(mps__cli_usage, "Usage: mpspawn"));
        ck_assert_ptr_nonnull(strstr(mps__cli_subcommand_usage, "wait [--json] ID"));
}
END_TEST

START_TEST(test_server_is_the_first_word_only) {
        PARSES("server", "--socket", "/tmp/x", "-v");
        ck_assert_int_eq(opt.mode, MPS__CLI_SERVER);
        ck_assert_int_eq(opt.ncommand, 4);
        ck_assert_str_eq(opt.command[0], "server");
        ck_assert_str_eq(opt.command[3], "-v");
        ck_assert_ptr_null(opt.command[4]);
        ck_assert_ptr_null(opt.spec);
        PARSES("-s", "sock", "server");
        ck_assert_int_eq(opt.mode, MPS__CLI_RUN);
        ck_assert_str_eq(opt.command[0], "server");
}
END_TEST

/* --- the options ------------------------------------------------------------------ */

START_TEST(test_socket_cwd_name_short_and_long) {
        PARSES("-s", "/a", "-C", "/d", "--name", "job", "true");
        ck_assert_str_eq(opt.socket, "/a");
        ck_assert_str_eq(opt.cwd, "/d");
        ck_assert_str_eq(opt.name, "job");
        ck_assert_str_eq(opt.spec->spawn.cwd, "/d");
        ck_assert_str_eq(opt.spec->spawn.name, "job");
        PARSES("--socket", "/b", "--cwd=rel/dir", "true");
        ck_assert_str_eq(opt.socket, "/b");
        ck_assert_str_eq(opt.spec->spawn.cwd, "rel/dir");
        ck_assert_ptr_null(opt.spec->spawn.name);
        PARSES("--socket=/c", "-s/d", "-Cx", "true");
        ck_assert_str_eq(opt.socket, "/d");
        ck_assert_str_eq(opt.spec->spawn.cwd, "x");
        /* Abbreviations that are unambiguous. */
        PARSES("--sock", "/e", "--na", "n", "true");
        ck_assert_str_eq(opt.socket, "/e");
        ck_assert_str_eq(opt.spec->spawn.name, "n");
        REFUSED("bad arguments", "-C", "", "true");
}
END_TEST

START_TEST(test_env_repeated_in_order) {
        PARSES("-e", "A=1", "--env", "B=two words", "--env=C=", "-u", "D", "--unset", "A",
               "-e", "E=x=y", "true");
        ck_assert_int_eq(opt.spec->nedits, 6);
        ck_assert_str_eq(opt.spec->edits[0].name, "A");
        ck_assert_str_eq(opt.spec->edits[0].value, "1");
        ck_assert_str_eq(opt.spec->edits[1].name, "B");
        ck_assert_str_eq(opt.spec->edits[1].value, "two words");
        ck_assert_str_eq(opt.spec->edits[2].name, "C");
        ck_assert_str_eq(opt.spec->edits[2].value, "");
        ck_assert_str_eq(opt.spec->edits[3].name, "D");
        ck_assert_ptr_null(opt.spec->edits[3].value);
        ck_assert_str_eq(opt.spec->edits[4].name, "A");
        ck_assert_ptr_null(opt.spec->edits[4].value);
        ck_assert_str_eq(opt.spec->edits[5].name, "E");
        ck_assert_str_eq(opt.spec->edits[5].value, "x=y");
        ck_assert(!opt.spec->env_clear);
        PARSES("--clear-env", "-e", "A=1", "true");
        ck_assert(opt.clear_env);
        ck_assert(opt.spec->env_clear);
        ck_assert_int_eq(opt.spec->nedits, 1);
}
END_TEST

START_TEST(test_env_refusals) {
        REFUSED("bad --env 'NOEQUALS' (NAME=VALUE)", "-e", "NOEQUALS", "true");
        REFUSED("bad --env '=x' (NAME=VALUE)", "--env", "=x", "true");
        REFUSED("bad --unset 'A=B' (a variable name)", "-u", "A=B", "true");
        REFUSED("bad --unset '' (a variable name)", "--unset", "", "true");
        /* Options are checked in order: the first bad one is reported. */
        REFUSED("bad --env 'X' (NAME=VALUE)", "-e", "A=1", "-e", "X", "--timeout", "soon",
                "true");
        REFUSED("bad --timeout 'soon' (a duration > 0: 2.5, 1.5s, 2m, 1h, 1d)", "--timeout", "soon", "-e", "X",
                "true");
}
END_TEST

/* The spec's limit for resource, or NULL. */
static const struct mps__rlimit *limit_of(int resource) {
        for (size_t i = 0; i < opt.spec->spawn.nrlimits; i++)
                if (opt.spec->spawn.rlimits[i].resource == resource)
                        return &opt.spec->spawn.rlimits[i];
        return NULL;
}

START_TEST(test_rlimit_forms) {
        PARSES("--rlimit", "nofile=33:44", "--rlimit", "RLIMIT_CORE=0", "--rlimit",
               "Stack=unlimited", "--rlimit=as=infinity:UNLIMITED", "--rlimit",
               "nproc=18446744073709551613", "true");
        ck_assert_int_eq(opt.spec->spawn.nrlimits, 5);
        const struct mps__rlimit *l = limit_of(RLIMIT_NOFILE);
        ck_assert_ptr_nonnull(l);
        ck_assert_uint_eq(l->soft, 33);
        ck_assert_uint_eq(l->hard, 44);
        ck_assert(!l->hard_keep);
        l = limit_of(RLIMIT_CORE);
        ck_assert_uint_eq(l->soft, 0);
        ck_assert(l->hard_keep); /* without :HARD the hard limit stays */
        l = limit_of(RLIMIT_STACK);
        ck_assert(l->soft == RLIM_INFINITY && l->hard_keep);
        l = limit_of(RLIMIT_AS);
        ck_assert(l->soft == RLIM_INFINITY && l->hard == RLIM_INFINITY && !l->hard_keep);
        l = limit_of(RLIMIT_NPROC);
        ck_assert(l->soft == (unsigned long long)MPS_RLIM_KEEP - 1);
        /* The same resource again: the last one counts. */
        PARSES("--rlimit", "nofile=1:2", "--rlimit", "NOFILE=3", "true");
        ck_assert_int_eq(opt.spec->spawn.nrlimits, 1);
        ck_assert_uint_eq(limit_of(RLIMIT_NOFILE)->soft, 3);
}
END_TEST

START_TEST(test_rlimit_refusals) {
        static const char *const bad[] = {
                "bogus=1", "nofile", "nofile=", "nofile=9:3", "nofile=-1", "nofile=+1",
                "nofile= 1", "nofile=x", "nofile=1:x", "nofile=1:", "=1",
                "nofile=18446744073709551614", /* MPS_RLIM_KEEP, a value of its own */
                "nofile=18446744073709551615", "nofile=99999999999999999999",
        };
        char want[256];
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(want, sizeof(want),
                         "bad --rlimit '%s' (RES=SOFT[:HARD], e.g. nofile=256:1024 or "
                         "core=unlimited)",
                         bad[i]);
                REFUSED(want, "--rlimit", bad[i], "true");
        }
        /* Longer than any RES=SOFT:HARD can be. */
        char longarg[200];
        snprintf(longarg, sizeof(longarg), "nofile=1:%0150d", 2);
        ck_assert_int_eq(parse(ARGS("--rlimit", longarg, "true")), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err.message, "bad --rlimit 'nofile=1:000"));
}
END_TEST

START_TEST(test_timeout_and_kill_after) {
        PARSES("--timeout", "2.5", "true");
        ck_assert(opt.timeout == 2.5);
        ck_assert(opt.kill_after == -1);
        ck_assert(opt.spec->spawn.timeout == 2.5);
        ck_assert(opt.spec->spawn.kill_after == MPS_WIRE_KILL_AFTER_DEFAULT);
        PARSES("--timeout=1e3", "--kill-after", "0.5", "true");
        ck_assert(opt.spec->spawn.timeout == 1000);
        ck_assert(opt.spec->spawn.kill_after == 0.5);
        PARSES("--timeout", ".25", "--kill-after=0", "true");
        ck_assert(opt.spec->spawn.timeout == 0.25);
        ck_assert(opt.spec->spawn.kill_after == 0);
        PARSES("--timeout", "10000000", "--kill-after", "10000000", "true");
        ck_assert(opt.spec->spawn.timeout == 1e7);
        PARSES("true");
        ck_assert(opt.spec->spawn.timeout == 0);

        static const char *const bad_timeouts[] = {"soon", "-1", "0", "0.0", "", "nan",
                                                   "inf",  "1e8", "10000001", "2x", " 2",
                                                   "1e-400", "s", "2ss", "1.5 s", "-1s",
                                                   "116d", "0s", "2S", "2sec"};
        char want[128];
        for (size_t i = 0; i < sizeof(bad_timeouts) / sizeof(bad_timeouts[0]); i++) {
                snprintf(want, sizeof(want),
                         "bad --timeout '%s' (a duration > 0: 2.5, 1.5s, 2m, 1h, 1d)",
                         bad_timeouts[i]);
                REFUSED(want, "--timeout", bad_timeouts[i], "true");
        }
        REFUSED("bad --kill-after 'x' (a duration: 5, 0.5s, 1m...)", "--timeout", "1",
                "--kill-after", "x", "true");
        REFUSED("bad --kill-after '-1' (a duration: 5, 0.5s, 1m...)", "--kill-after", "-1",
                "true");
        REFUSED("--kill-after needs --timeout", "--kill-after", "1", "true");
        REFUSED("--kill-after needs --timeout", "--kill-after", "0", "true");
}
END_TEST

START_TEST(test_nice_bounds) {
        PARSES("--nice", "-20", "true");
        ck_assert(opt.spec->spawn.has_nice);
        ck_assert_int_eq(opt.spec->spawn.nice, -20);
        PARSES("--nice=19", "true");
        ck_assert_int_eq(opt.spec->spawn.nice, 19);
        PARSES("--nice", "+5", "true");
        ck_assert_int_eq(opt.spec->spawn.nice, 5);
        PARSES("--nice", "0", "true");
        ck_assert(opt.spec->spawn.has_nice);
        ck_assert_int_eq(opt.spec->spawn.nice, 0);
        PARSES("true");
        ck_assert(!opt.spec->spawn.has_nice);
        static const char *const bad[] = {"20", "-21", "x", "", " 5", "5x", "1e1",
                                          "99999999999999999999"};
        char want[128];
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(want, sizeof(want), "bad --nice '%s' (-20 to 19)", bad[i]);
                REFUSED(want, "--nice", bad[i], "true");
        }
}
END_TEST

START_TEST(test_umask_is_octal) {
        PARSES("true");
        ck_assert_int_eq(opt.spec->spawn.umask, -1);
        PARSES("--umask", "027", "true");
        ck_assert_int_eq(opt.spec->spawn.umask, 027);
        PARSES("--umask=777", "true");
        ck_assert_int_eq(opt.spec->spawn.umask, 0777);
        PARSES("--umask", "0", "true");
        ck_assert_int_eq(opt.spec->spawn.umask, 0);
        static const char *const bad[] = {"0778", "1000", "-1", "8", "+7", "", "0x1", "22 "};
        char want[128];
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(want, sizeof(want), "bad --umask '%s' (octal, e.g. 022)", bad[i]);
                REFUSED(want, "--umask", bad[i], "true");
        }
}
END_TEST

START_TEST(test_privileges_pdeathsig_and_kill_tree) {
        PARSES("true");
        ck_assert(!opt.spec->spawn.no_new_privs);
        ck_assert_int_eq(opt.spec->spawn.pdeathsig, 0);
        ck_assert(!opt.spec->spawn.kill_tree);
        ck_assert(!opt.spec->spawn.new_session);
        PARSES("--no-new-privs", "--pdeathsig", "KILL", "--kill-tree", "--new-session", "true");
        ck_assert(opt.spec->spawn.no_new_privs);
        ck_assert_int_eq(opt.spec->spawn.pdeathsig, SIGKILL);
        ck_assert(opt.spec->spawn.kill_tree);
        ck_assert(opt.new_session);
        ck_assert(opt.spec->spawn.new_session);
        PARSES("--pdeathsig=sigterm", "true");
        ck_assert_int_eq(opt.spec->spawn.pdeathsig, SIGTERM);
        PARSES("--pdeathsig", "10", "true");
        ck_assert_int_eq(opt.spec->spawn.pdeathsig, 10);
        static const char *const bad[] = {"0", "-1", "65", "BOGUS", "", "SIG"};
        char want[128];
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(want, sizeof(want), "bad --pdeathsig '%s' (a signal)", bad[i]);
                REFUSED(want, "--pdeathsig", bad[i], "true");
        }
}
END_TEST

START_TEST(test_seccomp_reads_its_file_in_order) {
        char dir[64], file[100];
        tu_tmpdir(dir, sizeof(dir));
        snprintf(file, sizeof(file), "%s/strict.policy", dir);
        FILE *f = fopen(file, "we");
        ck_assert_ptr_nonnull(f);
        fputs("allow read\n", f);
        fclose(f);
        PARSES("--seccomp", file, "true");
        ck_assert_str_eq(opt.spec->spawn.seccomp_name, "strict.policy");
        ck_assert_str_eq(opt.spec->spawn.seccomp_text, "allow read\n");
        unlink(file);
        rmdir(dir);

        /* Not a usage error: no --help hint. */
        refused_as(ARGS("--seccomp", "/nonexistent/p", "true"),
                   "cannot read --seccomp '/nonexistent/p': No such file or directory", false);
        refused_as(ARGS("--seccomp", "/nonexistent/p", "--timeout", "x", "true"),
                   "cannot read --seccomp '/nonexistent/p': No such file or directory", false);
        REFUSED("bad --timeout 'x' (a duration > 0: 2.5, 1.5s, 2m, 1h, 1d)", "--timeout", "x", "--seccomp",
                "/nonexistent/p", "true");
}
END_TEST

START_TEST(test_jobs_is_batch_mode) {
        PARSES("-j", "8");
        ck_assert_int_eq(opt.mode, MPS__CLI_BATCH);
        ck_assert_uint_eq(opt.jobs, 8);
        ck_assert_int_eq(opt.ncommand, 0);
        ck_assert(!opt.halt_on_failure);
        PARSES("--jobs", "4096", "--halt-on-failure", "echo", "prefix");
        ck_assert_int_eq(opt.mode, MPS__CLI_BATCH);
        ck_assert_uint_eq(opt.jobs, 4096);
        ck_assert_int_eq(opt.ncommand, 2);
        ck_assert_str_eq(opt.command[0], "echo");
        ck_assert(opt.halt_on_failure);
        PARSES("-j1", "--halt-on-failure", "--keep-going");
        ck_assert_uint_eq(opt.jobs, 1);
        ck_assert(!opt.halt_on_failure);
        PARSES("--jobs=2", "--json");
        ck_assert(opt.json);
        static const char *const bad[] = {"4097", "-1", "+3", " 3", "x", "", "3x",
                                          "99999999999999999999"};
        char want[128];
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(want, sizeof(want), "bad --jobs '%s' (0 to 4096; 0: one per CPU)",
                         bad[i]);
                REFUSED(want, "-j", bad[i]);
        }
        REFUSED("--detach does not go with --jobs", "-j", "3", "--detach");
}
END_TEST

START_TEST(test_call_with_args) {
        PARSES("--call", "entry");
        ck_assert_int_eq(opt.mode, MPS__CLI_RUN);
        ck_assert_str_eq(opt.call, "entry");
        ck_assert_ptr_null(opt.args);
        ck_assert_int_eq(opt.ncommand, 0);
        ck_assert_str_eq(opt.spec->spawn.call_entry, "entry");
        ck_assert_ptr_null(opt.spec->spawn.call_args);
        PARSES("--args", "{\"n\": [1, 2]}", "--call=sum");
        ck_assert_str_eq(opt.spec->spawn.call_entry, "sum");
        char *args = cJSON_PrintUnformatted(opt.spec->spawn.call_args);
        ck_assert_str_eq(args, "{\"n\":[1,2]}");
        cJSON_free(args);
        REFUSED("--call runs an entry point: give no PROGRAM and no --jobs", "--call", "e",
                "true");
        REFUSED("--call runs an entry point: give no PROGRAM and no --jobs", "--call", "e",
                "-j", "2");
        REFUSED("--args goes with --call", "--args", "{}", "true");
        REFUSED("bad --call/--args: '{bad' is not valid JSON", "--call", "e", "--args", "{bad");
        REFUSED("bad --call/--args: '' is not valid JSON", "--call", "");
}
END_TEST

START_TEST(test_detach_and_json) {
        PARSES("true");
        ck_assert(!opt.detach && !opt.json);
        ck_assert(opt.spec->spawn.daemon); /* mpspawn's death ends the job */
        ck_assert(!opt.spec->spawn.detached);
        PARSES("--detach", "--json", "true");
        ck_assert(opt.detach);
        ck_assert(opt.json);
        ck_assert(!opt.spec->spawn.daemon);
        ck_assert(opt.spec->spawn.detached);
}
END_TEST

START_TEST(test_unknown_options_and_missing_values) {
        /* Each refusal says which it is: unknown, ambiguous, missing its
         * value, or given a value it does not take. */
        REFUSED("unknown option '--no-such-option'", "--no-such-option", "true");
        REFUSED("unknown option '--no-such-option'", "--no-such-option=1", "true");
        REFUSED("unknown option '-x'", "-x", "true");
        REFUSED("unknown option '-x'", "-Cdir", "-x", "true");
        /* A missing value is named as it was spelled. */
        REFUSED("option '--socket' needs a value", "--socket");
        REFUSED("option '-s' needs a value", "-s");
        REFUSED("option '-j' needs a value", "-j");
        REFUSED("option '--timeout' needs a value", "--timeout");
        REFUSED("option '--detach' takes no value", "--detach=1", "true");
        /* Ambiguous: --kill-after, --kill-tree, --keep-going. */
        REFUSED("option '--k' is ambiguous", "--k", "true");
        REFUSED("option '--kill' is ambiguous", "--kill", "true");
        /* The subcommands' options alike. */
        REFUSED("unknown option '--bogus'", "ps", "--bogus");
        REFUSED("option '-s' needs a value", "ps", "-s");
}
END_TEST

START_TEST(test_refusal_leaves_the_options_alone) {
        struct mps__cli_options o = {.mode = MPS__CLI_STATS, .jobs = 77};
        struct mps__cli_error e = {0};
        char *argv[] = {"mpspawn", "-j", "3", "--nice", "40", "true", NULL};
        ck_assert_int_eq(mps__cli_parse(6, argv, &o, &e), -EINVAL);
        ck_assert_int_eq(o.mode, MPS__CLI_STATS);
        ck_assert_uint_eq(o.jobs, 77);
        ck_assert_str_eq(e.message, "bad --nice '40' (-20 to 19)");
        mps__cli_error_done(&e);
        ck_assert_ptr_null(e.message);
        mps__cli_error_done(&e); /* twice is harmless */
}
END_TEST

/* --- the subcommands ------------------------------------------------------------- */

START_TEST(test_subcommands_and_their_options) {
        PARSES("ps");
        ck_assert_int_eq(opt.mode, MPS__CLI_PS);
        ck_assert_str_eq(opt.subcommand, "ps");
        ck_assert(!opt.json);
        ck_assert_ptr_null(opt.socket);
        ck_assert_ptr_null(opt.spec);
        PARSES("ps", "--json", "-s", "/s");
        ck_assert(opt.json);
        ck_assert_str_eq(opt.socket, "/s");
        PARSES("stats", "--json");
        ck_assert_int_eq(opt.mode, MPS__CLI_STATS);
        ck_assert(opt.json);
        PARSES("wait", "--json", "7");
        ck_assert_int_eq(opt.mode, MPS__CLI_WAIT);
        ck_assert_uint_eq(opt.id, 7);
        ck_assert(opt.json);
        PARSES("wait", "18446744073709551615");
        ck_assert_uint_eq(opt.id, UINT64_MAX);
        PARSES("kill", "5");
        ck_assert_int_eq(opt.mode, MPS__CLI_KILL);
        ck_assert_uint_eq(opt.id, 5);
        ck_assert_int_eq(opt.signal, SIGTERM);
        PARSES("kill", "5", "KILL");
        ck_assert_int_eq(opt.signal, SIGKILL);
        PARSES("kill", "5", "sigusr1");
        ck_assert_int_eq(opt.signal, SIGUSR1);
        PARSES("kill", "5", "0"); /* a probe, as kill -0 */
        ck_assert_int_eq(opt.signal, 0);
        PARSES("kill", "--socket=/k", "5", "9");
        ck_assert_int_eq(opt.signal, 9);
        ck_assert_str_eq(opt.socket, "/k");
}
END_TEST

START_TEST(test_subcommand_after_options) {
        PARSES("-s", "/a", "ps");
        ck_assert_int_eq(opt.mode, MPS__CLI_PS);
        ck_assert_str_eq(opt.socket, "/a");
        ck_assert_ptr_null(opt.spec);
        /* Its own -s wins; the run's other options do not carry over. */
        PARSES("-s", "/a", "--json", "-e", "A=1", "ps", "-s", "/b");
        ck_assert_str_eq(opt.socket, "/b");
        ck_assert(!opt.json);
        PARSES("-j", "3", "wait", "4");
        ck_assert_int_eq(opt.mode, MPS__CLI_WAIT);
        ck_assert_uint_eq(opt.jobs, 0);
        /* The options before it are still checked. */
        REFUSED("bad --env 'BAD' (NAME=VALUE)", "-e", "BAD", "ps");
        /* An option's value that is "--" is not the end of the options. */
        PARSES("--name", "--", "ps");
        ck_assert_int_eq(opt.mode, MPS__CLI_RUN);
        ck_assert_str_eq(opt.command[0], "ps");
}
END_TEST

START_TEST(test_subcommand_help) {
        PARSES("ps", "-h");
        ck_assert_int_eq(opt.mode, MPS__CLI_SUBCOMMAND_HELP);
        ck_assert_str_eq(opt.subcommand, "ps");
        PARSES("kill", "--help", "not-an-id");
        ck_assert_int_eq(opt.mode, MPS__CLI_SUBCOMMAND_HELP);
        PARSES("-s", "/a", "wait", "-h");
        ck_assert_int_eq(opt.mode, MPS__CLI_SUBCOMMAND_HELP);
}
END_TEST

START_TEST(test_subcommand_refusals) {
        REFUSED("unexpected argument 'extra'", "ps", "extra");
        REFUSED("unexpected argument 'x'", "stats", "x", "y");
        REFUSED("usage: mpspawn wait [--json] ID", "wait");
        REFUSED("usage: mpspawn wait [--json] ID", "wait", "0");
        /* What starts with '-' is an option to the subcommand. */
        REFUSED("unknown option '-1'", "wait", "-1");
        REFUSED("usage: mpspawn wait [--json] ID", "wait", "+1");
        REFUSED("usage: mpspawn wait [--json] ID", "wait", "x");
        REFUSED("usage: mpspawn wait [--json] ID", "wait", "1", "2");
        REFUSED("usage: mpspawn wait [--json] ID", "wait", "18446744073709551616");
        REFUSED("usage: mpspawn kill ID [SIGNAL]", "kill");
        REFUSED("usage: mpspawn kill ID [SIGNAL]", "kill", "0");
        REFUSED("usage: mpspawn kill ID [SIGNAL]", "kill", "1", "2", "3");
        REFUSED("unknown signal 'BOGUS'", "kill", "1", "BOGUS");
        REFUSED("unknown signal '-1'", "kill", "1", "-1");
        REFUSED("unknown signal '65'", "kill", "1", "65");
        REFUSED("unknown option '--bogus'", "ps", "--bogus");
        REFUSED("unknown option '-x'", "stats", "-x");
        REFUSED("option '-s' needs a value", "ps", "-s");
        /* -J is --json's code, not an option of its own. */
        REFUSED("unknown option '-J'", "ps", "-J");
}
END_TEST

START_TEST(test_parse_signal) {
        ck_assert_int_eq(mps__cli_parse_signal("TERM"), SIGTERM);
        ck_assert_int_eq(mps__cli_parse_signal("SIGTERM"), SIGTERM);
        ck_assert_int_eq(mps__cli_parse_signal("term"), SIGTERM);
        ck_assert_int_eq(mps__cli_parse_signal("SigHup"), SIGHUP);
        ck_assert_int_eq(mps__cli_parse_signal("15"), 15);
        ck_assert_int_eq(mps__cli_parse_signal("+9"), 9);
        ck_assert_int_eq(mps__cli_parse_signal("0"), 0);
        ck_assert_int_eq(mps__cli_parse_signal("64"), 64);
        ck_assert_int_eq(mps__cli_parse_signal("65"), -1);
        ck_assert_int_eq(mps__cli_parse_signal("-1"), -1);
        ck_assert_int_eq(mps__cli_parse_signal(""), -1);
        ck_assert_int_eq(mps__cli_parse_signal("SIG"), -1);
        ck_assert_int_eq(mps__cli_parse_signal("9x"), -1);
        ck_assert_int_eq(mps__cli_parse_signal("99999999999999999999"), -1);
}
END_TEST


/* --- issue 14, items 7-9: xargs input, JSON records, timeout(1) -------------- */

START_TEST(test_durations_as_gnu_timeout) {
        static const struct {
                const char *text;
                double seconds;
        } ok[] = {{"1.5s", 1.5}, {"2m", 120},    {"0.5h", 1800}, {"1d", 86400},
                  {"3", 3},      {".25s", 0.25}, {"1e2s", 100},  {"0.001m", 0.06},
                  {"115d", 115 * 86400.0}};
        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                PARSES("--timeout", ok[i].text, "--kill-after", ok[i].text, "true");
                ck_assert_msg(opt.timeout == ok[i].seconds, "%s", ok[i].text);
                ck_assert(opt.spec->spawn.timeout == ok[i].seconds);
                ck_assert(opt.spec->spawn.kill_after == ok[i].seconds);
        }
        /* --kill-after may be zero, with or without a suffix. */
        PARSES("--timeout", "1m", "--kill-after", "0s", "true");
        ck_assert(opt.spec->spawn.kill_after == 0);
        REFUSED("bad --kill-after '5x' (a duration: 5, 0.5s, 1m...)", "--timeout", "1",
                "--kill-after", "5x", "true");
}
END_TEST

START_TEST(test_signal_and_preserve_status) {
        PARSES("--timeout", "1", "--signal", "INT", "true");
        ck_assert_int_eq(opt.timeout_signal, SIGINT);
        ck_assert_int_eq(opt.spec->spawn.timeout_signal, SIGINT);
        ck_assert(!opt.preserve_status);
        PARSES("--timeout", "1", "--signal=sigkill", "--preserve-status", "true");
        ck_assert_int_eq(opt.spec->spawn.timeout_signal, SIGKILL);
        ck_assert(opt.preserve_status);
        PARSES("--timeout", "1", "--signal", "15", "true");
        /* SIGTERM is the default, which any server carries out. */
        ck_assert_int_eq(opt.spec->spawn.timeout_signal, 0);
        PARSES("--timeout", "1", "true");
        ck_assert_int_eq(opt.timeout_signal, 0);
        ck_assert_int_eq(opt.spec->spawn.timeout_signal, 0);
        PARSES("--preserve-status", "true"); /* as timeout(1): harmless alone */
        REFUSED("bad --signal 'NOPE' (a signal: TERM, INT, 9...)", "--timeout", "1",
                "--signal", "NOPE", "true");
        REFUSED("bad --signal '0' (a signal: TERM, INT, 9...)", "--timeout", "1",
                "--signal", "0", "true");
        REFUSED("--signal needs --timeout", "--signal", "INT", "true");
        /* -s stays --socket. */
        PARSES("-s", "/x.sock", "true");
        ck_assert_str_eq(opt.socket, "/x.sock");
}
END_TEST

START_TEST(test_json_fd) {
        PARSES("true");
        ck_assert_int_eq(opt.json_fd, -1);
        ck_assert(!opt.json);
        PARSES("--json-fd", "2", "true");
        ck_assert_int_eq(opt.json_fd, 2);
        ck_assert(opt.json); /* records are asked for by giving them an fd */
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        char rd[16], wr[16], want[96];
        snprintf(rd, sizeof(rd), "%d", p[0]);
        snprintf(wr, sizeof(wr), "%d", p[1]);
        PARSES("-j", "2", "--json-fd", wr);
        ck_assert_int_eq(opt.json_fd, p[1]);
        snprintf(want, sizeof(want), "bad --json-fd '%s' (not an fd open for writing)", rd);
        REFUSED(want, "--json-fd", rd, "true");
        close(p[0]);
        close(p[1]);
        snprintf(want, sizeof(want), "bad --json-fd '%s' (not an fd open for writing)", wr);
        REFUSED(want, "--json-fd", wr, "true");
        REFUSED("bad --json-fd 'x' (an fd number)", "--json-fd", "x", "true");
        REFUSED("bad --json-fd '-1' (an fd number)", "--json-fd", "-1", "true");
}
END_TEST

START_TEST(test_batch_input_options) {
        PARSES("-j", "2", "echo");
        ck_assert(!opt.delimited);
        ck_assert_int_eq(opt.delim, '\n');
        ck_assert_ptr_null(opt.replace);
        ck_assert(!opt.progress);
        PARSES("-j", "2", "-0", "echo");
        ck_assert(opt.delimited);
        ck_assert_int_eq(opt.delim, '\0');
        PARSES("-j", "2", "--null", "echo");
        ck_assert(opt.delimited);
        ck_assert_int_eq(opt.delim, '\0');
        PARSES("-j", "2", "-d", ",", "echo");
        ck_assert(opt.delimited);
        ck_assert_int_eq(opt.delim, ',');
        PARSES("-j", "2", "--delimiter=\\t", "echo");
        ck_assert_int_eq(opt.delim, '\t');
        PARSES("-j", "2", "-d", "\\0", "-0", "-d", "\\x41", "echo"); /* the last wins */
        ck_assert_int_eq(opt.delim, 'A');
        PARSES("-j", "2", "-I", "%", "echo", "%");
        ck_assert_str_eq(opt.replace, "%");
        PARSES("-j", "2", "-i", "echo", "{}");
        ck_assert_str_eq(opt.replace, "{}");
        PARSES("-j", "2", "-iXX", "echo", "XX");
        ck_assert_str_eq(opt.replace, "XX");
        PARSES("-j", "2", "--replace", "echo", "{}");
        ck_assert_str_eq(opt.replace, "{}");
        ck_assert_str_eq(opt.command[0], "echo");
        PARSES("-j", "2", "--replace=@", "echo", "@");
        ck_assert_str_eq(opt.replace, "@");
        PARSES("-j", "1", "--progress");
        ck_assert(opt.progress);

        REFUSED("bad --delimiter 'ab' (one character, or an escape: \\n, \\t, \\0, \\\\, "
                "octal \\NNN, hex \\xHH)",
                "-j", "2", "-d", "ab", "echo");
        REFUSED("bad --delimiter '' (one character, or an escape: \\n, \\t, \\0, \\\\, "
                "octal \\NNN, hex \\xHH)",
                "-j", "2", "-d", "", "echo");
        REFUSED("bad -I '' (a string to replace)", "-j", "2", "-I", "", "echo");
        REFUSED("-I needs a PROGRAM to put the items in", "-j", "2", "-I", "{}");
        REFUSED("-0, -d, -I, -i and --progress go with --jobs (batch mode)", "-0", "echo");
        REFUSED("-0, -d, -I, -i and --progress go with --jobs (batch mode)", "-I", "{}", "echo",
                "{}");
        REFUSED("-0, -d, -I, -i and --progress go with --jobs (batch mode)", "--progress",
                "true");
}
END_TEST

START_TEST(test_jobs_zero_is_one_per_cpu) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        ck_assert_int_ge(cpus, 1);
        PARSES("-j", "0");
        ck_assert_int_eq(opt.mode, MPS__CLI_BATCH);
        ck_assert_uint_eq(opt.jobs, cpus > 4096 ? 4096 : (unsigned)cpus);
        PARSES("--jobs=0", "echo");
        ck_assert_uint_eq(opt.jobs, cpus > 4096 ? 4096 : (unsigned)cpus);
}
END_TEST


/* cli_common.c: what JSON records are made of (issue 14, item 8). */
START_TEST(test_utf8_validity_is_strict) {
        static const char *const good[] = {"", "ascii", "caf\xc3\xa9", "\xe2\x82\xac",
                                           "\xf0\x9f\x98\x80", "\xef\xbf\xbf",
                                           "\xf4\x8f\xbf\xbf", "\xed\x9f\xbf"};
        static const char *const bad[] = {"\xff", "\x80", "\xc0\x80", "\xc1\xbf",
                                          "\xe0\x80\x80", "\xf0\x80\x80\x80",
                                          "\xed\xa0\x80", "\xed\xbf\xbf", "\xf4\x90\x80\x80",
                                          "\xf5\x80\x80\x80", "\xe2\x82", "a\xc3",
                                          "\xc3\x28"};
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
                ck_assert_msg(mps__cli_utf8_valid(good[i]), "good %zu", i);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                ck_assert_msg(!mps__cli_utf8_valid(bad[i]), "bad %zu", i);
}
END_TEST

START_TEST(test_json_bytes_are_latin1_when_not_utf8) {
        cJSON *o = cJSON_CreateObject();
        ck_assert(mps__cli_json_add_bytes(o, "ok", "caf\xc3\xa9"));
        ck_assert(mps__cli_json_add_bytes(o, "raw", "a\xff\x01"));
        const char *argv[] = {"x", "\xe9", NULL};
        ck_assert(mps__cli_json_add_argv(o, "command", argv));
        char *s = cJSON_PrintUnformatted(o);
        ck_assert_str_eq(s, "{\"ok\":\"caf\xc3\xa9\",\"raw\":\"a\xc3\xbf\\u0001\","
                            "\"raw_latin1\":true,\"command\":[\"x\",\"\xc3\xa9\"],"
                            "\"command_latin1\":true}");
        ck_assert(mps__cli_utf8_valid(s));
        cJSON_free(s);
        cJSON_Delete(o);
}
END_TEST

START_TEST(test_exit_and_start_statuses) {
        mps_exit_info timed = {.exitcode = -SIGINT, .timed_out = true};
        ck_assert_int_eq(mps__cli_job_exit_status(&timed, false), 124);
        ck_assert_int_eq(mps__cli_job_exit_status(&timed, true), 128 + SIGINT);
        timed.exitcode = 3;
        ck_assert_int_eq(mps__cli_job_exit_status(&timed, false), 124);
        ck_assert_int_eq(mps__cli_job_exit_status(&timed, true), 3);
        timed.exitcode = -SIGKILL;
        ck_assert_int_eq(mps__cli_job_exit_status(&timed, false), 137);
        ck_assert_int_eq(mps__cli_job_exit_status(&timed, true), 137);
        mps_exit_info plain = {.exitcode = -SIGSEGV};
        ck_assert_int_eq(mps__cli_exit_status(&plain), 128 + SIGSEGV);
        ck_assert_int_eq(mps__cli_start_status(-ENOENT, "exec"), 127);
        ck_assert_int_eq(mps__cli_start_status(-EACCES, "exec"), 126);
        ck_assert_int_eq(mps__cli_start_status(-ENOENT, "chdir"), 125);
        ck_assert_int_eq(mps__cli_start_status(-ENOTCONN, NULL), 125);
}
END_TEST


/* The timeout signal travels as spawn field "timeout_signal", only when it
 * is not SIGTERM, and needs the "timeout_signal" feature. */
START_TEST(test_timeout_signal_on_the_wire) {
        PARSES("--timeout", "1", "--signal", "INT", "true");
        const char *argv[] = {"true", NULL};
        ck_assert_int_eq(mps_spec_set_exec(opt.spec, "true", argv), 0);
        struct mps__spawn *m = &opt.spec->spawn;
        ck_assert_uint_eq(mps__spawn_features(m) & MPS_FEATURE_TIMEOUT_SIGNAL,
                          MPS_FEATURE_TIMEOUT_SIGNAL);
        ck_assert_uint_eq(MPS_FEATURES_ALL & MPS_FEATURE_TIMEOUT_SIGNAL,
                          MPS_FEATURE_TIMEOUT_SIGNAL);
        cJSON *j = mps__spawn_encode(m);
        ck_assert_ptr_nonnull(j);
        /* Numbers go as raw text; the decoder reads them back. */
        char sig[8];
        snprintf(sig, sizeof(sig), "%d", SIGINT);
        ck_assert_str_eq(cJSON_GetObjectItem(j, "timeout_signal")->valuestring, sig);
        struct mps__spawn back;
        char e[256] = "";
        /* As the server gets it: text, parsed. */
        char *text = cJSON_PrintUnformatted(j);
        cJSON *parsed = cJSON_Parse(text);
        ck_assert_ptr_nonnull(parsed);
        int dr = mps__spawn_decode(parsed, 0, &back, e, sizeof(e));
        ck_assert_msg(dr == 0, "decode: %d %s", dr, e);
        ck_assert_int_eq(back.timeout_signal, SIGINT);
        mps__spawn_done(&back);
        cJSON_Delete(parsed);
        cJSON_free(text);
        cJSON_Delete(j);
        /* SIGTERM, the default: no field, no feature. */
        PARSES("--timeout", "1", "--signal", "TERM", "true");
        ck_assert_int_eq(mps_spec_set_exec(opt.spec, "true", argv), 0);
        ck_assert_uint_eq(mps__spawn_features(&opt.spec->spawn) & MPS_FEATURE_TIMEOUT_SIGNAL, 0);
        j = mps__spawn_encode(&opt.spec->spawn);
        ck_assert_ptr_null(cJSON_GetObjectItem(j, "timeout_signal"));
        cJSON_Delete(j);
        /* The welcome names the feature, and a client reads it back. */
        struct mps__welcome w = {.protocol = 1, .version = "x", .features = MPS_FEATURES_ALL};
        j = mps__welcome_encode(&w);
        ck_assert_ptr_nonnull(j);
        text = cJSON_PrintUnformatted(j);
        ck_assert_ptr_nonnull(strstr(text, "\"timeout_signal\""));
        parsed = cJSON_Parse(text);
        struct mps__welcome wb;
        ck_assert_int_eq(mps__welcome_decode(parsed, &wb, e, sizeof(e)), 0);
        ck_assert_uint_eq(wb.features, MPS_FEATURES_ALL);
        cJSON_Delete(parsed);
        cJSON_free(text);
        cJSON_Delete(j);
}
END_TEST

static Suite *cli_parse_suite(void) {
        Suite *s = suite_create("cli_parse");
        TCase *t = tcase_create("parse");
        tcase_add_checked_fixture(t, NULL, teardown);
        tcase_add_test(t, test_program_and_its_own_options);
        tcase_add_test(t, test_double_dash_ends_the_options);
        tcase_add_test(t, test_help_and_version_end_the_parsing);
        tcase_add_test(t, test_server_is_the_first_word_only);
        tcase_add_test(t, test_socket_cwd_name_short_and_long);
        tcase_add_test(t, test_env_repeated_in_order);
        tcase_add_test(t, test_env_refusals);
        tcase_add_test(t, test_rlimit_forms);
        tcase_add_test(t, test_rlimit_refusals);
        tcase_add_test(t, test_timeout_and_kill_after);
        tcase_add_test(t, test_nice_bounds);
        tcase_add_test(t, test_umask_is_octal);
        tcase_add_test(t, test_privileges_pdeathsig_and_kill_tree);
        tcase_add_test(t, test_seccomp_reads_its_file_in_order);
        tcase_add_test(t, test_jobs_is_batch_mode);
        tcase_add_test(t, test_call_with_args);
        tcase_add_test(t, test_detach_and_json);
        tcase_add_test(t, test_unknown_options_and_missing_values);
        tcase_add_test(t, test_refusal_leaves_the_options_alone);
        tcase_add_test(t, test_subcommands_and_their_options);
        tcase_add_test(t, test_subcommand_after_options);
        tcase_add_test(t, test_subcommand_help);
        tcase_add_test(t, test_subcommand_refusals);
        tcase_add_test(t, test_parse_signal);
        tcase_add_test(t, test_durations_as_gnu_timeout);
        tcase_add_test(t, test_signal_and_preserve_status);
        tcase_add_test(t, test_json_fd);
        tcase_add_test(t, test_batch_input_options);
        tcase_add_test(t, test_jobs_zero_is_one_per_cpu);
        tcase_add_test(t, test_utf8_validity_is_strict);
        tcase_add_test(t, test_json_bytes_are_latin1_when_not_utf8);
        tcase_add_test(t, test_exit_and_start_statuses);
        tcase_add_test(t, test_timeout_signal_on_the_wire);
        suite_add_tcase(s, t);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(cli_parse_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
