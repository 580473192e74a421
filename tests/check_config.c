/* SPDX-License-Identifier: MIT */
/*
 * check_config.c: the configuration file (forkserver/config.c) as a unit:
 * every key, every kind of mistake with its exact message, list keys, the
 * access decision; then through the real binary: a bad file is refused at
 * start and by --check-config with the exact message, and --check-config
 * prints what the file and the options make of the settings; a server with
 * embedded Python (--python-preload) starts, or stops on a failed import.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../forkserver/config.h"
#include "../forkserver/server.h"
#include "testutil.h"

static char err[1024];

/* Loads text as a file named "t.conf" into cfg; returns config_load_stream's
 * result. */
static int load_text(struct config *cfg, const char *text) {
        FILE *f = fmemopen((void *)text, strlen(text), "r");
        ck_assert_ptr_nonnull(f);
        err[0] = '\0';
        int r = config_load_stream(cfg, f, "t.conf", err, sizeof(err));
        fclose(f);
        return r;
}

/* Expects text to be refused with exactly message. */
static void expect_error(const char *text, const char *message) {
        struct config cfg;
        config_init(&cfg);
        int r = load_text(&cfg, text);
        config_free(&cfg);
        ck_assert_msg(r == -EINVAL, "'%s' was accepted (r=%d)", text, r);
        ck_assert_str_eq(err, message);
}

START_TEST(test_defaults) {
        struct config cfg;
        config_init(&cfg);
        ck_assert_ptr_null(cfg.file);
        ck_assert_ptr_null(cfg.socket_path);
        ck_assert_uint_eq(cfg.socket_mode, 0600);
        ck_assert(!cfg.has_socket_group);
        ck_assert_uint_eq(cfg.n_allowed_uids + cfg.n_allowed_gids, 0);
        ck_assert_uint_eq(cfg.max_jobs_per_client, 0);
        ck_assert_uint_eq(config_max_jobs_per_client(&cfg), 16384);
        ck_assert_uint_eq(cfg.max_children, 65536);
        ck_assert_uint_eq(cfg.max_connections_per_uid, 256);
        ck_assert_uint_eq(cfg.client_queue, 4096);
        ck_assert_uint_eq(cfg.grace_ms, 5000);
        ck_assert_uint_eq(cfg.idle_exit_ms, 0);
        ck_assert_int_eq(cfg.log_level, LOG_LEVEL_INFO);
        ck_assert_uint_eq(cfg.n_preload, 0);
        ck_assert_uint_eq(cfg.prefork, 0);
        ck_assert_ptr_null(cfg.default_seccomp_policy);
        ck_assert(!cfg.python);
        ck_assert_uint_eq(cfg.n_python_preload, 0);
        /* An empty file changes nothing. */
        ck_assert_int_eq(load_text(&cfg, ""), 0);
        ck_assert_uint_eq(cfg.grace_ms, 5000);
        config_free(&cfg);
}
END_TEST

