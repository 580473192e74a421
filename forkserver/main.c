/*
 * main.c: mpforkserver's options, start-up and exit. The only place in the
 * server that exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "../launcher/fdutil.h"
#include "config.h"
#include "policy.h"
#include "server.h"
#include "steps.h"

#ifndef MPS_VERSION_STRING
#define MPS_VERSION_STRING "0.0.0"
#endif

static const char usage[] =
        "Usage: mpforkserver [OPTIONS]\n"
        "\n"
        "A small single-threaded server that forks and execs jobs for its\n"
        "clients (libmpspawn, the mpspawn CLI) and reports every exit back.\n"
        "\n"
        "Options:\n"
        "  -s, --socket PATH      listen on this AF_UNIX SOCK_SEQPACKET socket.\n"
        "                         A stale socket file is replaced; one where a\n"
        "                         live server answers is never taken over.\n"
        "                         Not needed under systemd socket activation,\n"
        "                         which takes precedence.\n"
        "      --socket-mode MODE permissions of the socket (octal, default 0600:\n"
        "                         only the server's user may connect)\n"
        "      --preload LIB.so   load LIB.so at start (repeatable): its MPS_MODULE\n"
        "                         init hook runs once here, and its MPS_ENTRY names\n"
        "                         become what call jobs may run, in copy-on-write\n"
        "                         children that find its state warm. A library that\n"
        "                         fails to load or to initialise stops the server\n"
        "      --prefork N        keep N children forked ahead of need, so that a\n"
        "                         call job skips fork on its critical path (exec\n"
        "                         jobs vfork, which is cheaper; default 0; needs\n"
        "                         pidfds)\n"
        "      --max-children N   jobs alive in the whole server (default 65536)\n"
        "      --max-jobs-per-client N  jobs of one connection (default 16384)\n"
        "      --max-connections-per-uid N  connections of one user (default 256)\n"
        "      --client-queue N   replies queued for a client that does not read;\n"
        "                         past it the client is dropped (default 4096)\n"
        "                         Past a limit a request gets EAGAIN and nothing\n"
        "                         else changes.\n"
        "      --grace SECONDS    time between SIGTERM and SIGKILL when daemon\n"
        "                         jobs are ended (default 5)\n"
        "      --idle-exit SECONDS\n"
        "                         exit after this long without a client or a\n"
        "                         job (default 0: never); systemd starts the\n"
        "                         server again on the next connection\n"
        "      --log-level LEVEL  error, warning, info (default) or debug\n"
        "      --config FILE      read settings from FILE (mpforkserver.conf(5));\n"
        "                         the options above override it\n"
        "      --check-config     check the configuration and the options, print\n"
        "                         the effective settings and exit (0: valid)\n"
        "      --embedded FD      serve the one connection already open on FD,\n"
        "                         detached from the parent, and exit when it\n"
        "                         closes (how libmpspawn starts a private server)\n"
        "  -h, --help             show this help and exit\n"
        "  -V, --version          show the version and exit\n"
        "\n"
        "Signals: SIGTERM or SIGINT stop accepting, end daemon jobs (SIGTERM, then\n"
        "SIGKILL after the grace period; at once on a second signal) and exit 0\n"
        "once they are gone. Other jobs run on.\n"
        "\n"
        "Exit status: 0 after a clean stop, 1 on a start-up error, 2 on bad usage.\n";

#define OPTION_KEYS_MAX 128
#define MAX_JOBS_PER_CLIENT_DEFAULT 16384 /* max_jobs_per_client = 0 */

/* Options that set a configuration key: validated and stored by
 * config_set, after the file, exactly as the file's own lines are. */
struct option_key {
        const char *option; /* "grace" of --grace, for messages */
        const char *key;    /* "grace" */
        const char *value;
};

#define PRELOAD_MAX 64

struct options {
        struct option_key keys[OPTION_KEYS_MAX];
        size_t nkeys;
        /* Not the preload key: a name dlopen(3) looks up is fine here. */
        const char *preload[PRELOAD_MAX];
        size_t npreload;
        const char *socket_path; /* not the key: a relative path is fine here */
        const char *config_path;
        bool check_config;
        int embedded_fd;
        unsigned max_children, max_conns_per_uid, client_queue;
};

static void die_usage(const char *fmt, const char *arg) {
        fprintf(stderr, "mpforkserver: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\nTry 'mpforkserver --help'.\n");
        exit(2);
}

