/* SPDX-License-Identifier: MIT */
/*
 * mpspawn.h: the public interface of libmpspawn.
 *
 * libmpspawn launches processes through mpforkserver, a small single-threaded
 * server that forks on the caller's behalf, and gives C programs the process
 * model of Python's multiprocessing: start, join, is_alive, terminate, kill,
 * exitcode, pid and sentinel.
 *
 * Conventions:
 *  - Functions that can fail return 0 (or a count) on success and a negative
 *    errno value on failure; mps_client_error() then holds a one-line message.
 *  - Out-parameters are named ret_* and are left untouched on failure.
 *  - Every *_free / *_close function accepts NULL.
 *  - The library never prints, never calls exit(), never installs signal
 *    handlers, never forks the calling process, and creates every file
 *    descriptor with O_CLOEXEC.
 *
 * Threads: one client may be shared by any number of threads. Every call on
 * a client, its processes and its pools may run on any thread at the same
 * time as any other (start, join with or without a timeout, is_alive,
 * exitcode, signals, process close, every Pool call, the jobs-by-id
 * requests, mps_client_dispatch), except that closing a process handle, a
 * pool or the client while another thread still uses that same handle is
 * the caller's error. A spec is a plain value: one thread at a time each.
 * The library starts no thread. Each client has one mutex, held only
 * briefly (never across a wait or a callback); a thread that must wait for
 * the server either reads the connection itself or, while another thread
 * reads, sleeps until that reader hands it what it waits for, so a join
 * waits only for its own process and never delays another thread's start.
 * Callbacks (Pool callbacks and error callbacks) run on whichever thread
 * was reading when the message came (one in mps_client_dispatch, a join, a
 * start, a pool call...), with no lock held, one at a time per client and
 * in message order. A callback may call any library function, this client
 * included: a join inside a callback reads the connection itself.
 * mps_version() and mps_strerror() may be called from any thread. The
 * library's one process-wide state is the embedded server (mps_client_open),
 * behind a mutex held only while a client of it opens or closes.
 *
 * A host that forks: the child never talks on its parent's connection. In a
 * forked child every call on a client of the parent, its processes or its
 * pools that would talk to the server or wait for it (mps_process_new,
 * mps_start, mps_join, signals, requests, mps_client_dispatch,
 * mps_client_fd, mps_pool_new...) returns -ENOTCONN with the message "this
 * client belongs to the parent process (pid N): a forked child opens its
 * own with mps_client_open" (getters such as mps_pid() and mps_is_alive()
 * report what was known at the fork). There mps_client_close(),
 * mps_process_close() and mps_pool_free() only free memory. The child's copy
 * of the socket is closed at the fork (never shut down), its copies of
 * pidfds with mps_process_close(): the parent's connection and jobs, daemon
 * jobs included, are unaffected. The child opens its own client if needed.
 *
 * Where we differ from Python's multiprocessing:
 *  - A process is a job of a forkserver, not a child of the caller: it is not
 *    visible to waitpid() in the caller, and its parent is the server.
 *  - exitcode is MPS_EXITCODE_NONE (not None) while there is none yet.
 *  - Non-daemon processes outlive the client (Python would join them at exit);
 *    daemon processes are terminated when the client connection closes.
 */
#ifndef MPSPAWN_H
#define MPSPAWN_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(MPS_BUILDING_LIBRARY)
#define MPS_API __attribute__((visibility("default")))
#else
#define MPS_API
#endif

#define MPS_VERSION_MAJOR 0
#define MPS_VERSION_MINOR 1
#define MPS_VERSION_PATCH 0

/* The version of the library actually loaded, as "MAJOR.MINOR.PATCH". */
MPS_API const char *mps_version(void);

/* A static description of a negative errno value, like strerror(-err). */
MPS_API const char *mps_strerror(int err);

/* mps_exitcode() while the process has not ended (or was never started). */
#define MPS_EXITCODE_NONE INT_MIN

/* Exit statuses of the mpspawn CLI, the conventions of env(1) and timeout(1). */
enum {
        MPS_EXIT_TIMEOUT = 124,     /* --timeout expired */
        MPS_EXIT_LAUNCHER = 125,    /* mpspawn itself failed */
        MPS_EXIT_CANNOT_EXEC = 126, /* found but could not be executed */
        MPS_EXIT_NOT_FOUND = 127,   /* program not found */
        MPS_EXIT_SIGNAL_BASE = 128, /* killed by signal N: 128 + N */
};

/* ------------------------------------------------------------------------
 * Connection
 * ------------------------------------------------------------------------ */

typedef struct mps_client mps_client;

