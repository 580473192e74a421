/* SPDX-License-Identifier: MIT */
/*
 * result.c: a call job's result channel. Before the child exists, the
 * server makes a memfd of a fixed size, sealed so that it can never grow
 * (nor shrink, nor take other seals); the child keeps it (the fork path)
 * or gets it with its hand-over (prefork.c). The entry point's set_result
 * and set_error write into it, and at the reap the server reads what is
 * there and closes it: the exit message carries it (job.c).
 *
 * Both sides agree on the layout here, in one file:
 *
 *   0                 struct result_header (magic, flags, the two lengths)
 *   RESULT_OFF_TEXT   the result, JSON text, up to MPS_RESULT_MAX bytes
 *   RESULT_OFF_ERROR  the failure message, up to MPS_RESULT_ERROR_MAX bytes
 *
 * The child writes a text before the header that names it, and first takes
 * the name of an older text of the same kind out of the header, so a
 * record cut short (the job killed between two writes) is never taken for
 * a whole one. Nothing it writes is trusted: the job may have scribbled
 * anywhere in the file, so the server bounds every length by the layout
 * and checks every text, and what does not pass becomes a failure message
 * saying so, never an error of the server's. Reading a memfd never blocks,
 * whatever the job did to it.
 *
 * The pages the job wrote are the only memory it costs, and they are
 * freed when the server closes the memfd at the reap (the job, had it
 * kept a copy in a process that outlived it, holds only its own).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../launcher/fdutil.h"
#include "server.h"

#define RESULT_MAGIC 0x3152534du /* "MSR1" */
#define RESULT_HAS_TEXT 1u
#define RESULT_HAS_ERROR 2u

struct result_header {
        uint32_t magic; /* 0 with all else 0: nothing was set */
        uint32_t flags; /* RESULT_HAS_* */
        uint32_t text_len;
        uint32_t error_len;
};

#define RESULT_OFF_TEXT ((off_t)sizeof(struct result_header))
#define RESULT_OFF_ERROR (RESULT_OFF_TEXT + MPS_RESULT_MAX)
#define RESULT_SIZE (RESULT_OFF_ERROR + MPS_RESULT_ERROR_MAX)

/* The exited message carries both whole: the result as it is, the failure
 * message with every byte escaped at worst (\u00XX), and its fixed fields. */
_Static_assert(MPS_RESULT_MAX + 6 * MPS_RESULT_ERROR_MAX + 1024 <= MPS_WIRE_MSG_MAX,
               "a call job's exit message must fit in one message");

