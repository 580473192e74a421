/* SPDX-License-Identifier: MIT */
/*
 * service.c: mpforkserver as a systemd service. The listening socket comes
 * from sd_listen_fds when the server is socket-activated; readiness, a
 * status line with live counts and the start of a stop go to the service
 * manager through sd_notify; and with idle_exit set the server exits once
 * it has had no client and no job for that long, so that systemd starts it
 * again on the next connection.
 *
 * An embedded server (one private connection, started by libmpspawn) never
 * notifies: NOTIFY_SOCKET in its environment belongs to the program that
 * started it, not to us, and server.c removes it.
 *
 * libsystemd is opened only when the environment shows a service manager
 * (LISTEN_FDS or NOTIFY_SOCKET). Linked in, it and the six libraries it
 * pulls in (libgcrypt, libzstd, liblz4, liblzma, libcap, libgpg-error) cost
 * every server about 1 MiB of RSS and their relocation at each start, and
 * every embedded server, which never talks to systemd, paid for them.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <systemd/sd-daemon.h>

#include "../launcher/fdutil.h"
#include "config.h"
#include "server.h"

/* The libsystemd functions we call, resolved on first need. */
static struct {
        bool tried;
        __typeof__(sd_listen_fds) *listen_fds;
        __typeof__(sd_notify) *notify;
} sd;

/* 0 when libsystemd is usable; else -ENOSYS with the reason in err. */
static int sd_load(char *err, size_t errlen) {
        static char why[256];
        if (!sd.tried) {
                sd.tried = true;
                void *h = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
                if (h) {
                        sd.listen_fds = (__typeof__(sd_listen_fds) *)dlsym(h, "sd_listen_fds");
                        sd.notify = (__typeof__(sd_notify) *)dlsym(h, "sd_notify");
                }
                if (!sd.listen_fds || !sd.notify) {
                        const char *e = dlerror();
                        snprintf(why, sizeof(why), "%s", e ? e : "libsystemd.so.0: no sd_notify");
                        sd.listen_fds = NULL;
                        sd.notify = NULL;
                        if (h)
                                dlclose(h);
                }
        }
        if (sd.notify)
                return 0;
        snprintf(err, errlen, "%s", why);
        return -ENOSYS;
}

static const char *type_name(int type) {
        switch (type) {
        case SOCK_STREAM:
                return "a SOCK_STREAM socket (ListenStream=)";
        case SOCK_DGRAM:
                return "a SOCK_DGRAM socket (ListenDatagram=)";
        default:
                return "not a SOCK_SEQPACKET socket";
        }
}

int service_listen_fd(int *ret_fd, char *err, size_t errlen) {
        /* sd_listen_fds() answers 0 without LISTEN_FDS: so do we, unloaded. */
        if (!getenv("LISTEN_FDS"))
                return 0;
        char why[256];
        if (sd_load(why, sizeof(why)) < 0) {
                snprintf(err, errlen, "systemd passed sockets (LISTEN_FDS), but "
                         "libsystemd cannot be loaded to take them: %s", why);
                return -ENOSYS;
        }
        int n = sd.listen_fds(1);
        if (n < 0) {
                snprintf(err, errlen, "cannot take the sockets systemd passed "
                         "(LISTEN_FDS): %s", strerror(-n));
                return n;
        }
        if (n == 0)
                return 0;
        if (n > 1) {
                snprintf(err, errlen, "systemd passed %d sockets; mpforkserver takes "
                         "exactly one (one ListenSequentialPacket= in its socket unit)",
                         n);
                return -EINVAL;
        }

        int fd = SD_LISTEN_FDS_START, domain = -1, type = -1, listening = 0;
        socklen_t len;
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
                snprintf(err, errlen, "descriptor %d from systemd is not a socket", fd);
                return -ENOTSOCK;
        }
        len = sizeof(domain);
        getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len);
        len = sizeof(type);
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len);
        len = sizeof(listening);
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len);
        if (domain != AF_UNIX) {
                snprintf(err, errlen, "the socket from systemd (fd %d) is not an "
                         "AF_UNIX socket (address family %d): give the socket unit "
                         "ListenSequentialPacket=/path",
                         fd, domain);
                return -EAFNOSUPPORT;
        }
        if (type != SOCK_SEQPACKET) {
                snprintf(err, errlen, "the socket from systemd (fd %d) is %s, not "
                         "SOCK_SEQPACKET: use ListenSequentialPacket= in the socket "
                         "unit",
                         fd, type_name(type));
                return -ESOCKTNOSUPPORT;
        }
        if (!listening) {
                snprintf(err, errlen, "the socket from systemd (fd %d) is one "
                         "connection, not a listening socket: use Accept=no in the "
                         "socket unit",
                         fd);
                return -EINVAL;
        }
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ||
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
                int e = errno;
                snprintf(err, errlen, "cannot set up the socket from systemd: %s",
                         strerror(e));
                return -e;
        }
        *ret_fd = fd;
        return 1;
}