START_TEST(test_every_key) {
        struct config cfg;
        struct group *ng = getgrnam("nogroup");
        ck_assert_ptr_nonnull(ng);
        gid_t nogroup = ng->gr_gid;
        config_init(&cfg);
        ck_assert_int_eq(load_text(&cfg,
                                   "# A comment, then a blank line\n"
                                   "\n"
                                   "socket = /run/mpspawn/forkserver.sock\n"
                                   "  socket_mode=0660  \n"
                                   "socket_group = nogroup\r\n"
                                   "\tallowed_users = root 4242\n"
                                   "allowed_groups = nogroup 0\n"
                                   "max_jobs_per_client = 8\n"
                                   "max_children = 100\n"
                                   "max_connections_per_uid = 3\n"
                                   "client_queue = 1000000\n"
                                   "grace = 2.5\n"
                                   "idle_exit = 0.0001\n"
                                   "log_level = debug\n"
                                   "preload = /bin/sh /bin/true\n"
                                   "prefork = 4\n"
                                   "default_seccomp_policy = /etc/passwd\n"),
                         0);
        ck_assert_str_eq(err, "");
        ck_assert_str_eq(cfg.socket_path, "/run/mpspawn/forkserver.sock");
        ck_assert_uint_eq(cfg.socket_mode, 0660);
        ck_assert(cfg.has_socket_group);
        ck_assert_uint_eq(cfg.socket_group, nogroup);
        ck_assert_uint_eq(cfg.n_allowed_uids, 2);
        ck_assert_uint_eq(cfg.allowed_uids[0], 0);
        ck_assert_uint_eq(cfg.allowed_uids[1], 4242);
        ck_assert_uint_eq(cfg.n_allowed_gids, 2);
        ck_assert_uint_eq(cfg.allowed_gids[0], nogroup);
        ck_assert_uint_eq(cfg.allowed_gids[1], 0);
        ck_assert_uint_eq(cfg.max_jobs_per_client, 8);
        ck_assert_uint_eq(config_max_jobs_per_client(&cfg), 8);
        ck_assert_uint_eq(cfg.max_children, 100);
        ck_assert_uint_eq(cfg.max_connections_per_uid, 3);
        ck_assert_uint_eq(cfg.client_queue, 1000000);
        ck_assert_uint_eq(cfg.grace_ms, 2500);
        /* A positive time never rounds down to 0, which means "never". */
        ck_assert_uint_eq(cfg.idle_exit_ms, 1);
        ck_assert_int_eq(cfg.log_level, LOG_LEVEL_DEBUG);
        ck_assert_uint_eq(cfg.n_preload, 2);
        ck_assert_str_eq(cfg.preload[0], "/bin/sh");
        ck_assert_str_eq(cfg.preload[1], "/bin/true");
        ck_assert_uint_eq(cfg.prefork, 4);
        ck_assert_str_eq(cfg.default_seccomp_policy, "/etc/passwd");
        config_free(&cfg);
}
END_TEST

START_TEST(test_list_keys_repeat_and_append) {
        struct config cfg;
        config_init(&cfg);
        ck_assert_int_eq(load_text(&cfg, "allowed_users = root\n"
                                         "allowed_users = 1\t2\n"
                                         "preload = /bin/sh\n"
                                         "preload = /bin/sh\n"),
                         0);
        ck_assert_uint_eq(cfg.n_allowed_uids, 3);
        ck_assert_uint_eq(cfg.allowed_uids[2], 2);
        ck_assert_uint_eq(cfg.n_preload, 2);
        config_free(&cfg);
}
END_TEST

START_TEST(test_syntax_errors) {
        expect_error("novalue\n", "t.conf:1: expected 'key = value', got 'novalue'");
        expect_error("\n# c\nsoket = /x\n", "t.conf:3: soket: unknown key");
        expect_error("Socket = /x\n",
                     "t.conf:1: 'Socket' is not a key (lower-case letters, digits and '_')");
        expect_error("= 3\n",
                     "t.conf:1: '' is not a key (lower-case letters, digits and '_')");
        expect_error("grace =   \n", "t.conf:1: grace: no value");
        expect_error("idle_exit = 1\nidle_exit = 2\n",
                     "t.conf:2: idle_exit: already set on line 1");
        /* A trailing comment is not a comment: the value is wrong, and the
         * message shows why. */
        expect_error("socket_mode = 0660 # group\n",
                     "t.conf:1: socket_mode: '0660 # group' is not an octal mode "
                     "from 0000 to 0777");

        char *longline = malloc(5000);
        ck_assert_ptr_nonnull(longline);
        memset(longline, 'a', 4998);
        memcpy(longline, "socket = /", 10);
        longline[4998] = '\n';
        longline[4999] = '\0';
        expect_error(longline, "t.conf:1: line longer than 4096 bytes");
        free(longline);
}
END_TEST