/*
 * Connects to a forkserver and performs the version handshake.
 *
 * path chooses the server: a socket path; or NULL for the default choice,
 * which is $MPSPAWN_SOCKET if set, else the system socket
 * (/run/mpspawn/forkserver.sock) or the user socket ($XDG_RUNTIME_DIR/
 * mpspawn.sock, or /tmp/mpspawn-UID/mpspawn.sock where XDG_RUNTIME_DIR is
 * unset and that directory is ours and 0700) if a server answers there,
 * else the process's embedded server (below).
 *
 * The embedded server is a private mpforkserver, one per process, shared
 * by every client of the process that falls back to it. The first such
 * open starts it with posix_spawn (never by forking the caller); each
 * client, that first one included, gets a connection of its own (a
 * socketpair the server is handed), and the server exits when the last of
 * these clients is closed; the next fallback starts a new one. Its binary
 * is $MPSPAWN_FORKSERVER if set, else mpforkserver next to the running
 * executable, else the installed one, as found by the open that starts it.
 * Each client's daemon jobs end when that client closes, and a client
 * hears the exits of the processes it started only; but the jobs of all
 * these clients run as the same user on the same server, so requests by
 * job id (mps_client_list_jobs, mps_client_wait_job, mps_client_signal_job)
 * on one client see and reach the jobs another client of the process
 * started. A server found dead (killed) is replaced at the next open; the
 * clients it had get -ENOTCONN. A child the host forks never uses its
 * parent's embedded server: the child's first fallback starts a server of
 * its own, and the parent's server and connections are unaffected. (The
 * library registers pthread_atfork handlers for that at the first
 * fallback; a fork waits while another thread is opening or closing a
 * client of the embedded server.) An mpforkserver binary older than this
 * sharing (no "adopt" feature) gives each client a server of its own, as
 * before. A server allows 256 connections per user by default, one of them
 * the library's own: past that, opens fail with -EAGAIN.
 *
 * On success *ret_client owns one reference; release it with
 * mps_client_close(). Returns -ECONNREFUSED or -ENOENT when no server
 * answers, -EPROTO when the server speaks an incompatible protocol.
 * On failure, if ret_message is not NULL, it receives a malloc()ed one-line
 * explanation the caller must free() (or NULL when memory ran out).
 */
MPS_API int mps_client_open(const char *path, mps_client **ret_client,
                            char **ret_message);

/* Flags for mps_client_open_flags(). */
enum {
        /* With path NULL, fail (-ECONNREFUSED) rather than start an
         * embedded server when no shared server answers: for talking about
         * jobs of other invocations (ps, wait, kill), which a private server
         * cannot know. */
        MPS_OPEN_NO_EMBEDDED = 1 << 0,
};

/* mps_client_open() with flags (MPS_OPEN_*). */
MPS_API int mps_client_open_flags(const char *path, unsigned flags,
                                  mps_client **ret_client, char **ret_message);

/*
 * A debugging knob, read at each open: with MPSPAWN_NO_PIDFD_EXIT=1 in the
 * environment the client never reads exit codes from pidfds (see
 * mps_join) and learns every end from the server's record only, as on
 * kernels before Linux 6.15. For tests and benchmarks of that path.
 * Likewise MPSPAWN_NO_BATCH=1: a Pool sends each start in a request of its
 * own, as to a server without spawn_batch (see the Pool).
 */

/*
 * Closes the connection. Daemon processes started through it are terminated
 * by the server; other processes run on. Process handles made from this
 * client stay valid until mps_process_close(): one that had not ended by now
 * will never learn its exit code (join returns -ENOTCONN). Threads waiting on
 * the client meanwhile (joins, requests, pool joins) wake and return
 * -ENOTCONN; the socket is shut down at once and its descriptor closed when
 * the last handle made from the client goes.
 */
MPS_API void mps_client_close(mps_client *client);

/* The connection's socket, for poll/epoll: readable when mps_client_dispatch()
 * has work to do. */
MPS_API int mps_client_fd(const mps_client *client);

/*
 * Reads and handles every message the server has sent, without blocking:
 * records exits, completes starts, runs Pool callbacks. Returns the number of
 * messages handled (0 if none was waiting), or a negative errno (-ENOTCONN
 * once the server has gone). For event loops: it may run while other threads
 * use the client in any way. While another thread is reading the connection
 * (a join, a start, a pool wait) it returns 0 at once: that thread handles
 * what is waiting, and runs the callbacks. The fd may then poll readable
 * and dispatch find nothing: that is no error.
 */
MPS_API int mps_client_dispatch(mps_client *client);

/* The message of the calling thread's last failure on this client, or, if
 * that is older, the client's last failure no call of a thread claimed (an
 * unsolicited error from the server, the connection's loss); "" if none.
 * Each thread has its own: a failure on one thread never changes what
 * another reads. The string stays valid until the next call on the client
 * from the same thread. */
MPS_API const char *mps_client_error(const mps_client *client);

/* The server's pid as it said in its welcome (for an embedded server, that
 * server's pid). */
MPS_API pid_t mps_client_server_pid(const mps_client *client);

/* ------------------------------------------------------------------------
 * Job specification
 * ------------------------------------------------------------------------ */

typedef struct mps_spec mps_spec;

/* A new empty spec: no program yet, environment inherited from the caller,
 * stdin/stdout/stderr mapped from the caller's fds 0, 1 and 2. */