int result_channel_new(void) {
        int fd = memfd_create("mps-result", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        if (ftruncate(fd, RESULT_SIZE) < 0 ||
            fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0) {
                int e = errno;
                mps__safe_close(fd);
                return -e;
        }
        return fd;
}

/* ---- the child's side --------------------------------------------------------- */

/* This process's channel and what its header says now: the child is the
 * only writer, so it never reads the header back. */
static int child_fd = -1;
static struct result_header child_header;

void result_child_attach(int fd) {
        child_fd = fd;
        child_header = (struct result_header){.magic = RESULT_MAGIC};
}

static int pwrite_all(int fd, const void *buf, size_t len, off_t off) {
        const char *p = buf;
        while (len > 0) {
                ssize_t n = pwrite(fd, p, len, off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ENOSPC;
                p += n;
                len -= (size_t)n;
                off += n;
        }
        return 0;
}

/* Stores text as the kind `flag` names: the old name out of the header,
 * the text, then the header naming it. */
static int store(uint32_t flag, off_t off, const char *text, size_t len) {
        if (child_fd < 0)
                return -EBADF;
        struct result_header h = child_header;
        uint32_t *hlen = flag == RESULT_HAS_TEXT ? &h.text_len : &h.error_len;
        int r;
        if (h.flags & flag) {
                h.flags &= ~flag;
                *hlen = 0;
                if ((r = pwrite_all(child_fd, &h, sizeof(h), 0)) < 0)
                        return r;
                child_header = h;
        }
        if ((r = pwrite_all(child_fd, text, len, off)) < 0)
                return r;
        h.flags |= flag;
        *hlen = (uint32_t)len;
        if ((r = pwrite_all(child_fd, &h, sizeof(h), 0)) < 0)
                return r;
        child_header = h;
        return 0;
}

int result_child_set_result(const mps_call_context *ctx, const char *json) {
        (void)ctx;
        if (!json)
                return -EINVAL;
        size_t len = strnlen(json, MPS_RESULT_MAX + 1);
        int r = mps__wire_result_check(json, len);
        return r < 0 ? r : store(RESULT_HAS_TEXT, RESULT_OFF_TEXT, json, len);
}

int result_child_set_error(const mps_call_context *ctx, const char *message) {
        (void)ctx;
        if (!message)
                return -EINVAL;
        size_t len = strnlen(message, MPS_RESULT_ERROR_MAX + 1);
        if (len > MPS_RESULT_ERROR_MAX) {
                /* Cut, and never inside a UTF-8 sequence: back to the
                 * start of the one the cut falls in. */
                len = MPS_RESULT_ERROR_MAX;
                while (len > 0 && ((unsigned char)message[len] & 0xC0) == 0x80)
                        len--;
        }
        if (!mps__wire_utf8_valid(message, len))
                return -EINVAL;
        return store(RESULT_HAS_ERROR, RESULT_OFF_ERROR, message, len);
}

/* ---- the server's side, at the reap -------------------------------------------- */

static int pread_all(int fd, void *buf, size_t len, off_t off) {
        char *p = buf;
        while (len > 0) {
                ssize_t n = pread(fd, p, len, off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                p += n;
                len -= (size_t)n;
                off += n;
        }
        return 0;
}

/* One text of the channel, NUL-terminated, into *ret (malloc()ed): 0,
 * -ENOMEM, or -EIO when it cannot be read. */
static int read_text(int fd, off_t off, size_t len, char **ret) {
        char *buf = malloc(len + 1);
        if (!buf)
                return -ENOMEM;
        int r = pread_all(fd, buf, len, off);
        if (r < 0) {
                free(buf);
                return -EIO;
        }
        buf[len] = '\0';
        *ret = buf;
        return 0;
}

/* What the header promises, checked against the layout: NULL, or why not. */
static const char *header_problem(const struct result_header *h) {
        static const struct result_header none;
        if (memcmp(h, &none, sizeof(none)) == 0)
                return NULL;
        if (h->magic != RESULT_MAGIC || (h->flags & ~(RESULT_HAS_TEXT | RESULT_HAS_ERROR)))
                return "the call job overwrote its result channel (its header is not one)";
        if ((h->flags & RESULT_HAS_TEXT) && h->text_len > MPS_RESULT_MAX)
                return "the call job overwrote its result channel (a result length past "
                       "MPS_RESULT_MAX)";
        if ((h->flags & RESULT_HAS_ERROR) && h->error_len > MPS_RESULT_ERROR_MAX)
                return "the call job overwrote its result channel (a message length past "
                       "MPS_RESULT_ERROR_MAX)";
        return NULL;
}

int result_channel_read(int fd, char **ret_result, char **ret_failure) {
        struct result_header h;
        char *result = NULL, *failure = NULL;
        const char *why = NULL;
        int r = pread_all(fd, &h, sizeof(h), 0) < 0 ? -EIO : 0;
        if (r == 0 && !(why = header_problem(&h)) && (h.flags & RESULT_HAS_ERROR) &&
            (r = read_text(fd, RESULT_OFF_ERROR, h.error_len, &failure)) == 0 &&
            !mps__wire_utf8_valid(failure, h.error_len)) {
                free(failure);
                failure = NULL;
                why = "the call job's failure message is not UTF-8 text";
        }
        if (r == 0 && !why && (h.flags & RESULT_HAS_TEXT) &&
            (r = read_text(fd, RESULT_OFF_TEXT, h.text_len, &result)) == 0 &&
            mps__wire_result_check(result, h.text_len) < 0) {
                free(result);
                result = NULL;
                /* The entry point's own message, if it left one, says more. */
                if (!failure)
                        why = "the call job's result is not valid JSON";
        }
        if (r == -EIO && !failure)
                why = "the call job's result channel could not be read";
        if ((r < 0 && r != -EIO) || (why && !failure && !(failure = strdup(why)))) {
                free(result);
                free(failure);
                return -ENOMEM;
        }
        *ret_result = result;
        *ret_failure = failure;
        return 0;
}
