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
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "../launcher/fdutil.h"
#include "policy.h"
#include "server.h"

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
        "                         Not needed under systemd socket activation.\n"
        "      --socket-mode MODE permissions of the socket (octal, default 0600:\n"
        "                         only the server's user may connect)\n"
        "      --preload LIB.so   load LIB.so at start (repeatable): its MPS_MODULE\n"
        "                         init hook runs once here, and its MPS_ENTRY names\n"
        "                         become what call jobs may run, in copy-on-write\n"
        "                         children that find its state warm. A library that\n"
        "                         fails to load or to initialise stops the server\n"
        "      --prefork N        keep N children forked ahead of need, so that a\n"
        "                         job (exec or call) skips fork on its critical\n"
        "                         path (default 0; needs pidfds)\n"
        "      --max-children N   jobs alive in the whole server (default 65536)\n"
        "      --max-jobs-per-client N  jobs of one connection (default 16384)\n"
        "      --max-connections-per-uid N  connections of one user (default 256)\n"
        "      --client-queue N   replies queued for a client that does not read;\n"
        "                         past it the client is dropped (default 4096)\n"
        "                         Past a limit a request gets EAGAIN and nothing\n"
        "                         else changes.\n"
        "      --grace SECONDS    time between SIGTERM and SIGKILL when daemon\n"
        "                         jobs are ended (default 5)\n"
        "      --log-level LEVEL  error, warning, info (default) or debug\n"
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

#define PRELOAD_MAX 64

struct options {
        const char *preload[PRELOAD_MAX];
        size_t npreload;
        const char *socket_path;
        unsigned socket_mode;
        int embedded_fd;
        double grace;
        unsigned prefork;
        unsigned max_children, max_jobs_per_client, max_conns_per_uid, client_queue;
};

static int parse_level(const char *s, enum log_level *ret) {
        static const char *const names[] = {"error", "warning", "info", "debug"};
        for (int i = 0; i < 4; i++)
                if (strcmp(s, names[i]) == 0) {
                        *ret = (enum log_level)i;
                        return 0;
                }
        return -EINVAL;
}

static void die_usage(const char *fmt, const char *arg) {
        fprintf(stderr, "mpforkserver: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\nTry 'mpforkserver --help'.\n");
        exit(2);
}