MPS_API int mps_spec_new(mps_spec **ret_spec);
MPS_API void mps_spec_free(mps_spec *spec);

/*
 * The program to execute and its argument vector (NULL-terminated; argv[0]
 * included). A path without '/' is searched in the job's PATH. Both are
 * copied.
 */
MPS_API int mps_spec_set_exec(mps_spec *spec, const char *path,
                              const char *const argv[]);

/* Environment: start from an empty environment instead of the caller's.
 * Edits made with mps_spec_env_set/unset apply on top, before or after. */
MPS_API int mps_spec_env_clear(mps_spec *spec);
/* Sets NAME=VALUE in the job's environment (after clear/inherit). */
MPS_API int mps_spec_env_set(mps_spec *spec, const char *name,
                             const char *value);
/* Removes NAME from the job's environment. */
MPS_API int mps_spec_env_unset(mps_spec *spec, const char *name);

/* The job's working directory (default: the caller's working directory at
 * the time of mps_start()). A relative dir is taken relative to the
 * caller's working directory at mps_start(), never the server's. */
MPS_API int mps_spec_set_cwd(mps_spec *spec, const char *dir);

/*
 * Installs the caller's descriptor caller_fd as child_fd in the job. The fd
 * is duplicated at mps_start() time, so it must stay open until then.
 * caller_fd = -1 makes child_fd /dev/null for 0..2 and closed otherwise.
 * Every fd not mapped is closed in the job, except that 0, 1 and 2 default
 * to the caller's own.
 */
MPS_API int mps_spec_map_fd(mps_spec *spec, int child_fd, int caller_fd);

/* A name for the job, shown by `mpspawn ps`. */
MPS_API int mps_spec_set_name(mps_spec *spec, const char *name);

/* Daemon jobs are terminated (SIGTERM, then SIGKILL after a grace period)
 * when the client connection closes. Default: false. */
MPS_API int mps_spec_set_daemon(mps_spec *spec, bool daemon);

/* ---- policy: what the job may do (see docs/policy.md) ---------------- */

/*
 * A seccomp policy (the text format of docs/policy.md), compiled in the
 * server (and cached by content) and loaded in the child last, right
 * before exec, after no_new_privs. name (e.g. the file name) appears in
 * error messages: "NAME:LINE: unknown syscall 'sokcet'"; a bad policy fails
 * the start with -EINVAL, stage "policy", and nothing is started.
 */
MPS_API int mps_spec_set_seccomp(mps_spec *spec, const char *name,
                                 const char *policy_text);
/* The same from a file (read now; its base name is the policy's name). */
MPS_API int mps_spec_set_seccomp_file(mps_spec *spec, const char *path);

/* nice value (-20..19; lowering it needs privilege the job's user has). */
MPS_API int mps_spec_set_nice(mps_spec *spec, int nice);
/* umask (0..0777); default: the server's. */
MPS_API int mps_spec_set_umask(mps_spec *spec, mode_t mask);
/* PR_SET_NO_NEW_PRIVS: exec cannot gain privileges (setuid, file caps). */
MPS_API int mps_spec_set_no_new_privs(mps_spec *spec, bool on);
/* The signal the job gets if the server dies (PR_SET_PDEATHSIG); 0: none. */
MPS_API int mps_spec_set_pdeathsig(mps_spec *spec, int sig);
/*
 * Whole-tree termination. Every job leads its own process group; with
 * kill_tree, every signal the server sends it (terminate, kill, timeout,
 * daemon stop, mps_send_signal) goes to the whole group, and when the job
 * itself ends, what it left in its group is killed (sh -c 'a | b &' leaves
 * nothing behind). A descendant that moves to another group or session
 * escapes it; see docs/policy.md.
 */
MPS_API int mps_spec_set_kill_tree(mps_spec *spec, bool on);

/*
 * A detached job belongs to no connection once started: its exit is not
 * reported to this client but kept by the server (an hour at most) for
 * mps_client_wait_job() or `mpspawn wait ID` from any connection of the same
 * user, and no disconnect ends it (it is never a daemon). After mps_start()
 * the handle gives pid, job id and sentinel, can be signalled, and may be
 * closed at once; join and exitcode do not apply (-EINVAL, NONE).
 */
MPS_API int mps_spec_set_detached(mps_spec *spec, bool detached);

/* Runs the job in a new session (setsid()). Default: false. */
MPS_API int mps_spec_set_new_session(mps_spec *spec, bool new_session);

/* ---- terminal jobs (server feature "terminal") --------------------------- */

/*
 * The job starts in a new session (setsid) with its fd 0, after the fd map,
 * as its controlling terminal (TIOCSCTTY), and its process group in that
 * terminal's foreground. The start fails at stage "terminal" if fd 0 is not
 * a terminal (or is another session's controlling terminal). Implies
 * mps_spec_set_new_session(true). Default false. A server without the
 * "terminal" feature refuses the start (-EOPNOTSUPP).
 */
