/*
 * loop.c: the server's one epoll loop. Every event source is registered with
 * a struct watch that carries its own handler and data, so dispatch is one
 * indirect call and the loop knows no handler.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../launcher/fdutil.h"
#include "server.h"

#define LOOP_EVENTS_MAX 64

int loop_add(struct server *srv, int fd, uint32_t events, struct watch *w) {
        struct epoll_event ev = {.events = events, .data.ptr = w};
        return epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int loop_mod(struct server *srv, int fd, uint32_t events, struct watch *w) {
        struct epoll_event ev = {.events = events, .data.ptr = w};
        return epoll_ctl(srv->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void loop_del(struct server *srv, int fd) {
        epoll_ctl(srv->epfd, EPOLL_CTL_DEL, fd, NULL);
}

/* Accepts every pending connection. When out of descriptors, the spare one
 * is given up to accept and immediately close the connection, so that the
 * level-triggered listening socket does not spin and the client sees EOF. */
void loop_on_listen(struct watch *w, uint32_t events) {
        struct server *srv = w->data;
        (void)events;
        for (int i = 0; i < 64; i++) {
                int fd = accept4(srv->listen_fd, NULL, NULL,
                                 SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        if (errno == EMFILE || errno == ENFILE) {
                                log_warn("out of file descriptors; refusing a "
                                         "connection");
                                srv->spare_fd = mps__safe_close(srv->spare_fd);
                                fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
                                mps__safe_close(fd);
                                srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                        } else if (errno != EAGAIN) {
                                log_err("accept: %m");
                        }
                        return;
                }
                if (client_new(srv, fd) < 0)
                        mps__safe_close(fd);
        }
}

void loop_on_signal(struct watch *w, uint32_t events) {
        struct server *srv = w->data;
        (void)events;
        struct signalfd_siginfo si;
        ssize_t n;
        while ((n = mps__read_retry(srv->signal_fd, &si, sizeof(si))) == sizeof(si)) {
                if (si.ssi_signo == SIGCHLD) {
                        job_reap_any(srv);
                        continue;
                }
                log_info("received SIG%s, stopping", sigabbrev_np((int)si.ssi_signo));
                if (srv->stopping)
                        srv->stop_now = true;
                loop_begin_stop(srv);
        }
}

static void stop_daemon_job(uint64_t id, void *value, void *data) {
        (void)id;
        (void)data;
        job_stop_daemon(value);
}

/*
 * Stopping: accept nothing more, end daemon jobs by the termination policy
 * (SIGTERM now, SIGKILL after the grace period; at once on a second
 * request), and exit once none is left. Other jobs run on.
 */
void loop_begin_stop(struct server *srv) {
        if (srv->listen_fd >= 0) {
                loop_del(srv, srv->listen_fd);
                srv->listen_fd = mps__safe_close(srv->listen_fd);
                if (srv->socket_path)
                        unlink(srv->socket_path);
        }
        srv->stopping = true;
        prefork_release_all(srv);
        mps__idmap_foreach(&srv->jobs, stop_daemon_job, NULL);
        service_stopping(srv);
}

int loop_run(struct server *srv) {
        struct epoll_event evs[LOOP_EVENTS_MAX];

        while (!(srv->stopping && srv->ndaemon_alive == 0)) {
                /* Pre-forked children are refilled only when no event
                 * waits, one fork per turn, so a refill never delays a
                 * job's exec result or exit; the loop does not sleep while
                 * some are missing, except after a failed fork (backoff).
                 * Otherwise the only timeout is idle exit's (job deadlines
                 * have their timerfd). */
                int refill_ms = prefork_wait_ms(srv);
                int timeout_ms = service_timeout_ms(srv);
                if (refill_ms >= 0 && (timeout_ms < 0 || refill_ms < timeout_ms))
                        timeout_ms = refill_ms;
                int n = epoll_wait(srv->epfd, evs, LOOP_EVENTS_MAX, timeout_ms);
                if (n == 0 && refill_ms == 0) {
                        prefork_refill(srv, 1);
                        continue;
                }
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        log_err("epoll_wait: %m");
                        return -errno;
                }
                if (n == 0)
                        service_on_timeout(srv);
                for (int i = 0; i < n; i++) {
                        struct watch *w = evs[i].data.ptr;
                        w->fn(w, evs[i].events);
                }
                while (srv->dead_jobs) {
                        struct job *j = srv->dead_jobs;
                        srv->dead_jobs = j->gnext;
                        job_free(j);
                }
                while (srv->dead_clients) {
                        struct client *c = srv->dead_clients;
                        srv->dead_clients = c->gnext;
                        client_free(c);
                }
                while (srv->dead_preforks) {
                        struct prefork *p = srv->dead_preforks;
                        srv->dead_preforks = p->next;
                        free(p);
                }
                service_after_batch(srv);
        }
        return 0;
}
