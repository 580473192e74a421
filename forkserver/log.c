/* SPDX-License-Identifier: MIT */
/*
 * log.c: one line per event on stderr. When stderr is the journal
 * ($JOURNAL_STREAM names it), each line starts with the sd-daemon priority
 * prefix so that levels survive; otherwise with the program name and level.
 *
 * Log fields come from clients (program paths, directories, names, their
 * messages), so a record is escaped before it is written: a control byte or
 * a backslash becomes \xNN (\n, \t and \\ for the common ones), and no
 * client can start a line that looks like one of ours.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static bool is_special(unsigned char c) {
        return c < 0x20 || c == 0x7f || c == '\\';
}

static bool needs_escape(const char *s) {
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
                if (is_special(*p))
                        return true;
        return false;
}

/* Copies src into dst (room for len bytes, len >= 1), escaping control
 * bytes, DEL and backslashes, and NUL-terminates; a sequence that would not
 * fit whole is left out. Bytes >= 0x80 pass, so UTF-8 stays readable. */
static void escape_into(char *dst, size_t len, const char *src) {
        static const char hex[] = "0123456789abcdef";
        size_t o = 0;
        for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
                char e[4];
                size_t k = 0;
                if (*p == '\\' || *p == '\n' || *p == '\t') {
                        e[k++] = '\\';
                        e[k++] = *p == '\n' ? 'n' : *p == '\t' ? 't' : '\\';
                } else if (is_special(*p)) {
                        e[k++] = '\\';
                        e[k++] = 'x';
                        e[k++] = hex[*p >> 4];
                        e[k++] = hex[*p & 15];
                } else {
                        e[k++] = (char)*p;
                }
                if (o + k >= len)
                        break;
                for (size_t i = 0; i < k; i++)
                        dst[o++] = e[i];
        }
        dst[o] = '\0';
}

void log_msg(enum log_level level, const char *fmt, ...) {
        static const char *const names[] = {"error", "warning", "info", "debug"};
        static const int prio[] = {3, 4, 6, 7};
        char line[1024], raw[1024];
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
        errno = saved; /* for %m */
        vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
        va_end(ap);
        /* Most records have nothing to escape: copy only those that do. */
        if (needs_escape(line + n)) {
                memcpy(raw, line + n, sizeof(line) - (size_t)n);
                escape_into(line + n, sizeof(line) - (size_t)n - 1, raw);
        }
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