static void parse_options(int argc, char **argv, struct options *o) {
        enum {
                OPT_MODE = 256, OPT_GRACE, OPT_LEVEL, OPT_EMBEDDED, OPT_PRELOAD, OPT_PREFORK,
                OPT_MAX_CHILDREN, OPT_MAX_JOBS, OPT_MAX_CONNS, OPT_QUEUE,
        };
        static const struct option longopts[] = {
                {"socket", required_argument, NULL, 's'},
                {"socket-mode", required_argument, NULL, OPT_MODE},
                {"grace", required_argument, NULL, OPT_GRACE},
                {"log-level", required_argument, NULL, OPT_LEVEL},
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
        char *end;
        int c;

        *o = (struct options){.socket_mode = 0600, .embedded_fd = -1, .grace = 5,
                              .max_children = 65536, .max_jobs_per_client = 16384,
                              .max_conns_per_uid = 256, .client_queue = CLIENT_QUEUE_MAX};
        opterr = 0;
        while ((c = getopt_long(argc, argv, "+s:hV", longopts, NULL)) != -1) {
                switch (c) {
                case 's':
                        o->socket_path = optarg;
                        break;
                case OPT_MODE: {
                        errno = 0;
                        unsigned long m = strtoul(optarg, &end, 8);
                        if (errno || *end || end == optarg || m > 0777)
                                die_usage("bad --socket-mode '%s' (octal, e.g. 0660)",
                                          optarg);
                        o->socket_mode = (unsigned)m;
                        break;
                }
                case OPT_GRACE:
                        errno = 0;
                        o->grace = strtod(optarg, &end);
                        if (errno || *end || end == optarg || !(o->grace >= 0) ||
                            o->grace > 86400)
                                die_usage("bad --grace '%s' (seconds, 0 to 86400)",
                                          optarg);
                        break;
                case OPT_LEVEL:
                        if (parse_level(optarg, &log_max_level) < 0)
                                die_usage("bad --log-level '%s' (error, warning, "
                                          "info or debug)",
                                          optarg);
                        break;
                case OPT_PREFORK: {
                        errno = 0;
                        unsigned long n = strtoul(optarg, &end, 10);
                        if (errno || *end || end == optarg || optarg[0] == '-' || n > 1024)
                                die_usage("bad --prefork '%s' (0 to 1024)", optarg);
                        o->prefork = (unsigned)n;
                        break;
                }
                case OPT_MAX_CHILDREN:
                case OPT_MAX_JOBS:
                case OPT_MAX_CONNS:
                case OPT_QUEUE: {
                        errno = 0;
                        unsigned long n = strtoul(optarg, &end, 10);
                        if (errno || *end || end == optarg || optarg[0] == '-' || n == 0 ||
                            n > 1000000)
                                die_usage("bad limit '%s' (1 to 1000000)", optarg);
                        if (c == OPT_MAX_CHILDREN)
                                o->max_children = (unsigned)n;
                        else if (c == OPT_MAX_JOBS)
                                o->max_jobs_per_client = (unsigned)n;
                        else if (c == OPT_MAX_CONNS)
                                o->max_conns_per_uid = (unsigned)n;
                        else
                                o->client_queue = (unsigned)n;
                        break;
                }
                case OPT_PRELOAD:
                        if (o->npreload >= PRELOAD_MAX)
                                die_usage("more than 64 --preload libraries ('%s')", optarg);
                        o->preload[o->npreload++] = optarg;
                        break;
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

static int take_systemd_socket(int *ret_fd) {
        int n = sd_listen_fds(1);
        if (n <= 0)
                return n;
        if (n > 1) {
                log_err("systemd passed %d sockets; expected one", n);
                return -EINVAL;
        }
        int fd = SD_LISTEN_FDS_START;
        if (sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, NULL, 0) <= 0) {
                log_err("the socket systemd passed is not a listening AF_UNIX "
                        "SOCK_SEQPACKET socket (use ListenSequentialPacket=)");
                return -EINVAL;
        }
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        *ret_fd = fd;
        return 1;
}

int main(int argc, char **argv) {
        struct server srv = {.listen_fd = -1, .spare_fd = -1};
        struct options o;
        char err[512];
        sigset_t mask;
        int r;

        ensure_stdio();
        parse_options(argc, argv, &o);
        srv.grace_ms = (unsigned)(o.grace * 1000);
        srv.max_children = o.max_children;
        srv.max_jobs_per_client = o.max_jobs_per_client;
        srv.max_conns_per_uid = o.max_conns_per_uid;
        srv.client_queue_max = o.client_queue;
        srv.start_ns = mps__now_ns();

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
        }

        for (size_t i = 0; i < o.npreload; i++) {
                if (preload_load(&srv, o.preload[i], err, sizeof(err)) < 0) {
                        log_err("%s", err);
                        preload_release_all(&srv);
                        return 1;
                }
        }

        /* Many pidfds may be open at once: take the hard limit, and give
         * children back the limit we were started with. */
        getrlimit(RLIMIT_NOFILE, &srv.orig_nofile);
        struct rlimit raised = srv.orig_nofile;
        raised.rlim_cur = raised.rlim_max;
        setrlimit(RLIMIT_NOFILE, &raised);

        srv.epfd = epoll_create1(EPOLL_CLOEXEC);
        srv.signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        srv.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        srv.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (srv.epfd < 0 || srv.signal_fd < 0 || srv.timer_fd < 0) {
                log_err("cannot set up the event loop: %m");
                return 1;
        }
        srv.signal_watch = (struct watch){.kind = WATCH_SIGNAL};
        srv.timer_watch = (struct watch){.kind = WATCH_TIMER};
        srv.listen_watch = (struct watch){.kind = WATCH_LISTEN};
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
        } else {
                r = take_systemd_socket(&srv.listen_fd);
                if (r < 0)
                        return 1;
                if (r == 0) {
                        if (!o.socket_path) {
                                fprintf(stderr, "mpforkserver: no socket: give "
                                                "--socket PATH (or start under "
                                                "systemd socket activation)\n");
                                return 2;
                        }
                        r = listen_open(o.socket_path, o.socket_mode,
                                        &srv.listen_fd, err, sizeof(err));
                        if (r < 0) {
                                log_err("%s", err);
                                return 1;
                        }
                        srv.socket_path = strdup(o.socket_path);
                }
                if (loop_add(&srv, srv.listen_fd, EPOLLIN, &srv.listen_watch) < 0) {
                        log_err("cannot watch the socket: %m");
                        return 1;
                }
                log_info("listening on %s (version %s, protocol %d)",
                         o.socket_path ? o.socket_path : "the socket from systemd",
                         MPS_VERSION_STRING, MPS_PROTOCOL_VERSION);
        }
        srv.policies = calloc(1, sizeof(*srv.policies));
        if (!srv.policies) {
                log_err("out of memory");
                return 1;
        }
        srv.prefork_target = srv.use_pidfd ? o.prefork : 0;
        if (o.prefork && !srv.use_pidfd)
                log_warn("--prefork needs pidfds; pre-forking is off");
        prefork_refill(&srv, srv.prefork_target);
        sd_notify(0, "READY=1\nSTATUS=serving");

        r = loop_run(&srv);

        sd_notify(0, "STOPPING=1");
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
        free(srv.policies);
        free(srv.socket_path);
        free(srv.timers.items);
        mps__safe_close(srv.epfd);
        mps__safe_close(srv.signal_fd);
        mps__safe_close(srv.timer_fd);
        mps__safe_close(srv.spare_fd);
        mps__safe_close(srv.listen_fd);
        return r < 0 ? 1 : 0;
}
