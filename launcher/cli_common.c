/* SPDX-License-Identifier: MIT */
/*
 * cli_common.c: what every part of the mpspawn command shares: how it
 * reports its own errors, how a job's end becomes its exit status and its
 * JSON exit record, and which signals it forwards to its jobs.
 */
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <errno.h>
#include <sys/signalfd.h>

#include <cjson/cJSON.h>

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

int mps__cli_signalfd(void) {
        sigset_t sigs;
        sigemptyset(&sigs);
        for (size_t i = 0; i < mps__cli_nforwarded; i++)
                sigaddset(&sigs, mps__cli_forwarded[i]);
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