START_TEST(test_value_errors) {
        expect_error("socket = relative.sock\n",
                     "t.conf:1: socket: 'relative.sock' is not an absolute path");
        char line[300];
        snprintf(line, sizeof(line), "socket = /%0120d\n", 0);
        struct config cfg;
        config_init(&cfg);
        ck_assert_int_eq(load_text(&cfg, line), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "is longer than 107 bytes"));
        config_free(&cfg);

        expect_error("socket_mode = 999\n",
                     "t.conf:1: socket_mode: '999' is not an octal mode from 0000 to 0777");
        expect_error("socket_mode = 01000\n",
                     "t.conf:1: socket_mode: '01000' is not an octal mode from 0000 to 0777");
        expect_error("socket_group = no-such-group-mps\n",
                     "t.conf:1: socket_group: no group named 'no-such-group-mps'");
        expect_error("allowed_users = root no-such-user-mps\n",
                     "t.conf:1: allowed_users: no user named 'no-such-user-mps'");
        expect_error("allowed_users = 4294967295\n",
                     "t.conf:1: allowed_users: '4294967295' is not a valid user id");
        expect_error("allowed_groups = no-such-group-mps\n",
                     "t.conf:1: allowed_groups: no group named 'no-such-group-mps'");
        expect_error("max_jobs_per_client = -1\n",
                     "t.conf:1: max_jobs_per_client: '-1' is not a whole number from 0 "
                     "to 1000000");
        expect_error("max_jobs_per_client = 1000001\n",
                     "t.conf:1: max_jobs_per_client: '1000001' is not a whole number "
                     "from 0 to 1000000");
        expect_error("max_jobs_per_client = 12abc\n",
                     "t.conf:1: max_jobs_per_client: '12abc' is not a whole number "
                     "from 0 to 1000000");
        /* The limits that were options only: 0 would refuse everything. */
        expect_error("max_children = 0\n",
                     "t.conf:1: max_children: '0' is not a whole number from 1 to 1000000");
        expect_error("max_connections_per_uid = 1000001\n",
                     "t.conf:1: max_connections_per_uid: '1000001' is not a whole number "
                     "from 1 to 1000000");
        expect_error("client_queue = +5\n",
                     "t.conf:1: client_queue: '+5' is not a whole number from 1 to 1000000");
        expect_error("client_queue = 5 \t 6\n",
                     "t.conf:1: client_queue: '5 \t 6' is not a whole number from 1 to "
                     "1000000");
        expect_error("socket_mode = 00600\n",
                     "t.conf:1: socket_mode: '00600' is not an octal mode from 0000 to 0777");
        expect_error("grace = -1\n",
                     "t.conf:1: grace: '-1' is not a number of seconds from 0 to 86400");
        expect_error("grace = 1e3\n",
                     "t.conf:1: grace: '1e3' is not a number of seconds from 0 to 86400");
        expect_error("grace = 86400.5\n",
                     "t.conf:1: grace: '86400.5' is not a number of seconds from 0 to "
                     "86400");
        expect_error("grace = 5.\n",
                     "t.conf:1: grace: '5.' is not a number of seconds from 0 to 86400");
        expect_error("idle_exit = soon\n",
                     "t.conf:1: idle_exit: 'soon' is not a number of seconds from 0 "
                     "(never) to 86400");
        expect_error("log_level = loud\n",
                     "t.conf:1: log_level: 'loud' is not a log level (error, warning, "
                     "info or debug)");
        expect_error("preload = lib.so\n",
                     "t.conf:1: preload: 'lib.so' is not an absolute path");
        expect_error("preload = /bin/sh /no/such/lib.so\n",
                     "t.conf:1: preload: '/no/such/lib.so': No such file or directory");
        expect_error("preload = /etc\n", "t.conf:1: preload: '/etc' is not a regular file");
        expect_error("prefork = 1025\n",
                     "t.conf:1: prefork: '1025' is not a whole number from 0 to 1024");
        expect_error("default_seccomp_policy = /no/such/policy\n",
                     "t.conf:1: default_seccomp_policy: '/no/such/policy': No such file "
                     "or directory");
}
END_TEST

/* python_preload: Python module names, separated by blanks or commas, each
 * kept once (a union), in order; the key turns embedded Python on. */
START_TEST(test_python_preload_key) {
        struct config cfg;
        config_init(&cfg);
        ck_assert_int_eq(load_text(&cfg, "python_preload = json os.path\n"
                                         "python_preload = _priv,Mod2  json,,xml.dom.minidom\n"),
                         0);
        ck_assert_str_eq(err, "");
        ck_assert(cfg.python);
        ck_assert_uint_eq(cfg.n_python_preload, 5);
        const char *want[] = {"json", "os.path", "_priv", "Mod2", "xml.dom.minidom"};
        for (size_t i = 0; i < 5; i++)
                ck_assert_str_eq(cfg.python_preload[i], want[i]);
        /* The option's modules come after the key's, through config_set. */
        ck_assert_int_eq(config_set(&cfg, "python_preload", "decimal,json", err, sizeof(err)),
                         0);
        ck_assert_uint_eq(cfg.n_python_preload, 6);
        ck_assert_str_eq(cfg.python_preload[5], "decimal");
        config_free(&cfg);
        ck_assert(!cfg.python);

        /* --python-preload '': Python, and no module. The file has no such
         * thing: a key needs a value. */
        config_init(&cfg);
        ck_assert_int_eq(config_set(&cfg, "python_preload", "", err, sizeof(err)), 0);
        ck_assert(cfg.python);
        ck_assert_uint_eq(cfg.n_python_preload, 0);
        config_free(&cfg);
        expect_error("python_preload =\n", "t.conf:1: python_preload: no value");
}
END_TEST