MPS_API int mps_spec_set_controlling_terminal(mps_spec *spec, bool on);

/*
 * The server reports when the job stops and continues (waitid WSTOPPED /
 * WCONTINUED) on its connection; see mps_stop_signal(). Default false.
 */
MPS_API int mps_spec_set_report_stops(mps_spec *spec, bool on);

/*
 * A timeout enforced by the server, as timeout(1): SIGTERM when `seconds`
 * have passed since the start, then SIGKILL `kill_after` seconds later if
 * it still runs (kill_after < 0: the default, 5 s). The exit record then
 * says timed_out. seconds = 0 removes the timeout.
 */
MPS_API int mps_spec_set_timeout(mps_spec *spec, double seconds,
                                 double kill_after);

/*
 * The signal the server sends when the timeout expires, instead of
 * SIGTERM (timeout(1)'s --signal); SIGKILL still follows kill_after
 * seconds later. 0 or SIGTERM: the default. Needs a server that announces
 * the "timeout_signal" feature when sig is another signal (mps_start then
 * fails with -EOPNOTSUPP otherwise). -EINVAL unless 0 <= sig <= 64.
 */
MPS_API int mps_spec_set_timeout_signal(mps_spec *spec, int sig);

/* For mps_spec_set_rlimit(): leave the hard limit as the job inherits it. */
#define MPS_RLIM_KEEP ((rlim_t)RLIM_INFINITY - 1)

/*
 * Sets resource limit `resource` (RLIMIT_NOFILE, ...) in the job, like
 * setrlimit(2): soft and hard may be RLIM_INFINITY; hard may be
 * MPS_RLIM_KEEP. Applied after the fds are installed, before exec. A limit
 * the job may not raise fails the start with -EPERM, stage "rlimit".
 */
MPS_API int mps_spec_set_rlimit(mps_spec *spec, int resource, rlim_t soft,
                                rlim_t hard);

/* ------------------------------------------------------------------------
 * Process
 * ------------------------------------------------------------------------ */

typedef struct mps_process mps_process;

/* A process object for spec on client; spec is copied and may be freed. */
MPS_API int mps_process_new(mps_client *client, const mps_spec *spec,
                            mps_process **ret_process);

/*
 * Starts the process and waits until it has been exec'ed. Returns 0, or a
 * negative errno: -EALREADY on a second start; the exec's errno (e.g.
 * -ENOENT, -EACCES) when the program could not be executed, with a message
 * naming the program. An exec failure is never reported as an exit code.
 */
MPS_API int mps_start(mps_process *proc);

/*
 * Waits until the process has ended or timeout_ms milliseconds have passed
 * (-1: no limit). Like Python, it does not say which: ask mps_is_alive() or
 * mps_exitcode(). Returns 0, -EINVAL if never started, -ENOTCONN if the
 * connection was lost before the end was seen.
 *
 * The end is seen when the server's exit record arrives, or earlier, as
 * soon as the server has reaped the job, where the kernel gives the job's
 * wait status to the holder of its pidfd (PIDFD_INFO_EXIT, Linux 6.15):
 * then mps_exitcode() and mps_exit_info_get()'s exitcode and core_dumped
 * are the kernel's, which are the server's too (the same wait status), and
 * the record, which the server sends right after that reap, completes the
 * rest (times, max_rss_kib, timed_out, a call job's result) when read; it
 * never changes the exit code or ends the process a second time, and a
 * Pool callback runs once, with the record. The same holds for
 * mps_is_alive() and mps_exitcode() once the sentinel is readable. Detached
 * jobs, and jobs of a server that sends no pidfds, are told by the record
 * only. A join waiting on another thread's reads is woken by its job's
 * pidfd too while that reader polls it (up to 32 such joins at a time;
 * others, and joins that began after the reader's poll, wake for the
 * record, as before).
 */
MPS_API int mps_join(mps_process *proc, int timeout_ms);

/* 1 from start until the end has been seen, else 0. */
MPS_API int mps_is_alive(mps_process *proc);

/* The exit code, -N after signal N, or MPS_EXITCODE_NONE if not ended. */
MPS_API int mps_exitcode(mps_process *proc);

/* Sends SIGTERM / SIGKILL / any signal. No-op (0) once the process has
 * ended; -EINVAL if never started. */
MPS_API int mps_terminate(mps_process *proc);
MPS_API int mps_kill(mps_process *proc);
MPS_API int mps_send_signal(mps_process *proc, int sig);

/*
 * 0 while the job runs (or if stops are not reported), else the signal that
 * stopped it (SIGTSTP, SIGTTIN, SIGTTOU, SIGSTOP). Updated by
 * mps_client_dispatch, mps_is_alive and mps_join; a stop or continue report
 * makes the client fd readable like any other message. 0 once it ended.
 */
MPS_API int mps_stop_signal(const mps_process *proc);

