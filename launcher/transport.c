/* SPDX-License-Identifier: MIT */
/*
 * transport.c: how an mpspawn message travels, apart from what it says
 * (wire.c). One AF_UNIX SOCK_SEQPACKET datagram holds one JSON object, with
 * its descriptors attached as SCM_RIGHTS and received MSG_CMSG_CLOEXEC.
 * The receive path checks only the envelope (size, descriptors, JSON object,
 * protocol version, op); each message's fields are its decoder's to check.
 * Used by mpforkserver and libmpspawn alike. Two ways past one datagram's
 * bounds live here too: a spec in a sealed memfd (spec_memfd), and extra
 * descriptors queued in a socketpair of their own (fd_bundle); see
 * docs/protocol.md.
 */
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdutil.h"
#include "say.h"

/* The most descriptors the kernel puts in one message (SCM_MAX_FD). */
#define WIRE_SCM_MAX_FD 253

/* Room for every descriptor a message can carry, not only for the most we
 * accept: descriptors that do not fit the buffer are closed by the kernel
 * inside recvmsg, where nobody could choose how (see release_fd). */
union wire_control {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * WIRE_SCM_MAX_FD)];
};

static mps__fd_release_fn *release_fn;

void mps__wire_set_release(mps__fd_release_fn *fn) {
        release_fn = fn;
}

static void release_fd(int fd) {
        if (fd < 0)
                return;
        if (release_fn)
                release_fn(fd);
        else
                close(fd);
}

void mps__msg_release(struct mps__msg *msg) {
        int saved = errno;
        if (!msg)
                return;
        cJSON_Delete(msg->json);
        msg->json = NULL;
        for (size_t i = 0; i < msg->nfds; i++) {
                release_fd(msg->fds[i]);
                msg->fds[i] = -1;
        }
        msg->nfds = 0;
        errno = saved;
}

/* Moves every descriptor the datagram carried into msg, releasing those
 * beyond MPS_WIRE_FDS_MAX, so that every later path releases them; true
 * when there were such. */
static bool take_fds(struct msghdr *mh, struct mps__msg *msg) {
        bool over = false;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                const unsigned char *data = CMSG_DATA(c);
                for (size_t i = 0; i < k; i++) {
                        int fd;
                        memcpy(&fd, data + i * sizeof(int), sizeof(int));
                        /* A library whose caller closed 0, 1 or 2 receives
                         * there: keep ours above them (the caller's stdio is
                         * what a job inherits). Only on a failed move does
                         * one stay low. */
                        int moved = mps__fd_move_at_least(fd, 3);
                        if (moved >= 0)
                                fd = moved;
                        if (msg->nfds < MPS_WIRE_FDS_MAX) {
                                msg->fds[msg->nfds++] = fd;
                        } else {
                                release_fd(fd);
                                over = true;
                        }
                }
        }
        return over;
}

/*
 * The control data was cut short. The JSON arrived whole, so its tag is
 * read for the error reply (a client waits on it). Either too many
 * descriptors were sent, or this side could not take them all (out of
 * descriptors): the result says which it looks like. Releases msg.
 */
static int ctrunc_failure(const char *buf, size_t n, struct mps__msg *msg,
                          char *err, size_t errlen, uint64_t *ret_tag) {
        cJSON *j = cJSON_ParseWithLength(buf, n);
        if (ret_tag && cJSON_IsObject(j))
                *ret_tag = mps__wire_tag(j);
        cJSON_Delete(j);
        int r = -EBADMSG;
        if (msg->nfds < MPS_WIRE_FDS_MAX) {
                mps__say(err, errlen, "could not receive the attached descriptors "
                                      "(out of file descriptors?)");
                r = -EMFILE;
        } else {
                mps__say(err, errlen, "more than %d descriptors attached", MPS_WIRE_FDS_MAX);
        }
        mps__msg_release(msg);
        return r;
}

/* Parses the datagram held in msg->raw and checks its envelope: a JSON
 * object of this protocol version naming a known op. 1, or -EBADMSG /
 * -EPROTO with a reason in err (msg is then the caller's to release). */
static int parse_envelope(struct mps__msg *msg, char *err, size_t errlen,
                          uint64_t *ret_tag) {
        msg->json = cJSON_ParseWithLength(msg->raw, msg->rawlen);
        if (!msg->json || !cJSON_IsObject(msg->json)) {
                mps__say(err, errlen, "message is not a JSON object");
                return -EBADMSG;
        }
        msg->tag = mps__wire_tag(msg->json);
        if (ret_tag)
                *ret_tag = msg->tag;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(msg->json, "v");
        if (!cJSON_IsNumber(v)) {
                mps__say(err, errlen, "message has no protocol version \"v\"");
                return -EBADMSG;
        }
        if (v->valuedouble != MPS_PROTOCOL_VERSION) {
                mps__say(err, errlen,
                    "protocol version %g is not supported (this side speaks %d)",
                    v->valuedouble, MPS_PROTOCOL_VERSION);
                return -EPROTO;
        }
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(msg->json, "op");
        if (!cJSON_IsString(op)) {
                mps__say(err, errlen, "message has no \"op\"");
                return -EBADMSG;
        }
        msg->op = mps__op_from_name(op->valuestring);
        if (msg->op == MPS_OP_UNKNOWN) {
                mps__say(err, errlen, "unknown op \"%.64s\"", op->valuestring);
                return -EBADMSG;
        }
        return 1;
}

