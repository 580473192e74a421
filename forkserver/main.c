/* SPDX-License-Identifier: MIT */
/*
 * main.c: mpforkserver's options, and main(): the configuration (the file,
 * then the options that set its keys), then --check-config or server_run.
 * The only place in the server that exits (but for the parent an embedded
 * server leaves behind when it detaches, in server.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../launcher/number.h"
#include "config.h"
#include "server.h"

#ifndef MPS_VERSION_STRING
#define MPS_VERSION_STRING "0.0.0"
#endif

/* "mpforkserver", or "mpspawn server" when `mpspawn server` ran us (it
 * passes that as argv[0]): what usage messages call us. */
static const char *prog = "mpforkserver";

/* After "Usage: PROG [OPTIONS]". */
static const char usage[] =
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
        "      --python-preload MODULES\n"
        "                         embed CPython (mpspawn_python.so, whose entry\n"
        "                         points \"python\" and \"python_worker\" run Python\n"
        "                         call jobs) and import MODULES in it at start,\n"
        "                         before the --preload libraries: dotted names\n"
        "                         separated by commas or spaces, after those of the\n"
        "                         python_preload key ('' imports nothing). A failed\n"
        "                         import stops the server, with its traceback\n"
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
        "      --detach           fork into the background (a new session) at start\n"
        "      --ready-fd FD      write the line \"1\" to FD, and close it, once the\n"
        "                         socket is listening (how mpspawn starts a\n"
        "                         per-user server: see mpspawn(1))\n"
        "      --embedded FD      serve the connection already open on FD, and\n"
        "                         those handed over on it (adopt), detached from\n"
        "                         the parent, and exit when the last has closed\n"
        "                         (how libmpspawn starts a process's private server)\n"
        "  -h, --help             show this help and exit\n"
        "  -V, --version          show the version and exit\n"
        "\n"
        "Signals: SIGTERM or SIGINT stop accepting, end daemon jobs (SIGTERM, then\n"
        "SIGKILL after the grace period; at once on a second signal) and exit 0\n"
        "once they are gone. Other jobs run on. SIGHUP reloads the --config file\n"
        "(the settings that apply at run time; see mpforkserver(8)).\n"
        "\n"
        "Exit status: 0 after a clean stop, 1 on a start-up error, 2 on bad usage.\n";

#define OPTION_KEYS_MAX 128

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
        bool detach;
        int embedded_fd;
        int ready_fd;
};

static void die_usage(const char *fmt, const char *arg) {
        fprintf(stderr, "%s: ", prog);
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\nTry '%s --help'.\n", prog);
        exit(2);
}

static void parse_options(int argc, char **argv, struct options *o) {
        enum {
                OPT_MODE = 256, OPT_GRACE, OPT_LEVEL, OPT_EMBEDDED, OPT_CONFIG,
                OPT_CHECK_CONFIG, OPT_IDLE_EXIT, OPT_PRELOAD, OPT_PREFORK,
                OPT_MAX_CHILDREN, OPT_MAX_JOBS, OPT_MAX_CONNS, OPT_QUEUE,
                OPT_DETACH, OPT_READY_FD, OPT_PYTHON_PRELOAD,
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
                {"detach", no_argument, NULL, OPT_DETACH},
                {"ready-fd", required_argument, NULL, OPT_READY_FD},
                {"preload", required_argument, NULL, OPT_PRELOAD},
                {"python-preload", required_argument, NULL, OPT_PYTHON_PRELOAD},
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
                {OPT_MAX_CHILDREN, "max_children"},
                {OPT_MAX_CONNS, "max_connections_per_uid"},
                {OPT_QUEUE, "client_queue"},
                {OPT_PYTHON_PRELOAD, "python_preload"},
        };
        int c, index;

        *o = (struct options){.embedded_fd = -1, .ready_fd = -1};
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
                case OPT_EMBEDDED: {
                        long long fd;
                        if (mps__parse_signed(optarg, 3, 65535, &fd) < 0)
                                die_usage("bad --embedded '%s' (a descriptor >= 3)",
                                          optarg);
                        o->embedded_fd = (int)fd;
                        break;
                }
                case OPT_DETACH:
                        o->detach = true;
                        break;
                case OPT_READY_FD: {
                        long long fd;
                        if (mps__parse_signed(optarg, 3, 65535, &fd) < 0)
                                die_usage("bad --ready-fd '%s' (a descriptor >= 3)", optarg);
                        o->ready_fd = (int)fd;
                        break;
                }
                case 'h':
                        printf("Usage: %s [OPTIONS]\n", prog);
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
        if (o->embedded_fd >= 0 && (o->detach || o->ready_fd >= 0))
                die_usage("%s", "--embedded detaches itself; no --detach or --ready-fd");
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
                        fprintf(stderr, "%s: bad --%s: %s\nTry '%s --help'.\n", prog,
                                k->option, err + strlen(k->key) + 2, prog);
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

/* The server's reload hook: the configuration as main() read it. The
 * options were validated at start, so only the file can fail now. */
static int reload_config(const void *data, struct config *ret_cfg, char *err,
                         size_t errlen) {
        return load_config(data, ret_cfg, err, errlen);
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

int main(int argc, char **argv) {
        struct options o;
        struct config cfg;
        char err[1024];
        int status;

        ensure_stdio();
        if (argc > 0 && strcmp(argv[0], "mpspawn server") == 0)
                prog = argv[0];
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
                if (server_check_policy(&cfg, err, sizeof(err)) < 0) {
                        fprintf(stderr, "mpforkserver: %s\n", err);
                        config_free(&cfg);
                        return 1;
                }
                status = check_config(&cfg, &o);
        } else {
                struct server_options so = {.preload = o.preload, .npreload = o.npreload,
                                            .embedded_fd = o.embedded_fd,
                                            .detach = o.detach, .ready_fd = o.ready_fd,
                                            .reload = o.config_path ? reload_config : NULL,
                                            .reload_data = &o};
                status = server_run(&cfg, &so);
        }
        config_free(&cfg);
        return status;
}