/*
 * For a controlling-terminal job: puts the job's terminal foreground back
 * to the job (true), or makes the job background in its own terminal
 * (false), so that when it reads the terminal it gets SIGTTIN and stops
 * (reported as a stop with SIGTTIN), as a background job of a shell does.
 * Resuming a stopped job is mps_send_signal(proc, SIGCONT). Sent
 * asynchronously: returns 0 once queued; a refusal comes back later as the
 * client's error (mps_client_error). -ENOTSUP for a job without a
 * controlling terminal or a server without the "terminal" feature; 0 (a
 * no-op) once the job has ended; -EINVAL if it was never started.
 */
MPS_API int mps_set_terminal_foreground(mps_process *proc, bool foreground);

/* The job's pid, or a negative errno if not started. */
MPS_API pid_t mps_pid(const mps_process *proc);

/* The job's id in the server, or 0 if not started. */
MPS_API uint64_t mps_job_id(const mps_process *proc);

/*
 * An fd that becomes readable once the process has ended (a pidfd), for
 * poll/epoll on many processes at once. Owned by the process handle.
 * Returns a negative errno if not started. It polls readable as soon as the
 * job exits, before the server has reaped it; mps_is_alive(), mps_exitcode()
 * and mps_join() then wait for the reap (and take the exit code from the
 * pidfd where the kernel gives it, see mps_join) or for the record.
 */
MPS_API int mps_sentinel(const mps_process *proc);

/* Details of the end, valid once mps_exitcode() is not MPS_EXITCODE_NONE. */
typedef struct mps_exit_info {
        int exitcode;          /* as mps_exitcode() */
        bool core_dumped;      /* killed by a signal that dumped core */
        bool timed_out;        /* ended by the server's timeout */
        double user_seconds;   /* CPU time in user mode */
        double system_seconds; /* CPU time in kernel mode */
        long max_rss_kib;      /* peak resident set */
        double wall_seconds;   /* from fork to reaping, as the server saw */
} mps_exit_info;

/* The end's details, from the server's exit record: 0, or -EAGAIN while the
 * end has not been seen. Unlike mps_is_alive() and mps_exitcode() it reads
 * no message, so a scan over many processes in an event loop does not
 * consume what the loop's dispatch would have handled (docs/examples);
 * except for a process whose end was seen from its pidfd (see mps_join)
 * before its record was read: then it waits for that record (sent right
 * after the reap), reading messages as a join does (Pool callbacks may run
 * meanwhile), and returns -ENOTCONN, *ret_info untouched, if the
 * connection goes first (mps_exitcode() still tells the exit code). */
MPS_API int mps_exit_info_get(const mps_process *proc,
                              mps_exit_info *ret_info);

/*
 * After mps_start() failed: the step that failed, as the server named it:
 * "exec" (the program could not be executed), "chdir" (the working
 * directory), "credentials", "nice", "rlimit", "seccomp" (loading a
 * filter), "fds", "setsid", "terminal" (fd 0 could not become the
 * controlling terminal), "fork", "call" (no such entry point), "policy"
 * (the seccomp policy text is wrong; nothing was started), or "request"
 * (the server refused the request). NULL if the start did not fail.
 */
MPS_API const char *mps_start_failed_stage(const mps_process *proc);

/* Releases the handle. -EBUSY (and nothing released) while it still runs. */
MPS_API int mps_process_close(mps_process *proc);


/* ------------------------------------------------------------------------
 * Call jobs: run a preloaded entry point in a copy-on-write child instead
 * of exec'ing a program.
 * ------------------------------------------------------------------------ */

/*
 * Makes the job a call of entry point `entry`, registered by a library the
 * server preloaded (mpforkserver --preload LIB.so), with args_json (JSON
 * text, NULL for null) as its arguments. Replaces any exec. Everything else
 * in the spec (fds, env, cwd, limits, timeout, daemon) applies as for exec
 * jobs. The job's exit code is the entry point's return value (0..255). An
 * unknown name fails the start with -ENOENT, stage "call".
 */
MPS_API int mps_spec_set_call(mps_spec *spec, const char *entry,
                              const char *args_json);

/* ---- results of call jobs ----------------------------------------------------
 *
 * An entry point may hand back a result, JSON text of at most
 * MPS_RESULT_MAX bytes, and mark itself failed with a message
 * (ctx->set_result, ctx->set_error below). The server takes both when it
 * reaps the job and sends them with its exit: the caller reads them once
 * the process has ended. A server too old to carry results (it lacks the
 * "call_result" feature) runs call jobs as before, with no result.
 */
#define MPS_RESULT_MAX 32768      /* bytes of JSON text a call job may return */
#define MPS_RESULT_ERROR_MAX 4096 /* bytes of its failure message (longer is cut) */

/*
 * After a call job ended: its result as JSON text (printed again, compactly:
 * numbers as doubles), or NULL: none was set, the job was no call job, or
 * the server is too old. Valid until mps_process_close(). Like
 * mps_exit_info_get() it waits for the record of an end seen from the
 * pidfd (NULL if the connection goes first); so does mps_result_error().
 */