int mps__wire_recv(int sock, struct mps__msg *msg, char *err, size_t errlen,
                   uint64_t *ret_tag) {
        /* One byte more than the bound, so that an oversized message is seen
         * as MSG_TRUNC rather than silently accepted. The buffer is static:
         * both users are single-threaded per socket, and the library keeps
         * no other global state. Use thread-local storage to stay safe when
         * distinct clients live on distinct threads. */
        static _Thread_local char buf[MPS_WIRE_MSG_MAX + 1];
        union wire_control control;
        struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf) - 1};
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = control.buf,
                .msg_controllen = sizeof(control.buf),
        };
        ssize_t n;

        memset(msg, 0, sizeof(*msg));
        do
                n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;

        bool too_many = take_fds(&mh, msg);
        if (n == 0 && msg->nfds == 0)
                return 0; /* SEQPACKET end of stream */
        if (mh.msg_flags & MSG_TRUNC) {
                mps__say(err, errlen, "message longer than %d bytes",
                    MPS_WIRE_MSG_MAX);
                mps__msg_release(msg);
                return -EBADMSG;
        }
        if ((mh.msg_flags & MSG_CTRUNC) || too_many)
                return ctrunc_failure(buf, (size_t)n, msg, err, errlen, ret_tag);
        msg->raw = buf;
        msg->rawlen = (size_t)n;
        int r = parse_envelope(msg, err, errlen, ret_tag);
        if (r < 0)
                mps__msg_release(msg);
        return r;
}

char *mps__wire_encode(const cJSON *json, size_t *ret_len) {
        char *s = cJSON_PrintUnformatted(json);
        if (!s) {
                errno = ENOMEM;
                return NULL;
        }
        size_t len = strlen(s);
        if (len > MPS_WIRE_MSG_MAX) {
                cJSON_free(s);
                errno = EMSGSIZE;
                return NULL;
        }
        *ret_len = len;
        return s;
}

int mps__wire_send_raw(int sock, const char *buf, size_t len, const int *fds,
                       size_t nfds) {
        union wire_control control;
        struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n;

        if (len > MPS_WIRE_MSG_MAX || nfds > MPS_WIRE_FDS_MAX)
                return -EMSGSIZE;
        if (nfds > 0) {
                memset(&control, 0, sizeof(control));
                mh.msg_control = control.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
        }
        do
                n = sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        return 0;
}

int mps__wire_send(int sock, const cJSON *json, const int *fds, size_t nfds) {
        size_t len;
        char *s = mps__wire_encode(json, &len);
        if (!s)
                return -errno;
        int r = mps__wire_send_raw(sock, s, len, fds, nfds);
        cJSON_free(s);
        return r;
}

void mps__wire_release_fds(int *fds, size_t n) {
        int saved = errno;
        for (size_t i = 0; i < n; i++) {
                release_fd(fds[i]);
                fds[i] = -1;
        }
        errno = saved;
}

/* ---- a spec in a sealed memfd (spec_memfd) ------------------------------ */

#define SPEC_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)

int mps__wire_spec_memfd(const char *buf, size_t len) {
        int fd = memfd_create("mpspawn-spec", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        int r = mps__write_all(fd, buf, len);
        if (r >= 0 && fcntl(fd, F_ADD_SEALS, SPEC_SEALS) < 0)
                r = -errno;
        if (r < 0) {
                mps__safe_close(fd);
                return r;
        }
        return fd;
}

int mps__wire_spec_memfd_read(int fd, size_t max, char **ret_buf, size_t *ret_len,
                              char *err, size_t errlen) {
        struct stat st;
        /* Only a memfd sealed against every change is read: its size and
         * bytes are then what they are now, nobody can make a read block
         * (it is memory), and the client cannot change the spec between
         * our checks and our use. F_GET_SEALS fails on anything but shmem;
         * a tmpfs file has F_SEAL_SEAL alone. */
        int seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                mps__say(err, errlen, "the spec descriptor is not a memfd");
                return -EBADMSG;
        }
        if ((seals & SPEC_SEALS) != SPEC_SEALS) {
                mps__say(err, errlen, "the spec memfd is not sealed (F_SEAL_SHRINK, "
                                      "F_SEAL_GROW, F_SEAL_WRITE and F_SEAL_SEAL are needed)");
                return -EBADMSG;
        }
        if ((uintmax_t)st.st_size > max || st.st_size == 0) {
                mps__say(err, errlen, "the spec memfd holds %jd bytes; the limit is %zu",
                         (intmax_t)st.st_size, max);
                return -E2BIG;
        }
        size_t len = (size_t)st.st_size;
        char *buf = malloc(len + 1);
        if (!buf)
                return -ENOMEM;
        size_t got = 0;
        while (got < len) {
                ssize_t n = pread(fd, buf + got, len - got, (off_t)got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        int r = n < 0 ? -errno : -EBADMSG;
                        mps__say(err, errlen, "cannot read the spec memfd: %s",
                                 n < 0 ? strerror(errno) : "short read");
                        free(buf);
                        return r;
                }
                got += (size_t)n;
        }
        buf[len] = '\0';
        *ret_buf = buf;
        *ret_len = len;
        return 0;
}

