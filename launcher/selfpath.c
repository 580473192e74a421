/* SPDX-License-Identifier: MIT */
/*
 * selfpath.c: files beside the running program (see selfpath.h).
 */
#include "selfpath.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int mps__beside_self(const char *name, int mode, char *buf, size_t len) {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n < 0)
                return -errno;
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (!slash)
                return -ENOENT;
        slash[1] = '\0';
        int w = snprintf(buf, len, "%s%s", self, name);
        if (w < 0 || (size_t)w >= len)
                return -ENAMETOOLONG;
        return access(buf, mode) == 0 ? 0 : -errno;
}