MPS_API const char *mps_result(const mps_process *proc);

/*
 * After a call job ended: the failure message its entry point set (as a
 * Python worker's exception), or one from the server when what the job
 * left could not be taken (a result that is not JSON, a damaged channel);
 * NULL when none. Valid until mps_process_close().
 */
MPS_API const char *mps_result_error(const mps_process *proc);

/*
 * Data helpers, the C counterparts of multiprocessing's Pipe, Queue and
 * Value/Array: every fd is O_CLOEXEC; map them into jobs with
 * mps_spec_map_fd().
 */
MPS_API int mps_pipe(int ret_fds[2]);       /* [0] read end, [1] write end */
MPS_API int mps_socketpair(int ret_fds[2]); /* AF_UNIX SOCK_STREAM */

/*
 * A shared-memory region of `size` bytes (memfd, sealed so that nobody can
 * grow or shrink it), mapped shared into the caller at *ret_addr. Pass
 * *ret_fd to jobs; they map it with mps_shm_map(). Release with
 * munmap(addr, size) and close(fd).
 */
MPS_API int mps_shm_create(size_t size, int *ret_fd, void **ret_addr);
/* Maps a region made by mps_shm_create (inside a job): its address and size. */
MPS_API int mps_shm_map(int fd, void **ret_addr, size_t *ret_size);

/* ---- writing a preload library --------------------------------------------
 *
 * A library for mpforkserver --preload has exactly one MPS_MODULE line and
 * any number of MPS_ENTRY lines after it:
 *
 *     static int init(void) { build_tables(); return 0; }
 *     static int lookup(const mps_call_context *ctx) { ...; return 0; }
 *     MPS_MODULE(init, NULL);
 *     MPS_ENTRY("lookup", lookup);
 *
 * init runs once in the server at start (non-zero stops the server with a
 * message); after_fork, if not NULL, runs in each call job's child after
 * its set-up and just before the entry point (to reseed a random number
 * generator, reopen a log). Clients can call only the names registered
 * here, never an arbitrary symbol. The library needs no libmpspawn.
 *
 * Warm state that call jobs only read belongs in mps_preload_alloc's
 * memory rather than malloc's: a call job is a fork of the server, and fork
 * copies the page tables of everything the server's heap holds (256 MiB of
 * tables cost each job several milliseconds), but none of this memory's,
 * which each job maps as it reads it. Since a server older than the
 * function has none, declare the library's use of it weak (the header's
 * declaration is) and fall back to malloc:
 *
 *     static const struct row *rows;
 *     static int init(void) {
 *             struct row *r = mps_preload_alloc ? mps_preload_alloc(n * sizeof(*r)) : NULL;
 *             if (!r && !(r = malloc(n * sizeof(*r))))
 *                     return 1;
 *             build_rows(r, n);
 *             rows = r;
 *             return 0;
 *     }
 */

/*
 * Memory for a preload library's warm state, defined by mpforkserver (not
 * libmpspawn) and callable only from a library's init hook: size bytes,
 * zeroed, aligned to 64 bytes, never freed. When that init returns (before
 * the next library's init, and before the server forks any job) the server
 * makes all of it read-only for good: mapped without write permission,
 * which mprotect cannot give back, in a memory file sealed against writes,
 * so neither the server nor a job can change it, and a job that writes to
 * it is killed by SIGSEGV. Build what must stay writable with malloc.
 *
 * It is a bump allocator over shared memory files ("mpspawn-preload" in
 * /proc/PID/maps) of 4 MiB, or of their own for bigger requests (rounded
 * up to 2 MiB), bounded only by the machine's memory: of 2 MiB huge pages
 * when the administrator reserved some (vm.nr_hugepages), else of normal
 * pages, for which transparent huge pages are asked (they apply when shmem
 * THP is "advise" or more). The pages count in the server's resident set
 * (and in preloaded_rss_kib) once init wrote them.
 *
 * Returns NULL with errno EPERM outside an init hook (in a library's
 * constructor, after init, in after_fork, in a job), and with another
 * errno when memory or descriptors ran out (ENOMEM, EMFILE): then malloc,
 * as above, is the fallback.
 */
__attribute__((weak, visibility("default"))) void *mps_preload_alloc(size_t size);

/* 2: mps_call_context gained set_result and set_error. A server takes
 * modules of ABI 1 and 2; an older one refuses a module built for 2 at
 * start, rather than letting its entry points call through pointers that
 * context does not have. */
#define MPS_MODULE_ABI 2