static void parse_options(int argc, char **argv, struct options *o) {
        enum {
                OPT_MODE = 256, OPT_GRACE, OPT_LEVEL, OPT_EMBEDDED, OPT_CONFIG,
                OPT_CHECK_CONFIG, OPT_IDLE_EXIT, OPT_PRELOAD, OPT_PREFORK,
                OPT_MAX_CHILDREN, OPT_MAX_JOBS, OPT_MAX_CONNS, OPT_QUEUE,
        };
        static const struct option longopts[] = {
                {"socket", required_argument, NULL, 's'},
                {"socket-mode", required_argument, NULL, OPT_MODE},
                {"grace", required_argument, NULL, OPT_GRACE},
                {"idle-exit", required_argument, NULL, OPT_IDLE_EXIT},
                {"log-level", required_argument, NULL, OPT_LEVEL},
                {"config", required_argument, NULL, OPT_CONFIG},
                {"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
                {"embedded", required_argument, NULL, OPT_EMBEDDED},
                {"preload", required_argument, NULL, OPT_PRELOAD},
                {"prefork", required_argument, NULL, OPT_PREFORK},
                {"max-children", required_argument, NULL, OPT_MAX_CHILDREN},
                {"max-jobs-per-client", required_argument, NULL, OPT_MAX_JOBS},
                {"max-connections-per-uid", required_argument, NULL, OPT_MAX_CONNS},
                {"client-queue", required_argument, NULL, OPT_QUEUE},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, 'V'},
                {0},
        };
        /* The options that are configuration keys, and their keys. */
        static const struct {
                int opt;
                const char *key;
        } as_key[] = {
                {OPT_MODE, "socket_mode"},   {OPT_GRACE, "grace"},
                {OPT_IDLE_EXIT, "idle_exit"}, {OPT_LEVEL, "log_level"},
                {OPT_PREFORK, "prefork"},    {OPT_MAX_JOBS, "max_jobs_per_client"},
        };
        char *end;
        int c, index;

        *o = (struct options){.embedded_fd = -1, .max_children = 65536,
                              .max_conns_per_uid = 256, .client_queue = CLIENT_QUEUE_MAX};
        opterr = 0;
        while ((c = getopt_long(argc, argv, "+s:hV", longopts, &index)) != -1) {
                const char *key = NULL;
                for (size_t i = 0; i < sizeof(as_key) / sizeof(as_key[0]); i++)
                        if (as_key[i].opt == c)
                                key = as_key[i].key;
                if (key) {
                        if (o->nkeys == OPTION_KEYS_MAX)
                                die_usage("more than %s options that set keys", "128");
                        /* Long options only: index names the one given. */
                        o->keys[o->nkeys++] =
                                (struct option_key){longopts[index].name, key, optarg};
                        continue;
                }
                switch (c) {
                case 's':
                        o->socket_path = optarg;
                        break;
                case OPT_CONFIG:
                        o->config_path = optarg;
                        break;
                case OPT_CHECK_CONFIG:
                        o->check_config = true;
                        break;
                case OPT_PRELOAD:
                        if (o->npreload >= PRELOAD_MAX)
                                die_usage("more than 64 --preload libraries ('%s')", optarg);
                        o->preload[o->npreload++] = optarg;
                        break;
                case OPT_MAX_CHILDREN:
                case OPT_MAX_CONNS:
                case OPT_QUEUE: {
                        errno = 0;
                        unsigned long n = strtoul(optarg, &end, 10);
                        if (errno || *end || end == optarg || optarg[0] == '-' || n == 0 ||
                            n > 1000000)
                                die_usage("bad limit '%s' (1 to 1000000)", optarg);
                        if (c == OPT_MAX_CHILDREN)
                                o->max_children = (unsigned)n;
                        else if (c == OPT_MAX_CONNS)
                                o->max_conns_per_uid = (unsigned)n;
                        else
                                o->client_queue = (unsigned)n;
                        break;
                }
                case OPT_EMBEDDED: {
                        errno = 0;
                        long fd = strtol(optarg, &end, 10);
                        if (errno || *end || end == optarg || fd < 3 || fd > 65535)
                                die_usage("bad --embedded '%s' (a descriptor >= 3)",
                                          optarg);
                        o->embedded_fd = (int)fd;
                        break;
                }
                case 'h':
                        fputs(usage, stdout);
                        exit(0);
                case 'V':
                        printf("mpforkserver %s (protocol %d)\n", MPS_VERSION_STRING,
                               MPS_PROTOCOL_VERSION);
                        exit(0);
                default:
                        if (optopt && optopt < 256)
                                die_usage("unknown option '-%c'",
                                          (char[]){(char)optopt, 0});
                        die_usage("unknown or incomplete option '%s'",
                                  argv[optind - 1]);
                }
        }
        if (optind < argc)
                die_usage("unexpected argument '%s'", argv[optind]);
        if (o->embedded_fd >= 0 && o->socket_path)
                die_usage("%s", "--embedded and --socket exclude each other");
}

