/* SPDX-License-Identifier: MIT */
/*
 * fuzz_wire.c: the message codec (launcher/wire.c, transport.c) as the
 * server and the library meet it. The input is one datagram, sent through a SEQPACKET
 * socketpair into mps__wire_recv(), so the real receive path runs: the size
 * bound, descriptor collection, JSON parsing, the version and op checks.
 * Every typed decoder then reads the message (the one matching its op and
 * all the others: a decoder sees only the tree, and must hold up against
 * any object), and whatever decodes is encoded again, sent and received
 * again, and decoded again to the same values.
 *
 * Invariants (a broken one aborts; see FUZZ_CHECK):
 *   - mps__wire_recv returns 1, 0 (an empty datagram), -EBADMSG or -EPROTO,
 *     with a reason on failure and every received descriptor closed;
 *   - a decoder returns 0 or -EINVAL with a reason, and on failure leaves
 *     its out-parameter untouched;
 *   - a decoded spawn satisfies every bound the decoder promises, and one
 *     that decodes with n descriptors also decodes with more;
 *   - encode(decode(x)) decodes, to the same fields;
 *   - no descriptor leaks, whatever the message.
 * No fork, no exec: the input is only ever data.
 */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../launcher/wire.h"
#include "fuzz.h"

static int sock[2] = {-1, -1};
static int devnull = -1;

/* The lowest free descriptor number: the kernel installs received
 * descriptors there, so one left open by a decoder path moves it. */
static int lowest_free_fd(void) {
        int fd = fcntl(0, F_DUPFD_CLOEXEC, 0);
        FUZZ_CHECK(fd >= 0, "F_DUPFD: %s", strerror(errno));
        close(fd);
        return fd;
}

