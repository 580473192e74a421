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
#include <errno.h>
#include <sys/resource.h>
#include <sys/signalfd.h>

#include <cjson/cJSON.h>

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
        if (info->timed_out && info->exitcode != -SIGKILL)
                return MPS_EXIT_TIMEOUT;
        if (info->exitcode >= 0)
                return info->exitcode;
        return MPS_EXIT_SIGNAL_BASE + -info->exitcode;
}

void mps__cli_print_json_exit(FILE *f, uint64_t id, pid_t pid, const mps_exit_info *info) {
        cJSON *o = cJSON_CreateObject();
        char idbuf[24];
        if (!o)
                return;
        snprintf(idbuf, sizeof(idbuf), "%llu", (unsigned long long)id);
        cJSON_AddItemToObject(o, "id", cJSON_CreateRaw(idbuf));
        if (pid > 0)
                cJSON_AddNumberToObject(o, "pid", pid);
        else
                cJSON_AddNullToObject(o, "pid"); /* wait ID: the server's record has none for us */
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
        char *s = cJSON_PrintUnformatted(o);
        if (s) {
                fprintf(f, "%s\n", s);
                fflush(f);
                cJSON_free(s);
        }
        cJSON_Delete(o);
}