START_TEST(test_python_preload_bad_names) {
        const char *bad[] = {"1json", "json-x", "os.", ".os", "os..path", "a/b", "é", "a.1b",
                             "json;import os"};
        char text[128], want[256];
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(text, sizeof(text), "python_preload = json %s\n", bad[i]);
                snprintf(want, sizeof(want),
                         "t.conf:1: python_preload: '%s' is not a Python module name "
                         "(identifiers of letters, digits and '_', joined by dots)",
                         strchr(bad[i], ';') ? "json;import" : bad[i]);
                expect_error(text, want);
        }
        /* A comma list is checked name by name. */
        expect_error("python_preload = json,os-x\n",
                     "t.conf:1: python_preload: 'os-x' is not a Python module name "
                     "(identifiers of letters, digits and '_', joined by dots)");
        char longname[CONFIG_MODULE_NAME_MAX + 2], line[CONFIG_MODULE_NAME_MAX + 64];
        memset(longname, 'a', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        snprintf(line, sizeof(line), "python_preload = %s\n", longname);
        snprintf(want, sizeof(want),
                 "t.conf:1: python_preload: '%.64s...' is longer than %d bytes", longname,
                 CONFIG_MODULE_NAME_MAX);
        expect_error(line, want);
        /* The option is refused the same way. */
        struct config cfg;
        config_init(&cfg);
        ck_assert_int_eq(config_set(&cfg, "python_preload", "ok,not-ok", err, sizeof(err)),
                         -EINVAL);
        ck_assert_str_eq(err, "python_preload: 'not-ok' is not a Python module name "
                              "(identifiers of letters, digits and '_', joined by dots)");
        config_free(&cfg);
}
END_TEST

/* The interpreter and its imports are set up once: SIGHUP only says that a
 * change needs a restart, and keeps what runs. */
START_TEST(test_python_preload_is_restart_only) {
        struct config live, fresh;
        char restart[256];
        config_init(&live);
        config_init(&fresh);
        ck_assert_int_eq(load_text(&live, "python_preload = json\ngrace = 1\n"), 0);
        ck_assert_int_eq(load_text(&fresh, "python_preload = json\ngrace = 2\n"), 0);
        config_reload_into(&live, &fresh, restart, sizeof(restart));
        ck_assert_str_eq(restart, "");
        ck_assert_uint_eq(live.grace_ms, 2000);
        config_free(&fresh);

        config_init(&fresh);
        ck_assert_int_eq(load_text(&fresh, "python_preload = json decimal\n"), 0);
        config_reload_into(&live, &fresh, restart, sizeof(restart));
        ck_assert_str_eq(restart, "python_preload");
        ck_assert_uint_eq(live.n_python_preload, 1);
        ck_assert_str_eq(live.python_preload[0], "json");
        config_free(&fresh);

        /* No key at all any more: Python stays, and a restart is due. */
        config_init(&fresh);
        config_reload_into(&live, &fresh, restart, sizeof(restart));
        ck_assert_str_eq(restart, "python_preload");
        ck_assert(live.python);
        config_free(&fresh);
        config_free(&live);
}
END_TEST

START_TEST(test_config_set_validates_like_the_file) {
        struct config cfg;
        config_init(&cfg);
        ck_assert_int_eq(config_set(&cfg, "idle_exit", "abc", err, sizeof(err)), -EINVAL);
        ck_assert_str_eq(err, "idle_exit: 'abc' is not a number of seconds from 0 "
                              "(never) to 86400");
        ck_assert_int_eq(config_set(&cfg, "nope", "1", err, sizeof(err)), -EINVAL);
        ck_assert_str_eq(err, "nope: unknown key");
        ck_assert_int_eq(config_set(&cfg, "idle_exit", "90", err, sizeof(err)), 0);
        ck_assert_uint_eq(cfg.idle_exit_ms, 90000);
        ck_assert_int_eq(config_set(&cfg, "allowed_users", "0 1", err, sizeof(err)), 0);
        ck_assert_uint_eq(cfg.n_allowed_uids, 2);
        config_free(&cfg);
}
END_TEST

