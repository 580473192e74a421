/*
 * log.c: one line per event on stderr. When stderr is the journal
 * ($JOURNAL_STREAM names it), each line starts with the sd-daemon priority
 * prefix so that levels survive; otherwise with the program name and level.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server.h"

enum log_level log_max_level = LOG_LEVEL_INFO;

static int to_journal = -1;

static bool stderr_is_journal(void) {
        const char *js = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;
        if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return st.st_dev == dev && st.st_ino == ino;
}

void log_msg(enum log_level level, const char *fmt, ...) {
        static const char *const names[] = {"error", "warning", "info", "debug"};
        static const int prio[] = {3, 4, 6, 7};
        char line[1024];
        int saved = errno;
        int n;
        va_list ap;

        if (level > log_max_level)
                return;
        if (to_journal < 0)
                to_journal = stderr_is_journal();
        if (to_journal)
                n = snprintf(line, sizeof(line), "<%d>", prio[level]);
        else
                n = snprintf(line, sizeof(line), "mpforkserver[%d]: %s: ",
                             (int)getpid(), names[level]);
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
        va_end(ap);
        /* One write per line, so lines from several processes never mix. */
        size_t len = 0;
        while (line[len] && len < sizeof(line) - 2)
                len++;
        line[len++] = '\n';
        ssize_t w;
        do
                w = write(STDERR_FILENO, line, len);
        while (w < 0 && errno == EINTR);
        errno = saved;
}