/* 0, 1 and 2 must be open before we create anything, or a socket could take
 * one of those numbers and receive stray output. */
static void ensure_stdio(void) {
        for (int fd = 0; fd <= 2; fd++) {
                if (fcntl(fd, F_GETFD) >= 0)
                        continue;
                int n = open("/dev/null", O_RDWR);
                if (n >= 0 && n != fd) {
                        dup2(n, fd);
                        close(n);
                }
        }
}

/* Leaves the parent that started us (libmpspawn), so that it never has a
 * zombie to reap: the parent waits for this first process only. */
static int detach_from_parent(void) {
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid > 0)
                _exit(0);
        if (setsid() < 0)
                return -errno;
        return 0;
}

/* The file first, then the options that set keys, as its own lines would
 * (a bad value is a usage error: exit 2). 0 or -errno with the reason in
 * err. */
static int load_config(const struct options *o, struct config *cfg, char *err,
                       size_t errlen) {
        int r;
        if (o->config_path && (r = config_load(cfg, o->config_path, err, errlen)) < 0)
                return r;
        for (size_t i = 0; i < o->nkeys; i++) {
                const struct option_key *k = &o->keys[i];
                if (config_set(cfg, k->key, k->value, err, errlen) < 0) {
                        /* err is "KEY: what is wrong": name the option. */
                        fprintf(stderr, "mpforkserver: bad --%s: %s\n"
                                        "Try 'mpforkserver --help'.\n",
                                k->option, err + strlen(k->key) + 2);
                        exit(2);
                }
        }
        if (o->socket_path) {
                free(cfg->socket_path);
                if (!(cfg->socket_path = strdup(o->socket_path))) {
                        snprintf(err, errlen, "out of memory");
                        return -ENOMEM;
                }
        }
        return 0;
}

/* --check-config: what the server would run with. */
static int check_config(const struct config *cfg, const struct options *o) {
        printf("# mpforkserver %s: %s is valid.\n", MPS_VERSION_STRING,
               cfg->file ? cfg->file : "the command line");
        config_print(cfg, stdout);
        for (size_t i = 0; i < o->npreload; i++)
                printf("# --preload %s (after the preload key's)\n", o->preload[i]);
        return 0;
}

/* default_seccomp_policy: compiled once at start; every job loads it
 * before its own policy, if any. */
static int load_admin_policy(struct server *srv, const char *path, char *err,
                             size_t errlen) {
        char *text;
        size_t n;
        int r = mps__read_file(path, POLICY_TEXT_MAX, &text, &n);
        if (r < 0) {
                snprintf(err, errlen, "default_seccomp_policy: cannot read '%s': %s", path,
                         r == -EFBIG ? "longer than 64 KiB" : strerror(-r));
                return r;
        }
        const char *base = strrchr(path, '/');
        r = policy_compile(text, n, base ? base + 1 : path, &srv->admin_policy, err, errlen);
        free(text);
        if (r == 0)
                log_info("default_seccomp_policy %s: %zu instructions, applied to every job",
                         path, policy_instructions(srv->admin_policy));
        return r;
}

/* "PATH" of the listening socket, for the log. */
static void socket_name(int fd, char *buf, size_t len) {
        struct sockaddr_un sa;
        socklen_t salen = sizeof(sa);
        memset(&sa, 0, sizeof(sa));
        if (getsockname(fd, (struct sockaddr *)&sa, &salen) < 0 || !sa.sun_path[0])
                snprintf(buf, len, "an unnamed socket");
        else
                snprintf(buf, len, "%.*s", (int)sizeof(sa.sun_path), sa.sun_path);
}