/* Sends one datagram with nattach copies of /dev/null; 0 or -errno. */
static int send_datagram(const void *data, size_t size, size_t nattach) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * (MPS_WIRE_FDS_MAX + 1))];
        } control;
        int fds[MPS_WIRE_FDS_MAX + 1];
        struct iovec iov = {.iov_base = (void *)data, .iov_len = size};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

        FUZZ_CHECK(nattach <= MPS_WIRE_FDS_MAX + 1, "%zu fds", nattach);
        if (nattach > 0) {
                memset(&control, 0, sizeof(control));
                for (size_t i = 0; i < nattach; i++)
                        fds[i] = devnull;
                mh.msg_control = control.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * nattach);
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * nattach);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * nattach);
        }
        if (sendmsg(sock[0], &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
                return -errno;
        return 0;
}

/* ---- comparisons ---------------------------------------------------------- */

static bool str_eq(const char *a, const char *b) {
        return a == b || (a && b && strcmp(a, b) == 0);
}

/* cJSON prints a double with 15 significant digits when that reads back
 * within a relative DBL_EPSILON, else with 17: values come back within a
 * few units in the last place, not always bit for bit. */
static bool num_eq(double a, double b) {
        return a == b || fabs(a - b) <= 4 * DBL_EPSILON * fmax(fabs(a), fabs(b));
}

/* Durations travel to the microsecond (wire.c add_seconds). */
static bool duration_eq(double a, double b) {
        return num_eq(a, b) || fabs(a - b) <= 0.5e-6 + 4 * DBL_EPSILON * fmax(a, b);
}

/*
 * The same tree: types, member names and order, strings, numbers (as
 * num_eq). Not cJSON_Compare, which matches object members by name, so
 * that an object with a key twice never equals even its own copy. Depth
 * is bounded by cJSON's nesting limit.
 */
static bool json_same(const cJSON *a, const cJSON *b) {
        if (!a || !b)
                return a == b;
        if ((a->type & 0xff) != (b->type & 0xff) || !str_eq(a->string, b->string))
                return false;
        if (cJSON_IsNumber(a))
                return num_eq(a->valuedouble, b->valuedouble);
        if (cJSON_IsString(a))
                return strcmp(a->valuestring, b->valuestring) == 0;
        const cJSON *x = a->child, *y = b->child;
        for (; x && y; x = x->next, y = y->next)
                if (!json_same(x, y))
                        return false;
        return !x && !y;
}

#define SAME(a, b, what)                                                       \
        FUZZ_CHECK((a) == (b), "round trip changed %s", what)
#define SAME_STR(a, b, what)                                                   \
        FUZZ_CHECK(str_eq((a), (b)), "round trip changed %s: \"%s\" -> \"%s\"", \
                   what, (a) ? (a) : "(null)", (b) ? (b) : "(null)")
#define SAME_DURATION(a, b, what)                                              \
        FUZZ_CHECK(duration_eq((a), (b)), "round trip changed %s: %.17g -> %.17g", \
                   what, (double)(a), (double)(b))
#define SAME_NUM(a, b, what)                                                   \
        FUZZ_CHECK(num_eq((a), (b)), "round trip changed %s: %.17g -> %.17g",   \
                   what, (double)(a), (double)(b))

/* A decoder's failure: -EINVAL (or -ENOMEM) with a reason, and the
 * out-parameter as it was. */
#define CHECK_FAILURE(r, err, ret, before, what)                               \
        do {                                                                   \
                FUZZ_CHECK((r) == -EINVAL || (r) == -ENOMEM,                   \
                           "%s returned %d", what, r);                         \
                FUZZ_CHECK((err)[0] != '\0', "%s failed with no reason", what); \
                FUZZ_CHECK(memcmp(&(ret), &(before), sizeof(ret)) == 0,        \
                           "%s changed its out-parameter on failure", what);   \
        } while (0)

/*
 * Encodes o as a sender does (taking it), receives it back through the
 * socket into *back and returns true; false when the encoding is longer
 * than one message, which a longer re-encoding (escapes) may be.
 */
static bool resend(cJSON *o, enum mps__op op, struct mps__msg *back) {
        char err[256] = "";
        uint64_t tag = 0;

        FUZZ_CHECK(o, "an encoder failed on decoded values");
        int r = mps__wire_send(sock[0], o, NULL, 0);
        cJSON_Delete(o);
        if (r == -EMSGSIZE)
                return false;
        FUZZ_CHECK(r == 0, "mps__wire_send: %s", strerror(-r));
        r = mps__wire_recv(sock[1], back, err, sizeof(err), &tag);
        FUZZ_CHECK(r == 1, "an encoded %s is not received: %d (%s)",
                   mps__op_name(op), r, err);
        FUZZ_CHECK(back->op == op, "encoded %s, received %s", mps__op_name(op),
                   mps__op_name(back->op));
        return true;
}

/* ---- one decoder each -------------------------------------------------------- */

static void fuzz_hello(const cJSON *json) {
        struct mps__hello m, before, m2;
        struct mps__msg back;
        char err[256] = "";

        memset(&m, 0x5a, sizeof(m));
        memcpy(&before, &m, sizeof(m));
        int r = mps__hello_decode(json, &m, err, sizeof(err));
        if (r < 0) {
                CHECK_FAILURE(r, err, m, before, "mps__hello_decode");
                return;
        }
        FUZZ_CHECK(r == 0, "mps__hello_decode returned %d", r);
        if (!resend(mps__hello_encode(&m), MPS_OP_HELLO, &back))
                return;
        r = mps__hello_decode(back.json, &m2, err, sizeof(err));
        FUZZ_CHECK(r == 0, "re-encoded hello: %s", err);
        SAME(m.protocol, m2.protocol, "hello.protocol");
        SAME_STR(m.client, m2.client, "hello.client");
        mps__msg_release(&back);
}

static void fuzz_welcome(const cJSON *json) {
        struct mps__welcome m, before, m2;
        struct mps__msg back;
        char err[256] = "";

        memset(&m, 0x5a, sizeof(m));
        memcpy(&before, &m, sizeof(m));
        int r = mps__welcome_decode(json, &m, err, sizeof(err));
        if (r < 0) {
                CHECK_FAILURE(r, err, m, before, "mps__welcome_decode");
                return;
        }
        FUZZ_CHECK(m.version, "welcome without a version");
        FUZZ_CHECK((m.features & ~(unsigned)MPS_FEATURES_ALL) == 0,
                   "welcome features 0x%x", m.features);
        if (!resend(mps__welcome_encode(&m), MPS_OP_WELCOME, &back))
                return;
        r = mps__welcome_decode(back.json, &m2, err, sizeof(err));
        FUZZ_CHECK(r == 0, "re-encoded welcome: %s", err);
        SAME(m.protocol, m2.protocol, "welcome.protocol");
        SAME_STR(m.version, m2.version, "welcome.version");
        SAME(m.pid, m2.pid, "welcome.pid");
        SAME(m.pidfd, m2.pidfd, "welcome.pidfd");
        SAME(m.features, m2.features, "welcome.features");
        mps__msg_release(&back);
}

/* What mps__spawn_decode promises of a spawn it accepts. */
static void check_spawn_bounds(const struct mps__spawn *m, size_t nfds) {
        FUZZ_CHECK(m->path || m->call_entry, "spawn with neither path nor call");
        FUZZ_CHECK(!m->path || (m->path[0] && strlen(m->path) <= MPS_WIRE_STR_MAX),
                   "spawn path of %zu bytes", strlen(m->path));
        FUZZ_CHECK(!m->call_entry || (m->call_entry[0] &&
                                      strlen(m->call_entry) <= MPS_WIRE_NAME_MAX),
                   "spawn call entry of %zu bytes", strlen(m->call_entry));
        FUZZ_CHECK(m->argv && m->argc >= 1 && m->argc <= MPS_WIRE_SPAWN_ARGV_MAX &&
                           !m->argv[m->argc],
                   "spawn argc %zu", m->argc);
        for (size_t i = 0; i < m->argc; i++)
                FUZZ_CHECK(m->argv[i] && strlen(m->argv[i]) < MPS_WIRE_ARG_STRLEN_MAX,
                           "spawn argv[%zu]", i);
        FUZZ_CHECK(m->envp && m->envc <= MPS_WIRE_ENV_MAX && !m->envp[m->envc],
                   "spawn envc %zu", m->envc);
        FUZZ_CHECK(m->env_ref <= MPS_WIRE_ENV_SLOTS && (!m->env_ref || m->envc == 0),
                   "spawn env_ref %llu with %zu env entries",
                   (unsigned long long)m->env_ref, m->envc);
        for (size_t i = 0; i < m->envc; i++)
                FUZZ_CHECK(m->envp[i] && strlen(m->envp[i]) < MPS_WIRE_ARG_STRLEN_MAX,
                           "spawn envp[%zu]", i);
        FUZZ_CHECK(!m->cwd || strlen(m->cwd) <= MPS_WIRE_STR_MAX, "spawn cwd");
        FUZZ_CHECK(!m->name || strlen(m->name) <= MPS_WIRE_NAME_MAX, "spawn name");
        FUZZ_CHECK(m->nfdmap <= MPS_WIRE_FDMAP_MAX, "spawn with %zu fd maps",
                   m->nfdmap);
        for (size_t i = 0; i < m->nfdmap; i++) {
                const struct mps__fd_map *f = &m->fdmap[i];
                FUZZ_CHECK(f->target >= 0 && f->target <= MPS_WIRE_TARGET_FD_MAX,
                           "fd map target %d", f->target);
                /* -1: /dev/null on 0-2, else closed; MPS_WIRE_FD_CLOSED
                 * (-2): left closed, as the caller had it. */
                FUZZ_CHECK(f->source >= MPS_WIRE_FD_CLOSED && f->source < (int)nfds,
                           "fd map source %d with %zu fds", f->source, nfds);
                for (size_t j = 0; j < i; j++)
                        FUZZ_CHECK(m->fdmap[j].target != f->target,
                                   "fd %d mapped twice", f->target);
        }
        FUZZ_CHECK(m->timeout >= 0 && m->timeout <= MPS_WIRE_SECONDS_MAX,
                   "spawn timeout %g", m->timeout);
        FUZZ_CHECK(m->kill_after >= 0 && m->kill_after <= MPS_WIRE_SECONDS_MAX,
                   "spawn kill_after %g", m->kill_after);
        FUZZ_CHECK(m->nrlimits <= MPS_WIRE_RLIMITS_MAX, "spawn nrlimits %zu",
                   m->nrlimits);
        for (size_t i = 0; i < m->nrlimits; i++) {
                const struct mps__rlimit *l = &m->rlimits[i];
                FUZZ_CHECK(l->hard_keep || l->soft <= l->hard,
                           "rlimit %d: soft above hard", l->resource);
                for (size_t j = 0; j < i; j++)
                        FUZZ_CHECK(m->rlimits[j].resource != l->resource,
                                   "rlimit %d twice", l->resource);
        }
        FUZZ_CHECK(!m->seccomp_name || m->seccomp_text,
                   "seccomp name without text");
        FUZZ_CHECK(!m->has_nice || (m->nice >= -20 && m->nice <= 19),
                   "spawn nice %d", m->nice);
        FUZZ_CHECK(m->umask >= -1 && m->umask <= 0777, "spawn umask %d", m->umask);
        FUZZ_CHECK(m->pdeathsig >= 0 && m->pdeathsig <= 64, "spawn pdeathsig %d",
                   m->pdeathsig);
}

static void spawn_roundtrip(const struct mps__spawn *m, size_t nfds) {
        struct mps__spawn m2;
        struct mps__msg back;
        char err[256] = "";

        if (!resend(mps__spawn_encode(m), MPS_OP_SPAWN, &back))
                return;
        int r = mps__spawn_decode(back.json, nfds, &m2, err, sizeof(err));
        FUZZ_CHECK(r == 0, "re-encoded spawn: %s", err);
        SAME(m->tag, m2.tag, "spawn.tag");
        SAME_STR(m->path, m2.path, "spawn.path");
        SAME_STR(m->call_entry, m2.call_entry, "spawn.call.entry");
        if (m->call_entry) {
                /* Absent args are sent as null. */
                FUZZ_CHECK(m->call_args ? json_same(m->call_args, m2.call_args)
                                        : cJSON_IsNull(m2.call_args),
                           "round trip changed spawn.call.args");
        }
        SAME(m->argc, m2.argc, "spawn.argc");
        for (size_t i = 0; i < m->argc; i++)
                SAME_STR(m->argv[i], m2.argv[i], "spawn.argv[i]");
        SAME(m->env_ref, m2.env_ref, "spawn.env_ref");
        SAME(m->envc, m2.envc, "spawn.envc");
        for (size_t i = 0; i < m->envc; i++)
                SAME_STR(m->envp[i], m2.envp[i], "spawn.envp[i]");
        SAME_STR(m->cwd, m2.cwd, "spawn.cwd");
        SAME_STR(m->name, m2.name, "spawn.name");
        SAME(m->nfdmap, m2.nfdmap, "spawn.nfdmap");
        for (size_t i = 0; i < m->nfdmap; i++) {
                SAME(m->fdmap[i].target, m2.fdmap[i].target, "fd map target");
                SAME(m->fdmap[i].source, m2.fdmap[i].source, "fd map source");
        }
        SAME(m->daemon, m2.daemon, "spawn.daemon");
        SAME(m->new_session, m2.new_session, "spawn.new_session");
        SAME(m->want_pidfd, m2.want_pidfd, "spawn.pidfd");
        SAME(m->detached, m2.detached, "spawn.detached");
        SAME_NUM(m->timeout, m2.timeout, "spawn.timeout");
        /* kill_after means something only with a timeout, and is sent only
         * with one. */
        if (m->timeout > 0)
                SAME_NUM(m->kill_after, m2.kill_after, "spawn.kill_after");
        SAME(m->nrlimits, m2.nrlimits, "spawn.nrlimits");
        for (size_t i = 0; i < m->nrlimits; i++) {
                const struct mps__rlimit *a = &m->rlimits[i], *b = &m2.rlimits[i];
                SAME(a->resource, b->resource, "rlimit resource");
                SAME(a->soft, b->soft, "rlimit soft");
                SAME(a->hard_keep, b->hard_keep, "rlimit hard_keep");
                if (!a->hard_keep)
                        SAME(a->hard, b->hard, "rlimit hard");
        }
        SAME_STR(m->seccomp_text, m2.seccomp_text, "spawn.seccomp.text");
        if (m->seccomp_text)
                SAME_STR(m->seccomp_name ? m->seccomp_name : "policy",
                         m2.seccomp_name, "spawn.seccomp.name");
        SAME(m->has_nice, m2.has_nice, "spawn has nice");
        if (m->has_nice)
                SAME(m->nice, m2.nice, "spawn.nice");
        SAME(m->umask, m2.umask, "spawn.umask");
        SAME(m->no_new_privs, m2.no_new_privs, "spawn.no_new_privs");
        SAME(m->pdeathsig, m2.pdeathsig, "spawn.pdeathsig");
        SAME(m->kill_tree, m2.kill_tree, "spawn.kill_tree");
        mps__spawn_done(&m2);
        mps__msg_release(&back);
}

/* The spawn validator with the descriptors the message carried and a few
 * other counts, ascending: more descriptors can only admit more maps. */
static void fuzz_spawn(const cJSON *json, size_t msg_nfds) {
        const size_t counts[] = {0, 1, msg_nfds, 3, MPS_WIRE_FDS_MAX};
        bool accepted = false, roundtripped = false;

        for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
                size_t nfds = counts[k];
                struct mps__spawn m, before;
                char err[256] = "";

                if (k == 2 && nfds < counts[1])
                        continue; /* keep the counts ascending */
                memset(&m, 0x5a, sizeof(m));
                memcpy(&before, &m, sizeof(m));
                int r = mps__spawn_decode(json, nfds, &m, err, sizeof(err));
                if (r < 0) {
                        CHECK_FAILURE(r, err, m, before, "mps__spawn_decode");
                        FUZZ_CHECK(!accepted,
                                   "a spawn accepted with fewer fds is refused "
                                   "with %zu: %s",
                                   nfds, err);
                        continue;
                }
                FUZZ_CHECK(r == 0, "mps__spawn_decode returned %d", r);
                accepted = true;
                check_spawn_bounds(&m, nfds);
                if (!roundtripped) {
                        spawn_roundtrip(&m, nfds);
                        roundtripped = true;
                }
                mps__spawn_done(&m);
                FUZZ_CHECK(!m.argv && !m.envp && !m.fdmap,
                           "mps__spawn_done left arrays behind");
        }
}

