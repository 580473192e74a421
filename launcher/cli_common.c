/* SPDX-License-Identifier: MIT */
/*
 * cli_common.c: what every part of the mpspawn command shares: how it
 * reports its own errors, how a job's end becomes its exit status and its
 * JSON exit record, which signals it forwards to its jobs, and how it
 * ends by the signal that ended its job.
 */
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/resource.h>
#include <sys/signalfd.h>

#include "cli_pty.h"
#include "fdutil.h"

static const char help_hint[] = "Try 'mpspawn --help' for more information.\n";

const int mps__cli_forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT,
                                  SIGUSR1, SIGUSR2, SIGWINCH};
const size_t mps__cli_nforwarded = sizeof(mps__cli_forwarded) / sizeof(int);

int mps__cli_usage_error(const char *fmt, const char *arg) {
        fprintf(stderr, "mpspawn: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\n%s", help_hint);
        return MPS_EXIT_LAUNCHER;
}

int mps__cli_print_error(const struct mps__cli_error *e) {
        fprintf(stderr, "mpspawn: %s\n", e->message ? e->message : "out of memory");
        if (e->usage)
                fputs(help_hint, stderr);
        return MPS_EXIT_LAUNCHER;
}

/* A signal ignored when mpspawn started stays ignored: the job inherits
 * it so (the server copies its client's ignored signals, as exec would),
 * and mpspawn neither catches nor forwards it, as nohup and `trap ''`
 * expect. */
static bool ignored(int sig) {
        struct sigaction old;
        return sigaction(sig, NULL, &old) == 0 && old.sa_handler == SIG_IGN;
}

int mps__cli_signalfd_with(const sigset_t *extra) {
        sigset_t sigs;
        sigemptyset(&sigs);
        for (size_t i = 0; i < mps__cli_nforwarded; i++)
                if (!ignored(mps__cli_forwarded[i]))
                        sigaddset(&sigs, mps__cli_forwarded[i]);
        for (int sig = 1; extra && sig < NSIG; sig++)
                if (sigismember(extra, sig) == 1 && !ignored(sig))
                        sigaddset(&sigs, sig);
        sigprocmask(SIG_BLOCK, &sigs, NULL);
        /* Never at 0, 1 or 2 (the caller may have closed one): the job
         * inherits those as its stdio. */
        int fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
        if (fd < 0)
                return -1;
        int moved = mps__fd_move_at_least(fd, 3);
        if (moved < 0) {
                mps__safe_close(fd);
                errno = -moved;
                return -1;
        }
        return moved;
}

int mps__cli_signalfd(void) {
        return mps__cli_signalfd_with(NULL);
}

int mps__cli_die_by_signal(int sig) {
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        struct rlimit core;
        sigset_t one;
        mps__pty_restore_terminal();
        fflush(stdout);
        fflush(stderr);
        /* The job has dumped its core already, if it did: not a second
         * one of ours. */
        if (getrlimit(RLIMIT_CORE, &core) == 0) {
                core.rlim_cur = 0;
                setrlimit(RLIMIT_CORE, &core);
        }
        sigemptyset(&dfl.sa_mask);
        sigaction(sig, &dfl, NULL);
        sigemptyset(&one);
        sigaddset(&one, sig);
        raise(sig);
        sigprocmask(SIG_UNBLOCK, &one, NULL);
        /* Still here: sig does not kill by default (SIGCHLD, SIGWINCH...). */
        return MPS_EXIT_SIGNAL_BASE + sig;
}

int mps__cli_exit_status(const mps_exit_info *info) {
        return mps__cli_job_exit_status(info, false);
}

/* GNU timeout: a timed-out job gives 124 unless SIGKILL was needed (137);
 * --preserve-status gives the job's own status (128+N after signal N, N
 * after exit N) instead. */
int mps__cli_job_exit_status(const mps_exit_info *info, bool preserve) {
        if (info->timed_out && info->exitcode != -SIGKILL && !preserve)
                return MPS_EXIT_TIMEOUT;
        if (info->exitcode >= 0)
                return info->exitcode;
        return MPS_EXIT_SIGNAL_BASE + -info->exitcode;
}

int mps__cli_start_status(int err, const char *stage) {
        if (stage && strcmp(stage, "exec") == 0)
                return err == -ENOENT ? MPS_EXIT_NOT_FOUND : MPS_EXIT_CANNOT_EXEC;
        return MPS_EXIT_LAUNCHER;
}

/* --- JSON that is valid for any bytes ------------------------------------- */

bool mps__cli_utf8_valid(const char *str) {
        const unsigned char *s = (const unsigned char *)str;
        while (*s) {
                unsigned c = *s, n;
                unsigned long cp;
                if (c < 0x80) {
                        s++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf)
                        n = 1, cp = c & 0x1f;
                else if (c >= 0xe0 && c <= 0xef)
                        n = 2, cp = c & 0x0f;
                else if (c >= 0xf0 && c <= 0xf4)
                        n = 3, cp = c & 0x07;
                else
                        return false; /* a continuation byte, 0xc0/0xc1 or past 0xf4 */
                for (unsigned i = 1; i <= n; i++) {
                        if ((s[i] & 0xc0) != 0x80)
                                return false; /* also stops at the NUL */
                        cp = cp << 6 | (s[i] & 0x3f);
                }
                /* Overlong forms, UTF-16 surrogates, past U+10FFFF. */
                if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
                    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
                        return false;
                s += n + 1;
        }
        return true;
}

/* Each byte as the code point of its value, UTF-8 encoded (Latin-1 to
 * UTF-8): at most twice as long. */
