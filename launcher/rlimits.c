/* SPDX-License-Identifier: MIT */
/* rlimits.c: resource-limit names (see rlimits.h). */
#include "rlimits.h"

#include <stddef.h>
#include <strings.h>
#include <sys/resource.h>

static const struct {
        const char *name;
        int resource;
} table[] = {
        {"AS", RLIMIT_AS},           {"CORE", RLIMIT_CORE},
        {"CPU", RLIMIT_CPU},         {"DATA", RLIMIT_DATA},
        {"FSIZE", RLIMIT_FSIZE},     {"LOCKS", RLIMIT_LOCKS},
        {"MEMLOCK", RLIMIT_MEMLOCK}, {"MSGQUEUE", RLIMIT_MSGQUEUE},
        {"NICE", RLIMIT_NICE},       {"NOFILE", RLIMIT_NOFILE},
        {"NPROC", RLIMIT_NPROC},     {"RSS", RLIMIT_RSS},
        {"RTPRIO", RLIMIT_RTPRIO},   {"RTTIME", RLIMIT_RTTIME},
        {"SIGPENDING", RLIMIT_SIGPENDING}, {"STACK", RLIMIT_STACK},
};

int mps__rlimit_from_name(const char *name) {
        if (!name)
                return -1;
        if (strncasecmp(name, "RLIMIT_", 7) == 0)
                name += 7;
        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
                if (strcasecmp(table[i].name, name) == 0)
                        return table[i].resource;
        return -1;
}

const char *mps__rlimit_name(int resource) {
        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
                if (table[i].resource == resource)
                        return table[i].name;
        return NULL;
}