/* spec_memfd and fd_bundle: the descriptors they name are the message's
 * last, within its count, and what decodes encodes back to the same. */
static void fuzz_spawn_carrier(const cJSON *json, size_t msg_nfds) {
        const size_t counts[] = {0, 1, 2, msg_nfds, MPS_WIRE_FDS_MAX};
        for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
                size_t nfds = counts[k];
                struct mps__spawn_carrier m, before, m2;
                struct mps__msg back;
                char err[256] = "";
                memset(&m, 0x5a, sizeof(m));
                memcpy(&before, &m, sizeof(m));
                int r = mps__spawn_carrier_decode(json, nfds, &m, err, sizeof(err));
                if (r < 0) {
                        CHECK_FAILURE(r, err, m, before, "mps__spawn_carrier_decode");
                        continue;
                }
                size_t nspecial = (size_t)m.has_memfd + (size_t)m.has_bundle;
                FUZZ_CHECK(m.own_nfds + nspecial == nfds, "carrier own_nfds %zu of %zu",
                           m.own_nfds, nfds);
                FUZZ_CHECK(!m.has_memfd || m.memfd == (int)m.own_nfds, "carrier memfd %d",
                           m.memfd);
                FUZZ_CHECK(!m.has_bundle || (m.bundle == (int)nfds - 1 && m.bundle_nfds >= 1 &&
                                             m.bundle_nfds <= MPS_WIRE_SPAWN_FDS_MAX),
                           "carrier bundle %d of %zu", m.bundle, m.bundle_nfds);
                if (!nspecial)
                        continue;
                if (!resend(mps__spawn_carrier_encode(NULL, 1, &m), MPS_OP_SPAWN, &back))
                        continue;
                r = mps__spawn_carrier_decode(back.json, nfds, &m2, err, sizeof(err));
                FUZZ_CHECK(r == 0, "re-encoded carrier: %s", err);
                SAME(m.has_memfd, m2.has_memfd, "carrier.has_memfd");
                SAME(m.has_bundle, m2.has_bundle, "carrier.has_bundle");
                SAME(m.own_nfds, m2.own_nfds, "carrier.own_nfds");
                if (m.has_bundle)
                        SAME(m.bundle_nfds, m2.bundle_nfds, "carrier.bundle_nfds");
                mps__msg_release(&back);
        }
}

