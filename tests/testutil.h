/* SPDX-License-Identifier: MIT */
/*
 * testutil.h: helpers for the end-to-end suites: a real mpforkserver on a
 * temporary socket, running programs with captured output, and bounded
 * waits on pids and descriptors (never sleeps as synchronisation).
 */
#ifndef MPS_TESTUTIL_H
#define MPS_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Paths of the binaries under test: $MPSPAWN_FORKSERVER and $MPSPAWN_CLI,
 * which tests/run.sh sets to the build's absolute paths. */
const char *tu_forkserver(void);
const char *tu_cli(void);
/* The test preload library (build/tests/preload_table.so next to the
 * server under test, or $MPS_TEST_PRELOAD) into buf. */
void tu_preload_table(char *buf, size_t len);

struct tu_server {
        pid_t pid;
        int pidfd;
        char dir[64];
        char path[100];
};

/* Starts mpforkserver --socket DIR/sock [extra...] (NULL-terminated) and
 * waits for its READY=1 on a NOTIFY_SOCKET of our own. Fails the test on
 * error. */
void tu_server_start(struct tu_server *s, const char *const *extra);
/* SIGTERM, wait (bounded), remove the directory; returns the wait status. */
int tu_server_stop(struct tu_server *s);

/*
 * Runs argv (argv[0] a path) with stdin from /dev/null, stdout and stderr
 * captured (each up to len-1 bytes, NUL-terminated), and returns the wait
 * status. extra_env entries ("NAME=VALUE") are added to the environment.
 */
int tu_run(const char *const *argv, const char *const *extra_env, char *out,
           size_t outlen, char *err, size_t errlen);

/* Reads until EOF or len-1 bytes, NUL-terminates; bounded by timeout_ms. */
size_t tu_read_all(int fd, char *buf, size_t len, int timeout_ms);

/* Waits until pid no longer exists as a live or zombie child of `parent`
 * (0: any). Returns true if it went within timeout_ms. */
bool tu_wait_reaped(pid_t pid, pid_t parent, int timeout_ms);

/* 'R', 'S', 'Z', ... from /proc/PID/stat, with its ppid; 0 if gone. */
char tu_proc_state(pid_t pid, pid_t *ret_ppid);
/* The same for one of this process's threads (no parent asked). */
char tu_thread_state(pid_t tid);
/* A calloc()ed copy of environ without NAME's entries (name NULL: all of
 * it), plus assignment ("NAME=VALUE") unless NULL; free() the vector only. */
const char **tu_environ_with(const char *name, const char *assignment);

/* Number of open descriptors of this process. */
int tu_count_fds(void);

/* The unprivileged user the tests run jobs as ("mpspawn-test"), created
 * with useradd if absent (*ret_created says so); tu_test_user_done removes
 * it again when this call created it. */
struct passwd *tu_test_user(bool *ret_created);
/* Any named unprivileged system user, created when missing (*ret_created
 * says so; tu_user_done removes it only then). Give each suite names of
 * its own, so suites running at once do not remove each other's users. */
struct passwd *tu_user(const char *name, bool *ret_created);
void tu_user_done(const char *name, bool created);
void tu_test_user_done(bool created);

/* A fresh temporary directory (mkdtemp) into buf. */
void tu_tmpdir(char *buf, size_t len);

#endif /* MPS_TESTUTIL_H */
