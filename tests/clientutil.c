/* SPDX-License-Identifier: MIT */
/* clientutil.c: see clientutil.h. */
#include <check.h>
#include <stdlib.h>

#include "clientutil.h"

mps_client *cu_client_open(const char *path) {
        mps_client *c = NULL;
        char *msg = NULL;
        int r = mps_client_open(path, &c, &msg);
        ck_assert_msg(r == 0, "cannot connect to %s: %s", path, msg ? msg : "?");
        free(msg);
        return c;
}

mps_spec *cu_sh_spec(const char *script) {
        mps_spec *s;
        const char *argv[] = {"/bin/sh", "-c", script, NULL};
        ck_assert_int_eq(mps_spec_new(&s), 0);
        ck_assert_int_eq(mps_spec_set_exec(s, argv[0], argv), 0);
        return s;
}