/* ---- more descriptors than one message carries (fd_bundle) -------------- */

int mps__wire_bundle_make(const int *fds, size_t n) {
        int sv[2];
        if (n == 0 || n > MPS_WIRE_SPAWN_FDS_MAX)
                return -EINVAL;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        /* Everything is queued before the request goes out, so the server
         * finds it all there and never waits. Between a socketpair's two
         * ends the datagram queue length is not limited (only the send
         * buffer), and a handful of datagrams of SCM_MAX_FD fit in it. */
        int r = 0;
        for (size_t at = 0; at < n && r == 0; at += WIRE_SCM_MAX_FD) {
                size_t k = n - at < WIRE_SCM_MAX_FD ? n - at : WIRE_SCM_MAX_FD;
                union wire_control control;
                memset(&control, 0, sizeof(control));
                char byte = 'f';
                struct iovec iov = {.iov_base = &byte, .iov_len = 1};
                struct msghdr mh = {
                        .msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = control.buf,
                        .msg_controllen = CMSG_SPACE(sizeof(int) * k),
                };
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * k);
                memcpy(CMSG_DATA(c), fds + at, sizeof(int) * k);
                ssize_t sent;
                do
                        sent = sendmsg(sv[1], &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
                while (sent < 0 && errno == EINTR);
                if (sent < 0)
                        r = -errno;
        }
        mps__safe_close(sv[1]);
        if (r < 0) {
                mps__safe_close(sv[0]);
                return r;
        }
        return sv[0];
}

/* Takes one bundle datagram's descriptors into fds[*n..max); releases any
 * beyond. Returns how many it carried. */
static size_t take_bundle_fds(struct msghdr *mh, int *fds, size_t *n, size_t max) {
        size_t carried = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++) {
                        int fd;
                        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                        if (*n < max)
                                fds[(*n)++] = fd;
                        else
                                release_fd(fd);
                        carried++;
                }
        }
        return carried;
}

int mps__wire_bundle_recv(int sock, size_t expect, int *fds, size_t max,
                          size_t *ret_n, char *err, size_t errlen) {
        int type = 0, domain = 0;
        socklen_t tl = sizeof(type), dl = sizeof(domain);
        size_t n = 0;
        if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
            getsockopt(sock, SOL_SOCKET, SO_DOMAIN, &domain, &dl) < 0 ||
            domain != AF_UNIX || type != SOCK_SEQPACKET) {
                mps__say(err, errlen, "the fd bundle is not an AF_UNIX SOCK_SEQPACKET socket");
                return -EBADMSG;
        }
        if (expect > max) {
                mps__say(err, errlen, "the fd bundle announces %zu descriptors; the limit "
                                      "is %zu", expect, max);
                return -E2BIG;
        }
        /* Read until the queue is empty. Every datagram must carry at least
         * one descriptor and we stop past expect, so a peer that keeps
         * writing cannot keep us here: at most expect + 1 datagrams. */
        size_t total = 0;
        for (;;) {
                union wire_control control;
                char byte;
                struct iovec iov = {.iov_base = &byte, .iov_len = 1};
                struct msghdr mh = {
                        .msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = control.buf,
                        .msg_controllen = sizeof(control.buf),
                };
                ssize_t r;
                do
                        r = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
                while (r < 0 && errno == EINTR);
                if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                        int e = errno;
                        mps__say(err, errlen, "cannot read the fd bundle: %s", strerror(e));
                        mps__wire_release_fds(fds, n);
                        return -e;
                }
                if (r <= 0)
                        break; /* drained: nothing queued, or the writer closed */
                size_t carried = take_bundle_fds(&mh, fds, &n, expect);
                total += carried;
                if (mh.msg_flags & MSG_CTRUNC) {
                        mps__say(err, errlen, "could not receive the fd bundle's "
                                              "descriptors (out of file descriptors?)");
                        mps__wire_release_fds(fds, n);
                        return -EMFILE;
                }
                if (carried == 0) {
                        mps__say(err, errlen, "the fd bundle holds a message without "
                                              "descriptors");
                        mps__wire_release_fds(fds, n);
                        return -EBADMSG;
                }
                if (total > expect)
                        break;
        }
        if (total != expect) {
                mps__say(err, errlen, "the fd bundle holds %s descriptors than the %zu "
                                      "announced", total < expect ? "fewer" : "more", expect);
                mps__wire_release_fds(fds, n);
                return -EBADMSG;
        }
        *ret_n = n;
        return 0;
}