START_TEST(test_allows) {
        struct config cfg;
        gid_t groups[] = {100, 200};
        config_init(&cfg);
        /* Nothing set: anyone who can open the socket. */
        ck_assert(config_allows(&cfg, 1000, 1000, NULL, 0));
        ck_assert_int_eq(load_text(&cfg, "allowed_users = 1001\nallowed_groups = 200\n"), 0);
        ck_assert(config_allows(&cfg, 1001, 1001, NULL, 0));   /* by uid */
        ck_assert(config_allows(&cfg, 1000, 200, NULL, 0));    /* by primary group */
        ck_assert(config_allows(&cfg, 1000, 1000, groups, 2)); /* by supplementary */
        ck_assert(!config_allows(&cfg, 1000, 1000, groups, 1));
        ck_assert(!config_allows(&cfg, 0, 0, NULL, 0)); /* no exception for root */
        config_free(&cfg);
        ck_assert_int_eq(load_text(&cfg, "allowed_groups = 100\n"), 0);
        ck_assert(!config_allows(&cfg, 1001, 1001, NULL, 0));
        ck_assert(config_allows(&cfg, 1001, 1001, groups, 2));
        config_free(&cfg);
}
END_TEST

/* A file in a fresh directory with the given text and mode. */
static void write_file(char *path, size_t len, const char *dir, const char *text,
                       mode_t mode) {
        snprintf(path, len, "%s/forkserver.conf", dir);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        ck_assert_int_eq(fchmod(fd, mode), 0);
        close(fd);
}

START_TEST(test_load_checks_the_file) {
        char dir[64], path[128], want[256];
        struct config cfg;
        tu_tmpdir(dir, sizeof(dir));
        config_init(&cfg);

        snprintf(path, sizeof(path), "%s/missing.conf", dir);
        ck_assert_int_eq(config_load(&cfg, path, err, sizeof(err)), -EINVAL);
        snprintf(want, sizeof(want), "%s: cannot read: No such file or directory", path);
        ck_assert_str_eq(err, want);

        ck_assert_int_eq(config_load(&cfg, dir, err, sizeof(err)), -EINVAL);
        snprintf(want, sizeof(want), "%s: not a regular file", dir);
        ck_assert_str_eq(err, want);

        write_file(path, sizeof(path), dir, "grace = 1\n", 0666);
        ck_assert_int_eq(config_load(&cfg, path, err, sizeof(err)), -EINVAL);
        snprintf(want, sizeof(want),
                 "%s: writable by every user (mode 0666); refusing it", path);
        ck_assert_str_eq(err, want);

        write_file(path, sizeof(path), dir, "grace = 1\n", 0640);
        ck_assert_int_eq(config_load(&cfg, path, err, sizeof(err)), 0);
        ck_assert_uint_eq(cfg.grace_ms, 1000);
        ck_assert_str_eq(cfg.file, path);
        config_free(&cfg);
        unlink(path);
        rmdir(dir);
}
END_TEST

static char out[16384], errout[4096];

/* Runs mpforkserver with args; returns its wait status, with its output in
 * out and errout. */
static int forkserver(const char *const *args) {
        const char *argv[16];
        size_t n = 0;
        argv[n++] = tu_forkserver();
        for (size_t i = 0; args[i] && n < 15; i++)
                argv[n++] = args[i];
        argv[n] = NULL;
        return tu_run(argv, NULL, out, sizeof(out), errout, sizeof(errout));
}

/* The text after "mpforkserver[PID]: " of the only line in errout. */
static const char *after_prefix(void) {
        ck_assert_msg(strncmp(errout, "mpforkserver[", 13) == 0, "stderr: '%s'", errout);
        const char *p = strstr(errout, "]: ");
        ck_assert_ptr_nonnull(p);
        ck_assert_msg(strchr(errout, '\n') == errout + strlen(errout) - 1,
                      "not one line: '%s'", errout);
        return p + 3;
}