/* The formatted reply is the tree encoder's text, byte for byte. */
static void same_text(cJSON *tree, const char *text, int n, const char *what) {
        if (!tree)
                return; /* out of memory */
        char *printed = cJSON_PrintUnformatted(tree);
        cJSON_Delete(tree);
        if (!printed)
                return;
        FUZZ_CHECK(n >= 0 && strcmp(text, printed) == 0 && strlen(text) == (size_t)n,
                   "%s formatted as %s, the tree as %s", what, n >= 0 ? text : "(error)",
                   printed);
        cJSON_free(printed);
}

/* An env request: its id is a slot, its strings within bounds, and it
 * encodes back to the same. */
static void fuzz_env(const cJSON *json) {
        struct mps__env m, before, m2;
        struct mps__msg back;
        char err[256] = "";

        memset(&m, 0x5a, sizeof(m));
        memcpy(&before, &m, sizeof(m));
        int r = mps__env_decode(json, &m, err, sizeof(err));
        if (r < 0) {
                CHECK_FAILURE(r, err, m, before, "mps__env_decode");
                return;
        }
        FUZZ_CHECK(m.id >= 1 && m.id <= MPS_WIRE_ENV_SLOTS, "env id %llu",
                   (unsigned long long)m.id);
        FUZZ_CHECK(m.envp && m.envc <= MPS_WIRE_ENV_MAX && !m.envp[m.envc], "env envc %zu",
                   m.envc);
        for (size_t i = 0; i < m.envc; i++)
                FUZZ_CHECK(strlen(m.envp[i]) < MPS_WIRE_ARG_STRLEN_MAX, "env entry %zu", i);
        if (resend(mps__env_encode(&m), MPS_OP_ENV, &back)) {
                r = mps__env_decode(back.json, &m2, err, sizeof(err));
                FUZZ_CHECK(r == 0, "re-encoded env: %s", err);
                SAME(m.tag, m2.tag, "env.tag");
                SAME(m.id, m2.id, "env.id");
                SAME(m.envc, m2.envc, "env.envc");
                for (size_t i = 0; i < m.envc; i++)
                        SAME_STR(m.envp[i], m2.envp[i], "env.envp[i]");
                free(m2.envp);
                mps__msg_release(&back);
        }
        free(m.envp);
}

