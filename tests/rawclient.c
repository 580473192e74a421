/* SPDX-License-Identifier: MIT */
/* rawclient.c: see rawclient.h. */
#include <check.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../launcher/fdutil.h"
#include "rawclient.h"

int raw_connect(const char *path) {
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        ck_assert_int_ge(fd, 0);
        snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        return fd;
}

int raw_connect_hello(const char *path, unsigned *ret_features) {
        int fd = raw_connect(path);
        raw_send(fd, "{\"v\":1,\"op\":\"hello\",\"protocol\":1}");
        cJSON *w = raw_expect(fd, MPS_OP_WELCOME);
        struct mps__welcome wm;
        char why[256];
        ck_assert_int_eq(mps__welcome_decode(w, &wm, why, sizeof(why)), 0);
        *ret_features = wm.features;
        cJSON_Delete(w);
        return fd;
}

void raw_send(int fd, const char *text) {
        ck_assert_int_eq(send(fd, text, strlen(text), MSG_NOSIGNAL), (ssize_t)strlen(text));
}

cJSON *raw_expect(int fd, enum mps__op op) {
        struct mps__msg msg;
        char err[256];
        ck_assert_int_eq(mps__poll_one(fd, POLLIN, 30000), 1);
        ck_assert_int_eq(mps__wire_recv(fd, &msg, err, sizeof(err), NULL), 1);
        ck_assert_msg(msg.op == op, "got %s, expected %s", mps__op_name(msg.op),
                      mps__op_name(op));
        cJSON *j = msg.json;
        msg.json = NULL;
        mps__msg_release(&msg);
        return j;
}

void raw_expect_error(int fd, uint64_t tag, int err, const char *stage) {
        cJSON *j = raw_expect(fd, MPS_OP_ERROR);
        struct mps__error e;
        char why[256];
        ck_assert_int_eq(mps__error_decode(j, &e, why, sizeof(why)), 0);
        ck_assert_uint_eq(e.tag, tag);
        ck_assert_msg(e.err == err, "errno %d (%s), expected %d", e.err, e.message, err);
        ck_assert_str_eq(e.stage, stage);
        cJSON_Delete(j);
}
