/* SPDX-License-Identifier: MIT */
/*
 * process.c: process handles, the multiprocessing.Process model.
 *
 * A handle goes NEW -> STARTING -> RUNNING -> ENDED, or STARTING -> FAILED
 * when the server could not exec the program, or to LOST when the
 * connection goes first. The server's pidfd is kept as the sentinel: it
 * polls readable once the job has ended, and signals reach exactly this job
 * with no pid-reuse window.
 *
 * Where the kernel keeps a reaped process's status for pidfds (Linux 6.15,
 * pidfd_exit.h), a join or a sentinel check that sees the job reaped reads
 * its exit code there: RUNNING -> EXITED, without waiting for the server,
 * which sends its record ("exited": rusage, wall time, timed_out, a call's
 * result) right after that reap. The record then makes it ENDED, keeping
 * the exit code already seen (the server's is the same wait status), and
 * only then runs the change hook (the Pool's), once. What needs the record
 * (mps_exit_info_get, mps_result, mps_result_error) waits for it. A loss
 * of the connection leaves EXITED as it is: the end was seen, the record
 * is lost. The server's status is the one of the pid we hold for every job
 * whose pidfd it sends (exec, call, pre-forked, terminal and kill_tree jobs
 * alike: it reports its direct child's wait status); a pidfd we opened
 * ourselves (a server without pidfds) may be of a reused pid, and a
 * detached job has no record: both keep to the server's word.
 *
 * Threads: every state field is guarded by the client's lock; the reader
 * (see client.c) changes them as messages arrive and wakes the threads
 * waiting on that process.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fdutil.h"
#include "lib.h"
#include "pidfd_exit.h"

MPS_API int mps_process_new(mps_client *c, const mps_spec *spec,
                            mps_process **ret_process) {
        if (!c || !spec || !ret_process)
                return -EINVAL;
        if (!spec->spawn.path && !spec->spawn.call_entry) {
                mps__client_set_error(c, "the spec names no program (mps_spec_set_exec) "
                                         "nor entry point (mps_spec_set_call)");
                return -EINVAL;
        }
        mps__client_lock(c);
        int r = mps__client_check_forked(c);
        mps__client_unlock(c);
        if (r < 0)
                return r;
        mps_process *p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        r = mps__spec_copy(spec, &p->spec);
        if (r < 0) {
                free(p);
                return r;
        }
        p->pidfd = -1;
        p->client = c;
        mps__list_init(&p->deferred_node);
        mps__client_lock(c);
        mps__client_ref_locked(c);
        mps__client_unlock(c);
        *ret_process = p;
        return 0;
}

/* The caller's stdio fd as it will be sent; closed, it stays closed in the
 * job as with a direct exec (MPS_WIRE_FD_CLOSED), or is /dev/null (-1) with
 * a server too old to know that. */
static int usable_fd(const mps_client *c, int fd) {
        if (fcntl(fd, F_GETFD) >= 0)
                return fd;
        return c->features & MPS_FEATURE_CLOSED_FDS ? MPS_WIRE_FD_CLOSED : -1;
}

/* An older server would ignore what it does not know: refuse here. */
static int check_features(mps_client *c, const struct mps__spawn *m) {
        unsigned missing = mps__spawn_features(m) & ~c->features;
        if (!missing)
                return 0;
        mps__client_set_error(c, "the forkserver (version %s) does not support %s",
                              c->server_version,
                              mps__feature_description(missing & -missing));
        return -EOPNOTSUPP;
}

/* The fds a start sends and how the job installs them: one entry per
 * target fd at most, and the working directory's. */
struct start_fds {
        struct mps__fd_map map[MPS_WIRE_FDMAP_MAX];
        size_t nmap;
        int fds[MPS_WIRE_SPAWN_FDS_MAX];
        size_t nfds;
};

/* Maps the job's fd target to the caller's fd src (-1: none; or
 * MPS_WIRE_FD_CLOSED). */
static int add_fd(struct start_fds *f, int target, int src) {
        if ((src >= 0 && f->nfds >= MPS_WIRE_SPAWN_FDS_MAX) || f->nmap >= MPS_WIRE_FDMAP_MAX)
                return -EMFILE;
        f->map[f->nmap].target = target;
        f->map[f->nmap].source = src >= 0 ? (int)f->nfds : src < -1 ? src : -1;
        if (src >= 0)
                f->fds[f->nfds++] = src;
        f->nmap++;
        return 0;
}

/* The spec's fd map, then the caller's 0, 1 and 2 where the spec says
 * nothing about them. */
static int build_fds(mps_client *c, const mps_spec *s, struct start_fds *f) {
        bool mapped[3] = {false, false, false};
        int r;
        f->nmap = f->nfds = 0;
        for (size_t i = 0; i < s->nfds; i++) {
                int src = s->fds[i].caller_fd;
                if (s->fds[i].child_fd <= 2)
                        mapped[s->fds[i].child_fd] = true;
                if (src >= 0 && fcntl(src, F_GETFD) < 0) {
                        mps__client_set_error(c, "fd %d, to be the job's fd %d, is not open",
                                              src, s->fds[i].child_fd);
                        return -EBADF;
                }
                if ((r = add_fd(f, s->fds[i].child_fd, src)) < 0)
                        return r;
        }
        for (int t = 0; t <= 2; t++)
                if (!mapped[t] && (r = add_fd(f, t, usable_fd(c, t))) < 0)
                        return r;
        return 0;
}

/* The server has a working directory of its own: the job gets an absolute
 * one, the caller's, or the spec's made absolute against it. *ret_dir is
 * dir itself or buf. */