/* A spawn_batch envelope: 1..16 jobs, each a spawn message, whose
 * descriptor slices follow one another and take exactly the message's. */
static void fuzz_spawn_batch(const cJSON *json, size_t msg_nfds) {
        const size_t counts[] = {0, 1, msg_nfds, MPS_WIRE_FDS_MAX};
        for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
                struct mps__spawn_batch m, before;
                char err[256] = "";
                memset(&m, 0x5a, sizeof(m));
                memcpy(&before, &m, sizeof(m));
                int r = mps__spawn_batch_decode(json, counts[k], &m, err, sizeof(err));
                if (r < 0) {
                        CHECK_FAILURE(r, err, m, before, "mps__spawn_batch_decode");
                        continue;
                }
                FUZZ_CHECK(m.count >= 1 && m.count <= MPS_WIRE_BATCH_MAX, "batch of %zu",
                           m.count);
                size_t next = 0;
                for (size_t i = 0; i < m.count; i++) {
                        FUZZ_CHECK(m.jobs[i].fd_from == next, "job %zu's slice starts at %zu",
                                   i, m.jobs[i].fd_from);
                        FUZZ_CHECK(cJSON_IsObject(m.jobs[i].json), "job %zu no object", i);
                        next += m.jobs[i].nfds;
                }
                FUZZ_CHECK(next == counts[k], "slices take %zu of %zu", next, counts[k]);
                /* Each job goes on to the spawn decoder, as the server's
                 * do, with its own slice. */
                for (size_t i = 0; i < m.count; i++)
                        fuzz_spawn(m.jobs[i].json, m.jobs[i].nfds);
        }
}

static void fuzz_spawned(const cJSON *json) {
        struct mps__spawned m, before, m2;
        struct mps__msg back;
        char err[256] = "";

        memset(&m, 0x5a, sizeof(m));
        memcpy(&before, &m, sizeof(m));
        int r = mps__spawned_decode(json, &m, err, sizeof(err));
        if (r < 0) {
                CHECK_FAILURE(r, err, m, before, "mps__spawned_decode");
                return;
        }
        FUZZ_CHECK(m.pid >= 1, "spawned pid %d", (int)m.pid);
        char text[MPS_WIRE_REPLY_TEXT_MAX];
        same_text(mps__spawned_encode(&m), text, mps__spawned_format(&m, text, sizeof(text)),
                  "spawned");
        if (!resend(mps__spawned_encode(&m), MPS_OP_SPAWNED, &back))
                return;
        r = mps__spawned_decode(back.json, &m2, err, sizeof(err));
        FUZZ_CHECK(r == 0, "re-encoded spawned: %s", err);
        SAME(m.tag, m2.tag, "spawned.tag");
        SAME(m.id, m2.id, "spawned.id");
        SAME(m.pid, m2.pid, "spawned.pid");
        SAME(m.has_pidfd, m2.has_pidfd, "spawned.pidfd");
        mps__msg_release(&back);
}