START_TEST(test_binary_refuses_a_bad_file_with_the_exact_message) {
        char dir[64], path[128], sock[128], text[256], want[512];
        tu_tmpdir(dir, sizeof(dir));
        snprintf(sock, sizeof(sock), "%s/sock", dir);
        snprintf(text, sizeof(text),
                 "# mpforkserver configuration\n"
                 "socket = %s\n"
                 "\n"
                 "socket_mode = 0999\n",
                 sock);
        write_file(path, sizeof(path), dir, text, 0644);

        /* At start: one error line (journal-style level), exit status 1,
         * and no socket was created. */
        int st = forkserver((const char *[]){"--config", path, NULL});
        ck_assert(WIFEXITED(st));
        ck_assert_int_eq(WEXITSTATUS(st), 1);
        snprintf(want, sizeof(want),
                 "error: %s:4: socket_mode: '0999' is not an octal mode from 0000 to "
                 "0777\n",
                 path);
        ck_assert_str_eq(after_prefix(), want);
        ck_assert_int_eq(access(sock, F_OK), -1);

        /* --check-config: the same words, for a person at a terminal. */
        st = forkserver((const char *[]){"--check-config", "--config", path, NULL});
        ck_assert(WIFEXITED(st));
        ck_assert_int_eq(WEXITSTATUS(st), 1);
        snprintf(want, sizeof(want),
                 "mpforkserver: %s:4: socket_mode: '0999' is not an octal mode from "
                 "0000 to 0777\n",
                 path);
        ck_assert_str_eq(errout, want);
        ck_assert_str_eq(out, "");

        /* An unknown key names itself and its line. */
        write_file(path, sizeof(path), dir, "grace = 1\nidle-exit = 5\n", 0644);
        st = forkserver((const char *[]){"--check-config", "--config", path, NULL});
        ck_assert_int_eq(WEXITSTATUS(st), 1);
        snprintf(want, sizeof(want),
                 "mpforkserver: %s:2: 'idle-exit' is not a key (lower-case letters, "
                 "digits and '_')\n",
                 path);
        ck_assert_str_eq(errout, want);
        unlink(path);
        rmdir(dir);
}
END_TEST

START_TEST(test_check_config_prints_the_effective_settings) {
        char dir[64], path[128], want[256];
        tu_tmpdir(dir, sizeof(dir));
        write_file(path, sizeof(path), dir,
                   "socket = /run/mpspawn/forkserver.sock\n"
                   "idle_exit = 30\n"
                   "preload = /bin/sh\n"
                   "max_jobs_per_client = 16\n",
                   0644);
        /* Options override the file. */
        int st = forkserver((const char *[]){"--config", path, "--idle-exit", "7.5",
                                             "--prefork", "3", "--preload", "/bin/true",
                                             "--check-config", NULL});
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x: %s", st, errout);
        ck_assert_str_eq(errout, "");
        snprintf(want, sizeof(want), "# mpforkserver %s: %s is valid.\n", MPS_VERSION_STRING,
                 path);
        ck_assert_msg(strncmp(out, want, strlen(want)) == 0, "output: %s", out);
        ck_assert_ptr_nonnull(strstr(out, "\nsocket = /run/mpspawn/forkserver.sock\n"));
        ck_assert_ptr_nonnull(strstr(out, "\nidle_exit = 7.500\n"));
        ck_assert_ptr_nonnull(strstr(out, "\nmax_jobs_per_client = 16\n"));
        /* Every option that sets a key shows, list keys after the file's. */
        ck_assert_ptr_nonnull(strstr(out, "\nprefork = 3\n"));
        ck_assert_ptr_nonnull(strstr(out, "\nsocket_mode = 0600\n"));
        /* The limits, with their defaults when nothing set them. */
        ck_assert_ptr_nonnull(strstr(out, "\nmax_children = 65536\n"));
        ck_assert_ptr_nonnull(strstr(out, "\nmax_connections_per_uid = 256\n"));
        ck_assert_ptr_nonnull(strstr(out, "\nclient_queue = 4096\n"));
        /* The key's libraries, then --preload's (not the key: a name that
         * dlopen looks up is fine there). */
        ck_assert_ptr_nonnull(strstr(out, "\npreload = /bin/sh\n"));
        ck_assert_ptr_nonnull(strstr(out, "\n# --preload /bin/true (after the preload key's)\n"));

        /* The printed settings are themselves a valid file that says the
         * same. */
        char copy[sizeof(out)];
        snprintf(copy, sizeof(copy), "%s", out);
        write_file(path, sizeof(path), dir, copy, 0644);
        st = forkserver((const char *[]){"--config", path, "--check-config", NULL});
        ck_assert_int_eq(WEXITSTATUS(st), 0);
        ck_assert_ptr_nonnull(strstr(out, "\nidle_exit = 7.500\n"));
        ck_assert_ptr_nonnull(strstr(out, "\npreload = /bin/sh\n"));
        unlink(path);
        rmdir(dir);
}
END_TEST