static int absolute_cwd(mps_client *c, const char *dir, char *buf, size_t len,
                        const char **ret_dir) {
        if (dir && dir[0] == '/') {
                *ret_dir = dir;
                return 0;
        }
        if (!getcwd(buf, len)) {
                int r = -errno;
                /* Deleted (or unreachable from our root): a direct exec would
                 * start there, and so does the job, given the directory as a
                 * descriptor with no path (add_cwd_fd) by a server that takes
                 * one. */
                if (r == -ENOENT && (c->features & MPS_FEATURE_CWD_FD)) {
                        *ret_dir = NULL;
                        return 0;
                }
                mps__client_set_error(c, "cannot read the current directory: %s",
                                      strerror(-r));
                return r;
        }
        if (dir) {
                size_t n = strlen(buf);
                if (n + 1 + strlen(dir) + 1 > len) {
                        mps__client_set_error(c, "working directory '%s' is too long", dir);
                        return -ENAMETOOLONG;
                }
                snprintf(buf + n, len - n, "%s%s", n > 1 ? "/" : "", dir);
        }
        *ret_dir = buf;
        return 0;
}

/*
 * The job's working directory as a descriptor (O_PATH) of the caller's:
 * the spec's, relative to ours, or ours. The job then starts in the very
 * directory the caller names, in the caller's mount namespace, with no
 * path looked up again by the server. Only for a server that takes one and
 * while the message has room; a directory that cannot be opened here goes
 * as a path, as to older servers, and the server reports it as before
 * (stage "chdir"). Returns the fd to close after sending, or -1.
 */