static void fuzz_exited(const cJSON *json) {
        struct mps__exited m, before, m2;
        struct mps__msg back;
        char err[256] = "";

        memset(&m, 0x5a, sizeof(m));
        memcpy(&before, &m, sizeof(m));
        int r = mps__exited_decode(json, &m, err, sizeof(err));
        if (r < 0) {
                CHECK_FAILURE(r, err, m, before, "mps__exited_decode");
                return;
        }
        FUZZ_CHECK(m.exitcode >= -128 && m.exitcode <= 255, "exitcode %d",
                   m.exitcode);
        FUZZ_CHECK(m.maxrss_kib >= 0, "maxrss %ld", m.maxrss_kib);
        if (!m.result_value && !m.failure) {
                char text[MPS_WIRE_REPLY_TEXT_MAX];
                same_text(mps__exited_encode(&m), text,
                          mps__exited_format(&m, text, sizeof(text)), "exited");
        }
        if (!resend(mps__exited_encode(&m), MPS_OP_EXITED, &back))
                return;
        r = mps__exited_decode(back.json, &m2, err, sizeof(err));
        FUZZ_CHECK(r == 0, "re-encoded exited: %s", err);
        SAME(m.tag, m2.tag, "exited.tag");
        SAME(m.id, m2.id, "exited.id");
        SAME(m.pid, m2.pid, "exited.pid");
        SAME(m.exitcode, m2.exitcode, "exited.exitcode");
        SAME(m.core_dumped, m2.core_dumped, "exited.core_dumped");
        SAME(m.timed_out, m2.timed_out, "exited.timed_out");
        SAME_DURATION(m.utime, m2.utime, "exited.utime");
        SAME_DURATION(m.stime, m2.stime, "exited.stime");
        SAME_DURATION(m.wall, m2.wall, "exited.wall");
        SAME(m.maxrss_kib, m2.maxrss_kib, "exited.maxrss_kib");
        mps__msg_release(&back);
}

static void fuzz_signal(const cJSON *json) {
        struct mps__signal m, before, m2;
        struct mps__msg back;
        char err[256] = "";

        memset(&m, 0x5a, sizeof(m));
        memcpy(&before, &m, sizeof(m));
        int r = mps__signal_decode(json, &m, err, sizeof(err));
        if (r < 0) {
                CHECK_FAILURE(r, err, m, before, "mps__signal_decode");
                return;
        }
        FUZZ_CHECK(m.signo >= 0 && m.signo <= 64, "signal %d", m.signo);
        if (!resend(mps__signal_encode(&m), MPS_OP_SIGNAL, &back))
                return;
        r = mps__signal_decode(back.json, &m2, err, sizeof(err));
        FUZZ_CHECK(r == 0, "re-encoded signal: %s", err);
        SAME(m.tag, m2.tag, "signal.tag");
        SAME(m.id, m2.id, "signal.id");
        SAME(m.signo, m2.signo, "signal.signal");
        SAME(m.group, m2.group, "signal.group");
        mps__msg_release(&back);
}

static void fuzz_signaled(const cJSON *json) {
        uint64_t tag = 12345, id = 67890, tag2, id2;
        struct mps__msg back;
        char err[256] = "";

        int r = mps__signaled_decode(json, &tag, &id, err, sizeof(err));
        if (r < 0) {
                FUZZ_CHECK(r == -EINVAL && err[0], "mps__signaled_decode: %d", r);
                FUZZ_CHECK(tag == 12345 && id == 67890,
                           "mps__signaled_decode changed its out-parameters");
                return;
        }
        if (!resend(mps__signaled_encode(tag, id), MPS_OP_SIGNALED, &back))
                return;
        r = mps__signaled_decode(back.json, &tag2, &id2, err, sizeof(err));
        FUZZ_CHECK(r == 0, "re-encoded signaled: %s", err);
        SAME(tag, tag2, "signaled.tag");
        SAME(id, id2, "signaled.id");
        mps__msg_release(&back);
}

static void fuzz_error(const cJSON *json) {
        struct mps__error m, before, m2;
        struct mps__msg back;
        char err[256] = "";

        memset(&m, 0x5a, sizeof(m));
        memcpy(&before, &m, sizeof(m));
        int r = mps__error_decode(json, &m, err, sizeof(err));
        if (r < 0) {
                CHECK_FAILURE(r, err, m, before, "mps__error_decode");
                return;
        }
        FUZZ_CHECK(m.err >= 1 && m.err <= 4095, "error errno %d", m.err);
        FUZZ_CHECK(m.stage && m.message, "error without stage or message");
        if (!resend(mps__error_encode(&m), MPS_OP_ERROR, &back))
                return;
        r = mps__error_decode(back.json, &m2, err, sizeof(err));
        FUZZ_CHECK(r == 0, "re-encoded error: %s", err);
        SAME(m.tag, m2.tag, "error.tag");
        /* The name is what travels, and an errno without one is sent as
         * EIO (the code beside it is only the receiver's fallback). */
        SAME(mps__errno_name(m.err) ? m.err : EIO, m2.err, "error.errno");
        SAME_STR(m.stage, m2.stage, "error.stage");
        SAME_STR(m.message, m2.message, "error.message");
        mps__msg_release(&back);
}

static void fuzz_wait(const cJSON *json, enum mps__op op) {
        struct mps__wait m, before, m2;
        struct mps__msg back;
        char err[256] = "";
        bool need_id = op == MPS_OP_WAIT;

        memset(&m, 0x5a, sizeof(m));
        memcpy(&before, &m, sizeof(m));
        int r = mps__wait_decode(json, need_id, &m, err, sizeof(err));
        if (r < 0) {
                CHECK_FAILURE(r, err, m, before, "mps__wait_decode");
                return;
        }
        if (!resend(mps__wait_encode(op, &m), op, &back))
                return;
        r = mps__wait_decode(back.json, need_id, &m2, err, sizeof(err));
        FUZZ_CHECK(r == 0, "re-encoded %s: %s", mps__op_name(op), err);
        SAME(m.tag, m2.tag, "wait.tag");
        if (need_id)
                SAME(m.id, m2.id, "wait.id");
        mps__msg_release(&back);
}