typedef struct mps_call_context {
        const char *entry;     /* the name it was called by */
        const char *args_json; /* its arguments as JSON text ("null" if none) */
        const int *fds;        /* the fd numbers the spec installed, in order */
        size_t nfds;
        /*
         * Hands a result back to the caller: json, one JSON value (RFC
         * 8259, UTF-8, numbers finite and at most 63 characters long, no
         * escaped NUL, nested at most 512 deep), is copied at once; a
         * later call replaces it. 0, -EINVAL if it is not such JSON,
         * -E2BIG past MPS_RESULT_MAX bytes (then the earlier result, if
         * any, stays), or another negative errno if it could not be
         * stored (-ENOSPC: the job's memory limit).
         */
        int (*set_result)(const struct mps_call_context *ctx, const char *json);
        /*
         * Marks the call failed with a one-line message (UTF-8; past
         * MPS_RESULT_ERROR_MAX bytes it is cut), as a Python worker's
         * exception; a later call replaces it. The exit code is still the
         * entry point's return value. 0, -EINVAL (NULL, or not UTF-8), or
         * another negative errno as for set_result.
         *
         * Both only write into a memory file the server reads after the
         * exit: they never block. Call them from one thread at a time.
         */
        int (*set_error)(const struct mps_call_context *ctx, const char *message);
} mps_call_context;

typedef int (*mps_entry_fn)(const mps_call_context *ctx);

struct mps_entry {
        const char *name;
        mps_entry_fn fn;
        struct mps_entry *next;
};

struct mps_module {
        int abi; /* MPS_MODULE_ABI */
        int (*init)(void);
        void (*after_fork)(void);
        struct mps_entry *entries;
};

#define MPS_MODULE(init_fn, after_fork_fn)                                     \
        __attribute__((visibility("default"))) struct mps_module mps_module = { \
                MPS_MODULE_ABI, (init_fn), (after_fork_fn), 0}

#define MPS_ENTRY(entry_name, fn)                                              \
        static struct mps_entry mps__entry_##fn = {(entry_name), (fn), 0};     \
        __attribute__((constructor)) static void mps__register_##fn(void) {    \
                mps__entry_##fn.next = mps_module.entries;                     \
                mps_module.entries = &mps__entry_##fn;                         \
        }

/* ------------------------------------------------------------------------
 * Jobs by id: what `mpspawn ps/kill/wait/stats` do. These see the jobs of
 * the calling user (by uid) in that server, started by any connection.
 * ------------------------------------------------------------------------ */

/* Sends sig to job id. -ESRCH when there is no such job of ours. */
MPS_API int mps_client_signal_job(mps_client *client, uint64_t id, int sig);

/*
 * Waits for job id to end and fills *ret_info (may be NULL). A job that
 * ended while nobody was connected to hear it is reported from the server's
 * record, once. timeout_ms as mps_join(); -ETIMEDOUT when it passed, -ESRCH
 * when there is no such job (or its end was already collected).
 */
MPS_API int mps_client_wait_job(mps_client *client, uint64_t id,
                                int timeout_ms, mps_exit_info *ret_info);

/*
 * mps_client_wait_job(), plus a call job's result and failure message
 * (malloc()ed, the caller frees them; NULL when there is none). Any of
 * ret_info, ret_result and ret_error may be NULL. The server keeps a
 * detached call job's result with its exit record, and gives both once;
 * a wait that timed out stays registered, and its late answer, result
 * included, is kept by the client for the next wait.
 */
MPS_API int mps_client_wait_job_result(mps_client *client, uint64_t id, int timeout_ms,
                                       mps_exit_info *ret_info, char **ret_result,
                                       char **ret_error);

typedef struct mps_job_info {
        uint64_t id;
        pid_t pid;
        char name[260];
        char state[16];    /* "starting", "running" or "exited" */
        char command[256]; /* argv joined by spaces, shortened */
        double runtime;    /* seconds since start (until the end if exited) */
        int exitcode;      /* when "exited", as mps_exitcode() */
        bool timed_out;
        bool daemon;
} mps_job_info;

/* The caller's jobs: a malloc()ed array (free() it) and its length.
 * Returns 0, or 1 when the server cut the list short (one reply is bounded
 * to 64 KiB; hundreds of jobs fit). */
MPS_API int mps_client_list_jobs(mps_client *client, mps_job_info **ret_jobs,
                                 size_t *ret_count);

typedef struct mps_server_stats {
        double uptime_seconds;
        uint64_t clients;
        uint64_t jobs_started, jobs_running, jobs_failed_to_start;
        uint64_t exits_zero, exits_nonzero, killed_by_signal, timed_out;
        uint64_t latency_samples; /* spawn latency, request to exec */
        double latency_p50, latency_p90, latency_p99, latency_max; /* s */
        uint64_t preloaded;          /* libraries preloaded */
        uint64_t preloaded_rss_kib;  /* what loading and initialising them
                                        added to the server's RSS */
        uint64_t prefork_idle;       /* pre-forked children waiting */
        uint64_t policy_compiles;    /* seccomp policies compiled */
        uint64_t policy_cache_hits;  /* ...and taken from the cache */
} mps_server_stats;

MPS_API int mps_client_stats(mps_client *client, mps_server_stats *ret_stats);

