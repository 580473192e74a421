/* SPDX-License-Identifier: MIT */
/*
 * bench.c: `make bench`. Measures, in one run on one machine, what a launch
 * through mpforkserver costs against what the bench process pays to do the
 * same itself, and what the server costs in memory; prints a markdown
 * table (or JSON with --json) with the PASS/MISS of every target.
 *
 * Every figure is repeated (the count is printed next to it) after a
 * warm-up; times come from CLOCK_MONOTONIC and percentiles are nearest-rank
 * on the sorted samples. Rows that are compared with each other are
 * measured in the same run, in interleaved blocks (measure_group), so that
 * drift and other load on the machine fall on both sides alike. The
 * machine's load during the run is printed with the results: a figure from
 * a busy machine says little.
 *
 * The servers run on temporary sockets and are stopped before the end; if
 * the bench dies, they get SIGTERM (and the sleeping jobs of the memory
 * section are daemon jobs with a parent-death signal, so they go too).
 *
 * Not a test: nothing here passes or fails a build. It uses only the
 * public header, as any client would.
 *
 *   bench [--json] [--build DIR] [--scale F] [--children N] [--big-mib N]
 *         [--no-python] [--python PATH] [--only side|threads|memory]
 *   bench --drive SOCKET KIND N   against a running server, for profiling
 *         it (see drive()); KIND: exec, call (one at a time), exec8, call8
 *         (8 in flight), execmap, callmap (a map through 64 workers), hold
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../include/mpspawn.h"

extern char **environ;

/* ---- options and paths ------------------------------------------------------ */

static struct {
        bool json;
        double scale;
        unsigned children; /* sleeping jobs for the memory rows */
        unsigned big_mib;  /* the big client's heap */
        bool python;
        const char *python_path;
        const char *only; /* one section (side, threads, memory), or NULL: all */
        char build[PATH_MAX];
        char server_bin[PATH_MAX + 32];
        char cli_bin[PATH_MAX + 32];
        char preload_so[PATH_MAX + 32];
        char bench_mp[PATH_MAX + 32];
} opt = {.scale = 1.0, .children = 10000, .big_mib = 4096, .python = true};

