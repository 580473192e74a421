/* SPDX-License-Identifier: MIT */
/*
 * cli_fds.c: which of the caller's descriptors the job gets. By default,
 * as a direct exec would give them: every fd of ours that is not
 * close-on-exec, at the same number (`3<file`, `flock 9`, `<(...)`).
 * mpspawn's own fds (its connection, its signalfd, the library's) are all
 * O_CLOEXEC, so they are never among them; the one the caller gives us
 * for our records (--json-fd) is skipped. --close-fds passes only 0-2;
 * --pass-fd N and --preserve-fds N pass 0-2 and exactly those named.
 * 0-2 are the library's to pass (the caller's own unless the spec maps
 * them), so only fds from 3 up are mapped here.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cli.h"
#include "cli_pty.h"
#include "number.h"
#include "wire.h"

/* Maps fd into the job at its own number; 125 after saying why not. */
static int pass(const struct mps__cli_options *o, int fd) {
        int r = mps_spec_map_fd(o->spec, fd, fd);
        if (r < 0) {
                fprintf(stderr, "mpspawn: cannot pass fd %d to the job: %s\n", fd,
                        mps_strerror(r));
                return MPS_EXIT_LAUNCHER;
        }
        return 0;
}

/* --pass-fd and --preserve-fds: exactly the fds named. One named by
 * --pass-fd must be open (it was asked for by number); a gap in
 * --preserve-fds' range stays closed in the job, as in the caller. */
static int pass_named(const struct mps__cli_options *o) {
        for (int fd = 3; fd <= MPS_WIRE_TARGET_FD_MAX; fd++) {
                bool named = o->pass_fd_set[fd / 32] & (1u << (fd % 32));
                bool preserved = (unsigned)fd < 3 + o->preserve_fds;
                if ((!named && !preserved) || fd == o->json_fd)
                        continue;
                if (fcntl(fd, F_GETFD) < 0) {
                        if (!named)
                                continue;
                        fprintf(stderr, "mpspawn: --pass-fd %d: fd %d is not open\n", fd, fd);
                        return MPS_EXIT_LAUNCHER;
                }
                int r = pass(o, fd);
                if (r)
                        return r;
        }
        return 0;
}

/* The terminal(s) mpspawn relays when the job gets a pty of its own: the
 * job is to reach the caller's terminal only through the relay (issue 14:
 * as sudo's use_pty), so descriptors of them, and of /dev/tty (the
 * caller's controlling terminal, whichever it is), are not passed. */
struct outer_ttys {
        dev_t rdev[4]; /* /dev/tty and fds 0-2 */
        int n;
};

static void find_outer_ttys(const struct mps__cli_options *o, struct outer_ttys *t) {
        struct stat st;
        t->n = 0;
        if (o->mode != MPS__CLI_RUN || o->detach || !mps__pty_wanted(o->pty))
                return;
        t->rdev[t->n++] = makedev(5, 0); /* /dev/tty */
        for (int fd = 0; fd <= 2; fd++)
                if (isatty(fd) == 1 && fstat(fd, &st) == 0)
                        t->rdev[t->n++] = st.st_rdev;
}

static bool is_outer_tty(const struct outer_ttys *t, int fd) {
        struct stat st;
        if (t->n == 0 || isatty(fd) != 1 || fstat(fd, &st) < 0)
                return false;
        for (int i = 0; i < t->n; i++)
                if (st.st_rdev == t->rdev[i])
                        return true;
        return false;
}

/* One fd found open: passed unless close-on-exec. Past the highest number
 * a job may be given it is left behind with a warning, not an error: a
 * direct exec would pass it, but such fds are nearly always inherited by
 * accident, and refusing to run would make mpspawn unusable there. */
static int consider(const struct mps__cli_options *o, const struct outer_ttys *ttys, int fd) {
        int flags = fcntl(fd, F_GETFD);
        if (fd <= 2 || fd == o->json_fd || flags < 0 || (flags & FD_CLOEXEC) ||
            is_outer_tty(ttys, fd))
                return 0;
        if (fd > MPS_WIRE_TARGET_FD_MAX) {
                fprintf(stderr, "mpspawn: warning: fd %d is open, but a job's fds go up to "
                                "%d: the job does not get it\n", fd, MPS_WIRE_TARGET_FD_MAX);
                return 0;
        }
        return pass(o, fd);
}

/* The default: every fd not close-on-exec, listed from /proc/self/fd (the
 * directory's own fd is close-on-exec, and skipped by number as well); or,
 * without /proc, every number up to the highest a job may be given. */
static int pass_inherited(const struct mps__cli_options *o) {
        struct outer_ttys ttys;
        find_outer_ttys(o, &ttys);
        DIR *d = opendir("/proc/self/fd");
        int r = 0;
        if (!d) {
                for (int fd = 3; fd <= MPS_WIRE_TARGET_FD_MAX && !r; fd++)
                        r = consider(o, &ttys, fd);
                return r;
        }
        int own = dirfd(d);
        struct dirent *e;
        while (!r && (e = readdir(d))) {
                unsigned long long fd;
                if (mps__parse_unsigned(e->d_name, 10, 0, INT32_MAX, &fd) < 0 ||
                    (int)fd == own)
                        continue;
                r = consider(o, &ttys, (int)fd);
        }
        closedir(d);
        return r;
}

int mps__cli_fds_apply(const struct mps__cli_options *o) {
        if (o->fds_explicit)
                return pass_named(o);
        return pass_inherited(o);
}