START_TEST(test_bad_options_are_usage_errors) {
        int st = forkserver((const char *[]){"--idle-exit", "-3", NULL});
        ck_assert_int_eq(WEXITSTATUS(st), 2);
        ck_assert_str_eq(errout, "mpforkserver: bad --idle-exit: '-3' is not a number of "
                                 "seconds from 0 (never) to 86400\n"
                                 "Try 'mpforkserver --help'.\n");
        /* The same checks as the file's. */
        st = forkserver((const char *[]){"--prefork", "1025", NULL});
        ck_assert_int_eq(WEXITSTATUS(st), 2);
        ck_assert_str_eq(errout, "mpforkserver: bad --prefork: '1025' is not a whole number "
                                 "from 0 to 1024\nTry 'mpforkserver --help'.\n");
        st = forkserver((const char *[]){"--config", NULL});
        ck_assert_int_eq(WEXITSTATUS(st), 2);
        /* The limits that are options and keys both. */
        st = forkserver((const char *[]){"--max-children", "0", NULL});
        ck_assert_int_eq(WEXITSTATUS(st), 2);
        ck_assert_str_eq(errout, "mpforkserver: bad --max-children: '0' is not a whole "
                                 "number from 1 to 1000000\nTry 'mpforkserver --help'.\n");
        st = forkserver((const char *[]){"--embedded", "2", NULL});
        ck_assert_int_eq(WEXITSTATUS(st), 2);
        ck_assert_str_eq(errout, "mpforkserver: bad --embedded '2' (a descriptor >= 3)\n"
                                 "Try 'mpforkserver --help'.\n");
}
END_TEST

START_TEST(test_limit_options_override_the_file) {
        char dir[64], path[128];
        tu_tmpdir(dir, sizeof(dir));
        write_file(path, sizeof(path), dir,
                   "max_children = 10\nmax_connections_per_uid = 20\nclient_queue = 30\n",
                   0644);
        int st = forkserver((const char *[]){"--config", path, "--max-children", "11",
                                             "--client-queue", "31", "--check-config", NULL});
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x: %s", st, errout);
        ck_assert_ptr_nonnull(strstr(out, "\nmax_children = 11\n"));
        ck_assert_ptr_nonnull(strstr(out, "\nmax_connections_per_uid = 20\n"));
        ck_assert_ptr_nonnull(strstr(out, "\nclient_queue = 31\n"));
        unlink(path);
        rmdir(dir);
}
END_TEST

/* --check-config shows the key's modules, then the option's, as one key. */
START_TEST(test_check_config_prints_python_preload) {
        char dir[64], path[128];
        tu_tmpdir(dir, sizeof(dir));
        write_file(path, sizeof(path), dir, "python_preload = json os.path\n", 0644);
        int st = forkserver((const char *[]){"--config", path, "--python-preload",
                                             "decimal,json", "--check-config", NULL});
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x: %s", st, errout);
        ck_assert_ptr_nonnull(strstr(out, "\npython_preload = json os.path decimal\n"));
        st = forkserver((const char *[]){"--python-preload", "", "--check-config", NULL});
        ck_assert_int_eq(WEXITSTATUS(st), 0);
        ck_assert_ptr_nonnull(strstr(out, "\n# python_preload names no module: Python is "
                                          "embedded and imports nothing"));
        st = forkserver((const char *[]){"--check-config", NULL});
        ck_assert_int_eq(WEXITSTATUS(st), 0);
        ck_assert_ptr_nonnull(strstr(out, "\n# python_preload is not set"));
        st = forkserver((const char *[]){"--python-preload", "a b-c", "--check-config", NULL});
        ck_assert_int_eq(WEXITSTATUS(st), 2);
        ck_assert_str_eq(errout, "mpforkserver: bad --python-preload: 'b-c' is not a Python "
                                 "module name (identifiers of letters, digits and '_', "
                                 "joined by dots)\nTry 'mpforkserver --help'.\n");
        unlink(path);
        rmdir(dir);
}
END_TEST