int main(int argc, char **argv) {
        struct server srv = {.listen_fd = -1, .spare_fd = -1};
        struct options o;
        struct config cfg;
        char err[1024], where[128];
        sigset_t mask;
        int r;

        mps__list_init(&srv.clients);
        ensure_stdio();
        parse_options(argc, argv, &o);
        config_init(&cfg);
        if (load_config(&o, &cfg, err, sizeof(err)) < 0) {
                if (o.check_config)
                        fprintf(stderr, "mpforkserver: %s\n", err);
                else
                        log_err("%s", err);
                config_free(&cfg);
                return 1;
        }
        if (o.check_config) {
                /* A policy is valid only if it compiles: try it. */
                if (cfg.default_seccomp_policy &&
                    load_admin_policy(&srv, cfg.default_seccomp_policy, err, sizeof(err)) < 0) {
                        fprintf(stderr, "mpforkserver: %s\n", err);
                        config_free(&cfg);
                        return 1;
                }
                policy_free(srv.admin_policy);
                srv.admin_policy = NULL;
                r = check_config(&cfg, &o);
                config_free(&cfg);
                return r;
        }
        log_max_level = (enum log_level)cfg.log_level;
        srv.cfg = &cfg;
        srv.grace_ms = cfg.grace_ms;
        srv.max_children = o.max_children;
        srv.max_jobs_per_client = cfg.max_jobs_per_client ? cfg.max_jobs_per_client
                                                          : MAX_JOBS_PER_CLIENT_DEFAULT;
        srv.max_conns_per_uid = o.max_conns_per_uid;
        srv.client_queue_max = o.client_queue;
        srv.start_ns = mps__now_ns();

        /* Whatever dispositions we were started with (a nohup'ed shell
         * ignores SIGHUP), jobs must start from the defaults: set them all
         * here once, so that a child has only SIGPIPE to reset. */
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigemptyset(&dfl.sa_mask);
        for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        sigaction(sig, &dfl, NULL); /* EINVAL for libc's own */
        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);

        /* pidfds when the kernel (or valgrind) has them, else SIGCHLD. */
        int probe = pidfd_open(getpid(), 0);
        srv.use_pidfd = probe >= 0;
        mps__safe_close(probe);
        /* The test suite runs once more on the fallback path. */
        const char *force = getenv("MPSPAWN_SERVER_NO_PIDFD");
        if (force && strcmp(force, "1") == 0 && srv.use_pidfd) {
                srv.use_pidfd = false;
                errno = ENOSYS;
        }
        if (!srv.use_pidfd) {
                log_warn("pidfd_open: %m; tracking children with SIGCHLD instead");
                sigaddset(&mask, SIGCHLD);
        }
        sigprocmask(SIG_BLOCK, &mask, NULL);

        if (o.embedded_fd >= 0) {
                if ((r = detach_from_parent()) < 0) {
                        log_err("cannot detach: %s", strerror(-r));
                        return 1;
                }
                srv.embedded = true;
                /* Our NOTIFY_SOCKET, if any, is the starting program's. */
                unsetenv("NOTIFY_SOCKET");
        }
        srv.pid = getpid(); /* after the detach, which changes it */

        /* The configuration's libraries, then the command line's. */
        for (size_t i = 0; i < cfg.n_preload + o.npreload; i++) {
                const char *lib = i < cfg.n_preload ? cfg.preload[i]
                                                    : o.preload[i - cfg.n_preload];
                if (preload_load(&srv, lib, err, sizeof(err)) < 0) {
                        log_err("%s", err);
                        preload_release_all(&srv);
                        config_free(&cfg);
                        return 1;
                }
        }

        /* What a child must set back to default: SIGPIPE (ignored above),
         * and any disposition a preloaded library changed. */
        sigemptyset(&srv.child_reset);
        for (int sig = 1; sig < NSIG; sig++) {
                struct sigaction now;
                if (sig != SIGKILL && sig != SIGSTOP && sigaction(sig, NULL, &now) == 0 &&
                    now.sa_handler != SIG_DFL)
                        sigaddset(&srv.child_reset, sig);
        }

        /* Many pidfds may be open at once: take the hard limit, and give
         * children back the limit we were started with. */
        getrlimit(RLIMIT_NOFILE, &srv.orig_nofile);
        struct rlimit raised = srv.orig_nofile;
        raised.rlim_cur = raised.rlim_max;
        setrlimit(RLIMIT_NOFILE, &raised);
        /* On a table not shared this unshares nothing and closes nothing:
         * it only asks whether the kernel knows the flag. */
        srv.unshare_fds = close_range(~0u, ~0u, CLOSE_RANGE_UNSHARE) == 0;
        /* Room for 1,024 descriptors of our own below the pidfds: the
         * listener, the loop's, clients' sockets, fds in transit. */
        getrlimit(RLIMIT_NOFILE, &raised);
        srv.pidfd_floor = srv.unshare_fds && raised.rlim_cur >= 4096 ? 1024 : 0;

        srv.epfd = epoll_create1(EPOLL_CLOEXEC);
        srv.signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        srv.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        srv.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (srv.epfd < 0 || srv.signal_fd < 0 || srv.timer_fd < 0) {
                log_err("cannot set up the event loop: %m");
                return 1;
        }
        srv.signal_watch = (struct watch){.fn = loop_on_signal, .data = &srv};
        srv.timer_watch = (struct watch){.fn = timer_on_watch, .data = &srv};
        srv.listen_watch = (struct watch){.fn = loop_on_listen, .data = &srv};
        if (loop_add(&srv, srv.signal_fd, EPOLLIN, &srv.signal_watch) < 0 ||
            loop_add(&srv, srv.timer_fd, EPOLLIN, &srv.timer_watch) < 0) {
                log_err("cannot set up the event loop: %m");
                return 1;
        }

        if (srv.embedded) {
                int fd = o.embedded_fd;
                if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ||
                    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
                    client_new(&srv, fd) < 0) {
                        log_err("--embedded %d: not a usable connection", fd);
                        return 1;
                }
                snprintf(where, sizeof(where), "an inherited connection");
        } else {
                r = service_listen_fd(&srv.listen_fd, err, sizeof(err));
                if (r < 0) {
                        log_err("%s", err);
                        config_free(&cfg);
                        return 1;
                }
                if (r > 0 && (cfg.socket_path || cfg.has_socket_group))
                        log_info("socket-activated: the socket unit sets the "
                                 "socket's path, mode and group; ignoring ours");
                if (r == 0) {
                        const char *path = cfg.socket_path;
                        if (!path) {
                                fprintf(stderr, "mpforkserver: no socket: give "
                                                "--socket PATH (or start under "
                                                "systemd socket activation)\n");
                                config_free(&cfg);
                                return 2;
                        }
                        unsigned mode = cfg.socket_mode;
                        r = listen_open(path, cfg.has_socket_group ? mode & ~0070u : mode,
                                        &srv.listen_fd, err, sizeof(err));
                        if (r == 0 && cfg.has_socket_group &&
                            (r = listen_set_group(path, cfg.socket_group, mode, err,
                                                  sizeof(err))) < 0)
                                unlink(path);
                        if (r < 0) {
                                log_err("%s", err);
                                config_free(&cfg);
                                return 1;
                        }
                        /* To unlink it at exit: without it, stop here. */
                        if (!(srv.socket_path = strdup(path))) {
                                log_err("out of memory");
                                unlink(path);
                                return 1;
                        }
                }
                if (loop_add(&srv, srv.listen_fd, EPOLLIN, &srv.listen_watch) < 0) {
                        log_err("cannot watch the socket: %m");
                        return 1;
                }
                socket_name(srv.listen_fd, where, sizeof(where));
                log_info("listening on %s%s (version %s, protocol %d)", where,
                         r > 0 ? ", passed by systemd" : "", MPS_VERSION_STRING,
                         MPS_PROTOCOL_VERSION);
        }
        srv.policies = calloc(1, sizeof(*srv.policies));
        if (!srv.policies) {
                log_err("out of memory");
                return 1;
        }
        if (cfg.default_seccomp_policy &&
            load_admin_policy(&srv, cfg.default_seccomp_policy, err, sizeof(err)) < 0) {
                log_err("%s", err);
                config_free(&cfg);
                return 1;
        }
        unsigned prefork = cfg.prefork;
        srv.prefork_target = srv.use_pidfd ? prefork : 0;
        if (prefork && !srv.use_pidfd)
                log_warn("prefork needs pidfds; pre-forking is off");
        steps_init(); /* before any child: they must share its page */
        prefork_refill(&srv, srv.prefork_target);
        service_ready(&srv, where);

        r = loop_run(&srv);

        if (srv.socket_path && srv.listen_fd >= 0)
                unlink(srv.socket_path);
        log_debug("exiting: %llu jobs started, %llu failed to start",
                  (unsigned long long)srv.jobs_started,
                  (unsigned long long)srv.jobs_failed);
        client_release_all(&srv);
        job_release_all(&srv);
        retain_release_all(&srv);
        prefork_release_all(&srv);
        preload_release_all(&srv);
        if (srv.policies)
                policy_cache_free(srv.policies);
        policy_free(srv.admin_policy);
        free(srv.policies);
        free(srv.socket_path);
        free(srv.timers.items);
        mps__safe_close(srv.epfd);
        mps__safe_close(srv.signal_fd);
        mps__safe_close(srv.timer_fd);
        mps__safe_close(srv.spare_fd);
        mps__safe_close(srv.listen_fd);
        config_free(&cfg);
        return r < 0 ? 1 : 0;
}