static int add_cwd_fd(const mps_client *c, const char *dir, struct start_fds *f,
                      struct mps__spawn *msg) {
        size_t room = c->features & MPS_FEATURE_FD_BUNDLE ? MPS_WIRE_SPAWN_FDS_MAX
                                                          : MPS_WIRE_FDS_MAX;
        if (!(c->features & MPS_FEATURE_CWD_FD) || f->nfds >= room)
                return -1;
        int fd = open(dir ? dir : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        msg->has_cwd_fd = true;
        msg->cwd_fd = (int)f->nfds;
        f->fds[f->nfds++] = fd;
        return fd;
}

/* A request as it goes out: its text, the descriptors attached, and the
 * memfd and bundle socket it may carry (closed once sent). */
struct outgoing {
        char *text; /* cJSON_free */
        size_t len;
        int fds[MPS_WIRE_FDS_MAX];
        size_t nfds;
        int memfd, bundle;
};

static void outgoing_done(struct outgoing *o) {
        cJSON_free(o->text);
        mps__safe_close(o->memfd);
        mps__safe_close(o->bundle);
}

/* Prints json into o->text; -EMSGSIZE past what even a memfd may hold. */
static int print_request(const cJSON *json, struct outgoing *o) {
        cJSON_free(o->text);
        o->text = cJSON_PrintUnformatted(json);
        if (!o->text)
                return -ENOMEM;
        o->len = strlen(o->text);
        return o->len > MPS_WIRE_SPEC_MAX ? -EMSGSIZE : 0;
}

/* The descriptors past the first `keep` go into a bundle socket, which the
 * request names as its last descriptor. */
static int bundle_rest(mps_client *c, const struct start_fds *f, size_t keep,
                       struct outgoing *o, struct mps__spawn_carrier *k) {
        if (!(c->features & MPS_FEATURE_FD_BUNDLE)) {
                mps__client_set_error(c, "the job is given %zu descriptors, and the forkserver "
                                         "(version %s) takes at most %d",
                                      f->nfds, c->server_version, MPS_WIRE_FDS_MAX);
                return -EMFILE;
        }
        o->bundle = mps__wire_bundle_make(f->fds + keep, f->nfds - keep);
        if (o->bundle < 0) {
                int r = o->bundle;
                mps__client_set_error(c, "cannot pass %zu descriptors: %s", f->nfds,
                                      r == -ETOOMANYREFS ? "too many descriptors in flight "
                                                           "for this user (RLIMIT_NOFILE)"
                                                         : strerror(-r));
                return r;
        }
        k->has_bundle = true;
        k->bundle_nfds = f->nfds - keep;
        return 0;
}

/*
 * The request for spawn m with the descriptors f. One datagram when it
 * fits; else the spec goes into a sealed memfd and the datagram only names
 * it, and descriptors past what a datagram carries go into a bundle
 * (docs/protocol.md). The memfd and bundle descriptors come last in the
 * datagram, so the fd map's indices stay those of f.
 */
static int build_request(mps_client *c, const struct mps__spawn *m,
                         const struct start_fds *f, struct outgoing *o) {
        struct mps__spawn_carrier k = {0};
        cJSON *json = mps__spawn_encode(m);
        if (!json)
                return -ENOMEM;
        int r = print_request(json, o);
        size_t keep = f->nfds;
        if (r == 0 && o->len <= MPS_WIRE_MSG_MAX && f->nfds > MPS_WIRE_FDS_MAX) {
                /* Room for the bundle socket itself. */
                keep = MPS_WIRE_FDS_MAX - 1;
                if ((r = bundle_rest(c, f, keep, o, &k)) == 0) {
                        k.bundle = (int)keep;
                        r = mps__spawn_carrier_encode(json, m->tag, &k) ? print_request(json, o)
                                                                      : -ENOMEM;
                }
        }
        cJSON_Delete(json);
        if (r == 0 && o->len > MPS_WIRE_MSG_MAX) {
                /* (The bundle, if one was made for a datagram that turned
                 * out too long, is made again for this layout.) */
                o->bundle = mps__safe_close(o->bundle);
                k = (struct mps__spawn_carrier){0};
                if (!(c->features & MPS_FEATURE_SPEC_MEMFD)) {
                        mps__client_set_error(c, "the job's spec is %zu bytes, and the forkserver "
                                                 "(version %s) takes at most %d",
                                              o->len, c->server_version, MPS_WIRE_MSG_MAX);
                        return -E2BIG;
                }
                keep = f->nfds <= MPS_WIRE_FDS_MAX - 1 ? f->nfds : MPS_WIRE_FDS_MAX - 2;
                if (keep < f->nfds && (r = bundle_rest(c, f, keep, o, &k)) < 0)
                        return r;
                if ((o->memfd = mps__wire_spec_memfd(o->text, o->len)) < 0) {
                        r = o->memfd;
                        mps__client_set_error(c, "cannot pass the job's spec (%zu bytes) in a "
                                                 "memfd: %s", o->len, strerror(-r));
                        return r;
                }
                k.has_memfd = true;
                k.memfd = (int)keep;
                k.bundle = (int)keep + 1;
                json = mps__spawn_carrier_encode(NULL, m->tag, &k);
                r = json ? print_request(json, o) : -ENOMEM;
                cJSON_Delete(json);
        }
        if (r == -EMSGSIZE)
                mps__client_set_error(c, "the job's spec exceeds %u bytes, the most a "
                                         "forkserver takes", MPS_WIRE_SPEC_MAX);
        if (r < 0)
                return r == -EMSGSIZE ? -E2BIG : r;
        memcpy(o->fds, f->fds, keep * sizeof(int));
        o->nfds = keep;
        if (o->memfd >= 0)
                o->fds[o->nfds++] = o->memfd;
        if (o->bundle >= 0)
                o->fds[o->nfds++] = o->bundle;
        return 0;
}

/* Registers p under its tag, STARTING, before its request goes out: once
 * the request is out the job may run, and the reader (perhaps another
 * thread) must find this handle waiting for its replies. */
static int start_register(mps_process *p) {
        mps_client *c = p->client;
        mps__client_lock(c);
        int r = mps__client_check_forked(c);
        if (r == 0 && (c->closed || c->broken)) {
                mps__client_set_error(c, "the client is not connected");
                r = -ENOTCONN;
        }
        if (r == 0 && (r = mps__idmap_put(&c->inflight, p->tag, p)) == 0)
                p->state = PROC_STARTING;
        mps__client_unlock(c);
        return r;
}

/*
 * After the send of p's request (registered on c under tag) returned r: p
 * is NEW again when it did not go out, unless the connection was marked
 * lost meanwhile (that loss reports this start, once). p is not touched
 * unless it is still registered: once its request is out, or the loss has
 * taken it, the reader may end it and free it (a Pool's task) at any time,
 * so c and tag are read before the send.
 */
static int start_sent(mps_client *c, mps_process *p, uint64_t tag, int r) {
        if (r == 0)
                return 0;
        mps__client_lock(c);
        if (mps__idmap_get(&c->inflight, tag) == p) {
                mps__idmap_remove(&c->inflight, tag);
                p->state = PROC_NEW;
        } else {
                r = 0;
        }
        mps__client_unlock(c);
        return r;
}

/* A start on its way out: what its request needs until it is sent. */
struct start_request {
        struct start_fds f;
        char cwd[PATH_MAX];
        char **envp;
        int dirfd;
        int slot; /* the stored environment it names, or -1 */
        struct outgoing o;
};

static void start_request_done(mps_client *c, struct start_request *q) {
        outgoing_done(&q->o);
        mps__envcache_detach(c, q->slot);
        mps__safe_close(q->dirfd);
        mps__strv_free(q->envp);
}

/* Sends p's request alone, p registered already. */
static int send_registered(mps_process *p, const struct start_request *q) {
        mps_client *c = p->client;
        uint64_t tag = p->tag;
        return start_sent(c, p, tag, mps__client_send_raw(c, q->o.text, q->o.len, q->o.fds,
                                                          q->o.nfds));
}

/* Registers p and sends its request, alone. */
static int send_spawn(mps_process *p, const struct start_request *q) {
        int r = start_register(p);
        return r < 0 ? r : send_registered(p, q);
}

/*
 * The kernel's limit on the job's argument area, as execve counts it: a
 * quarter of the stack limit (the job's, which is its client's unless the
 * spec sets one), at least ARG_MAX's 32 pages and at most 6 MiB. For the
 * caller's own stack limit this is sysconf(_SC_ARG_MAX).
 */
static size_t job_arg_max(const mps_spec *s) {
        long own = sysconf(_SC_ARG_MAX);
        size_t limit = own > 0 ? (size_t)own : 131072;
        for (size_t i = 0; i < s->spawn.nrlimits; i++)
                if (s->spawn.rlimits[i].resource == RLIMIT_STACK)
                        limit = s->spawn.rlimits[i].soft == RLIM_INFINITY
                                ? SIZE_MAX
                                : (size_t)(s->spawn.rlimits[i].soft / 4);
        if (limit > (6u << 20))
                limit = 6u << 20;
        return limit < 131072 ? 131072 : limit;
}

/* The start fails as the exec would, at the "exec" stage, with -E2BIG. */
static int too_big(mps_process *p) {
        mps__client_lock(p->client);
        p->state = PROC_FAILED;
        p->start_error = E2BIG;
        snprintf(p->start_stage, sizeof(p->start_stage), "exec");
        mps__client_unlock(p->client);
        return -E2BIG;
}

/*
 * Refuses what execve would refuse with E2BIG, before anything is sent,
 * with the sizes: an argument or environment string of more than
 * MAX_ARG_STRLEN bytes, or strings and their pointers together past
 * job_arg_max. The kernel counts each string with its NUL and a pointer
 * to each (it also copies the program's path, which is not counted here).
 */
static int check_arg_size(mps_process *p, const char *const *argv, char *const *envp) {
        mps_client *c = p->client;
        size_t total = 0, limit = job_arg_max(p->spec);
        for (int pass = 0; pass < 2; pass++) {
                const char *const *v = pass == 0 ? argv : (const char *const *)envp;
                for (size_t i = 0; v[i]; i++) {
                        size_t n = strlen(v[i]) + 1;
                        if (n > MPS_WIRE_ARG_STRLEN_MAX) {
                                mps__client_set_error(c, "cannot execute '%s': %s: %s %zu is "
                                                         "%zu bytes; the limit of one string "
                                                         "(MAX_ARG_STRLEN) is %d",
                                                      p->spec->spawn.path, strerror(E2BIG),
                                                      pass == 0 ? "argument" : "environment entry",
                                                      i, n, MPS_WIRE_ARG_STRLEN_MAX);
                                return too_big(p);
                        }
                        total += n + sizeof(void *);
                }
        }
        if (total <= limit)
                return 0;
        mps__client_set_error(c, "cannot execute '%s': %s: argument list and environment are "
                                 "%zu bytes; the limit (ARG_MAX) is %zu",
                              p->spec->spawn.path, strerror(E2BIG), total, limit);
        return too_big(p);
}

static int send_start(mps_process *p);

/* A start that fails here keeps its message in the process too, for a
 * Pool's error callback. */
int mps__process_send_start(mps_process *p) {
        int r = send_start(p);
        if (r < 0)
                mps__client_copy_error(p->start_message, sizeof(p->start_message));
        return r;
}

/* Everything p's request needs, up to its text and descriptors (q->o);
 * q is released on failure. */
static int start_request_build(mps_process *p, struct start_request *q) {
        mps_client *c = p->client;
        const mps_spec *s = p->spec;
        const char *dir = NULL;
        size_t envc;
        int r;

        q->envp = NULL;
        q->dirfd = q->slot = -1;
        q->o = (struct outgoing){.memfd = -1, .bundle = -1};
        mps__client_lock(c);
        if ((r = mps__client_check_forked(c)) == 0 && p->state != PROC_NEW) {
                mps__client_set_error(c, "a process can be started only once");
                r = -EALREADY;
        }
        if (r == 0 && (c->closed || c->broken)) {
                mps__client_set_error(c, "the client is not connected");
                r = -ENOTCONN;
        }
        /* Tags under the lock: any thread may start at the same time. A
         * second start keeps the first one's, under which the process
         * stays registered until its record comes (the record may come
         * after a join that read the exit from the pidfd). */
        if (r == 0)
                p->tag = ++c->next_tag;
        mps__client_unlock(c);
        if (r < 0)
                return r;
        if ((r = check_features(c, &s->spawn)) < 0 || (r = build_fds(c, s, &q->f)) < 0 ||
            (r = absolute_cwd(c, s->spawn.cwd, q->cwd, sizeof(q->cwd), &dir)) < 0)
                return r;
        if ((r = mps__spec_build_env(s, &q->envp, &envc)) < 0) {
                mps__client_set_error(c, "cannot build the environment: %s", strerror(-r));
                return r;
        }
        if (s->spawn.path && (r = check_arg_size(p, s->spawn.argv, q->envp)) < 0) {
                start_request_done(c, q);
                return r;
        }
        /* The spec's job as it stands, plus what belongs to this start. */
        struct mps__spawn msg = s->spawn;
        msg.tag = p->tag;
        msg.envp = (const char **)q->envp;
        msg.envc = envc;
        msg.cwd = dir;
        msg.fdmap = q->f.map;
        msg.nfdmap = q->f.nmap;
        msg.want_pidfd = true;
        q->dirfd = add_cwd_fd(c, s->spawn.cwd, &q->f, &msg);
        if (!dir && q->dirfd < 0) {
                /* No path, and no descriptor either. */
                mps__client_set_error(c, "cannot read the current directory: %s",
                                      strerror(ENOENT));
                start_request_done(c, q);
                return -ENOENT;
        }
        /* A stored environment in place of envp, when the server has one. */
        if ((r = mps__envcache_attach(c, &msg, &q->slot)) == 0)
                r = build_request(c, &msg, &q->f, &q->o);
        if (r < 0)
                start_request_done(c, q);
        return r;
}

static int send_start(mps_process *p) {
        /* Read before the send: once the request is out, p may end and be
         * freed on the reader's thread (a Pool's task) before it returns. */
        mps_client *c = p->client;
        struct start_request q;
        int r = start_request_build(p, &q);
        if (r == 0) {
                r = send_spawn(p, &q);
                start_request_done(c, &q);
        }
        return r;
}

/* ---- starts in batches (spawn_batch) ---------------------------------------- */

/* A spawn_batch request being put together: its members' indices, and
 * what their requests add up to. */
struct batch {
        size_t member[MPS_WIRE_BATCH_MAX];
        size_t count, nfds, bytes;
};

/* The envelope around the jobs' texts, and what each job adds to it (a
 * comma, its descriptor count and a comma). */
#define BATCH_ENVELOPE_BYTES 96
#define BATCH_JOB_BYTES 8

static int start_failed(mps_process *p, int r) {
        mps__client_copy_error(p->start_message, sizeof(p->start_message));
        return r;
}

/* {"v":1,"op":"spawn_batch","tag":T,"nfds":[..],"jobs":[..]}, the jobs'
 * texts as they are; NULL when out of memory. */
static char *batch_text(uint64_t tag, struct start_request *const *q, size_t n,
                        size_t bytes, size_t *ret_len) {
        char *text = malloc(bytes);
        if (!text)
                return NULL;
        size_t len = (size_t)snprintf(text, bytes,
                                      "{\"v\":%d,\"op\":\"spawn_batch\",\"tag\":%llu,\"nfds\":[",
                                      MPS_PROTOCOL_VERSION, (unsigned long long)tag);
        for (size_t i = 0; i < n; i++)
                len += (size_t)snprintf(text + len, bytes - len, "%s%zu", i ? "," : "",
                                        q[i]->o.nfds);
        len += (size_t)snprintf(text + len, bytes - len, "],\"jobs\":[");
        for (size_t i = 0; i < n; i++) {
                if (i)
                        text[len++] = ',';
                memcpy(text + len, q[i]->o.text, q[i]->o.len);
                len += q[i]->o.len;
        }
        memcpy(text + len, "]}", 3);
        *ret_len = len + 2;
        return text;
}

/* Sends b's members in one request (or alone, when one is left), and
 * releases their requests. */
static void batch_send(mps_client *c, mps_process *const *procs, struct start_request *q,
                       struct batch *b, int *results) {
        struct start_request *out[MPS_WIRE_BATCH_MAX];
        uint64_t tags[MPS_WIRE_BATCH_MAX];
        size_t sent[MPS_WIRE_BATCH_MAX], n = 0, nfds = 0;
        int fds[MPS_WIRE_FDS_MAX];
        for (size_t i = 0; i < b->count; i++) {
                size_t m = b->member[i];
                int r = start_register(procs[m]);
                if (r < 0) {
                        results[m] = start_failed(procs[m], r);
                        continue;
                }
                memcpy(fds + nfds, q[m].o.fds, q[m].o.nfds * sizeof(int));
                nfds += q[m].o.nfds;
                out[n] = &q[m];
                tags[n] = procs[m]->tag;
                sent[n++] = m;
        }
        if (n == 1 && (results[sent[0]] = send_registered(procs[sent[0]], out[0])) < 0) {
                start_failed(procs[sent[0]], results[sent[0]]);
        } else if (n > 1) {
                size_t len = 0;
                mps__client_lock(c);
                uint64_t tag = ++c->next_tag;
                mps__client_unlock(c);
                char *text = batch_text(tag, out, n, b->bytes, &len);
                int r = text ? mps__client_send_raw(c, text, len, fds, nfds) : -ENOMEM;
                free(text);
                if (r == 0) {
                        mps__client_lock(c);
                        c->batches++;
                        mps__client_unlock(c);
                }
                for (size_t i = 0; i < n; i++)
                        if ((results[sent[i]] = start_sent(c, procs[sent[i]], tags[i], r)) < 0)
                                start_failed(procs[sent[i]], r);
        }
        for (size_t i = 0; i < b->count; i++)
                start_request_done(c, &q[b->member[i]]);
        *b = (struct batch){.bytes = BATCH_ENVELOPE_BYTES};
}

void mps__process_send_start_batch(mps_process *const *procs, size_t n, int *results) {
        mps_client *c = n > 0 ? procs[0]->client : NULL;
        /* Not zeroed: start_request_build sets what is read, and most of
         * each (16 KiB of fd map room and a path) stays untouched. */
        struct start_request *q = n > 1 && (c->features & MPS_FEATURE_SPAWN_BATCH)
                                          ? malloc(n * sizeof(*q))
                                          : NULL;
        if (!q) {
                for (size_t i = 0; i < n; i++)
                        results[i] = mps__process_send_start(procs[i]);
                return;
        }
        struct batch b = {.bytes = BATCH_ENVELOPE_BYTES};
        for (size_t i = 0; i < n; i++) {
                int r = start_request_build(procs[i], &q[i]);
                if (r < 0) {
                        results[i] = start_failed(procs[i], r);
                        continue;
                }
                const struct outgoing *o = &q[i].o;
                if (o->memfd >= 0 || o->bundle >= 0) {
                        /* A request of its own is what a memfd or a bundle names. */
                        if ((results[i] = send_spawn(procs[i], &q[i])) < 0)
                                start_failed(procs[i], results[i]);
                        start_request_done(c, &q[i]);
                        continue;
                }
                if (b.count > 0 && (b.nfds + o->nfds > MPS_WIRE_FDS_MAX ||
                                    b.bytes + o->len + BATCH_JOB_BYTES > MPS_WIRE_MSG_MAX))
                        batch_send(c, procs, q, &b, results);
                b.member[b.count++] = i;
                b.nfds += o->nfds;
                b.bytes += o->len + BATCH_JOB_BYTES;
                if (b.count == MPS_WIRE_BATCH_MAX)
                        batch_send(c, procs, q, &b, results);
        }
        if (b.count > 0)
                batch_send(c, procs, q, &b, results);
        free(q);
}

static bool started(void *arg) {
        return ((mps_process *)arg)->state != PROC_STARTING;
}

static bool ended(void *arg) {
        enum proc_state s = ((mps_process *)arg)->state;
        return s != PROC_STARTING && s != PROC_RUNNING;
}

/* With the lock held: the error of a start that failed or was lost, with
 * its message for this thread (the reader that learnt it may be another). */
static int start_outcome(mps_process *p) {
        if (p->state == PROC_FAILED) {
                mps__client_set_error(p->client, "%s", p->start_message);
                return -p->start_error;
        }
        if (p->state == PROC_LOST) {
                mps__client_set_error(p->client, "%s", p->client->broken_reason);
                return -ENOTCONN;
        }
        return 0;
}

MPS_API int mps_start(mps_process *p) {
        if (!p)
                return -EINVAL;
        int r = mps__process_send_start(p);
        if (r < 0)
                return r;
        mps__client_lock(p->client);
        r = mps__client_wait_until(p->client, started, p, p, 0);
        if (r == 0)
                r = start_outcome(p);
        mps__client_unlock(p->client);
        return r;
}

mps_exit_info mps__exit_info_of(const struct mps__exited *e) {
        return (mps_exit_info){
                .exitcode = e->exitcode,
                .core_dumped = e->core_dumped,
                .timed_out = e->timed_out,
                .user_seconds = e->utime,
                .system_seconds = e->stime,
                .max_rss_kib = e->maxrss_kib,
                .wall_seconds = e->wall,
        };
}

/* p's state changed: its waiters wake, and its hook is queued for the
 * reader to run once the lock is released. */
static void changed(mps_process *p) {
        mps__client_wake(p->client, p);
        mps__client_defer(p->client, p);
}

void mps__process_on_msg(mps_client *c, struct mps__msg *msg) {
        char err[256];
        switch (msg->op) {
        case MPS_OP_SPAWNED: {
                struct mps__spawned s;
                if (mps__spawned_decode(msg->json, &s, err, sizeof(err)) < 0)
                        return;
                mps_process *p = mps__idmap_get(&c->inflight, s.tag);
                if (!p || p->state != PROC_STARTING)
                        return;
                p->id = s.id;
                p->pid = s.pid;
                if (s.has_pidfd && msg->nfds > 0) {
                        p->pidfd = msg->fds[0];
                        msg->fds[0] = -1; /* taken */
                        p->pidfd_exit = c->pidfd_exit && !p->spec->spawn.detached;
                } else {
                        /* A server without pidfds (old kernel, valgrind):
                         * open one ourselves. The server reaps as soon as
                         * the job ends, so this is only as good as a pid. */
                        p->pidfd = mps__fd_move_at_least(pidfd_open(s.pid, 0), 3);
                }
                if (p->spec->spawn.detached) {
                        /* Nothing more will come about it. */
                        mps__idmap_remove(&c->inflight, s.tag);
                        p->state = PROC_DETACHED;
                } else {
                        p->state = PROC_RUNNING;
                }
                mps__client_wake(c, p);
                break;
        }
        case MPS_OP_EXITED: {
                struct mps__exited e;
                if (mps__exited_decode(msg->json, &e, err, sizeof(err)) < 0)
                        return;
                mps_process *p = mps__idmap_get(&c->inflight, e.tag);
                if (!p || (p->state != PROC_RUNNING && p->state != PROC_EXITED))
                        return;
                mps__idmap_remove(&c->inflight, e.tag);
                mps_exit_info info = mps__exit_info_of(&e);
                if (p->state == PROC_EXITED) {
                        /* What callers have seen stays (and is the same). */
                        info.exitcode = p->info.exitcode;
                        info.core_dumped = p->info.core_dumped;
                }
                p->info = info;
                /* Out of memory, a result is lost: the exit is not. */
                p->result = e.result_value ? cJSON_PrintUnformatted(e.result_value) : NULL;
                p->result_error = e.failure ? strdup(e.failure) : NULL;
                p->state = PROC_ENDED;
                p->stop_signal = 0;
                changed(p);
                break;
        }
        case MPS_OP_STOPPED:
        case MPS_OP_CONTINUED: {
                struct mps__stop_report sr;
                if (mps__stop_report_decode(msg->json, msg->op == MPS_OP_STOPPED, &sr, err,
                                            sizeof(err)) < 0)
                        return;
                mps_process *p = mps__idmap_get(&c->inflight, sr.tag);
                if (!p || p->state != PROC_RUNNING || p->id != sr.id)
                        return;
                p->stop_signal = sr.signo;
                break;
        }
        case MPS_OP_ERROR: {
                struct mps__error e;
                if (mps__error_decode(msg->json, &e, err, sizeof(err)) < 0)
                        return;
                mps_process *p = mps__idmap_get(&c->inflight, e.tag);
                if (!p || p->state != PROC_STARTING)
                        return;
                mps__idmap_remove(&c->inflight, e.tag);
                p->start_error = e.err;
                snprintf(p->start_stage, sizeof(p->start_stage), "%s", e.stage);
                snprintf(p->start_message, sizeof(p->start_message), "%s", e.message);
                p->state = PROC_FAILED;
                changed(p);
                break;
        }
        default:
                break;
        }
}

void mps__process_lost(mps_process *p) {
        mps__idmap_remove(&p->client->inflight, p->tag);
        if (p->state == PROC_STARTING || p->state == PROC_RUNNING) {
                p->state = PROC_LOST;
                changed(p);
        } else if (p->state == PROC_EXITED) {
                changed(p); /* its record will not come */
        }
}

int mps__process_exit_pidfd(const mps_process *p) {
        if (p->state != PROC_RUNNING || !p->pidfd_exit || p->client->forked ||
            !mps__pidfd_exit_maybe())
                return -1;
        return p->pidfd;
}

bool mps__process_take_pidfd_exit(mps_process *p, bool reaped) {
        /* After mps_client_close() the joins still waiting end with
         * -ENOTCONN, as documented, even though the server, seeing the
         * connection go, may just have killed and reaped their jobs. */
        if (p->client->closed || mps__process_exit_pidfd(p) < 0)
                return false;
        int status;
        int r = reaped ? mps__pidfd_exit_status_reaped(p->pidfd, &status)
                       : mps__pidfd_exit_status(p->pidfd, &status);
        if (r < 0)
                p->pidfd_exit = false; /* its record tells, as before */
        if (r <= 0)
                return false;
        p->info = (mps_exit_info){
                .exitcode = mps__exitcode_of_status(status),
                .core_dumped = WIFSIGNALED(status) && WCOREDUMP(status),
        };
        p->state = PROC_EXITED;
        p->client->pidfd_exits++;
        mps__client_wake(p->client, p);
        return true;
}

static bool recorded(void *arg) {
        return ((mps_process *)arg)->state != PROC_EXITED;
}

/* With the lock held: an end read from the pidfd waits for the server's
 * record (sent right after the reap that pidfd saw). 0, or -ENOTCONN when
 * the connection goes first (the record is lost; the exit code stays). */
static int await_record(mps_process *p) {
        if (p->state != PROC_EXITED)
                return 0;
        int r = mps__client_wait_until(p->client, recorded, p, p, 0);
        return p->state == PROC_EXITED ? (r < 0 ? r : -ENOTCONN) : 0;
}

/* The pidfd's events now (POLLIN: ended; POLLHUP: reaped), 0 when none
 * or no pidfd. */
static short pidfd_events(const mps_process *p) {
        struct pollfd pfd = {.fd = p->pidfd, .events = POLLIN};
        return p->pidfd >= 0 && mps__poll_many(&pfd, 1, 0) > 0 ? pfd.revents : 0;
}

/*
 * The pidfd polls readable as soon as the job has ended, slightly before the
 * server's exit record can arrive. Callers that ask "has it ended?" wait for
 * that record then, so that is_alive/exitcode agree with the sentinel; or,
 * once the server has reaped it, read its exit from the pidfd (see the top
 * of the file), the record then waiting unread or a moment behind.
 */
static int sync_if_ended(mps_process *p) {
        mps_client *c = p->client;
        if (p->state != PROC_RUNNING)
                return 0;
        short events = pidfd_events(p);
        if ((events & POLLHUP) && mps__process_take_pidfd_exit(p, true))
                return 0;
        if (!c->closed && !c->broken && !c->forked) {
                int r = mps__client_drain_locked(c);
                if (r < 0 && r != -ENOTCONN)
                        return r;
        }
        if (p->state == PROC_RUNNING && (events & POLLIN))
                return mps__client_wait_process(c, ended, p, 0);
        return 0;
}

/* With the lock held. */
static int join_locked(mps_process *p, int timeout_ms) {
        mps_client *c = p->client;
        int r = mps__client_check_forked(c);
        if (r < 0)
                return r;
        if (p->state == PROC_NEW || p->state == PROC_FAILED) {
                mps__client_set_error(c, "join of a process that was not started");
                return -EINVAL;
        }
        if (p->state == PROC_DETACHED) {
                mps__client_set_error(c, "join of a detached process: use "
                                         "mps_client_wait_job()");
                return -EINVAL;
        }
        uint64_t deadline = mps__deadline(timeout_ms);
        r = sync_if_ended(p);
        if (r < 0)
                return r;
        r = mps__client_wait_process(c, ended, p, deadline);
        if (p->state == PROC_LOST || (r == -ENOTCONN && !ended(p))) {
                mps__client_set_error(c, "%s", c->broken_reason);
                return -ENOTCONN;
        }
        /* A timeout is no error: the caller asks is_alive/exitcode. */
        return r == -ETIMEDOUT ? 0 : r;
}

MPS_API int mps_join(mps_process *p, int timeout_ms) {
        if (!p)
                return -EINVAL;
        mps__client_lock(p->client);
        int r = join_locked(p, timeout_ms);
        mps__client_unlock(p->client);
        return r;
}

MPS_API int mps_is_alive(mps_process *p) {
        if (!p)
                return 0;
        int alive;
        mps__client_lock(p->client);
        if (p->state == PROC_DETACHED) {
                alive = p->pidfd >= 0 && mps__poll_one(p->pidfd, POLLIN, 0) == 0;
        } else {
                sync_if_ended(p);
                alive = p->state == PROC_STARTING || p->state == PROC_RUNNING;
        }
        mps__client_unlock(p->client);
        return alive;
}

MPS_API int mps_exitcode(mps_process *p) {
        if (!p)
                return MPS_EXITCODE_NONE;
        mps__client_lock(p->client);
        sync_if_ended(p);
        int code = p->state == PROC_ENDED || p->state == PROC_EXITED ? p->info.exitcode
                                                                     : MPS_EXITCODE_NONE;
        mps__client_unlock(p->client);
        return code;
}

MPS_API int mps_exit_info_get(const mps_process *p, mps_exit_info *ret_info) {
        if (!p || !ret_info)
                return -EINVAL;
        /* The lock and the wait for the record are no part of the
         * caller's view of the process. */
        mps_process *q = (mps_process *)p;
        mps__client_lock(q->client);
        int r = await_record(q);
        if (r == 0)
                r = q->state == PROC_ENDED ? 0 : -EAGAIN;
        if (r == 0)
                *ret_info = q->info;
        mps__client_unlock(q->client);
        return r;
}

/* Asks the server to signal the job (when our pidfd cannot). */
static int signal_through_server(mps_process *p, int sig) {
        int r = mps_client_signal_job(p->client, p->id, sig);
        return r == -ESRCH ? 0 : r; /* ended meanwhile */
}

/* With the lock held: whether p is running or detached, once its start
 * is answered (0 no, 1 yes, -errno). */
static int wait_started(mps_process *p) {
        int r = mps__client_check_forked(p->client);
        if (r < 0)
                return r;
        if (p->state == PROC_NEW || p->state == PROC_FAILED)
                return -EINVAL;
        if (p->state == PROC_STARTING &&
            (r = mps__client_wait_until(p->client, started, p, p, 0)) < 0)
                return r;
        return p->state == PROC_RUNNING || p->state == PROC_DETACHED;
}

MPS_API int mps_send_signal(mps_process *p, int sig) {
        if (!p || sig < 0 || sig >= NSIG)
                return -EINVAL;
        mps__client_lock(p->client);
        int r = wait_started(p);
        int pidfd = p->pidfd;
        mps__client_unlock(p->client);
        if (r <= 0)
                return r; /* already ended: nothing to do, as in Python */
        /* A whole tree is the server's to reach (kill(-pgid) while it
         * knows the group is this job's); one process, our pidfd's (the
         * pidfd lives as long as the handle, and the spec never changes). */
        if (pidfd >= 0 && !p->spec->spawn.kill_tree) {
                if (pidfd_send_signal(pidfd, sig, NULL, 0) == 0)
                        return 0;
                if (errno == ESRCH)
                        return 0; /* ended, not yet reported */
                if (errno != EPERM)
                        return -errno;
        }
        return signal_through_server(p, sig);
}

MPS_API int mps_stop_signal(const mps_process *p) {
        if (!p)
                return 0;
        mps__client_lock(p->client);
        int sig = p->state == PROC_RUNNING ? p->stop_signal : 0;
        mps__client_unlock(p->client);
        return sig;
}

MPS_API int mps_set_terminal_foreground(mps_process *p, bool foreground) {
        if (!p)
                return -EINVAL;
        mps_client *c = p->client;
        if (!p->spec->spawn.controlling_terminal || !(c->features & MPS_FEATURE_TERMINAL)) {
                mps__client_lock(c);
                bool unstarted = p->state == PROC_NEW || p->state == PROC_FAILED;
                mps__client_unlock(c);
                return unstarted ? -EINVAL : -ENOTSUP;
        }
        mps__client_lock(c);
        int r = wait_started(p);
        if (r == 1 && p->state != PROC_RUNNING)
                r = 0; /* ended: nothing to do */
        if (r == 1 && (c->closed || c->broken))
                r = -ENOTCONN;
        /* Its own tag, which nothing waits for: a refusal arrives as an
         * error no handle claims, and becomes the client's error. */
        struct mps__foreground m = {.tag = ++c->next_tag, .id = p->id,
                                    .foreground = foreground};
        mps__client_unlock(c);
        if (r <= 0)
                return r;
        cJSON *json = mps__foreground_encode(&m);
        if (!json)
                return -ENOMEM;
        r = mps__client_send(c, json, NULL, 0);
        cJSON_Delete(json);
        return r;
}

MPS_API int mps_terminate(mps_process *p) {
        return mps_send_signal(p, SIGTERM);
}

MPS_API int mps_kill(mps_process *p) {
        return mps_send_signal(p, SIGKILL);
}

/* The getters read under the lock too: the reader may be filling the
 * fields in on another thread. */
MPS_API pid_t mps_pid(const mps_process *p) {
        if (!p)
                return -EINVAL;
        mps__client_lock(p->client);
        pid_t pid = p->pid > 0 ? p->pid : -ESRCH;
        mps__client_unlock(p->client);
        return pid;
}

MPS_API uint64_t mps_job_id(const mps_process *p) {
        if (!p)
                return 0;
        mps__client_lock(p->client);
        uint64_t id = p->id;
        mps__client_unlock(p->client);
        return id;
}

MPS_API int mps_sentinel(const mps_process *p) {
        if (!p)
                return -EINVAL;
        mps__client_lock(p->client);
        int r = p->pidfd;
        if (r < 0)
                r = p->state == PROC_NEW || p->state == PROC_STARTING ? -ESRCH : -ENOTSUP;
        mps__client_unlock(p->client);
        return r;
}

MPS_API const char *mps_start_failed_stage(const mps_process *p) {
        if (!p)
                return NULL;
        mps__client_lock(p->client);
        const char *stage = p->state == PROC_FAILED ? p->start_stage : NULL;
        mps__client_unlock(p->client);
        return stage;
}

/* With the lock held: frees p, but not its reference to the client. */
static void release(mps_process *p) {
        mps__idmap_remove(&p->client->inflight, p->tag);
        mps__list_remove(&p->deferred_node);
        mps__safe_close(p->pidfd);
        mps_spec_free(p->spec);
        cJSON_free(p->result);
        free(p->result_error);
        free(p);
}

/* The Pool holds a reference of its own, so this one is never the last. */
void mps__process_release_locked(mps_process *p) {
        mps_client *c = p->client;
        release(p);
        c->refs--;
}

MPS_API int mps_process_close(mps_process *p) {
        if (!p)
                return 0;
        mps_client *c = p->client;
        mps__client_lock(c);
        if (!c->forked && (p->state == PROC_STARTING || p->state == PROC_RUNNING)) {
                /* (A detached one may go at once: nothing more comes.) */
                sync_if_ended(p);
                if (p->state == PROC_STARTING || p->state == PROC_RUNNING) {
                        mps__client_set_error(c, "cannot close a process that is still running");
                        mps__client_unlock(c);
                        return -EBUSY;
                }
        }
        release(p);
        mps__client_unlock_unref(c);
        return 0;
}

MPS_API const char *mps_result(const mps_process *p) {
        if (!p)
                return NULL;
        mps_process *q = (mps_process *)p; /* (as in mps_exit_info_get) */
        mps__client_lock(q->client);
        await_record(q);
        const char *result = q->state == PROC_ENDED ? q->result : NULL;
        mps__client_unlock(q->client);
        return result;
}

MPS_API const char *mps_result_error(const mps_process *p) {
        if (!p)
                return NULL;
        mps_process *q = (mps_process *)p; /* (as in mps_exit_info_get) */
        mps__client_lock(q->client);
        await_record(q);
        const char *error = q->state == PROC_ENDED ? q->result_error : NULL;
        mps__client_unlock(q->client);
        return error;
}