/* The end-to-end Python tests need the build's mpspawn_python.so beside the
 * server (make all builds it), which the sanitizer builds leave out:
 * libpython is no sanitized program. Returns false to skip. */
static bool python_preload_built(char *so, size_t len) {
        const char *san = getenv("SANITIZE");
        if (san && *san)
                return false;
        const char *server = tu_forkserver();
        const char *slash = strrchr(server, '/');
        ck_assert_ptr_nonnull(slash);
        snprintf(so, len, "%.*s/mpspawn_python.so", (int)(slash - server), server);
        ck_assert_msg(access(so, R_OK) == 0, "%s: not built (make all builds it)", so);
        return true;
}

/* A module that cannot be imported stops the server at start: exit 1, the
 * Python error on stderr, and --ready-fd closed without "1". */
START_TEST(test_python_preload_failed_import_stops_the_server) {
        char so[512], fdarg[16], sock[128], dir[64], ready[8];
        if (!python_preload_built(so, sizeof(so)))
                return;
        tu_tmpdir(dir, sizeof(dir));
        snprintf(sock, sizeof(sock), "%s/sock", dir);
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        ck_assert_int_eq(fcntl(p[1], F_SETFD, 0), 0); /* the server's --ready-fd */
        snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
        /* --idle-exit: a server that wrongly started ends on its own. */
        int st = forkserver((const char *[]){"--socket", sock, "--ready-fd", fdarg,
                                             "--idle-exit", "2", "--python-preload",
                                             "json,nosuchmodule_xyz", NULL});
        close(p[1]);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %#x: %s", st, errout);
        ck_assert_msg(strstr(errout, "ModuleNotFoundError") &&
                              strstr(errout, "nosuchmodule_xyz"),
                      "stderr: %s", errout);
        ck_assert_msg(strstr(errout, "error: python_preload: cannot preload"), "stderr: %s",
                      errout);
        ck_assert_uint_eq(tu_read_all(p[0], ready, sizeof(ready), 5000), 0);
        close(p[0]);
        ck_assert_int_eq(access(sock, F_OK), -1);
        rmdir(dir);
}
END_TEST

/* --python-preload json: the server becomes ready with the build's library
 * (the one beside the binary, not an installed one) mapped. */
START_TEST(test_python_preload_json_becomes_ready) {
        char so[512], maps[64], line[1024];
        if (!python_preload_built(so, sizeof(so)))
                return;
        struct tu_server s;
        tu_server_start(&s, (const char *const[]){"--python-preload", "json", NULL});
        snprintf(maps, sizeof(maps), "/proc/%d/maps", (int)s.pid);
        FILE *f = fopen(maps, "re");
        ck_assert_ptr_nonnull(f);
        bool mapped = false, python = false;
        while (fgets(line, sizeof(line), f)) {
                mapped = mapped || strstr(line, so) != NULL;
                python = python || strstr(line, "libpython3") != NULL;
        }
        fclose(f);
        int st = tu_server_stop(&s);
        ck_assert_msg(mapped, "%s is not mapped in the server", so);
        ck_assert(python);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
}
END_TEST

static Suite *config_suite(void) {
        Suite *s = suite_create("config");
        TCase *t = tcase_create("config");
        tcase_set_timeout(t, 60);
        tcase_add_test(t, test_defaults);
        tcase_add_test(t, test_every_key);
        tcase_add_test(t, test_list_keys_repeat_and_append);
        tcase_add_test(t, test_syntax_errors);
        tcase_add_test(t, test_value_errors);
        tcase_add_test(t, test_python_preload_key);
        tcase_add_test(t, test_python_preload_bad_names);
        tcase_add_test(t, test_python_preload_is_restart_only);
        tcase_add_test(t, test_config_set_validates_like_the_file);
        tcase_add_test(t, test_allows);
        tcase_add_test(t, test_load_checks_the_file);
        tcase_add_test(t, test_binary_refuses_a_bad_file_with_the_exact_message);
        tcase_add_test(t, test_check_config_prints_the_effective_settings);
        tcase_add_test(t, test_bad_options_are_usage_errors);
        tcase_add_test(t, test_limit_options_override_the_file);
        tcase_add_test(t, test_check_config_prints_python_preload);
        tcase_add_test(t, test_python_preload_failed_import_stops_the_server);
        tcase_add_test(t, test_python_preload_json_becomes_ready);
        suite_add_tcase(s, t);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(config_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