static char *latin1_to_utf8(const char *str) {
        const unsigned char *s = (const unsigned char *)str;
        char *out = malloc(2 * strlen(str) + 1), *o = out;
        if (!out)
                return NULL;
        for (; *s; s++) {
                if (*s < 0x80) {
                        *o++ = (char)*s;
                } else {
                        *o++ = (char)(0xc0 | *s >> 6);
                        *o++ = (char)(0x80 | (*s & 0x3f));
                }
        }
        *o = '\0';
        return out;
}

/* "<key>_latin1": true. */
static bool add_latin1_flag(cJSON *o, const char *key) {
        char flag[64];
        snprintf(flag, sizeof(flag), "%s_latin1", key);
        return cJSON_AddTrueToObject(o, flag) != NULL;
}

/* A string item for bytes, Latin-1 coded if latin1. */
static cJSON *bytes_item(const char *bytes, bool latin1) {
        if (!latin1)
                return cJSON_CreateString(bytes);
        char *text = latin1_to_utf8(bytes);
        cJSON *item = text ? cJSON_CreateString(text) : NULL;
        free(text);
        return item;
}

bool mps__cli_json_add_bytes(cJSON *o, const char *key, const char *bytes) {
        bool latin1 = !mps__cli_utf8_valid(bytes);
        cJSON *item = bytes_item(bytes, latin1);
        if (!item)
                return false;
        cJSON_AddItemToObject(o, key, item);
        return !latin1 || add_latin1_flag(o, key);
}

bool mps__cli_json_add_argv(cJSON *o, const char *key, const char *const *argv) {
        bool latin1 = false;
        for (const char *const *a = argv; *a; a++)
                latin1 = latin1 || !mps__cli_utf8_valid(*a);
        cJSON *arr = cJSON_AddArrayToObject(o, key);
        if (!arr)
                return false;
        for (const char *const *a = argv; *a; a++) {
                cJSON *item = bytes_item(*a, latin1);
                if (!item)
                        return false;
                cJSON_AddItemToArray(arr, item);
        }
        return !latin1 || add_latin1_flag(o, key);
}

FILE *mps__cli_json_stream(int json_fd) {
        /* One stream for the whole run: records from every job of a batch
         * go through it, each flushed as a line. */
        static FILE *stream;
        if (json_fd < 0)
                return stderr;
        if (!stream)
                stream = fdopen(json_fd, "w");
        return stream;
}

/* Prints o as one line to f, and frees it. */
static void print_record(FILE *f, cJSON *o) {
        char *s = o && f ? cJSON_PrintUnformatted(o) : NULL;
        if (s) {
                fprintf(f, "%s\n", s);
                fflush(f);
                cJSON_free(s);
        }
        cJSON_Delete(o);
}

/* A record with ref's "line" and "command", if any. */
static cJSON *new_record(const struct mps__cli_job_ref *ref) {
        cJSON *o = cJSON_CreateObject();
        if (!o || !ref)
                return o;
        if (ref->line > 0)
                cJSON_AddNumberToObject(o, "line", (double)ref->line);
        if (ref->argv)
                mps__cli_json_add_argv(o, "command", ref->argv);
        return o;
}

void mps__cli_json_start_failure(FILE *f, const struct mps__cli_job_ref *ref, int err,
                                 const char *stage, const char *message, int exitcode) {
        cJSON *o = new_record(ref);
        if (!o)
                return;
        mps__cli_json_add_bytes(o, "error", message ? message : mps_strerror(err));
        if (stage)
                cJSON_AddStringToObject(o, "stage", stage);
        else
                cJSON_AddNullToObject(o, "stage");
        if (err < 0)
                cJSON_AddNumberToObject(o, "errno", -err);
        else
                cJSON_AddNullToObject(o, "errno");
        cJSON_AddNumberToObject(o, "exitcode", exitcode);
        print_record(f, o);
}

void mps__cli_print_json_exit(FILE *f, uint64_t id, pid_t pid, const mps_exit_info *info) {
        mps__cli_json_exit(f, NULL, id, pid, info);
}

void mps__cli_json_exit(FILE *f, const struct mps__cli_job_ref *ref, uint64_t id, pid_t pid,
                        const mps_exit_info *info) {
        cJSON *o = new_record(ref);
        char idbuf[24];
        if (!o)
                return;
        snprintf(idbuf, sizeof(idbuf), "%llu", (unsigned long long)id);
        cJSON_AddItemToObject(o, "id", cJSON_CreateRaw(idbuf));
        /* 0 where the pid is not known (`wait ID`: the server's record has
         * none for us), as mpspawn(1) says: always a number, as in ps. */
        cJSON_AddNumberToObject(o, "pid", pid > 0 ? pid : 0);
        cJSON_AddNumberToObject(o, "exitcode", info->exitcode);
        if (info->exitcode < 0)
                cJSON_AddNumberToObject(o, "signal", -info->exitcode);
        else
                cJSON_AddNullToObject(o, "signal");
        cJSON_AddBoolToObject(o, "core_dumped", info->core_dumped);
        cJSON_AddBoolToObject(o, "timed_out", info->timed_out);
        cJSON_AddNumberToObject(o, "user_seconds", info->user_seconds);
        cJSON_AddNumberToObject(o, "system_seconds", info->system_seconds);
        cJSON_AddNumberToObject(o, "max_rss_kib", (double)info->max_rss_kib);
        cJSON_AddNumberToObject(o, "wall_seconds", info->wall_seconds);
        print_record(f, o);
}