/* ------------------------------------------------------------------------
 * Pool: n jobs at a time over one connection (multiprocessing.Pool).
 * Callbacks run on the thread that reads the client's connection when the
 * job's end arrives: inside mps_client_dispatch(), mps_pool_join(),
 * mps_pool_map(), mps_pool_apply(), or a wait of any thread on the same
 * client (a join, a start); never in a signal handler, never with a lock
 * of the library held, never two at once for one client, and in the order
 * the server reported the ends. A callback may call any library function,
 * mps_pool_apply_async() and mps_join() on the same client included. A
 * pool may be used from several threads at once. The process handle
 * passed to a callback is valid only during the call (the pool closes it
 * afterwards). Tasks that start together (the first workers of a map,
 * the places of tasks whose ends arrived together) go to the server in
 * one request of up to 16, where it takes them (spawn_batch,
 * docs/protocol.md); each job is what it would be alone.
 * ------------------------------------------------------------------------ */

typedef struct mps_pool mps_pool;

/* Called when a task's job has ended, with its exit code (as mps_exitcode).
 * A call job's mps_result() and mps_result_error() are there to read. */
typedef void (*mps_pool_callback)(mps_process *proc, int exitcode,
                                  void *userdata);
/* Called when a task could not start, or its connection was lost: err is a
 * negative errno, message says why. */
typedef void (*mps_pool_error_callback)(int err, const char *message,
                                        void *userdata);

/* A pool running at most `workers` jobs at once on client (not owned). */
MPS_API int mps_pool_new(mps_client *client, unsigned workers,
                         mps_pool **ret_pool);

/* Queues spec (copied). Either callback may be NULL. -EINVAL after close
 * or terminate. A task that starts at once and fails before anything is
 * sent (a mapped fd not open, the connection gone) is dropped and its
 * error returned here, with no callback; failures the server reports, and
 * those of tasks started later from the queue, go to the error callback. */
MPS_API int mps_pool_apply_async(mps_pool *pool, const mps_spec *spec,
                                 mps_pool_callback callback,
                                 mps_pool_error_callback error_callback,
                                 void *userdata);

/* Runs spec through the pool and waits: its exit code in *ret_exitcode, or
 * the start error as the return value. */
MPS_API int mps_pool_apply(mps_pool *pool, const mps_spec *spec,
                           int *ret_exitcode);

/*
 * Runs every spec, `workers` at a time, and waits for all. ret_exitcodes[i]
 * is spec i's exit code (results in order), or MPS_EXITCODE_NONE if it
 * could not start. Returns 0, or the first start error (the other specs
 * still run).
 */
MPS_API int mps_pool_map(mps_pool *pool, const mps_spec *const *specs,
                         size_t count, int *ret_exitcodes);

typedef struct mps_call_result {
        int exitcode; /* as mps_exitcode(), MPS_EXITCODE_NONE if it did not start */
        char *result; /* malloc()ed JSON text the entry returned, or NULL */
        char *error;  /* malloc()ed message when the task failed, or NULL */
} mps_call_result;

/*
 * Pool.map for call jobs: runs entry once per args_json[i] (JSON text, or
 * NULL for null), `workers` at a time, with everything else from spec (its
 * own exec or call is replaced; a detached spec is -EINVAL), and waits for
 * all. ret_results[i] is task i's, in input order; free the strings with
 * mps_call_results_free(). A task failed when its entry point set an
 * error (its message), or else exited non-zero ("exited with status 3"),
 * was killed by a signal ("killed by signal 9 (Killed)"), or could not
 * start (the start error's message). Returns the number of failed tasks
 * (0: all succeeded), with the client's error naming the first of them in
 * input order ("task 3: ..."); or a negative errno if the pool itself
 * failed (-EINVAL: an args_json[i] is not JSON, and nothing ran), and then
 * ret_results is untouched. Against a server without the "call_result"
 * feature, tasks run and report exit codes, with no results.
 */
MPS_API int mps_pool_map_call(mps_pool *pool, const mps_spec *spec, const char *entry,
                              const char *const *args_json, size_t count,
                              mps_call_result *ret_results);

/* Frees the strings of results[0..count-1] (not the array) and sets them NULL. */
MPS_API void mps_call_results_free(mps_call_result *results, size_t count);

/* Signals every running task (queued ones are not started yet). */
MPS_API int mps_pool_send_signal(mps_pool *pool, int sig);

/* No more tasks; queued ones still run. */
MPS_API int mps_pool_close(mps_pool *pool);

/* Stop now: queued tasks are dropped (their error callback gets
 * -ECANCELED) and running ones get SIGTERM. */
MPS_API int mps_pool_terminate(mps_pool *pool);

/* Waits until every task has finished and its callback has run. Only after
 * close or terminate (else -EINVAL), as in Python. timeout_ms as mps_join();
 * -ETIMEDOUT if it passed first. */
MPS_API int mps_pool_join(mps_pool *pool, int timeout_ms);

/* Frees the pool; -EBUSY (nothing freed) while tasks remain. */
MPS_API int mps_pool_free(mps_pool *pool);

#ifdef __cplusplus
}
#endif

#endif /* MPSPAWN_H */