static bool section_wanted(const char *name) {
        return !opt.only || strcmp(opt.only, name) == 0;
}

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void progress(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        fputs("bench: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
}

static _Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void die(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        fputs("bench: error: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        exit(1); /* atexit stops the servers */
}

static void *xcalloc(size_t n, size_t size) {
        void *p = calloc(n ? n : 1, size);
        if (!p)
                die("out of memory");
        return p;
}

/* A repetition count scaled by --scale, never below `floor`. */
static unsigned reps(unsigned n, unsigned floor) {
        double v = n * opt.scale;
        return v < floor ? floor : (unsigned)v;
}

/* ---- results ---------------------------------------------------------------- */

struct row {
        const char *key;
        char label[200];
        unsigned reps;
        double p50_us, p99_us, jobs_per_s; /* NAN: not measured */
        /* NULL: the main table; else a table of its own (threads). */
        const char *section;
};

/* The section that add_row files new rows under. */
static const char *current_section;

#define ROWS_MAX 64
static struct row rows[ROWS_MAX];
static size_t nrows;

struct memrow {
        const char *key;
        char label[200];
        double value;
        const char *unit;
};

#define MEMROWS_MAX 32
static struct memrow memrows[MEMROWS_MAX];
static size_t nmemrows;

struct target {
        char label[200];
        char measured[200]; /* how the ratio was formed, with the figures */
        double value;       /* NAN: could not be measured */
        char op; /* '<': value <= limit passes; '>': value >= limit; 'i': no target */
        double limit;
};

#define TARGETS_MAX 24
static struct target targets[TARGETS_MAX];
static size_t ntargets;

static struct {
        char cpu[160];
        char kernel[160];
        long ncpu;
        char thp[64];
        unsigned children_done;
        char children_note[300];
        char notes[8][300];
        size_t nnotes;
        double seconds;          /* the whole run */
        double load_start[3], load_end[3];
        double busy_share;       /* of all CPUs, busy during the run */
        double others_share;     /* ...of which not this run's processes */
} machine;

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...) {
        if (machine.nnotes >= 8)
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(machine.notes[machine.nnotes++], sizeof(machine.notes[0]), fmt, ap);
        va_end(ap);
}

struct stats {
        unsigned reps;
        double p50_us, p99_us, jobs_per_s;
};

static struct row *add_row(const char *key, const struct stats *st, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static struct row *add_row(const char *key, const struct stats *st, const char *fmt, ...) {
        if (nrows >= ROWS_MAX)
                die("too many rows");
        struct row *r = &rows[nrows++];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->label, sizeof(r->label), fmt, ap);
        va_end(ap);
        r->key = key;
        r->section = current_section;
        r->reps = st ? st->reps : 0;
        r->p50_us = st ? st->p50_us : NAN;
        r->p99_us = st ? st->p99_us : NAN;
        r->jobs_per_s = st ? st->jobs_per_s : NAN;
        progress("%-58.58s p50 %8.1f us  p99 %8.1f us  %8.0f jobs/s  (n=%u)", r->label,
                 r->p50_us, r->p99_us, r->jobs_per_s, r->reps);
        return r;
}

static const struct row *row_get(const char *key) {
        for (size_t i = 0; i < nrows; i++)
                if (strcmp(rows[i].key, key) == 0)
                        return &rows[i];
        return NULL;
}

static double row_p50(const char *key) {
        const struct row *r = row_get(key);
        return r ? r->p50_us : NAN;
}

static double row_rate(const char *key) {
        const struct row *r = row_get(key);
        return r ? r->jobs_per_s : NAN;
}

static void add_mem(const char *key, double value, const char *unit, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void add_mem(const char *key, double value, const char *unit, const char *fmt, ...) {
        if (nmemrows >= MEMROWS_MAX)
                die("too many memory rows");
        struct memrow *m = &memrows[nmemrows++];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m->label, sizeof(m->label), fmt, ap);
        va_end(ap);
        m->key = key;
        m->value = value;
        m->unit = unit;
        progress("%-58.58s %10.1f %s", m->label, value, unit);
}

static double mem_get(const char *key) {
        for (size_t i = 0; i < nmemrows; i++)
                if (strcmp(memrows[i].key, key) == 0)
                        return memrows[i].value;
        return NAN;
}

static void add_target(double value, char op, double limit, const char *measured,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void add_target(double value, char op, double limit, const char *measured,
                       const char *fmt, ...) {
        if (ntargets >= TARGETS_MAX)
                die("too many targets");
        struct target *t = &targets[ntargets++];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->label, sizeof(t->label), fmt, ap);
        va_end(ap);
        snprintf(t->measured, sizeof(t->measured), "%s", measured);
        t->value = value;
        t->op = op;
        t->limit = limit;
}

static const char *target_result(const struct target *t) {
        if (isnan(t->value))
                return "SKIP";
        if (t->op == 'i')
                return "info";
        bool pass = t->op == '<' ? t->value <= t->limit : t->value >= t->limit;
        return pass ? "PASS" : "MISS";
}

/* ---- measuring ---------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest sample with at least p% of them at or below. */
static double percentile_us(const uint64_t *sorted, size_t n, double p) {
        size_t k = (size_t)ceil(p / 100.0 * (double)n);
        if (k < 1)
                k = 1;
        if (k > n)
                k = n;
        return (double)sorted[k - 1] / 1e3;
}

static struct stats stats_of(uint64_t *samples, unsigned n, uint64_t elapsed_ns) {
        qsort(samples, n, sizeof(*samples), cmp_u64);
        return (struct stats){
                .reps = n,
                .p50_us = percentile_us(samples, n, 50),
                .p99_us = percentile_us(samples, n, 99),
                .jobs_per_s = elapsed_ns ? n / ((double)elapsed_ns / 1e9) : NAN,
        };
}

/* A job runs once and returns how long it took, timed by itself (so that
 * a job run by a helper process can report its own time). */
typedef uint64_t (*job_fn)(void *ctx);

/* warmup unmeasured rounds, then n timed ones; jobs/s over the timed loop. */
static struct stats measure(job_fn fn, void *ctx, unsigned warmup, unsigned n) {
        uint64_t *s = xcalloc(n, sizeof(*s));
        for (unsigned i = 0; i < warmup; i++)
                fn(ctx);
        uint64_t all = now_ns();
        for (unsigned i = 0; i < n; i++)
                s[i] = fn(ctx);
        struct stats st = stats_of(s, n, now_ns() - all);
        free(s);
        return st;
}

/*
 * Jobs measured side by side, in interleaved blocks: every round runs a
 * block of each member (`block` timed runs after `warm` untimed ones, so
 * that what the previous block left behind, such as a process still being
 * torn down, falls on the untimed runs), starting from a different member
 * each round. Drift over the run thus falls on all members alike, while
 * each timed run is as in a loop of its own. jobs/s of a member is over its
 * own timed runs only.
 */
/* A batch runs n jobs at once (8 in flight, or in a Python process), puts
 * each one's time in samples[0..n) (samples NULL: a warm-up, not kept) and
 * returns the time that jobs/s is over. */
typedef uint64_t (*batch_fn)(void *ctx, unsigned n, uint64_t *samples);

struct member {
        const char *key;
        char label[200];
        job_fn fn;      /* one job at a time, or */
        batch_fn batch; /* a batch of jobs */
        void *ctx;
        unsigned block, warm;
        uint64_t *samples;
        unsigned n;
        uint64_t total;
};

#define MEMBER(k, l, f, c, b, w) \
        {.key = (k), .label = l, .fn = (f), .ctx = (c), .block = (b), .warm = (w)}
#define BATCH(k, l, f, c, b, w) \
        {.key = (k), .label = l, .batch = (f), .ctx = (c), .block = (b), .warm = (w)}

static void measure_group(struct member *m, size_t k, unsigned rounds) {
        for (size_t j = 0; j < k; j++)
                m[j].samples = xcalloc((size_t)rounds * m[j].block, sizeof(uint64_t));
        for (unsigned i = 0; i < rounds; i++) {
                for (size_t j = 0; j < k; j++) {
                        struct member *x = &m[(i + j) % k];
                        if (x->batch) {
                                if (x->warm)
                                        x->batch(x->ctx, x->warm, NULL);
                                x->total += x->batch(x->ctx, x->block, x->samples + x->n);
                                x->n += x->block;
                                continue;
                        }
                        for (unsigned w = 0; w < x->warm; w++)
                                x->fn(x->ctx);
                        for (unsigned r = 0; r < x->block; r++) {
                                uint64_t d = x->fn(x->ctx);
                                x->samples[x->n++] = d;
                                x->total += d;
                        }
                }
                progress("  round %u of %u done", i + 1, rounds);
        }
        for (size_t j = 0; j < k; j++) {
                struct stats st = stats_of(m[j].samples, m[j].n, m[j].total);
                add_row(m[j].key, &st, "%s", m[j].label);
                free(m[j].samples);
        }
}

/* ---- what the bench process does itself -------------------------------------- */

static void check_status(const char *what, int status) {
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                die("%s: unexpected status 0x%x", what, status);
}

static uint64_t job_fork_exit(void *ctx) {
        (void)ctx;
        uint64_t t0 = now_ns();
        pid_t pid = fork();
        if (pid < 0)
                die("fork: %m");
        if (pid == 0)
                _exit(0);
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        die("waitpid: %m");
        uint64_t d = now_ns() - t0;
        check_status("fork+_exit", status);
        return d;
}

static uint64_t job_fork_exec_true(void *ctx) {
        (void)ctx;
        static char *const argv[] = {"true", NULL};
        uint64_t t0 = now_ns();
        pid_t pid = fork();
        if (pid < 0)
                die("fork: %m");
        if (pid == 0) {
                execve("/bin/true", argv, environ);
                _exit(127);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        die("waitpid: %m");
        uint64_t d = now_ns() - t0;
        check_status("fork+exec /bin/true", status);
        return d;
}

/*
 * A command run with posix_spawn and waitpid, with our stdio and
 * environment. A failure (a status other than 0) of /bin/true ends the
 * bench; one of the mpspawn CLI is counted, its first status kept, and
 * reported with the results, so that a rare failure neither hides among
 * the figures nor throws away the run.
 */
struct command {
        char **argv; /* argv[0] a path */
        char **envp; /* NULL: ours */
        bool tolerate;
        unsigned failures;
        int first_status;
};

static uint64_t job_spawn_argv(void *ctx) {
        struct command *cmd = ctx;
        char *const *argv = cmd->argv;
        pid_t pid;
        uint64_t t0 = now_ns();
        int r = posix_spawn(&pid, argv[0], NULL, NULL, argv, cmd->envp ? cmd->envp : environ);
        if (r != 0)
                die("posix_spawn %s: %s", argv[0], strerror(r));
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        die("waitpid: %m");
        uint64_t d = now_ns() - t0;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return d;
        if (!cmd->tolerate)
                check_status(argv[0], status);
        if (cmd->failures++ == 0)
                cmd->first_status = status;
        progress("warning: `%s %s ...` ended with status 0x%x", argv[0], argv[1], status);
        return d;
}

/*
 * The per-user server mpspawn starts for itself, in a runtime directory of
 * the bench's own ($XDG_RUNTIME_DIR, set in main): its pid, found through
 * its socket, to stop it between cold starts and at the end.
 */
static char user_rt[64], user_sock[96];

static pid_t user_server_pid(void) {
        mps_client *c;
        char *why = NULL;
        pid_t pid = 0;
        if (mps_client_open(user_sock, &c, &why) == 0) {
                pid = mps_client_server_pid(c);
                mps_client_close(c);
        }
        free(why);
        return pid;
}

/* Stops it (SIGTERM) and waits until it is gone: not our child, a pidfd. */
static void user_server_stop(void) {
        pid_t pid = user_server_pid();
        if (pid <= 0)
                return;
        int pidfd = pidfd_open(pid, 0);
        kill(pid, SIGTERM);
        if (pidfd >= 0) {
                struct pollfd p = {.fd = pidfd, .events = POLLIN};
                if (poll(&p, 1, 10000) == 0)
                        kill(pid, SIGKILL);
                close(pidfd);
        }
}

/* At exit: the server and its directory (socket, lock, log). */
static void user_server_done(void) {
        static const char *const names[] = {"mpspawn.sock", "mpspawn.lock", "mpspawn.log"};
        char path[128];
        if (!user_rt[0])
                return;
        user_server_stop();
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                snprintf(path, sizeof(path), "%s/%s", user_rt, names[i]);
                unlink(path);
        }
        rmdir(user_rt);
}

/* One cold start: no server up, and this run of the CLI starts it. */
static uint64_t job_cli_cold(void *ctx) {
        user_server_stop();
        return job_spawn_argv(ctx);
}

static void note_failures(const struct command *cmd, unsigned runs, const char *what) {
        if (cmd->failures)
                note("%u of about %u runs of %s failed (first status 0x%x: exit %d); their "
                     "times are in the figures",
                     cmd->failures, runs, what, cmd->first_status,
                     WIFEXITED(cmd->first_status) ? WEXITSTATUS(cmd->first_status) : -1);
}

/*
 * A request through the server that forks nothing: the stats query, the
 * message round trip of a launch without the launch. A job has one and a
 * half of these on its path that posix_spawn has not (the request, then
 * "spawned" and "exited", each waking the other side), so this row says how
 * near the exec ratio can come to 1 on this machine.
 */
static uint64_t job_stats_round_trip(void *ctx) {
        mps_client *c = ctx;
        mps_server_stats st;
        uint64_t t0 = now_ns();
        if (mps_client_stats(c, &st) < 0)
                die("stats: %s", mps_client_error(c));
        return now_ns() - t0;
}

static char *true_argv[] = {"/bin/true", NULL};
static struct command run_true = {.argv = true_argv};

/* ---- servers ------------------------------------------------------------------ */

struct server {
        pid_t pid;
        int pidfd;
        char dir[64];
        char path[96];
};

#define SERVERS_MAX 5
/* Pids of running servers, for the atexit and signal clean-up; and of the
 * Python script while it runs. */
static volatile pid_t live_pids[SERVERS_MAX];
static struct server *live_servers[SERVERS_MAX];
static volatile pid_t python_pid;

/* The socket and its directory go with us (the server would unlink the
 * socket, but not the directory, and perhaps after we are gone). */
static void remove_server_dir(int i) {
        if (live_servers[i]) {
                unlink(live_servers[i]->path);
                rmdir(live_servers[i]->dir);
        }
}

static void on_fatal_signal(int sig) {
        for (int i = 0; i < SERVERS_MAX; i++)
                if (live_pids[i] > 0) {
                        kill(live_pids[i], SIGTERM);
                        remove_server_dir(i);
                }
        if (python_pid > 0)
                kill(python_pid, SIGTERM);
        signal(sig, SIG_DFL);
        raise(sig);
}

/* The servers still running when the bench gives up: SIGTERM ends their
 * daemon jobs; SIGKILL after 10 s if one does not go. */
static void stop_leftover_servers(void) {
        if (python_pid > 0) {
                kill(python_pid, SIGTERM);
                waitpid(python_pid, NULL, 0);
                python_pid = 0;
        }
        user_server_done();
        for (int i = 0; i < SERVERS_MAX; i++) {
                pid_t pid = live_pids[i];
                if (pid <= 0)
                        continue;
                kill(pid, SIGTERM);
                for (int k = 0; k < 1000 && waitpid(pid, NULL, WNOHANG) == 0; k++)
                        usleep(10000);
                if (waitpid(pid, NULL, WNOHANG) == 0) {
                        kill(pid, SIGKILL);
                        waitpid(pid, NULL, 0);
                }
                remove_server_dir(i);
                live_pids[i] = 0;
        }
}

/*
 * Starts mpforkserver on a socket in a fresh temporary directory with the
 * extra arguments and environment entries, and waits for its READY=1 on a
 * notify socket (no polling of the path).
 */
static void server_start(struct server *s, const char *const *extra_args,
                         const char *const *extra_env) {
        const char *argv[24];
        size_t n = 0;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        char notify[96], envbuf[160];

        memset(s, 0, sizeof(*s));
        snprintf(s->dir, sizeof(s->dir), "/tmp/mps-bench-XXXXXX");
        if (!mkdtemp(s->dir))
                die("mkdtemp: %m");
        snprintf(s->path, sizeof(s->path), "%s/sock", s->dir);
        snprintf(notify, sizeof(notify), "%s/notify", s->dir);
        int nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", notify);
        if (nfd < 0 || bind(nfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                die("notify socket: %m");

        argv[n++] = opt.server_bin;
        argv[n++] = "--socket";
        argv[n++] = s->path;
        argv[n++] = "--log-level";
        argv[n++] = "warning";
        argv[n++] = "--grace";
        argv[n++] = "1";
        for (size_t i = 0; extra_args && extra_args[i] && n < 22; i++)
                argv[n++] = extra_args[i];
        argv[n] = NULL;

        size_t ne = 0, nx = 0;
        while (environ[ne])
                ne++;
        while (extra_env && extra_env[nx])
                nx++;
        const char **envp = xcalloc(ne + nx + 2, sizeof(*envp));
        size_t k = 0;
        for (size_t i = 0; i < ne; i++)
                if (strncmp(environ[i], "NOTIFY_SOCKET=", 14) != 0)
                        envp[k++] = environ[i];
        for (size_t i = 0; i < nx; i++)
                envp[k++] = extra_env[i];
        snprintf(envbuf, sizeof(envbuf), "NOTIFY_SOCKET=%s", notify);
        envp[k++] = envbuf;
        envp[k] = NULL;

        int r = posix_spawn(&s->pid, argv[0], NULL, NULL, (char *const *)argv,
                            (char *const *)envp);
        free(envp);
        if (r != 0)
                die("cannot start %s: %s", argv[0], strerror(r));
        for (int i = 0; i < SERVERS_MAX; i++)
                if (live_pids[i] <= 0) {
                        live_servers[i] = s;
                        live_pids[i] = s->pid;
                        break;
                }
        s->pidfd = pidfd_open(s->pid, 0);
        if (s->pidfd < 0)
                die("pidfd_open: %m");
        struct pollfd p[2] = {{.fd = nfd, .events = POLLIN},
                              {.fd = s->pidfd, .events = POLLIN}};
        r = poll(p, 2, 120000);
        if (r <= 0 || (p[1].revents & POLLIN) || !(p[0].revents & POLLIN))
                die("mpforkserver did not become ready");
        char msg[256];
        ssize_t got = recv(nfd, msg, sizeof(msg) - 1, 0);
        if (got <= 0)
                die("notify socket: %m");
        msg[got] = '\0';
        if (!strstr(msg, "READY=1"))
                die("unexpected notification '%s'", msg);
        close(nfd);
        unlink(notify);
}

static void server_stop(struct server *s) {
        int status = 0;
        kill(s->pid, SIGTERM);
        struct pollfd p = {.fd = s->pidfd, .events = POLLIN};
        if (poll(&p, 1, 30000) <= 0) {
                progress("server %d did not stop in 30 s; killing it", (int)s->pid);
                kill(s->pid, SIGKILL);
        }
        while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
                ;
        for (int i = 0; i < SERVERS_MAX; i++)
                if (live_pids[i] == s->pid) {
                        live_pids[i] = 0;
                        live_servers[i] = NULL;
                }
        close(s->pidfd);
        unlink(s->path);
        rmdir(s->dir);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                progress("warning: server %d ended with status 0x%x", (int)s->pid, status);
}

static mps_client *connect_to(const char *path) {
        mps_client *c;
        char *why = NULL;
        int r = mps_client_open(path, &c, &why);
        if (r < 0)
                die("cannot connect to %s: %s", path, why ? why : mps_strerror(r));
        return c;
}

struct proc_status {
        double vmrss, anon, file, shmem; /* KiB */
};

static struct proc_status read_status(pid_t pid) {
        char path[64], line[256];
        struct proc_status ps = {NAN, NAN, NAN, NAN};
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        FILE *f = fopen(path, "re");
        if (!f)
                die("%s: %m", path);
        while (fgets(line, sizeof(line), f)) {
                long v;
                if (sscanf(line, "VmRSS: %ld", &v) == 1)
                        ps.vmrss = v;
                else if (sscanf(line, "RssAnon: %ld", &v) == 1)
                        ps.anon = v;
                else if (sscanf(line, "RssFile: %ld", &v) == 1)
                        ps.file = v;
                else if (sscanf(line, "RssShmem: %ld", &v) == 1)
                        ps.shmem = v;
        }
        fclose(f);
        return ps;
}

/* ---- jobs through the library ------------------------------------------------ */

struct mps_job {
        mps_client *client;
        mps_spec *spec;
        const char *what;
};

/* tests/preload_table.c's entry that sets its arguments as its result:
 * a small JSON object, which the bench reads back and compares. */
#define RESULT_ENTRY "result_echo"
static const char result_args[] = "{\"id\":17,\"name\":\"bench\"}";

/* One job from start to its exit record: new, start, join, close; with
 * want_result, a call job whose result is read too. */
static uint64_t run_mps(const struct mps_job *j, bool want_result) {
        mps_process *p;
        uint64_t t0 = now_ns();
        int r = mps_process_new(j->client, j->spec, &p);
        if (r < 0)
                die("%s: mps_process_new: %s", j->what, mps_strerror(r));
        if ((r = mps_start(p)) < 0)
                die("%s: mps_start: %s (%s)", j->what, mps_strerror(r),
                    mps_client_error(j->client));
        if ((r = mps_join(p, -1)) < 0)
                die("%s: mps_join: %s", j->what, mps_strerror(r));
        if (mps_exitcode(p) != 0)
                die("%s: exit code %d", j->what, mps_exitcode(p));
        if (want_result) {
                const char *res = mps_result(p);
                if (!res || strcmp(res, result_args) != 0)
                        die("%s: result %s, not %s", j->what, res ? res : "none",
                            result_args);
        }
        if ((r = mps_process_close(p)) < 0)
                die("%s: mps_process_close: %s", j->what, mps_strerror(r));
        return now_ns() - t0;
}

static uint64_t job_mps(void *ctx) {
        return run_mps(ctx, false);
}

static uint64_t job_mps_result(void *ctx) {
        return run_mps(ctx, true);
}

static mps_spec *spec_exec(const char *path, const char *const *argv) {
        mps_spec *s;
        if (mps_spec_new(&s) < 0 || mps_spec_set_exec(s, path, argv) < 0)
                die("spec");
        return s;
}

static mps_spec *spec_true(void) {
        static const char *const argv[] = {"true", NULL};
        return spec_exec("/bin/true", argv);
}

static mps_spec *spec_call(const char *entry) {
        mps_spec *s;
        if (mps_spec_new(&s) < 0 || mps_spec_set_call(s, entry, NULL) < 0)
                die("spec");
        return s;
}

static mps_spec *spec_noop(void) {
        return spec_call("noop");
}

static mps_spec *spec_call_result(void) {
        mps_spec *s;
        if (mps_spec_new(&s) < 0 || mps_spec_set_call(s, RESULT_ENTRY, result_args) < 0)
                die("spec");
        return s;
}

/*
 * `workers` jobs in flight through an mps_pool, `total` of them. A job's
 * latency runs from the moment its slot was freed (the pool starts the next
 * queued task right after the callback of the one that ended) or, for the
 * first `workers`, from its queuing, to its own callback.
 */
struct inflight {
        uint64_t *start, *lat;
        unsigned next_start, done, total;
        const char *what;
};

struct inflight_task {
        struct inflight *run;
        unsigned index;
};

static void inflight_mark(struct inflight *run, unsigned index, uint64_t now) {
        run->lat[index] = now - run->start[index];
        run->done++;
        if (run->next_start < run->total)
                run->start[run->next_start++] = now;
}

static void inflight_done(mps_process *proc, int exitcode, void *data) {
        struct inflight_task *t = data;
        (void)proc;
        if (exitcode != 0)
                die("%s: exit code %d", t->run->what, exitcode);
        inflight_mark(t->run, t->index, now_ns());
}

static void inflight_failed(int err, const char *message, void *data) {
        struct inflight_task *t = data;
        die("%s: a job failed: %s: %s", t->run->what, mps_strerror(err), message);
}

/*
 * The cost of a cached seccomp filter: the same exec job with and without
 * one, run in pairs (the order alternating), so that each pair's
 * difference is measured under the same conditions; the median of those
 * differences is the figure. The samples kept are the filtered job's.
 */
struct seccomp_pair {
        struct mps_job *with, *without;
        int64_t *diffs;
        unsigned ndiffs;
};

static uint64_t batch_seccomp_pair(void *ctx, unsigned n, uint64_t *samples) {
        struct seccomp_pair *x = ctx;
        uint64_t sum = 0;
        for (unsigned i = 0; i < n; i++) {
                uint64_t a, b;
                if (i % 2 == 0) {
                        a = job_mps(x->with);
                        b = job_mps(x->without);
                } else {
                        b = job_mps(x->without);
                        a = job_mps(x->with);
                }
                sum += a;
                if (samples) {
                        samples[i] = a;
                        x->diffs[x->ndiffs++] = (int64_t)a - (int64_t)b;
                }
        }
        return sum;
}

static int cmp_i64(const void *a, const void *b) {
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return x < y ? -1 : x > y;
}

static double seccomp_cost_us = NAN;
static unsigned seccomp_pairs;

struct inflight_ctx {
        mps_client *client;
        const mps_spec *spec;
        const char *what;
};

/* A batch of n jobs, 8 in flight, through a fresh mps_pool. */
static uint64_t batch_inflight(void *ctx, unsigned n, uint64_t *samples) {
        struct inflight_ctx *x = ctx;
        struct inflight run = {.total = n, .what = x->what};
        struct inflight_task *tasks = xcalloc(n, sizeof(*tasks));
        const unsigned workers = 8;
        mps_pool *pool;
        run.start = xcalloc(n, sizeof(uint64_t));
        run.lat = samples ? samples : xcalloc(n, sizeof(uint64_t));
        if (mps_pool_new(x->client, workers, &pool) < 0)
                die("mps_pool_new");
        uint64_t all = now_ns();
        for (unsigned i = 0; i < n; i++) {
                tasks[i] = (struct inflight_task){&run, i};
                if (i < workers)
                        run.start[run.next_start++] = now_ns();
                int r = mps_pool_apply_async(pool, x->spec, inflight_done, inflight_failed,
                                             &tasks[i]);
                if (r < 0)
                        die("%s: mps_pool_apply_async: %s", x->what, mps_strerror(r));
        }
        mps_pool_close(pool);
        int r = mps_pool_join(pool, -1);
        uint64_t elapsed = now_ns() - all;
        if (r < 0 || run.done != n)
                die("%s: mps_pool_join: %s (%u of %u done)", x->what, mps_strerror(r),
                    run.done, n);
        mps_pool_free(pool);
        free(run.start);
        if (!samples)
                free(run.lat);
        free(tasks);
        return elapsed;
}

/* Python's multiprocessing, through tests/bench_mp.py: a batch of n
 * Process(target=noop) start+join with one start method, in a fresh
 * interpreter that warms up first. Its lines "sample METHOD NS" are kept. */
static char python_bin[PATH_MAX];

static uint64_t batch_python(void *ctx, unsigned n, uint64_t *samples) {
        const char *method = ctx;
        char arg[64];
        snprintf(arg, sizeof(arg), "%s:%u", method, n);
        char *argv[] = {python_bin, opt.bench_mp, "--raw", arg, NULL};
        int pfd[2];
        posix_spawn_file_actions_t fa;
        pid_t pid;
        if (pipe2(pfd, O_CLOEXEC) < 0)
                die("pipe: %m");
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
        int r = posix_spawn(&pid, python_bin, &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(pfd[1]);
        if (r != 0)
                die("cannot run %s: %s", python_bin, strerror(r));
        python_pid = pid;
        FILE *f = fdopen(pfd[0], "r");
        char line[256];
        unsigned got = 0;
        uint64_t sum = 0;
        while (f && fgets(line, sizeof(line), f)) {
                char m[32];
                unsigned long long ns;
                if (sscanf(line, "sample %31s %llu", m, &ns) != 2 || got >= n)
                        continue;
                if (samples)
                        samples[got] = ns;
                sum += ns;
                got++;
        }
        if (f)
                fclose(f);
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        python_pid = 0;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || got != n)
                die("bench_mp.py %s: status 0x%x, %u of %u samples", arg, status, got, n);
        return sum;
}

static const char seccomp_policy[] = "default allow\nerrno(EPERM) ptrace\n";

/* Touches one byte per page of a private anonymous mapping of mib MiB, in
 * small pages (MADV_NOHUGEPAGE: a real heap is mostly small pages, and
 * fork copies one PTE per page). */
static void *big_heap(size_t mib) {
        size_t size = mib << 20;
        char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
        if (p == MAP_FAILED)
                die("mmap %zu MiB: %m", mib);
        madvise(p, size, MADV_NOHUGEPAGE);
        for (size_t i = 0; i < size; i += 4096)
                p[i] = (char)i;
        return p;
}

static long meminfo_kib(const char *field) {
        char line[256];
        long v = -1, x;
        size_t len = strlen(field);
        FILE *f = fopen("/proc/meminfo", "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, field, len) == 0 && line[len] == ':' &&
                    sscanf(line + len + 1, "%ld", &x) == 1)
                        v = x;
        fclose(f);
        return v;
}

/*
 * The small client of the big-heap comparison: a copy of the bench forked
 * before the heap exists (and before any connection is open, so that it
 * shares none), with its own connection to the same server. Each byte on
 * its command pipe runs one exec job; it answers with the job's time.
 */
struct helper {
        pid_t pid;
        int cmd, reply;
};

static _Noreturn void helper_main(const char *socket_path, int cmd, int reply) {
        mps_client *c;
        char *why = NULL;
        char op;
        if (mps_client_open(socket_path, &c, &why) < 0)
                _exit(1);
        mps_spec *t = spec_true();
        struct mps_job j = {c, t, "exec job (small client)"};
        while (read(cmd, &op, 1) == 1 && op == 'j') {
                uint64_t d = job_mps(&j);
                if (write(reply, &d, sizeof(d)) != sizeof(d))
                        break;
        }
        mps_spec_free(t);
        mps_client_close(c);
        _exit(0);
}

static void helper_start(struct helper *h, const char *socket_path) {
        int a[2], b[2];
        if (pipe2(a, O_CLOEXEC) < 0 || pipe2(b, O_CLOEXEC) < 0)
                die("pipe: %m");
        fflush(NULL);
        h->pid = fork();
        if (h->pid < 0)
                die("fork: %m");
        if (h->pid == 0) {
                close(a[1]);
                close(b[0]);
                /* Not the bench's clean-up: the servers are not ours. */
                for (int i = 0; i < SERVERS_MAX; i++) {
                        live_pids[i] = 0;
                        live_servers[i] = NULL;
                }
                signal(SIGINT, SIG_DFL);
                signal(SIGTERM, SIG_DFL);
                signal(SIGHUP, SIG_DFL);
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                helper_main(socket_path, a[0], b[1]);
        }
        close(a[0]);
        close(b[1]);
        h->cmd = a[1];
        h->reply = b[0];
}

static uint64_t job_helper(void *ctx) {
        struct helper *h = ctx;
        uint64_t d;
        if (write(h->cmd, "j", 1) != 1 || read(h->reply, &d, sizeof(d)) != sizeof(d))
                die("the small-client helper died");
        return d;
}

static void helper_stop(struct helper *h) {
        int status;
        close(h->cmd);
        close(h->reply);
        while (waitpid(h->pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                die("the small-client helper ended with status 0x%x", status);
}

static bool find_in_path(const char *name, char *buf, size_t len) {
        const char *path = getenv("PATH");
        if (!path)
                return false;
        while (*path) {
                const char *colon = strchr(path, ':');
                size_t n = colon ? (size_t)(colon - path) : strlen(path);
                snprintf(buf, len, "%.*s/%s", (int)n, path, name);
                if (n > 0 && access(buf, X_OK) == 0)
                        return true;
                path += n + (colon ? 1 : 0);
        }
        return false;
}

/* The Python for the multiprocessing rows (python_bin), or false with a
 * note saying why they are skipped. */
static bool python_find(void) {
        if (!opt.python) {
                note("Python rows skipped (--no-python, or tests/bench_mp.py missing)");
                return false;
        }
        if (opt.python_path && *opt.python_path)
                snprintf(python_bin, sizeof(python_bin), "%s", opt.python_path);
        else if (!find_in_path("python3", python_bin, sizeof(python_bin))) {
                note("Python rows skipped: python3 not found in PATH");
                return false;
        }
        return true;
}

/* A client opened with the debugging knob name set to 1 (read at open):
 * MPSPAWN_NO_PIDFD_EXIT learns every end from the server's record only,
 * as before Linux 6.15; MPSPAWN_NO_BATCH sends every start in a request
 * of its own, as to a server without spawn_batch. */
static mps_client *connect_with_knob(const char *path, const char *name) {
        if (setenv(name, "1", 1) < 0)
                die("setenv: %m");
        mps_client *c = connect_to(path);
        unsetenv(name);
        return c;
}

/* The same exec and call jobs joined with their exits read from the pidfd
 * (cp, cpre) and from the record only (new clients of the same servers),
 * interleaved. */
static void rows_pidfd_exit(mps_client *cp, mps_client *cpre, const char *plain,
                            const char *pre, mps_spec *t, mps_spec *noop, unsigned block) {
        mps_client *rp = connect_with_knob(plain, "MPSPAWN_NO_PIDFD_EXIT"),
                   *rpre = connect_with_knob(pre, "MPSPAWN_NO_PIDFD_EXIT");
        struct mps_job ep = {cp, t, "exec job"}, er = {rp, t, "exec job (records only)"},
                       kp = {cpre, noop, "call job"}, kr = {rpre, noop, "call job (records only)"};
        struct member m[4] = {
                MEMBER("exec1_pidfd_exit",
                       "exec job /bin/true, 1 in flight, its exit read from the pidfd at the "
                       "reap (interleaved with the next three rows)",
                       job_mps, &ep, block, 5),
                MEMBER("exec1_records",
                       "exec job /bin/true, 1 in flight, its exit from the server's record "
                       "only (MPSPAWN_NO_PIDFD_EXIT=1)",
                       job_mps, &er, block, 5),
                MEMBER("call1_pidfd_exit",
                       "call job noop (1 MiB table), 1 in flight, its exit read from the pidfd",
                       job_mps, &kp, block, 5),
                MEMBER("call1_records",
                       "call job noop (1 MiB table), 1 in flight, its exit from the record "
                       "only (MPSPAWN_NO_PIDFD_EXIT=1)",
                       job_mps, &kr, block, 5),
        };
        progress("pidfd exits against records: 20 rounds of interleaved blocks");
        measure_group(m, 4, 20);
        mps_client_close(rp);
        mps_client_close(rpre);
}

struct map_ctx {
        mps_client *client;
        const mps_spec *spec;
        const char *what;
};

#define MAP_WORKERS 64

/* n jobs through mps_pool_map with 64 workers, in a fresh pool. A map
 * gives no job its own time: each sample is the batch's time per job. */
static uint64_t batch_map(void *ctx, unsigned n, uint64_t *samples) {
        struct map_ctx *x = ctx;
        const mps_spec **specs = xcalloc(n, sizeof(*specs));
        int *codes = xcalloc(n, sizeof(int));
        mps_pool *pool;
        for (unsigned i = 0; i < n; i++)
                specs[i] = x->spec;
        if (mps_pool_new(x->client, MAP_WORKERS, &pool) < 0)
                die("mps_pool_new");
        uint64_t t0 = now_ns();
        int r = mps_pool_map(pool, specs, n, codes);
        uint64_t elapsed = now_ns() - t0;
        if (r < 0)
                die("%s: mps_pool_map: %s", x->what, mps_strerror(r));
        for (unsigned i = 0; i < n; i++)
                if (codes[i] != 0)
                        die("%s: job %u exit code %d", x->what, i, codes[i]);
        mps_pool_close(pool);
        mps_pool_join(pool, -1);
        mps_pool_free(pool);
        for (unsigned i = 0; samples && i < n; i++)
                samples[i] = elapsed / n;
        free(specs);
        free(codes);
        return elapsed;
}

/* A 1,000-job map through 64 workers, exec and call jobs, with the starts
 * in spawn_batch requests (cp, cpre) and one request each (new clients of
 * the same servers, MPSPAWN_NO_BATCH=1), interleaved. */
static void rows_batch(mps_client *cp, mps_client *cpre, const char *plain, const char *pre,
                       mps_spec *t, mps_spec *noop) {
        mps_client *sp = connect_with_knob(plain, "MPSPAWN_NO_BATCH"),
                   *spre = connect_with_knob(pre, "MPSPAWN_NO_BATCH");
        struct map_ctx eb = {cp, t, "exec map"}, es = {sp, t, "exec map (no batches)"},
                       kb = {cpre, noop, "call map"}, ks = {spre, noop, "call map (no batches)"};
        unsigned block = reps(1000, 100), warm = reps(100, 10);
        struct member m[4] = {
                BATCH("map1000_exec_batch",
                      "map of 1,000 exec jobs /bin/true through 64 workers, starts in "
                      "spawn_batch requests (time per job; interleaved with the next three)",
                      batch_map, &eb, block, warm),
                BATCH("map1000_exec_single",
                      "map of 1,000 exec jobs /bin/true through 64 workers, a request per "
                      "start (MPSPAWN_NO_BATCH=1)",
                      batch_map, &es, block, warm),
                BATCH("map1000_call_batch",
                      "map of 1,000 call jobs noop (1 MiB table) through 64 workers, starts "
                      "in spawn_batch requests",
                      batch_map, &kb, block, warm),
                BATCH("map1000_call_single",
                      "map of 1,000 call jobs noop (1 MiB table) through 64 workers, a "
                      "request per start (MPSPAWN_NO_BATCH=1)",
                      batch_map, &ks, block, warm),
        };
        progress("maps with and without batches: 5 rounds of interleaved blocks");
        measure_group(m, 4, 5);
        mps_client_close(sp);
        mps_client_close(spre);
}

/*
 * Everything side by side: five servers run at once (plain; preloaded;
 * preloaded with --prefork 8; preloaded with a 256 MiB table from malloc,
 * and with one from mps_preload_alloc) and every
 * round runs a block of each row: the bench's own spawns, jobs one at a
 * time and 8 in flight, the CLI, Python. Then the big client.
 */
static void section_side_by_side(void) {
        static const char *const small_table[] = {"MPS_TEST_TABLE_MB=1", NULL};
        static const char *const big_table[] = {"MPS_TEST_TABLE_MB=256",
                                                "MPS_TEST_TABLE_PRIVATE=1", NULL};
        static const char *const big_shared_table[] = {"MPS_TEST_TABLE_MB=256", NULL};
        const char *preload[] = {"--preload", opt.preload_so, NULL};
        const char *prefork[] = {"--preload", opt.preload_so, "--prefork", "8", NULL};
        struct server plain, pre, pref, big, bigs;
        struct helper small;

        progress("starting five servers: plain, --preload, --preload --prefork 8, "
                 "--preload with a 256 MiB table from malloc, and from mps_preload_alloc");
        server_start(&plain, NULL, NULL);
        server_start(&pre, preload, small_table);
        server_start(&pref, prefork, small_table);
        server_start(&big, preload, big_table);
        server_start(&bigs, preload, big_shared_table);
        helper_start(&small, plain.path);

        mps_client *cp = connect_to(plain.path), *cpre = connect_to(pre.path),
                   *cpref = connect_to(pref.path), *cbig = connect_to(big.path),
                   *cbigs = connect_to(bigs.path);
        mps_spec *t = spec_true(), *noop = spec_noop(), *f = spec_true(),
                 *res = spec_call_result(), *rd = spec_call("table_read");
        if (mps_spec_set_seccomp(f, "bench", seccomp_policy) < 0)
                die("mps_spec_set_seccomp");
        struct mps_job j_exec = {cp, t, "exec job"}, j_sec = {cp, f, "exec job with seccomp"},
                       j_call = {cpre, noop, "call job"},
                       j_res = {cpre, res, "call job with a result"},
                       j_callp = {cpref, noop, "call job, --prefork"},
                       j_execp = {cpref, t, "exec job, --prefork"},
                       j_callbig = {cbig, noop, "call job, 256 MiB table"},
                       j_callbigs = {cbigs, noop, "call job, 256 MiB shared table"},
                       j_readbig = {cbig, rd, "call job reading a 256 MiB table"},
                       j_readbigs = {cbigs, rd, "call job reading a 256 MiB shared table"};
        char *cli_argv[] = {opt.cli_bin, "--socket", plain.path, "--", "/bin/true", NULL};
        char *cli_emb_argv[] = {opt.cli_bin, "--", "/bin/true", NULL};
        /* The embedded default as it was: MPSPAWN_USER_SERVER=0. */
        size_t nenv = 0;
        while (environ[nenv])
                nenv++;
        char **emb_env = xcalloc(nenv + 2, sizeof(char *));
        memcpy(emb_env, environ, nenv * sizeof(char *));
        emb_env[nenv] = "MPSPAWN_USER_SERVER=0";
        struct command cli = {.argv = cli_argv, .tolerate = true},
                       cli_user = {.argv = cli_emb_argv, .tolerate = true},
                       cli_cold = {.argv = cli_emb_argv, .tolerate = true},
                       cli_emb = {.argv = cli_emb_argv, .envp = emb_env, .tolerate = true};
        struct stat stb;
        const char *sys = stat("/run/mpspawn/forkserver.sock", &stb) == 0
                ? " (NOTE: a system server was found and used)" : "";

        struct seccomp_pair pair = {&j_sec, &j_exec, xcalloc(20 * (size_t)reps(100, 5), 8), 0};
        struct inflight_ctx i_exec = {cp, t, "exec job, 8 in flight"},
                            i_call = {cpre, noop, "call job, 8 in flight"},
                            i_callp = {cpref, noop, "call job, --prefork, 8 in flight"};
        /* Blocks per round; 20 rounds make 2000 runs of a block of 100. */
        unsigned b200 = reps(200, 10), b100 = reps(100, 5), b50 = reps(50, 3),
                 b25 = reps(25, 3), b15 = reps(15, 2), b2 = reps(2, 1);
        struct member m[25] = {
                MEMBER("stats_rtt",
                       "stats request to the server and its answer (a round trip that "
                       "forks nothing)",
                       job_stats_round_trip, cp, b200, 10),
                MEMBER("fork_exit", "fork + _exit + waitpid (bench process)", job_fork_exit,
                       NULL, b100, 5),
                MEMBER("posix_spawn", "posix_spawn + waitpid of /bin/true (bench process)",
                       job_spawn_argv, &run_true, b100, 5),
                MEMBER("fork_exec", "fork + exec + waitpid of /bin/true (bench process)",
                       job_fork_exec_true, NULL, b50, 3),
                MEMBER("exec1", "exec job /bin/true, 1 in flight", job_mps, &j_exec, b100, 5),
                BATCH("exec8",
                      "exec job /bin/true, 8 in flight (mps_pool; latency from a free slot "
                      "to the exit record)",
                      batch_inflight, &i_exec, b200, 16),
                BATCH("seccomp_on",
                      "exec job /bin/true with a cached seccomp filter (default allow, "
                      "errno(EPERM) ptrace), 1 in flight, paired with one without",
                      batch_seccomp_pair, &pair, b100, 5),
                MEMBER("exec1_prefork", "exec job /bin/true, --prefork 8, 1 in flight", job_mps,
                       &j_execp, b50, 3),
                MEMBER("call1", "call job noop (1 MiB table), 1 in flight", job_mps, &j_call,
                       b100, 5),
                MEMBER("call1_result",
                       "call job " RESULT_ENTRY " (1 MiB table) setting a small result, read "
                       "back with mps_result, 1 in flight",
                       job_mps_result, &j_res, b100, 5),
                BATCH("call8", "call job noop (1 MiB table), 8 in flight (mps_pool)",
                      batch_inflight, &i_call, b200, 16),
                MEMBER("call1_prefork", "call job noop (1 MiB table), --prefork 8, 1 in flight",
                       job_mps, &j_callp, b100, 5),
                BATCH("call8_prefork",
                      "call job noop (1 MiB table), --prefork 8, 8 in flight (mps_pool)",
                      batch_inflight, &i_callp, b200, 16),
                MEMBER("call1_big",
                       "call job noop, server holding a 256 MiB table (malloc: private, "
                       "copy-on-write), 1 in flight",
                       job_mps, &j_callbig, b15, 1),
                MEMBER("call1_big_shared",
                       "call job noop, server holding a 256 MiB table from mps_preload_alloc "
                       "(shared, read-only), 1 in flight",
                       job_mps, &j_callbigs, b100, 5),
                MEMBER("call1_big_read",
                       "call job table_read (one byte of every page) of the 256 MiB malloc "
                       "table, 1 in flight",
                       job_mps, &j_readbig, b15, 1),
                MEMBER("call1_big_shared_read",
                       "call job table_read (one byte of every page) of the 256 MiB shared "
                       "table, 1 in flight",
                       job_mps, &j_readbigs, b15, 1),
                MEMBER("cli_socket", "`mpspawn --socket S -- /bin/true` (whole process)",
                       job_spawn_argv, &cli, b50, 3),
                MEMBER("cli_user",
                       "`mpspawn -- /bin/true`, no server named: the per-user server an "
                       "earlier run started (whole process)",
                       job_spawn_argv, &cli_user, b50, 3),
                MEMBER("cli_user_cold",
                       "`mpspawn -- /bin/true` with no server up: this run starts the "
                       "per-user server (cold start)",
                       job_cli_cold, &cli_cold, b15, 0),
                MEMBER("cli_embedded", "", job_spawn_argv, &cli_emb, b15, 2),
        };
        size_t k = 21;
        snprintf(m[20].label, sizeof(m[20].label),
                 "`mpspawn -- /bin/true`, MPSPAWN_USER_SERVER=0: a private embedded server "
                 "per run (the old default)%s", sys);
        if (python_find()) {
                /* Each block is a fresh interpreter that warms up first. */
                m[k++] = (struct member)BATCH(
                        "py_forkserver",
                        "Python multiprocessing Process(target=noop) start+join, forkserver",
                        batch_python, "forkserver", b15, 0);
                m[k++] = (struct member)BATCH(
                        "py_fork", "Python multiprocessing Process(target=noop) start+join, fork",
                        batch_python, "fork", b25, 0);
                m[k++] = (struct member)BATCH(
                        "py_spawn",
                        "Python multiprocessing Process(target=noop) start+join, spawn",
                        batch_python, "spawn", b2, 0);
        }
        progress("side by side: 20 rounds of interleaved blocks");
        measure_group(m, k, 20);
        qsort(pair.diffs, pair.ndiffs, sizeof(int64_t), cmp_i64);
        seccomp_pairs = pair.ndiffs;
        seccomp_cost_us = pair.ndiffs ? (double)pair.diffs[(pair.ndiffs - 1) / 2] / 1e3 : NAN;
        free(pair.diffs);
        note_failures(&cli, 20 * (b50 + 3), "`mpspawn --socket S -- /bin/true`");
        note_failures(&cli_user, 20 * (b50 + 3), "`mpspawn -- /bin/true` (per-user server)");
        note_failures(&cli_cold, 20 * b15, "`mpspawn -- /bin/true` (cold start)");
        note_failures(&cli_emb, 20 * (b15 + 2), "`mpspawn -- /bin/true` (embedded)");
        user_server_stop();
        free(emb_env);
        rows_pidfd_exit(cp, cpre, plain.path, pre.path, t, noop, b100);
        rows_batch(cp, cpre, plain.path, pre.path, t, noop);


        /* The big client: this process with a big heap, against the small
         * helper, interleaved; then the bench's own spawns from the heap. */
        size_t mib = opt.big_mib;
        long avail = meminfo_kib("MemAvailable");
        if (avail > 0 && (long)(mib + 2048) * 1024 > avail) {
                size_t fit = avail / 1024 > 2048 + 256 ? (size_t)(avail / 1024 - 2048) : 256;
                note("big client: %zu MiB asked, %ld MiB available; used %zu MiB", mib,
                     avail / 1024, fit);
                mib = fit;
        }
        progress("big client: touching %zu MiB", mib);
        uint64_t t0 = now_ns();
        void *heap = big_heap(mib);
        progress("touched %zu MiB in %.1f s", mib, (double)(now_ns() - t0) / 1e9);
        struct member mb[3] = {
                MEMBER("launch_small",
                       "exec job /bin/true from a small client (a helper process; "
                       "interleaved with the next two rows)",
                       job_helper, &small, b50, 3),
                MEMBER("launch_big", "", job_mps, &j_exec, b50, 3),
                MEMBER("posix_spawn_big", "", job_spawn_argv, &run_true, b50, 3),
        };
        snprintf(mb[1].label, sizeof(mb[1].label),
                 "exec job /bin/true from a client that touched %zu MiB", mib);
        snprintf(mb[2].label, sizeof(mb[2].label),
                 "posix_spawn + waitpid of /bin/true from the %zu MiB process", mib);
        measure_group(mb, 3, 20);
        struct stats st = measure(job_fork_exec_true, NULL, 1, reps(10, 5));
        add_row("fork_exec_big", &st,
                "fork + exec + waitpid of /bin/true from the %zu MiB process", mib);
        munmap(heap, mib << 20);
        helper_stop(&small);


        mps_spec_free(rd);
        mps_spec_free(res);
        mps_spec_free(f);
        mps_spec_free(noop);
        mps_spec_free(t);
        mps_client_close(cp);
        mps_client_close(cpre);
        mps_client_close(cpref);
        mps_client_close(cbig);
        mps_client_close(cbigs);
        server_stop(&plain);
        server_stop(&pre);
        server_stop(&pref);
        server_stop(&big);
        server_stop(&bigs);
}

/* How many sleeping jobs this machine allows: fds (one pidfd per job in
 * the server and one sentinel per job here), pids and threads. */
static unsigned children_possible(unsigned want, char *why, size_t whylen) {
        struct rlimit nofile;
        unsigned n = want;
        long pid_max = 0, threads_max = 0, running = 0, total = 0;
        FILE *f;
        snprintf(why, whylen, "limited by nothing");
        getrlimit(RLIMIT_NOFILE, &nofile);
        if (nofile.rlim_cur != RLIM_INFINITY && nofile.rlim_cur < (rlim_t)want + 256) {
                n = nofile.rlim_cur > 512 ? (unsigned)nofile.rlim_cur - 256 : 0;
                snprintf(why, whylen, "RLIMIT_NOFILE hard limit %lu",
                         (unsigned long)nofile.rlim_cur);
        }
        if ((f = fopen("/proc/sys/kernel/pid_max", "re"))) {
                if (fscanf(f, "%ld", &pid_max) != 1)
                        pid_max = 0;
                fclose(f);
        }
        if ((f = fopen("/proc/sys/kernel/threads-max", "re"))) {
                if (fscanf(f, "%ld", &threads_max) != 1)
                        threads_max = 0;
                fclose(f);
        }
        if ((f = fopen("/proc/loadavg", "re"))) {
                double l1, l5, l15;
                if (fscanf(f, "%lf %lf %lf %ld/%ld", &l1, &l5, &l15, &running, &total) != 5)
                        total = 0;
                fclose(f);
        }
        long room = pid_max - total - 1000;
        if (pid_max > 0 && room < (long)n) {
                n = room > 0 ? (unsigned)room : 0;
                snprintf(why, whylen, "pid_max %ld with %ld tasks running", pid_max, total);
        }
        room = threads_max - total - 1000;
        if (threads_max > 0 && room < (long)n) {
                n = room > 0 ? (unsigned)room : 0;
                snprintf(why, whylen, "threads-max %ld with %ld tasks running", threads_max,
                         total);
        }
        if (getuid() != 0) {
                struct rlimit nproc;
                getrlimit(RLIMIT_NPROC, &nproc);
                if (nproc.rlim_cur != RLIM_INFINITY && nproc.rlim_cur < (rlim_t)n + 1000) {
                        n = nproc.rlim_cur > 1000 ? (unsigned)nproc.rlim_cur - 1000 : 0;
                        snprintf(why, whylen, "RLIMIT_NPROC %lu",
                                 (unsigned long)nproc.rlim_cur);
                }
        }
        return n;
}

/* The sleeping jobs: daemon jobs with a parent-death signal, so that they
 * go with the client or the server, whatever happens to the bench; stdio
 * is /dev/null (no fds passed). */
static mps_spec *spec_sleeper(void) {
        static const char *const sleep_argv[] = {"sleep", "600", NULL};
        mps_spec *sl = spec_exec("/bin/sleep", sleep_argv);
        mps_spec_set_daemon(sl, true);
        mps_spec_set_pdeathsig(sl, SIGKILL);
        for (int fd = 0; fd <= 2; fd++)
                mps_spec_map_fd(sl, fd, -1);
        return sl;
}

static void start_sleepers(mps_client *c, const mps_spec *spec, mps_process **procs,
                           unsigned from, unsigned to) {
        for (unsigned i = from; i < to; i++) {
                int r = mps_process_new(c, spec, &procs[i]);
                if (r < 0 || (r = mps_start(procs[i])) < 0)
                        die("sleeping job %u: %s (%s)", i, mps_strerror(r), mps_client_error(c));
        }
}

/* Kills and joins in batches: the server keeps at most 4096 replies for a
 * reader that is not reading. */
static void kill_sleepers(mps_client *c, mps_process **procs, unsigned n) {
        for (unsigned b = 0; b < n; b += 256) {
                unsigned e = b + 256 < n ? b + 256 : n;
                for (unsigned i = b; i < e; i++)
                        if (mps_kill(procs[i]) < 0)
                                die("mps_kill: %s", mps_client_error(c));
                for (unsigned i = b; i < e; i++) {
                        if (mps_join(procs[i], -1) < 0 || mps_exitcode(procs[i]) != -SIGKILL)
                                die("sleeping job %u did not end by SIGKILL (%d)", i,
                                    mps_exitcode(procs[i]));
                        mps_process_close(procs[i]);
                }
        }
}

/* Server memory idle and with many sleeping children, and the spawn
 * latency with few and with many tracked. */
static void section_memory(void) {
        struct server s;
        char why[200];
        progress("server memory: a plain server, idle, then with many sleeping jobs");
        /* The library's default: an embedded server, with no service
         * manager to talk to (libsystemd is not loaded). */
        mps_client *ec;
        char *msg = NULL;
        if (mps_client_open(NULL, &ec, &msg) < 0)
                die("embedded server: %s", msg ? msg : "out of memory");
        struct proc_status ps = read_status(mps_client_server_pid(ec));
        struct stat stb;
        bool sys = stat("/run/mpspawn/forkserver.sock", &stb) == 0;
        add_mem("rss_idle", ps.vmrss, "KiB",
                "embedded server (the library's default), idle with its one client "
                "(VmRSS; anon %.0f, file %.0f KiB)%s",
                ps.anon, ps.file,
                sys ? " (NOTE: a system server was found: this is its RSS)" : "");
        mps_client_close(ec);
        /* A server that tells a service manager (NOTIFY_SOCKET) has loaded
         * libsystemd and the six libraries it brings. */
        server_start(&s, NULL, NULL);
        ps = read_status(s.pid);
        add_mem("rss_idle_notify", ps.vmrss, "KiB",
                "server on --socket under a service manager (NOTIFY_SOCKET: libsystemd "
                "loaded), idle, just started (VmRSS; anon %.0f, file %.0f KiB)",
                ps.anon, ps.file);

        mps_client *c = connect_to(s.path);
        unsigned n = children_possible(opt.children, why, sizeof(why));
        if (n < opt.children)
                snprintf(machine.children_note, sizeof(machine.children_note),
                         "%u sleeping jobs asked, %u possible here (%s)", opt.children, n,
                         why);
        else if (n < 10000)
                snprintf(machine.children_note, sizeof(machine.children_note),
                         "%u sleeping jobs (--children %u); the target is for 10,000", n,
                         opt.children);
        if (n < 10)
                die("cannot start even 10 sleeping jobs here (%s)", why);

        mps_spec *sl = spec_sleeper();
        mps_process **procs = xcalloc(n, sizeof(*procs));
        mps_spec *t = spec_true();
        struct mps_job jt = {c, t, "exec job /bin/true"};

        start_sleepers(c, sl, procs, 0, 10);
        struct stats st = measure(job_mps, &jt, 100, reps(1000, 50));
        add_row("lat_10", &st, "exec job /bin/true, 1 in flight, 10 sleeping jobs tracked");

        uint64_t t0 = now_ns();
        start_sleepers(c, sl, procs, 10, n);
        double secs = (double)(now_ns() - t0) / 1e9;
        machine.children_done = n;
        mps_server_stats ss;
        if (mps_client_stats(c, &ss) < 0)
                die("mps_client_stats: %s", mps_client_error(c));
        progress("%u sleeping jobs started in %.1f s; the server tracks %" PRIu64 " running",
                 n - 10, secs, ss.jobs_running);
        if (ss.jobs_running < n)
                die("the server tracks %" PRIu64 " jobs, not %u", ss.jobs_running, n);
        /* The stats answer came after every start was handled: the
         * server's memory is what it is now, whatever the children do. */
        ps = read_status(s.pid);
        add_mem("rss_children", ps.vmrss, "KiB",
                "server with %u sleeping jobs tracked (VmRSS; anon %.0f, file %.0f KiB)", n,
                ps.anon, ps.file);
        add_mem("children_start_rate", (n - 10) / secs, "jobs/s",
                "rate of starting the %u sleeping jobs (one mps_start at a time)", n - 10);

        st = measure(job_mps, &jt, 100, reps(1000, 50));
        add_row("lat_many", &st, "exec job /bin/true, 1 in flight, %u sleeping jobs tracked",
                n);

        t0 = now_ns();
        kill_sleepers(c, procs, n);
        progress("killed and joined %u sleeping jobs in %.1f s", n,
                 (double)(now_ns() - t0) / 1e9);
        ps = read_status(s.pid);
        add_mem("rss_after", ps.vmrss, "KiB",
                "server after all %u ended (VmRSS; anon %.0f, file %.0f KiB)", n, ps.anon,
                ps.file);
        free(procs);
        mps_spec_free(sl);
        mps_spec_free(t);
        mps_client_close(c);
        server_stop(&s);
}

/* ---- threads ------------------------------------------------------------------------ */

/*
 * A multi-threaded host: 16 threads, each running /bin/true one job at a
 * time (start, join, close), through one client they all share, through a
 * client of their own each (both on one plain server), and, the baseline,
 * by posix_spawn + waitpid in the bench process. A batch of n jobs is n/16
 * per thread; its time runs from the moment every thread is ready (a
 * barrier, so thread creation is not in it) until the last one is done,
 * and jobs/s is over that. p50 and p99 are of the jobs' own latencies.
 */
#define BENCH_THREADS 16

struct threads_ctx {
        const char *what;
        mps_client *clients[BENCH_THREADS]; /* [0] only, when shared */
        bool shared;
        bool posix_spawn; /* the baseline: no client at all */
        mps_spec *spec;   /* only read (mps_process_new copies it): one for all */
};

struct thread_part {
        const struct threads_ctx *x;
        unsigned index, n;
        uint64_t *samples; /* n of them, or NULL for a warm-up */
        pthread_barrier_t *ready;
};

static void *thread_jobs(void *arg) {
        struct thread_part *t = arg;
        const struct threads_ctx *x = t->x;
        struct mps_job j = {x->clients[x->shared ? 0 : t->index], x->spec, x->what};
        struct command cmd = run_true; /* its failure counters are per thread */
        pthread_barrier_wait(t->ready);
        for (unsigned k = 0; k < t->n; k++) {
                uint64_t d = x->posix_spawn ? job_spawn_argv(&cmd) : job_mps(&j);
                if (t->samples)
                        t->samples[k] = d;
        }
        return NULL;
}

static uint64_t batch_threads(void *ctx, unsigned n, uint64_t *samples) {
        const struct threads_ctx *x = ctx;
        pthread_t tid[BENCH_THREADS];
        struct thread_part parts[BENCH_THREADS];
        pthread_barrier_t ready;
        unsigned per = n / BENCH_THREADS;
        if (per * BENCH_THREADS != n)
                die("%s: a batch of %u is not %u threads' worth", x->what, n, BENCH_THREADS);
        pthread_barrier_init(&ready, NULL, BENCH_THREADS + 1);
        for (unsigned i = 0; i < BENCH_THREADS; i++) {
                parts[i] = (struct thread_part){x, i, per, samples ? samples + i * per : NULL,
                                                &ready};
                int r = pthread_create(&tid[i], NULL, thread_jobs, &parts[i]);
                if (r != 0)
                        die("pthread_create: %s", strerror(r));
        }
        pthread_barrier_wait(&ready);
        uint64_t t0 = now_ns();
        for (unsigned i = 0; i < BENCH_THREADS; i++)
                pthread_join(tid[i], NULL);
        uint64_t elapsed = now_ns() - t0;
        pthread_barrier_destroy(&ready);
        return elapsed;
}

/* A block: about n jobs, rounded up to whole threads' worth. */
static unsigned thread_block(unsigned n) {
        unsigned b = reps(n, BENCH_THREADS);
        return (b + BENCH_THREADS - 1) / BENCH_THREADS * BENCH_THREADS;
}

static void section_threads(void) {
        struct server s;
        progress("threads: %u threads, one shared client, a client each, posix_spawn",
                 BENCH_THREADS);
        server_start(&s, NULL, NULL);
        mps_spec *t = spec_true();
        struct threads_ctx shared = {.what = "exec job, one client shared by 16 threads",
                                     .shared = true, .spec = t},
                           own = {.what = "exec job, a client per thread", .spec = t},
                           ps = {.what = "posix_spawn, 16 threads", .posix_spawn = true};
        shared.clients[0] = connect_to(s.path);
        for (unsigned i = 0; i < BENCH_THREADS; i++)
                own.clients[i] = connect_to(s.path);
        unsigned b = thread_block(320), w = BENCH_THREADS;
        struct member m[3] = {
                BATCH("thr_shared",
                      "16 threads × exec job /bin/true (start + join), one client shared by "
                      "all", batch_threads, &shared, b, w),
                BATCH("thr_clients",
                      "16 threads × exec job /bin/true (start + join), a client per thread, "
                      "same server", batch_threads, &own, b, w),
                BATCH("thr_posix_spawn",
                      "16 threads × posix_spawn + waitpid of /bin/true (bench process)",
                      batch_threads, &ps, b, w),
        };
        current_section = "threads";
        measure_group(m, 3, 20);
        current_section = NULL;
        mps_client_close(shared.clients[0]);
        for (unsigned i = 0; i < BENCH_THREADS; i++)
                mps_client_close(own.clients[i]);
        mps_spec_free(t);
        server_stop(&s);
}

/* ---- targets and output ---------------------------------------------------------- */

static void ratio_target(const char *num_key, const char *den_key, bool rates, char op,
                         double limit, const char *label) {
        double num = rates ? row_rate(num_key) : row_p50(num_key);
        double den = rates ? row_rate(den_key) : row_p50(den_key);
        char measured[200];
        snprintf(measured, sizeof(measured), "%.1f / %.1f %s", num, den,
                 rates ? "jobs/s" : "us p50");
        add_target(num / den, op, limit, measured, "%s", label);
}

static void make_targets(void) {
        ratio_target("exec1", "posix_spawn", false, '<', 1.10,
                     "exec job p50 / posix_spawn+waitpid p50");
        /* What the messages alone make of that ratio here. */
        double floor_ratio = (row_p50("posix_spawn") + 1.5 * row_p50("stats_rtt")) /
                             row_p50("posix_spawn");
        char fm[200];
        snprintf(fm, sizeof(fm), "(%.1f + 1.5 × %.1f) / %.1f us p50", row_p50("posix_spawn"),
                 row_p50("stats_rtt"), row_p50("posix_spawn"));
        add_target(floor_ratio, 'i', 0, fm,
                   "estimated floor of the exec ratio here: posix_spawn plus the 1.5 "
                   "round trips of a job's messages (no target)");
        ratio_target("exec8", "posix_spawn", true, '>', 1.5,
                     "exec jobs/s, 8 in flight / sequential posix_spawn jobs/s");
        ratio_target("call1_prefork", "fork_exit", false, '<', 1.0,
                     "call job p50 with --prefork / fork+_exit+waitpid p50");
        ratio_target("call1", "fork_exit", false, '<', 1.3,
                     "call job p50 without prefork / fork+_exit+waitpid p50");
        ratio_target("call1_big_shared", "call1", false, '<', 1.3,
                     "call job p50, 256 MiB table from mps_preload_alloc / 1 MiB table");
        ratio_target("call1_big", "call1", false, 'i', 0,
                     "call job p50, 256 MiB table from malloc / 1 MiB table (no target)");
        ratio_target("call1_result", "call1", false, 'i', 0,
                     "call job with a result p50 / plain call job p50 (no target)");
        ratio_target("py_forkserver", "call1", false, '>', 40,
                     "Python forkserver Process start+join p50 / call job p50 (no prefork)");
        ratio_target("py_forkserver", "call1_prefork", false, '>', 40,
                     "Python forkserver Process start+join p50 / call job p50 (--prefork)");
        ratio_target("launch_big", "launch_small", false, '<', 1.10,
                     "launch from the big client p50 / from the small client p50");
        ratio_target("fork_exec_big", "launch_big", false, '>', 100,
                     "fork+exec from the big client p50 / forkserver launch from it p50");
        /* Issue 14's goals: 2.5 x with a running server, 3 x with none
         * (the first run starts the per-user server, later ones reuse it). */
        ratio_target("cli_socket", "posix_spawn", false, '<', 2.5,
                     "`mpspawn --socket S -- /bin/true` p50 / /bin/true alone p50");
        ratio_target("cli_user", "posix_spawn", false, '<', 3.0,
                     "`mpspawn -- /bin/true` with no server named (the per-user server) p50 "
                     "/ /bin/true alone p50");
        ratio_target("cli_user_cold", "posix_spawn", false, 'i', 0,
                     "`mpspawn -- /bin/true` starting the per-user server p50 / /bin/true "
                     "alone p50 (no target)");
        ratio_target("cli_embedded", "posix_spawn", false, 'i', 0,
                     "`mpspawn -- /bin/true`, MPSPAWN_USER_SERVER=0 (a private embedded "
                     "server per run) p50 / /bin/true alone p50 (no target)");
        char label[200];
        snprintf(label, sizeof(label),
                 "exec job p50 with %u children tracked / with 10 (no target: should be "
                 "near 1)", machine.children_done);
        ratio_target("lat_many", "lat_10", false, 'i', 1.0, label);

        ratio_target("thr_shared", "thr_posix_spawn", true, 'i', 0,
                     "16 threads, one shared client: exec jobs/s / 16 threads' posix_spawn "
                     "jobs/s (no target)");
        ratio_target("thr_clients", "thr_posix_spawn", true, 'i', 0,
                     "16 threads, a client each: exec jobs/s / 16 threads' posix_spawn "
                     "jobs/s (no target)");

        double idle = mem_get("rss_idle");
        char m[200];
        snprintf(m, sizeof(m), "%.0f KiB", idle);
        add_target(idle / 1024, '<', 2.0, m, "embedded server idle RSS, MiB");
        idle = mem_get("rss_idle_notify");
        snprintf(m, sizeof(m), "%.0f KiB", idle);
        add_target(idle / 1024, '<', 2.0, m,
                   "server idle RSS under a service manager (libsystemd loaded), MiB");
        double many = mem_get("rss_children");
        snprintf(m, sizeof(m), "%.0f KiB", many);
        add_target(many / 1024, '<', 16.0, m, "server RSS with %u sleeping children, MiB%s",
                   machine.children_done,
                   machine.children_done < 10000 ? " (target is for 10,000: see notes)" : "");
}

/* The threads section: its rows side by side, jobs/s against the
 * posix_spawn row's (measured in the same interleaved rounds). */
static void print_threads_table(void) {
        double base = row_rate("thr_posix_spawn");
        bool any = false;
        for (size_t i = 0; i < nrows; i++) {
                const struct row *r = &rows[i];
                if (!r->section || strcmp(r->section, "threads") != 0)
                        continue;
                if (!any)
                        printf("\n| %u threads at once | reps | p50 µs | p99 µs | jobs/s | "
                               "jobs/s / posix_spawn's |\n| --- | ---: | ---: | ---: | ---: "
                               "| ---: |\n", BENCH_THREADS);
                any = true;
                printf("| %s | %u | %.1f | %.1f | %.0f | %.2f |\n", r->label, r->reps,
                       r->p50_us, r->p99_us, r->jobs_per_s, r->jobs_per_s / base);
        }
}

static void print_markdown(void) {
        printf("## mpspawn bench\n\n");
        printf("Machine: %ld CPUs, %s, Linux %s, THP %s. Run: %.0f s; load average "
               "%.2f at the start, %.2f at the end; the CPUs were %.0f%% busy, about %.0f%% "
               "with work other than this run's.\n\n",
               machine.ncpu, machine.cpu, machine.kernel, machine.thp, machine.seconds,
               machine.load_start[0], machine.load_end[0], 100 * machine.busy_share,
               100 * machine.others_share);
        printf("| measurement | reps | p50 µs | p99 µs | jobs/s |\n");
        printf("| --- | ---: | ---: | ---: | ---: |\n");
        for (size_t i = 0; i < nrows; i++) {
                const struct row *r = &rows[i];
                if (r->section)
                        continue;
                printf("| %s | %u | %.1f | %.1f | %.0f |\n", r->label, r->reps, r->p50_us,
                       r->p99_us, r->jobs_per_s);
        }
        print_threads_table();
        if (!isnan(seccomp_cost_us))
                printf("\nCost of a cached seccomp filter per exec job: %.1f µs (the median of "
                       "%u paired differences, with minus without).\n",
                       seccomp_cost_us, seccomp_pairs);

        printf("\n| server memory | value |\n| --- | ---: |\n");
        for (size_t i = 0; i < nmemrows; i++)
                printf("| %s | %.1f %s |\n", memrows[i].label, memrows[i].value,
                       memrows[i].unit);

        printf("\n| target | measured | ratio | limit | result |\n");
        printf("| --- | --- | ---: | ---: | --- |\n");
        for (size_t i = 0; i < ntargets; i++) {
                const struct target *t = &targets[i];
                if (t->op == 'i')
                        printf("| %s | %s | %.2f | — | %s |\n", t->label, t->measured,
                               t->value, target_result(t));
                else
                        printf("| %s | %s | %.2f | %s %.2f | %s |\n", t->label, t->measured,
                               t->value, t->op == '<' ? "≤" : "≥", t->limit,
                               target_result(t));
        }
        if (machine.children_note[0])
                printf("\nNote: %s.\n", machine.children_note);
        for (size_t i = 0; i < machine.nnotes; i++)
                printf("\nNote: %s.\n", machine.notes[i]);
}

static void json_string(const char *s) {
        putchar('"');
        for (; *s; s++) {
                unsigned char ch = (unsigned char)*s;
                if (ch == '"' || ch == '\\')
                        printf("\\%c", ch);
                else if (ch < 0x20)
                        printf("\\u%04x", ch);
                else
                        putchar(ch);
        }
        putchar('"');
}

static void json_number(double v) {
        if (isnan(v) || isinf(v))
                printf("null");
        else
                printf("%.3f", v);
}

static void print_json(void) {
        printf("{\"machine\":{\"cpus\":%ld,\"cpu\":", machine.ncpu);
        json_string(machine.cpu);
        printf(",\"kernel\":");
        json_string(machine.kernel);
        printf(",\"thp\":");
        json_string(machine.thp);
        printf(",\"seconds\":");
        json_number(machine.seconds);
        printf(",\"load_start\":");
        json_number(machine.load_start[0]);
        printf(",\"load_end\":");
        json_number(machine.load_end[0]);
        printf(",\"busy_share\":");
        json_number(machine.busy_share);
        printf(",\"others_share\":");
        json_number(machine.others_share);
        printf("},\n\"seccomp_cost\":{\"median_us\":");
        json_number(seccomp_cost_us);
        printf(",\"pairs\":%u", seccomp_pairs);
        printf("},\n\"rows\":[");
        for (size_t i = 0; i < nrows; i++) {
                const struct row *r = &rows[i];
                printf("%s\n {\"key\":\"%s\",\"label\":", i ? "," : "", r->key);
                json_string(r->label);
                printf(",\"reps\":%u,\"p50_us\":", r->reps);
                json_number(r->p50_us);
                printf(",\"p99_us\":");
                json_number(r->p99_us);
                printf(",\"jobs_per_s\":");
                json_number(r->jobs_per_s);
                if (r->section)
                        printf(",\"section\":\"%s\"", r->section);
                printf("}");
        }
        printf("],\n\"memory\":[");
        for (size_t i = 0; i < nmemrows; i++) {
                printf("%s\n {\"key\":\"%s\",\"label\":", i ? "," : "", memrows[i].key);
                json_string(memrows[i].label);
                printf(",\"value\":");
                json_number(memrows[i].value);
                printf(",\"unit\":\"%s\"}", memrows[i].unit);
        }
        printf("],\n\"targets\":[");
        for (size_t i = 0; i < ntargets; i++) {
                const struct target *t = &targets[i];
                printf("%s\n {\"label\":", i ? "," : "");
                json_string(t->label);
                printf(",\"measured\":");
                json_string(t->measured);
                printf(",\"ratio\":");
                json_number(t->value);
                printf(",\"op\":\"%s\",\"limit\":",
                       t->op == '<' ? "<=" : t->op == '>' ? ">=" : "none");
                json_number(t->op == 'i' ? NAN : t->limit);
                printf(",\"result\":\"%s\"}", target_result(t));
        }
        printf("],\n\"notes\":[");
        size_t k = 0;
        if (machine.children_note[0]) {
                json_string(machine.children_note);
                k++;
        }
        for (size_t i = 0; i < machine.nnotes; i++, k++) {
                if (k)
                        putchar(',');
                json_string(machine.notes[i]);
        }
        printf("]}\n");
}

/* ---- set-up ----------------------------------------------------------------------- */

/* Busy and total jiffies of all CPUs, from /proc/stat. */
static void cpu_jiffies(double *ret_busy, double *ret_total) {
        unsigned long long v[10] = {0};
        FILE *f = fopen("/proc/stat", "re");
        *ret_busy = *ret_total = 0;
        if (!f)
                return;
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]) >= 8) {
                for (int i = 0; i < 8; i++)
                        *ret_total += (double)v[i];
                *ret_busy = *ret_total - (double)v[3] - (double)v[4]; /* idle, iowait */
        }
        fclose(f);
}

static void loadavg(double ret[3]) {
        FILE *f = fopen("/proc/loadavg", "re");
        ret[0] = ret[1] = ret[2] = NAN;
        if (f) {
                if (fscanf(f, "%lf %lf %lf", &ret[0], &ret[1], &ret[2]) != 3)
                        ret[0] = ret[1] = ret[2] = NAN;
                fclose(f);
        }
}

/* CPU time of this process and of every child reaped so far (servers,
 * their jobs, the helper, Python), in seconds. */
static double own_cpu_seconds(void) {
        struct rusage a, b;
        getrusage(RUSAGE_SELF, &a);
        getrusage(RUSAGE_CHILDREN, &b);
        return (double)(a.ru_utime.tv_sec + a.ru_stime.tv_sec + b.ru_utime.tv_sec +
                        b.ru_stime.tv_sec) +
               (double)(a.ru_utime.tv_usec + a.ru_stime.tv_usec + b.ru_utime.tv_usec +
                        b.ru_stime.tv_usec) / 1e6;
}

static void read_machine(void) {
        char line[512];
        struct utsname u;
        machine.ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        snprintf(machine.cpu, sizeof(machine.cpu), "unknown CPU");
        FILE *f = fopen("/proc/cpuinfo", "re");
        while (f && fgets(line, sizeof(line), f)) {
                char *colon = strchr(line, ':');
                if (strncmp(line, "model name", 10) == 0 && colon) {
                        snprintf(machine.cpu, sizeof(machine.cpu), "%s", colon + 2);
                        machine.cpu[strcspn(machine.cpu, "\n")] = '\0';
                        break;
                }
        }
        if (f)
                fclose(f);
        if (uname(&u) == 0)
                snprintf(machine.kernel, sizeof(machine.kernel), "%s", u.release);
        snprintf(machine.thp, sizeof(machine.thp), "unknown");
        f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
        if (f && fgets(line, sizeof(line), f)) {
                char *a = strchr(line, '['), *b = a ? strchr(a, ']') : NULL;
                if (a && b)
                        snprintf(machine.thp, sizeof(machine.thp), "%.*s", (int)(b - a - 1),
                                 a + 1);
        }
        if (f)
                fclose(f);
}

static void set_paths(const char *build) {
        char dir[PATH_MAX];
        if (build) {
                if (!realpath(build, dir))
                        die("--build %s: %m", build);
        } else {
                /* This binary is BUILD/tests/bench. */
                ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
                if (n <= 0)
                        die("/proc/self/exe: %m");
                dir[n] = '\0';
                for (int i = 0; i < 2; i++) {
                        char *slash = strrchr(dir, '/');
                        if (slash)
                                *slash = '\0';
                }
        }
        snprintf(opt.build, sizeof(opt.build), "%s", dir);
        snprintf(opt.server_bin, sizeof(opt.server_bin), "%s/mpforkserver", dir);
        snprintf(opt.cli_bin, sizeof(opt.cli_bin), "%s/mpspawn", dir);
        snprintf(opt.preload_so, sizeof(opt.preload_so), "%s/tests/preload_table.so", dir);
        /* The script lives in the source tree: BUILD's parent, tests/. */
        char top[PATH_MAX];
        snprintf(top, sizeof(top), "%s", dir);
        char *slash = strrchr(top, '/');
        if (slash)
                *slash = '\0';
        snprintf(opt.bench_mp, sizeof(opt.bench_mp), "%s/tests/bench_mp.py", top);
        const char *need[] = {opt.server_bin, opt.cli_bin, opt.preload_so};
        for (size_t i = 0; i < 3; i++)
                if (access(need[i], R_OK) < 0)
                        die("%s: %m (run `make` and `make %s` first)", need[i],
                            "build/tests/preload_table.so");
        if (access(opt.bench_mp, R_OK) < 0)
                opt.python = false;
}

static const char usage[] =
        "usage: bench [--json] [--build DIR] [--scale F] [--children N] [--big-mib N]\n"
        "             [--no-python] [--python PATH] [--only side|threads|memory]\n"
        "       bench --drive SOCKET exec|call|exec8|call8|execmap|callmap|hold N\n";

/*
 * Against a running server, for profiling it: N exec or call jobs one at a
 * time; or "hold": N sleeping jobs, kept until stdin reaches end of file.
 */
/*
 * For tests/bench_steps.sh: one job, and a line with the client's side of
 * its steps (CLOCK_MONOTONIC ns): before mps_start, after it, after
 * mps_join. The server built with -DMPS_STEPS prints its side.
 */
static void job_steps(const struct mps_job *j) {
        mps_process *p;
        int r = mps_process_new(j->client, j->spec, &p);
        if (r < 0)
                die("%s: mps_process_new: %s", j->what, mps_strerror(r));
        uint64_t t0 = now_ns();
        if ((r = mps_start(p)) < 0)
                die("%s: mps_start: %s (%s)", j->what, mps_strerror(r),
                    mps_client_error(j->client));
        uint64_t t1 = now_ns();
        if ((r = mps_join(p, -1)) < 0)
                die("%s: mps_join: %s", j->what, mps_strerror(r));
        uint64_t t2 = now_ns();
        if (mps_exitcode(p) != 0)
                die("%s: exit code %d", j->what, mps_exitcode(p));
        mps_process_close(p);
        printf("client %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", t0, t1, t2);
}

static int drive(const char *socket_path, const char *kind, unsigned n) {
        mps_client *c = connect_to(socket_path);
        bool steps = getenv("MPS_BENCH_STEPS") != NULL;
        if (strcmp(kind, "hold") == 0) {
                mps_spec *sl = spec_sleeper();
                mps_process **procs = xcalloc(n, sizeof(*procs));
                char buf[64];
                start_sleepers(c, sl, procs, 0, n);
                printf("holding %u sleeping jobs until end of input\n", n);
                fflush(stdout);
                while (read(0, buf, sizeof(buf)) > 0)
                        ;
                kill_sleepers(c, procs, n);
                free(procs);
                mps_spec_free(sl);
                mps_client_close(c);
                return 0;
        }
        bool pooled = strcmp(kind, "exec8") == 0 || strcmp(kind, "call8") == 0;
        bool mapped = strcmp(kind, "execmap") == 0 || strcmp(kind, "callmap") == 0;
        mps_spec *s = strncmp(kind, "call", 4) == 0 ? spec_noop() : spec_true();
        struct mps_job j = {c, s, kind};
        uint64_t t0 = now_ns();
        if (pooled) {
                struct inflight_ctx x = {c, s, kind};
                batch_inflight(&x, n, NULL);
        }
        if (mapped) {
                struct map_ctx x = {c, s, kind};
                batch_map(&x, n, NULL);
        }
        for (unsigned i = 0; !pooled && !mapped && i < n; i++) {
                if (steps)
                        job_steps(&j);
                else
                        job_mps(&j);
        }
        double secs = (double)(now_ns() - t0) / 1e9;
        printf("%u %s jobs in %.2f s (%.1f us each)\n", n, kind, secs, secs * 1e6 / n);
        mps_spec_free(s);
        mps_client_close(c);
        return 0;
}

int main(int argc, char **argv) {
        const char *build = NULL;
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                const char *v = i + 1 < argc ? argv[i + 1] : NULL;
                if (strcmp(a, "--json") == 0)
                        opt.json = true;
                else if (strcmp(a, "--no-python") == 0)
                        opt.python = false;
                else if (strcmp(a, "--build") == 0 && v)
                        build = argv[++i];
                else if (strcmp(a, "--python") == 0 && v)
                        opt.python_path = argv[++i];
                else if (strcmp(a, "--only") == 0 && v)
                        opt.only = argv[++i];
                else if (strcmp(a, "--scale") == 0 && v && (opt.scale = atof(argv[++i])) > 0)
                        ;
                else if (strcmp(a, "--children") == 0 && v && atoi(v) >= 10)
                        opt.children = (unsigned)atoi(argv[++i]);
                else if (strcmp(a, "--big-mib") == 0 && v && atoi(v) >= 64)
                        opt.big_mib = (unsigned)atoi(argv[++i]);
                else if (strcmp(a, "--drive") == 0 && i + 3 < argc && atoi(argv[i + 3]) > 0) {
                        set_paths(build);
                        return drive(argv[i + 1], argv[i + 2], (unsigned)atoi(argv[i + 3]));
                } else {
                        fputs(usage, stderr);
                        return 2;
                }
        }
        set_paths(build);
        read_machine();

        /* Jobs of this run never reach a system or user server by chance;
         * the embedded default and the CLI's per-user server (in a runtime
         * directory of our own) start this build's server. */
        unsetenv("MPSPAWN_SOCKET");
        unsetenv("MPSPAWN_USER_SERVER");
        snprintf(user_rt, sizeof(user_rt), "/tmp/mps-bench-rt-XXXXXX");
        if (!mkdtemp(user_rt))
                die("mkdtemp: %m");
        snprintf(user_sock, sizeof(user_sock), "%s/mpspawn.sock", user_rt);
        setenv("XDG_RUNTIME_DIR", user_rt, 1);
        setenv("MPSPAWN_FORKSERVER", opt.server_bin, 1);
        /* One sentinel per sleeping job: take the hard limit. */
        struct rlimit nofile;
        getrlimit(RLIMIT_NOFILE, &nofile);
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
        atexit(stop_leftover_servers);
        signal(SIGINT, on_fatal_signal);
        signal(SIGTERM, on_fatal_signal);
        signal(SIGHUP, on_fatal_signal);
        signal(SIGPIPE, SIG_IGN);

        uint64_t t0 = now_ns();
        double busy0, total0, busy1, total1, own0 = own_cpu_seconds();
        loadavg(machine.load_start);
        cpu_jiffies(&busy0, &total0);
        if (section_wanted("side"))
                section_side_by_side();
        if (section_wanted("threads"))
                section_threads();
        if (section_wanted("memory"))
                section_memory();
        make_targets();
        machine.seconds = (double)(now_ns() - t0) / 1e9;
        cpu_jiffies(&busy1, &total1);
        loadavg(machine.load_end);
        if (total1 > total0) {
                double hz = (double)sysconf(_SC_CLK_TCK);
                double cpu_s = (total1 - total0) / hz;
                machine.busy_share = (busy1 - busy0) / (total1 - total0);
                machine.others_share =
                        ((busy1 - busy0) / hz - (own_cpu_seconds() - own0)) / cpu_s;
                if (machine.others_share < 0)
                        machine.others_share = 0;
        }
        progress("done in %.0f s", machine.seconds);

        if (opt.json)
                print_json();
        else
                print_markdown();
        return 0;
}
