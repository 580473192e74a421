/* SPDX-License-Identifier: MIT */
/*
 * rawclient.h: a connection to a test server that speaks the protocol by
 * hand (no library client), for suites that check the server's answers to
 * requests the library would never send. Failures are Check assertions.
 */
#ifndef MPS_TESTS_RAWCLIENT_H
#define MPS_TESTS_RAWCLIENT_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "../launcher/wire.h"

/* A connection to the server at path, not yet welcomed. */
int raw_connect(const char *path);
/* raw_connect, hello, and the welcome's features (MPS_FEATURE_*). */
int raw_connect_hello(const char *path, unsigned *ret_features);
/* Sends text as one datagram, with no descriptors. */
void raw_send(int fd, const char *text);
/* The next message, which must be op; its tree (the caller deletes it). */
cJSON *raw_expect(int fd, enum mps__op op);
/* The next message, which must be an error for tag with err at stage. */
void raw_expect_error(int fd, uint64_t tag, int err, const char *stage);

#endif