static void fuzz_jobs(const cJSON *json, uint64_t tag) {
        static struct mps__job_entry sentinel;
        struct mps__job_entry *v = &sentinel, *v2 = NULL;
        size_t n = 12345, n2 = 0;
        struct mps__msg back;
        char err[256] = "";

        int r = mps__jobs_decode(json, &v, &n, err, sizeof(err));
        if (r < 0) {
                FUZZ_CHECK((r == -EINVAL || r == -ENOMEM) && err[0],
                           "mps__jobs_decode: %d", r);
                FUZZ_CHECK(v == &sentinel && n == 12345,
                           "mps__jobs_decode changed its out-parameters");
                return;
        }
        cJSON *o = mps__jobs_encode(tag);
        FUZZ_CHECK(o, "mps__jobs_encode");
        for (size_t i = 0; i < n; i++) {
                FUZZ_CHECK(v[i].name && v[i].state && v[i].command,
                           "job entry %zu without strings", i);
                FUZZ_CHECK(v[i].pid >= 0, "job entry pid %d", (int)v[i].pid);
                FUZZ_CHECK(mps__jobs_add(o, &v[i]) == 0, "mps__jobs_add");
        }
        if (!resend(o, MPS_OP_JOBS, &back)) {
                free(v);
                return;
        }
        r = mps__jobs_decode(back.json, &v2, &n2, err, sizeof(err));
        FUZZ_CHECK(r == 0, "re-encoded jobs: %s", err);
        SAME(mps__wire_tag(back.json), tag, "jobs.tag");
        SAME(n, n2, "the number of jobs");
        for (size_t i = 0; i < n; i++) {
                SAME(v[i].id, v2[i].id, "job.id");
                SAME(v[i].pid, v2[i].pid, "job.pid");
                SAME_STR(v[i].name, v2[i].name, "job.name");
                SAME_STR(v[i].state, v2[i].state, "job.state");
                SAME_STR(v[i].command, v2[i].command, "job.command");
                SAME_NUM(v[i].runtime, v2[i].runtime, "job.runtime");
                SAME(v[i].daemon, v2[i].daemon, "job.daemon");
                /* An exit status is sent only for an exited job. */
                if (strcmp(v[i].state, "exited") == 0) {
                        SAME(v[i].exitcode, v2[i].exitcode, "job.exitcode");
                        SAME(v[i].timed_out, v2[i].timed_out, "job.timed_out");
                }
        }
        free(v);
        free(v2);
        mps__msg_release(&back);
}

static void fuzz_server_stats(const cJSON *json, uint64_t tag) {
        struct mps__server_stats m, before, m2;
        struct mps__msg back;
        char err[256] = "";

        memset(&m, 0x5a, sizeof(m));
        memcpy(&before, &m, sizeof(m));
        int r = mps__server_stats_decode(json, &m, err, sizeof(err));
        if (r < 0) {
                CHECK_FAILURE(r, err, m, before, "mps__server_stats_decode");
                return;
        }
        if (!resend(mps__server_stats_encode(tag, &m), MPS_OP_SERVER_STATS, &back))
                return;
        r = mps__server_stats_decode(back.json, &m2, err, sizeof(err));
        FUZZ_CHECK(r == 0, "re-encoded server_stats: %s", err);
        SAME(mps__wire_tag(back.json), tag, "server_stats.tag");
        SAME_NUM(m.uptime, m2.uptime, "uptime");
        SAME(m.clients, m2.clients, "clients");
        SAME(m.jobs_started, m2.jobs_started, "jobs_started");
        SAME(m.jobs_running, m2.jobs_running, "jobs_running");
        SAME(m.jobs_failed, m2.jobs_failed, "jobs_failed");
        SAME(m.exits_zero, m2.exits_zero, "exits_zero");
        SAME(m.exits_nonzero, m2.exits_nonzero, "exits_nonzero");
        SAME(m.signaled, m2.signaled, "signaled");
        SAME(m.timed_out, m2.timed_out, "timed_out");
        SAME(m.latency_samples, m2.latency_samples, "latency_samples");
        SAME_NUM(m.latency_p50, m2.latency_p50, "latency_p50");
        SAME_NUM(m.latency_p90, m2.latency_p90, "latency_p90");
        SAME_NUM(m.latency_p99, m2.latency_p99, "latency_p99");
        SAME_NUM(m.latency_max, m2.latency_max, "latency_max");
        SAME(m.preloaded, m2.preloaded, "preloaded");
        SAME(m.preloaded_rss_kib, m2.preloaded_rss_kib, "preloaded_rss_kib");
        SAME(m.prefork_idle, m2.prefork_idle, "prefork_idle");
        SAME(m.policy_compiles, m2.policy_compiles, "policy_compiles");
        SAME(m.policy_cache_hits, m2.policy_cache_hits, "policy_cache_hits");
        mps__msg_release(&back);
}

/* ---- the receive path ------------------------------------------------------------ */

/*
 * Receives what was just sent. Returns mps__wire_recv's result, checking
 * the contract around it: the datagram as received, the op and tag, and a
 * reason on failure.
 */