static void format_status(const struct server *srv, char *buf, size_t len) {
        size_t jobs = srv->jobs.by_id.count;
        if (srv->life.stopping) {
                snprintf(buf, len, "stopping: %zu daemon job%s to end, %zu job%s in all",
                         srv->jobs.ndaemon_alive, srv->jobs.ndaemon_alive == 1 ? "" : "s", jobs,
                         jobs == 1 ? "" : "s");
                return;
        }
        int n = snprintf(buf, len, "%zu client%s, %zu job%s; %llu started, %llu "
                         "failed to start",
                         srv->clients.count, srv->clients.count == 1 ? "" : "s", jobs,
                         jobs == 1 ? "" : "s", (unsigned long long)srv->stats.jobs_started,
                         (unsigned long long)srv->stats.jobs_failed);
        unsigned ms = srv->cfg->idle_exit_ms;
        if (ms && srv->clients.count == 0 && jobs == 0 && n > 0 && (size_t)n < len)
                snprintf(buf + n, len - (size_t)n, "; idle, exits after %u.%03u s",
                         ms / 1000, ms % 1000);
}

static void send_status(struct server *srv, const char *extra) {
        char msg[300];
        if (!srv->svc.notify)
                return;
        int n = snprintf(msg, sizeof(msg), "%sSTATUS=", extra);
        format_status(srv, msg + n, sizeof(msg) - (size_t)n);
        sd.notify(0, msg);
        srv->svc.status_sent = true;
        srv->svc.status_clients = srv->clients.count;
        srv->svc.status_jobs = srv->jobs.by_id.count;
}

void service_ready(struct server *srv, const char *where) {
        if (srv->life.embedded)
                return;
        /* Without a service manager to tell, nothing is loaded or sent. */
        char why[256];
        if (getenv("NOTIFY_SOCKET")) {
                if (sd_load(why, sizeof(why)) == 0)
                        srv->svc.notify = true;
                else
                        log_warn("NOTIFY_SOCKET is set, but libsystemd cannot be "
                                 "loaded to tell the service manager we are ready: %s",
                                 why);
        }
        send_status(srv, "READY=1\n");
        service_after_batch(srv); /* starts the idle clock */
        log_debug("told the service manager: ready, listening on %s", where);
}

/* Called after every event batch: keeps the idle clock and the status line
 * current. The status is sent only when the counts it shows change. */
void service_after_batch(struct server *srv) {
        /* A detached job's exit record, kept for a later `mpspawn wait`,
         * holds the server too, until it is collected or its retention
         * ends: the job was started to be collected later. */
        retain_expire(srv);
        bool idle = !srv->life.stopping && !srv->life.embedded && srv->clients.count == 0 &&
                    srv->jobs.by_id.count == 0 && srv->retained.ndetached == 0;
        if (!idle)
                srv->svc.idle_since_ns = 0;
        else if (srv->svc.idle_since_ns == 0)
                srv->svc.idle_since_ns = mps__now_ns();
        if (!srv->svc.notify)
                return;
        if (!srv->svc.status_sent || srv->svc.status_clients != srv->clients.count ||
            srv->svc.status_jobs != srv->jobs.by_id.count)
                send_status(srv, "");
}

static uint64_t idle_deadline(const struct server *srv) {
        if (!srv->cfg->idle_exit_ms || !srv->svc.idle_since_ns)
                return 0;
        return srv->svc.idle_since_ns + (uint64_t)srv->cfg->idle_exit_ms * 1000000u;
}

/* When only detached jobs' exit records keep an idle_exit server up: the
 * end of the oldest record's retention (the list is in age order), to wake,
 * expire it and look again; else 0. */
static uint64_t retained_deadline(const struct server *srv) {
        if (!srv->cfg->idle_exit_ms || srv->life.embedded || !srv->retained.ndetached ||
            srv->clients.count != 0 || srv->jobs.by_id.count != 0)
                return 0;
        return srv->retained.head->kept_ns + (uint64_t)RETAIN_SECONDS * 1000000000u + 1;
}

/* The epoll timeout: -1 (wait for events), or the time left until idle
 * exit (or until the exit records that hold it off expire). */
int service_timeout_ms(const struct server *srv) {
        uint64_t deadline = idle_deadline(srv), now = mps__now_ns();
        if (!deadline)
                deadline = retained_deadline(srv);
        if (!deadline)
                return -1;
        if (now >= deadline)
                return 0;
        uint64_t ms = (deadline - now + 999999u) / 1000000u;
        return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* After a wait that timed out: true (and logged) when idle exit is due;
 * the server then stops. */
bool service_idle_expired(const struct server *srv) {
        uint64_t deadline = idle_deadline(srv);
        if (!deadline || mps__now_ns() < deadline || srv->life.stopping)
                return false;
        unsigned ms = srv->cfg->idle_exit_ms;
        log_info("no client and no job for %u.%03u s (idle_exit); exiting", ms / 1000,
                 ms % 1000);
        return true;
}

void service_stopping(struct server *srv) {
        if (srv->life.embedded)
                return;
        send_status(srv, "STOPPING=1\n");
}