static int receive(const uint8_t *data, size_t size, size_t nattach,
                   struct mps__msg *msg) {
        char err[256] = "";
        uint64_t tag = 0x5a5a5a5a;

        int r = mps__wire_recv(sock[1], msg, err, sizeof(err), &tag);
        FUZZ_CHECK(r == 1 || r == 0 || r == -EBADMSG || r == -EPROTO,
                   "mps__wire_recv returned %d (%s)", r, err);
        if (size > MPS_WIRE_MSG_MAX)
                FUZZ_CHECK(r == -EBADMSG, "%zu bytes accepted", size);
        if (r == 0)
                FUZZ_CHECK(size == 0 && nattach == 0,
                           "end of stream for a datagram of %zu bytes", size);
        if (r < 0) {
                FUZZ_CHECK(err[0], "mps__wire_recv failed with no reason");
                FUZZ_CHECK(!msg->json && msg->nfds == 0,
                           "a refused message kept its tree or descriptors");
        }
        if (r != 1)
                return r;
        FUZZ_CHECK(cJSON_IsObject(msg->json), "accepted a non-object");
        FUZZ_CHECK(msg->rawlen == size && memcmp(msg->raw, data, size) == 0,
                   "raw is not the datagram");
        FUZZ_CHECK(msg->nfds == nattach, "%zu fds sent, %zu received", nattach,
                   msg->nfds);
        FUZZ_CHECK(msg->op != MPS_OP_UNKNOWN, "accepted an unknown op");
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(msg->json, "op");
        FUZZ_CHECK(cJSON_IsString(op) &&
                           strcmp(op->valuestring, mps__op_name(msg->op)) == 0,
                   "op %d is not the message's", msg->op);
        FUZZ_CHECK(tag == msg->tag && tag == mps__wire_tag(msg->json),
                   "tag %llu, message tag %llu", (unsigned long long)tag,
                   (unsigned long long)msg->tag);
        FUZZ_CHECK(tag <= 9007199254740991ull, "tag %llu", (unsigned long long)tag);
        return r;
}

/* The bounds of the receive path, once: a message of exactly
 * MPS_WIRE_MSG_MAX bytes passes, one byte more does not, and descriptors
 * beyond MPS_WIRE_FDS_MAX refuse the message and are all closed. */
static void check_bounds_once(void) {
        static const char head[] = "{\"v\":1,\"op\":\"list\",\"tag\":1,\"pad\":\"";
        size_t len = MPS_WIRE_MSG_MAX;
        char *big = malloc(len + 1);
        struct mps__msg msg;
        int low = lowest_free_fd();

        FUZZ_CHECK(big, "out of memory");
        memset(big, 'x', len + 1);
        memcpy(big, head, sizeof(head) - 1);
        memcpy(big + len - 2, "\"}", 2);
        FUZZ_CHECK(send_datagram(big, len, 1) == 0, "send");
        FUZZ_CHECK(receive((const uint8_t *)big, len, 1, &msg) == 1,
                   "a message of MPS_WIRE_MSG_MAX bytes refused");
        mps__msg_release(&msg);
        big[len - 1] = ' ';
        big[len] = '}';
        FUZZ_CHECK(send_datagram(big, len + 1, 2) == 0, "send");
        FUZZ_CHECK(receive((const uint8_t *)big, len + 1, 2, &msg) == -EBADMSG,
                   "a message of MPS_WIRE_MSG_MAX + 1 bytes accepted");
        free(big);
        static const char list[] = "{\"v\":1,\"op\":\"list\",\"tag\":1}";
        FUZZ_CHECK(send_datagram(list, strlen(list), MPS_WIRE_FDS_MAX + 1) == 0,
                   "send");
        FUZZ_CHECK(receive((const uint8_t *)list, strlen(list),
                           MPS_WIRE_FDS_MAX + 1, &msg) == -EBADMSG,
                   "%d descriptors accepted", MPS_WIRE_FDS_MAX + 1);
        FUZZ_CHECK(lowest_free_fd() == low, "descriptors leaked");
}

static void setup_once(void) {
        if (sock[0] >= 0)
                return;
        FUZZ_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sock) == 0,
                   "socketpair: %s", strerror(errno));
        devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        FUZZ_CHECK(devnull >= 0, "/dev/null: %s", strerror(errno));
        check_bounds_once();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct mps__msg msg;

        setup_once();
        int low = lowest_free_fd();
        /* Descriptors ride along on some messages (a function of the
         * length, so the input stays a plain datagram): their collection
         * and closing are part of every path. */
        size_t nattach = size % 4;
        int r = send_datagram(data, size, nattach);
        if (r == -EMSGSIZE || r == -ENOBUFS)
                return 0; /* more than the socket takes: no message at all */
        FUZZ_CHECK(r == 0, "sendmsg: %s", strerror(-r));

        if (receive(data, size, nattach, &msg) == 1) {
                fuzz_hello(msg.json);
                fuzz_welcome(msg.json);
                fuzz_spawn(msg.json, msg.nfds);
                fuzz_spawn_carrier(msg.json, msg.nfds);
                fuzz_env(msg.json);
                fuzz_spawn_batch(msg.json, msg.nfds);
                fuzz_spawned(msg.json);
                fuzz_exited(msg.json);
                fuzz_signal(msg.json);
                fuzz_signaled(msg.json);
                fuzz_error(msg.json);
                /* wait needs an id, list and stats take none. */
                fuzz_wait(msg.json, MPS_OP_WAIT);
                fuzz_wait(msg.json, msg.op == MPS_OP_STATS ? MPS_OP_STATS
                                                           : MPS_OP_LIST);
                fuzz_jobs(msg.json, msg.tag);
                fuzz_server_stats(msg.json, msg.tag);
                mps__msg_release(&msg);
        }
        FUZZ_CHECK(lowest_free_fd() == low, "a descriptor leaked");
        return 0;
}
