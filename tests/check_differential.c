/* SPDX-License-Identifier: MIT */
/*
 * check_differential.c: shell scenarios run directly and through mpspawn,
 * compared as a user sees them (issue 14 item 12).
 *
 * Each scenario is a bash snippet with $RUN where the launcher goes. It is
 * run three times, as `bash -c SNIPPET` in a session of its own:
 *   direct  RUN=''                      (RUN2=timeout, RUNX=xargs)
 *   user    RUN='mpspawn --'            (the per-user / default server:
 *                                        XDG_RUNTIME_DIR is ours, no
 *                                        MPSPAWN_SOCKET)
 *   socket  RUN='mpspawn -s SOCK --'    (a shared server this suite starts)
 * RUN2 and RUNX are for the scenarios that compare with timeout(1) and
 * xargs(1) rather than with a direct run: there mpspawn is reached through
 * two small scripts, mps-timeout and mps-xargs, that translate the other
 * tool's options into mpspawn's.
 *
 * What is compared: how the parent saw bash end (exit N / signal N), and
 * the stdout and stderr bytes, after these normalisations only:
 *   - "bash: [line N: ][spaces]PID " at the start of a line (bash's notice
 *     that a child died of a signal) has its PID (and the padding before
 *     it) replaced by "PID";
 *   - "pts/DIGITS" becomes "pts/N" (each run has a terminal of its own).
 * Scenarios print what they observe (status, /proc/self/status lines,
 * limits...), so the bytes carry it.
 *
 * Scenarios flagged PTY run with a pseudo-terminal as bash's controlling
 * terminal and stdin/stdout/stderr (one transcript, compared as stdout).
 * INTERACTIVE scenarios drive `bash --norc --noprofile --noediting -i` on a
 * pseudo-terminal with keystrokes: what is compared is the sequence of
 * probes the commands print ("@R@name=value@", typed as "@R@""name..." so
 * the terminal's echo of the typed line never matches), the text between
 * probes B and E, and any wait that timed out.
 *
 * A scenario marked `pending` differs today and names the item of issue 14
 * that should fix it: it is skipped with a log line, unless
 * MPSPAWN_DIFF_ALL=1. One marked `by_design` may differ in the fields it
 * names; what the mpspawn runs show there must contain its `expect` text;
 * mpspawn(1) lists these under DIFFERENCES FROM A DIRECT RUN.
 * MPSPAWN_DIFF_CLI=PATH runs another mpspawn (e.g. an older build).
 * MPSPAWN_DIFF_ONLY=NAME runs the one scenario NAME; MPSPAWN_DIFF_VERBOSE=1
 * prints what each direct run showed; MPSPAWN_DIFF_TRANSCRIPT=1 prints the
 * interactive scenarios' terminal transcripts.
 */
#include <check.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../include/mpspawn.h"
#include "pty_expect.h"
#include "testutil.h"

enum {
        PTY = 1 << 0,         /* bash -c on a controlling pseudo-terminal */
        INTERACTIVE = 1 << 1, /* keystrokes into an interactive bash */
        /* Skipped (logged) in the sanitizer build: AddressSanitizer cannot
         * start an mpspawn under a finite address-space limit. */
        NOT_SANITIZED = 1 << 2,
};

/* Fields of a run, for by_design's `differs`. */
enum {
        F_STATUS = 1 << 0,
        F_OUT = 1 << 1,
        F_ERR = 1 << 2,
};

struct scenario {
        const char *name;
        /* The snippet (bash -c), or for INTERACTIVE the steps, one per
         * line: "S text" sends text (C escapes already applied; a line's
         * end is sent as \r), "W name" waits for probe name, "R text"
         * waits for raw text after the last probe, "Z rows cols" sets the
         * window size. */
        const char *script;
        unsigned flags;
        const char *pending;   /* "issue 14 item N: why" */
        const char *by_design; /* why the difference stays */
        unsigned differs;      /* with by_design: the fields that may differ */
        const char *expect;    /* with by_design: text the mpspawn runs show
                                * in the first field of `differs` */
        const char *doc;       /* with by_design: the words of mpspawn(1)'s
                                * DIFFERENCES FROM A DIRECT RUN that list it */
        int timeout_ms;        /* per run; 0: 10 s (PTY: 20 s) */
};

/* ------------------------------------------------------------------------
 * The scenarios
 * ------------------------------------------------------------------------ */

/* Reasons shared by several by_design scenarios; mpspawn(1) lists them. */
#define WHY_MESSAGE "mpspawn reports a failed start in its own words, not bash's"
#define WHY_PARENT "the job is the server's child, not the shell's"
#define WHY_SESSION "the job runs in a session and process group the server made"
#define WHY_BUILTIN "mpspawn runs the program of that name, never the shell's builtin"

/* Why a scenario differs today, and which item of issue 14 should fix it. */
#define ITEM1 "issue 14 item 1: the job has no terminal of its own"
#define ITEM2 "issue 14 items 1-2: no job control for the job"
#define ITEM3 "issue 14 item 3: mpspawn exits 128+N instead of dying of signal N"
#define ITEM4 "issue 14 item 4: argv and environment limited to a 64 KiB message"
#define ITEM5 "issue 14 item 5: only fds 0-2 reach the job"
#define ITEM7 "issue 14 item 7: batch mode lacks the xargs option"
#define ITEM9 "issue 14 item 9: timeout(1) options and habits"
#define NOITEM_EMPTY "not in issue 14: an empty PROGRAM is a usage error (125), a shell says not found (127)"
#define NOITEM_IOPRIO "not in issue 14: a shared server's job gets the server's I/O priority, not the client's"
#define TYPEAHEAD_ECHO "input typed before mpspawn's relay takes the terminal is echoed by the caller's terminal and again by the job's"
#define NOITEM_CWD "not in issue 14: the CLI refuses a deleted cwd (125); a direct run starts in it"

#define GREP_STATUS(field) "$RUN grep '^" field ":' /proc/self/status"

static const struct scenario scenarios[] = {
        /* Exit status, and how bash saw it. */
        {.name = "exit_0", .script = "$RUN true; echo \"status=$?\""},
        {.name = "exit_1", .script = "$RUN false; echo \"status=$?\""},
        {.name = "exit_2", .script = "$RUN sh -c 'exit 2'; echo \"status=$?\""},
        {.name = "exit_126", .script = "$RUN sh -c 'exit 126'; echo \"status=$?\""},
        {.name = "exit_127", .script = "$RUN sh -c 'exit 127'; echo \"status=$?\""},
        {.name = "exit_255", .script = "$RUN sh -c 'exit 255'; echo \"status=$?\""},
        {.name = "exit_300", .script = "$RUN sh -c 'exit 300'; echo \"status=$?\""},
        {.name = "exit_exec", .script = "exec $RUN sh -c 'echo replaced; exit 9'"},
        {.name = "exit_is_bash_status", .script = "$RUN sh -c 'exit 3'"},
        {.name = "exit_and_or", .script = "$RUN false || echo or; $RUN true && echo and"},
        {.name = "exit_if", .script = "if $RUN grep -q x /dev/null; then echo yes; else echo \"no $?\"; fi"},
        {.name = "exit_pipestatus", .script = "$RUN false | $RUN sh -c 'exit 5'; echo \"${PIPESTATUS[@]}\""},
        {.name = "exit_set_e", .script = "set -e; $RUN sh -c 'exit 4'; echo not-reached"},
        {.name = "exit_background_wait", .script = "$RUN sh -c 'exit 7' & wait $!; echo \"status=$?\""},

        /* A program that cannot start. */
        {.name = "start_not_found", .script = "$RUN mps-no-such-command; echo \"status=$?\"",
         .by_design = WHY_MESSAGE, .doc = "reported by mpspawn in its own", .differs = F_ERR, .expect = "mps-no-such-command"},
        {.name = "start_not_found_path", .script = "$RUN ./nosuch; echo \"status=$?\"",
         .by_design = WHY_MESSAGE, .doc = "reported by mpspawn in its own", .differs = F_ERR, .expect = "nosuch"},
        {.name = "start_not_executable",
         .script = "printf 'echo hi\\n' > \"$T/f\"; chmod 644 \"$T/f\"; $RUN \"$T/f\"; echo \"status=$?\"",
         .by_design = WHY_MESSAGE, .doc = "reported by mpspawn in its own", .differs = F_ERR, .expect = "Permission denied"},
        {.name = "start_directory", .script = "$RUN /tmp; echo \"status=$?\"",
         .by_design = WHY_MESSAGE, .doc = "reported by mpspawn in its own", .differs = F_ERR, .expect = "/tmp"},
        {.name = "start_empty_name", .script = "$RUN ''; echo \"status=$?\"",
         .by_design = WHY_MESSAGE, .doc = "reported by mpspawn in its own", .differs = F_ERR, .expect = "mpspawn"},
        {.name = "start_script_no_shebang",
         .script = "printf 'echo hi from $0\\n' > \"$T/s\"; chmod 755 \"$T/s\"; $RUN \"$T/s\"; echo \"status=$?\""},
        {.name = "start_script_shebang",
         .script = "printf '#!/bin/sh\\necho \"args: $*\"\\n' > \"$T/s\"; chmod 755 \"$T/s\"; $RUN \"$T/s\" a 'b c'"},

        /* Death by a signal, and bash's notice of it. */
        {.name = "signal_term", .script = "$RUN sh -c 'kill -TERM $$'; echo \"status=$?\""},
        {.name = "signal_kill", .script = "$RUN sh -c 'kill -KILL $$'; echo \"status=$?\""},
        {.name = "signal_segv", .script = "$RUN sh -c 'kill -SEGV $$'; echo \"status=$?\""},
        {.name = "signal_abrt", .script = "$RUN sh -c 'kill -ABRT $$'; echo \"status=$?\""},
        /* With core files allowed, both dump one; bash says "(core
         * dumped)" only when its own child dumped it. */
        {.name = "signal_segv_core",
         .script = "ulimit -c unlimited; $RUN sh -c 'kill -SEGV $$'; echo \"status=$?\"; ls \"$T\" | grep -c '^core'",
         .by_design = "the job's core dump is not mpspawn's: bash cannot say \"(core dumped)\"",
         .doc = "When the job dumps core, the core file is the job's",
         .differs = F_ERR, .expect = "Segmentation fault",
         /* ASan sets mpspawn's RLIMIT_CORE to 0, and the job has the
          * client's limits: no core through a sanitized mpspawn. */
         .flags = NOT_SANITIZED},
        {.name = "signal_int", .script = "$RUN sh -c 'kill -INT $$'; echo \"status=$?\""},
        {.name = "signal_hup", .script = "$RUN sh -c 'kill -HUP $$'; echo \"status=$?\""},
        {.name = "signal_usr1", .script = "$RUN sh -c 'kill -USR1 $$'; echo \"status=$?\""},
        {.name = "signal_kill_l", .script = "$RUN sh -c 'kill -TERM $$'; kill -l $?"},
        {.name = "signal_last_command", .script = "$RUN sh -c 'kill -TERM $$'"},
        {.name = "signal_in_substitution", .script = "x=$($RUN sh -c 'echo out; kill -SEGV $$'); echo \"status=$? x=$x\""},
        {.name = "signal_pipe_writer", .script = "yes | $RUN head -1; echo \"${PIPESTATUS[@]}\""},
        {.name = "signal_pipe_job", .script = "$RUN yes | head -1; echo \"${PIPESTATUS[@]}\""},
        {.name = "signal_int_self_loop",
         .script = "for i in 1 2 3; do $RUN sh -c 'kill -INT $$'; echo \"i=$i\"; done; echo done"},
        /* What Ctrl-C does to a script: SIGINT to its whole process group
         * (bash, and mpspawn or the job); bash stops when its child died
         * of SIGINT too. */
        {.name = "signal_int_stops_loop",
         .script = "g=$(cut -d' ' -f5 /proc/$$/stat); for i in 1 2 3; do $RUN sh -c \"kill -INT -$g; exec sleep 5\"; "
                   "echo \"i=$i\"; done; echo done"},
        {.name = "signal_term_from_outside",
         .script = "mkfifo \"$T/f\"; $RUN sh -c 'echo up > \"$T/f\"; exec sleep 30' & p=$!; read x < \"$T/f\"; "
                   "kill -TERM $p; wait $p; echo \"status=$?\""},

        /* Ignored signals are inherited as ignored. */
        {.name = "ignored_nohup", .script = "nohup $RUN grep '^SigIgn:' /proc/self/status"},
        {.name = "ignored_trap_hup", .script = "trap '' HUP; " GREP_STATUS("SigIgn")},
        {.name = "ignored_trap_int", .script = "trap '' INT; " GREP_STATUS("SigIgn")},
        {.name = "ignored_trap_usr", .script = "trap '' USR1 USR2 QUIT; " GREP_STATUS("SigIgn")},
        {.name = "ignored_int_survives", .script = "trap '' INT; $RUN sh -c 'kill -INT $$; echo survived'"},
        {.name = "ignored_nohup_survives", .script = "nohup $RUN sh -c 'kill -HUP $$; echo survived'"},
        {.name = "ignored_hup_not_forwarded",
         .script = "mkfifo \"$T/f\" \"$T/g\"; trap '' HUP; "
                   "$RUN sh -c 'echo up > \"$T/f\"; read x < \"$T/g\"; echo survived' & p=$!; "
                   "read x < \"$T/f\"; kill -HUP $p; echo go > \"$T/g\"; wait $p; echo \"status=$?\""},

        /* The job's /proc/self/status. */
        {.name = "status_uid", .script = GREP_STATUS("Uid")},
        {.name = "status_gid", .script = GREP_STATUS("Gid")},
        {.name = "status_groups", .script = GREP_STATUS("Groups")},
        {.name = "status_capinh", .script = GREP_STATUS("CapInh")},
        {.name = "status_capprm", .script = GREP_STATUS("CapPrm")},
        {.name = "status_capeff", .script = GREP_STATUS("CapEff")},
        {.name = "status_capbnd", .script = GREP_STATUS("CapBnd")},
        {.name = "status_capamb", .script = GREP_STATUS("CapAmb")},
        {.name = "status_nonewprivs", .script = GREP_STATUS("NoNewPrivs")},
        {.name = "status_seccomp", .script = GREP_STATUS("Seccomp")},
        {.name = "status_sigign", .script = GREP_STATUS("SigIgn")},
        {.name = "status_sigblk", .script = GREP_STATUS("SigBlk")},
        {.name = "status_cpus", .script = GREP_STATUS("Cpus_allowed_list")},
        {.name = "status_taskset", .script = "taskset -c 0 " GREP_STATUS("Cpus_allowed_list")},
        {.name = "status_setpriv_nnp", .script = "setpriv --no-new-privs " GREP_STATUS("NoNewPrivs")},

        /* Limits, nice, umask. */
        {.name = "status_groups_set", .script = "setpriv --groups 10,20 " GREP_STATUS("Groups")},
        {.name = "oom_score_adj", .script = "echo 500 > /proc/self/oom_score_adj; $RUN cat /proc/self/oom_score_adj"},
        {.name = "ionice_idle", .script = "ionice -c 3 $RUN ionice"},
        {.name = "limits_all", .script = "$RUN bash -c 'ulimit -a'"},
        {.name = "limits_nofile", .script = "ulimit -n 100; $RUN sh -c 'ulimit -n'"},
        {.name = "limits_nofile_hard", .script = "ulimit -Sn 1000; ulimit -Hn 4000; $RUN sh -c 'ulimit -Hn; ulimit -Sn'"},
        {.name = "limits_stack", .script = "ulimit -s 4096; $RUN sh -c 'ulimit -s'"},
        {.name = "limits_as", .script = "ulimit -v 4000000; $RUN sh -c 'ulimit -v'", .flags = NOT_SANITIZED},
        {.name = "limits_core", .script = "ulimit -c 0; $RUN sh -c 'ulimit -c'"},
        {.name = "limits_nproc", .script = "ulimit -u 5000; $RUN bash -c 'ulimit -u'"},
        {.name = "nice_5", .script = "nice -n 5 $RUN nice"},
        {.name = "nice_renice", .script = "renice -n 3 $$ >/dev/null; $RUN nice"},
        {.name = "umask_027", .script = "umask 027; $RUN sh -c umask"},
        {.name = "umask_file", .script = "umask 077; $RUN touch \"$T/f\"; stat -c %a \"$T/f\""},

        /* The working directory. */
        {.name = "umask_000", .script = "umask 000; $RUN sh -c umask"},
        {.name = "cwd_tmp", .script = "cd /tmp && $RUN pwd"},
        {.name = "cwd_symlink",
         .script = "ln -s /tmp \"$T/l\"; cd \"$T/l\" && $RUN /bin/pwd -L && $RUN /bin/pwd -P && $RUN sh -c 'echo $PWD'"},
        {.name = "builtin_pwd", .script = "ln -s /tmp \"$T/l\"; cd \"$T/l\" && $RUN pwd",
         .by_design = WHY_BUILTIN, .doc = "never the shell's builtin", .differs = F_OUT, .expect = "/tmp\n"},
        {.name = "cwd_relative_file", .script = "echo x > \"$T/rel\"; cd \"$T\" && $RUN cat rel"},
        {.name = "cwd_deleted",
         .script = "mkdir \"$T/d\"; cd \"$T/d\"; rmdir \"$T/d\"; $RUN sh -c 'ls -a; echo \"ls=$?\"'; echo \"status=$?\""},

        /* The environment. */
        {.name = "env_assignment", .script = "FOO=bar $RUN sh -c 'echo $FOO'"},
        {.name = "env_export", .script = "export FOO=baz; $RUN sh -c 'echo $FOO'"},
        {.name = "env_unset", .script = "unset HOME; $RUN sh -c 'echo ${HOME-unset}'"},
        {.name = "env_empty_value", .script = "export E=; $RUN sh -c 'echo \"${E-unset}|\"'"},
        {.name = "env_newline", .script = "export W=$'line1\\nline2'; $RUN sh -c 'printf %s \"$W\"' | od -An -c"},
        {.name = "env_non_utf8", .script = "export N=$'\\xff\\xfe'; $RUN sh -c 'printf %s \"$N\"' | od -An -tx1"},
        {.name = "env_i",
         .script = "env -i PATH=\"$MPS_DIFF_BIN:/usr/bin:/bin\" XDG_RUNTIME_DIR=\"$XDG_RUNTIME_DIR\" "
                   "$RUN sh -c 'env | sort'"},
        /* Every variable but _, which bash sets to the path of the program
         * it runs: env's directly, mpspawn's through it. */
        {.name = "env_sorted", .script = "$RUN env | sort | grep -v '^_='"},
        {.name = "env_70k", .script = "export BIG=$(head -c 70000 /dev/zero | tr '\\0' x); $RUN sh -c 'echo ${#BIG}'"},

        /* The argument vector. */
        {.name = "args_empty", .script = "$RUN printf '[%s]\\n' '' a ''"},
        {.name = "args_spaces", .script = "$RUN printf '[%s]\\n' 'a b' ' c ' '  '"},
        {.name = "args_newline", .script = "$RUN printf '[%s]\\n' $'a\\nb' $'\\t'"},
        {.name = "args_quotes", .script = "$RUN printf '[%s]\\n' \"it's\" '\"q\"' '\\' '\\\\'"},
        {.name = "args_non_utf8", .script = "$RUN printf '[%s]\\n' $'\\xff\\x80' $'\\xc3' | od -An -tx1"},
        {.name = "args_no_expansion", .script = "$RUN printf '[%s]\\n' '*' '$HOME' '`id`'"},
        {.name = "args_dashes", .script = "$RUN printf '[%s]\\n' -- -x --help"},
        {.name = "args_argv0", .script = "$RUN sh -c 'echo $0 $1' name one"},
        {.name = "args_5000", .script = "$RUN sh -c 'echo $#' x $(seq 5000)"},
        {.name = "args_xargs_20000", .script = "seq 20000 | xargs $RUN sh -c 'echo $#' x"},
        {.name = "args_1mib",
         .script = "a=$(head -c 65536 /dev/zero | tr '\\0' a); set --; for i in $(seq 16); do set -- \"$@\" \"$a\"; done; "
                   "$RUN sh -c 'n=0; for a; do n=$((n + ${#a})); done; echo $n' x \"$@\""},

        /* Standard input. */
        {.name = "stdin_pipe", .script = "echo hi | $RUN cat"},
        {.name = "stdin_dev_null", .script = "$RUN cat </dev/null; echo \"status=$?\""},
        {.name = "stdin_closed", .script = "$RUN sh -c 'cat; echo \"cat=$?\"' <&-; echo \"status=$?\""},
        {.name = "stdin_heredoc", .script = "$RUN cat <<'EOF'\nline 1\n$x `y`\nEOF"},
        {.name = "stdin_herestring", .script = "$RUN wc -c <<<\"hello\""},
        {.name = "stdin_file", .script = "printf abc > \"$T/i\"; $RUN wc -c < \"$T/i\""},
        {.name = "stdin_shared_offset",
         .script = "printf '1\\n2\\n3\\n' > \"$T/i\"; { $RUN sh -c 'read a; echo \"a=$a\"'; read b; echo \"b=$b\"; } < \"$T/i\""},

        /* Standard output and error. */
        {.name = "stdout_file", .script = "$RUN echo hi > \"$T/o\"; cat \"$T/o\""},
        {.name = "stdout_append", .script = "echo a > \"$T/o\"; $RUN echo b >> \"$T/o\"; cat \"$T/o\""},
        {.name = "stdout_pipe", .script = "$RUN echo hi | tr a-z A-Z"},
        {.name = "stdout_closed", .script = "$RUN /bin/echo hi >&-; echo \"status=$?\""},
        {.name = "stderr_closed", .script = "$RUN sh -c 'echo err >&2; echo out' 2>&-; echo \"status=$?\""},
        {.name = "stdout_full", .script = "$RUN /bin/echo hi > /dev/full; echo \"status=$?\""},
        /* A name that is also a builtin is the builtin when typed directly,
         * the program through mpspawn. */
        {.name = "builtin_echo", .script = "$RUN echo hi > /dev/full; echo \"status=$?\"",
         .by_design = WHY_BUILTIN, .doc = "never the shell's builtin", .differs = F_ERR, .expect = "echo: write error"},
        {.name = "order_2to1", .script = "$RUN sh -c 'echo 1; echo 2 >&2; echo 3' 2>&1 | cat"},
        {.name = "order_file", .script = "$RUN sh -c 'echo o; echo e >&2; echo o2' > \"$T/o\" 2>&1; cat \"$T/o\""},
        {.name = "stdout_to_stderr", .script = "$RUN sh -c 'echo x' 1>&2"},

        /* Descriptors beyond 0-2. */
        {.name = "fd_3_file", .script = "echo content > \"$T/f\"; $RUN sh -c 'cat <&3' 3<\"$T/f\""},
        {.name = "fd_3_write", .script = "$RUN sh -c 'echo to3 >&3' 3>\"$T/o\"; cat \"$T/o\""},
        {.name = "fd_process_substitution", .script = "$RUN cat <(echo hi)"},
        /* flock on an inherited fd locks the shell's open file description:
         * the lock outlives the job. */
        {.name = "fd_flock",
         .script = "exec 9>\"$T/lock\"; $RUN flock -n 9; echo \"status=$?\"; flock -n \"$T/lock\" true; echo \"other=$?\""},
        {.name = "fd_open_set",
         .script = "exec 5</dev/null 7>/dev/null; $RUN sh -c 'for f in 3 4 5 6 7 8 9; do [ -e /proc/self/fd/$f ] && echo $f; done; true'"},
        {.name = "fd_pipe_4", .script = "{ $RUN sh -c 'echo x >&4'; } 4>&1 | cat"},

        /* No terminal. */
        /* Nothing of mpspawn's own reaches the job (ls's directory is 3). */
        {.name = "fd_none_leaked", .script = "$RUN ls /proc/self/fd"},
        {.name = "tty_none", .script = "$RUN tty; echo \"status=$?\""},
        {.name = "tty_test_t", .script = "$RUN test -t 0; echo \"status=$?\""},
        {.name = "tty_dev_tty_none", .script = "$RUN sh -c 'echo x > /dev/tty'; echo \"status=$?\""},

        /* A terminal (bash -c on a pseudo-terminal of 30 rows, 100 columns). */
        {.name = "pty_tty", .script = "$RUN tty; echo \"status=$?\"", .flags = PTY},
        {.name = "pty_test_t", .script = "$RUN test -t 0; echo \"t0=$?\"; $RUN test -t 1; echo \"t1=$?\"", .flags = PTY},
        {.name = "pty_dev_tty", .script = "$RUN sh -c 'echo via-dev-tty > /dev/tty'; echo \"status=$?\"", .flags = PTY},
        {.name = "pty_stty_size", .script = "$RUN stty size", .flags = PTY},
        {.name = "pty_stdout_pipe", .script = "$RUN tty | cat", .flags = PTY,
         .by_design = "cat may write to the terminal while mpspawn has it raw to relay input, then without CR (as with ssh -t); "
                      "whether it does is a race, so the expected text is what both outcomes show",
         .doc = "its output piped to a program that writes to the terminal", .differs = F_OUT, .expect = "/dev/pts/N"},
        {.name = "pty_stdin_pipe", .script = "echo x | $RUN sh -c 'test -t 0; echo \"t0=$?\"; test -t 1; echo \"t1=$?\"'", .flags = PTY},
        {.name = "pty_ctty", .script = "$RUN sh -c 'ps -o tty= -p $$'", .flags = PTY},
        {.name = "pty_foreground",
         .script = "$RUN sh -c 's=$(cut -d\" \" -f5,8 /proc/$$/stat); set -- $s; [ \"$1\" = \"$2\" ] && echo foreground || echo background'",
         .flags = PTY},
        {.name = "pty_output_bytes", .script = "$RUN printf 'a\\nb\\tc\\r\\n'", .flags = PTY},

        /* Sessions, process groups, parents. Compared: whether the job
         * shares bash's session and process group, and whose child it is. */
        {.name = "relation_session",
         .script = "s=$(cut -d' ' -f6 /proc/$$/stat); $RUN sh -c 'cut -d\" \" -f6 /proc/$$/stat' > \"$T/o\"; "
                   "[ \"$(cat \"$T/o\")\" = \"$s\" ] && echo same-session || echo other-session",
         .by_design = WHY_SESSION, .doc = "The job runs in a session and process group the server made", .differs = F_OUT, .expect = "other-session"},
        {.name = "relation_pgrp",
         .script = "g=$(cut -d' ' -f5 /proc/$$/stat); $RUN sh -c 'cut -d\" \" -f5 /proc/$$/stat' > \"$T/o\"; "
                   "[ \"$(cat \"$T/o\")\" = \"$g\" ] && echo same-pgrp || echo other-pgrp",
         .by_design = WHY_SESSION, .doc = "The job runs in a session and process group the server made", .differs = F_OUT, .expect = "other-pgrp"},
        {.name = "relation_parent",
         .script = "$RUN sh -c 'echo $PPID' > \"$T/o\"; [ \"$(cat \"$T/o\")\" = \"$$\" ] && echo parent=shell || echo parent=other",
         .by_design = WHY_PARENT, .doc = "The job is the server's child, not the shell's", .differs = F_OUT, .expect = "parent=other"},
        {.name = "relation_bang_pid",
         .script = "$RUN sh -c 'echo $$ > \"$T/o\"' & wait $!; [ \"$(cat \"$T/o\")\" = \"$!\" ] && echo bang=job || echo bang=other",
         .by_design = "$! is mpspawn's pid: the job's is in mpspawn ps", .doc = "The job is the server's child, not the shell's", .differs = F_OUT, .expect = "bang=other"},
        {.name = "relation_time_cpu",
         .script = "TIMEFORMAT=%U; { time $RUN sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done'; } 2> \"$T/t\"; "
                   "awk '{ print ($1 >= 0.1) ? \"cpu-counted\" : \"cpu-not-counted\" }' \"$T/t\"",
         .by_design = "time and times count the shell's children: the job's CPU is the server's child's",
         .doc = "count mpspawn, not the job",
         .differs = F_OUT, .expect = "cpu-not-counted"},

        /* timeout(1) habits: RUN2 is timeout directly, mpspawn --timeout
         * otherwise. */
        {.name = "timeout_not_reached", .script = "$RUN2 5 true; echo \"status=$?\""},
        {.name = "timeout_status_passes", .script = "$RUN2 5 sh -c 'exit 3'; echo \"status=$?\""},
        {.name = "timeout_expires", .script = "$RUN2 0.3 sleep 10; echo \"status=$?\""},
        {.name = "timeout_suffix", .script = "$RUN2 0.3s sleep 10; echo \"status=$?\""},
        {.name = "timeout_signal", .script = "$RUN2 -s KILL 0.3 sleep 10; echo \"status=$?\""},
        {.name = "timeout_preserve", .script = "$RUN2 --preserve-status 0.3 sleep 10; echo \"status=$?\""},
        {.name = "timeout_kill_after", .script = "$RUN2 -k 0.3 0.3 sh -c 'trap \"\" TERM; exec sleep 10'; echo \"status=$?\""},
        {.name = "timeout_job_signal", .script = "$RUN2 5 sh -c 'kill -TERM $$'; echo \"status=$?\""},

        /* Batch mode against xargs -P (RUNX is xargs directly, mpspawn -j
         * otherwise); output sorted, as the order of parallel jobs is not
         * defined. */
        {.name = "batch_lines", .script = "printf 'a\\nb\\nc\\n' | $RUNX -P 2 -L 1 echo | sort"},
        {.name = "batch_quotes", .script = "printf '%s\\n' \"'a b'\" '\"c d\"' 'e\\ f' | $RUNX -P 2 -L 1 printf '[%s]\\n' | sort"},
        {.name = "batch_failure", .script = "printf '0\\n1\\n' | $RUNX -P 2 -L 1 sh -c 'exit $0'; echo \"status=$?\"",
         .by_design = "batch mode names each failed line on stderr; xargs says nothing of an exit status of 1-125",
         .doc = "In batch mode each line that fails is named on stderr",
         .differs = F_ERR, .expect = "line 2"},
        {.name = "batch_stdin", .script = "printf 'a\\n' | $RUNX -L 1 sh -c 'cat; echo \"got $0\"'"},
        {.name = "batch_null",
         .script = "mkdir \"$T/d\"; touch \"$T/d/it's\" \"$T/d/a \\\"b\\\"\" \"$T/d/back\\\\slash\" \"$T/d/sp ace\"; "
                   "find \"$T/d\" -type f -print0 | $RUNX -0 -P 2 -n 1 printf '[%s]\\n' | sort"},
        {.name = "batch_replace", .script = "printf 'x\\ny\\n' | $RUNX -P 2 -I {} echo pre-{}-post | sort"},
        {.name = "batch_delimiter", .script = "printf 'a:b:c' | $RUNX -d : -P 2 -n 1 echo | sort"},

        /* Interactive: bash -i on a terminal, driven by keystrokes. */
        {.name = "interactive_ctrl_c",
         .script = "S $RUN sh -c 'echo \"@R\"\"@up@\"; exec sleep 30'; echo \"@R\"\"@list=$?@\"\\r\n"
                   "W up\n"
                   "S \\x03\n"
                   "S echo \"@R\"\"@after=$?@\"\\r\n"
                   "W after=\n",
         .flags = INTERACTIVE},
        {.name = "interactive_ctrl_c_loop",
         .script = "S for i in 1 2 3; do $RUN sh -c 'echo \"@R\"\"@up@\"; exec sleep 30'; done; echo \"@R\"\"@done@\"\\r\n"
                   "W up\n"
                   "S \\x03\n"
                   "S echo \"@R\"\"@after=$?@\"\\r\n"
                   "W after=\n",
         .flags = INTERACTIVE},
        {.name = "interactive_ctrl_z_fg", .pending = ITEM2,
         .script = "S $RUN sh -c 'echo \"@R\"\"@up@\"; read x; echo \"@R\"\"@got=$x@\"'\\r\n"
                   "W up\n"
                   "S \\x1a\n"
                   "R Stopped\n"
                   "S echo \"@R\"\"@jobs=$(jobs | awk '{print $2}')@\"\\r\n"
                   "W jobs=\n"
                   "S fg\\r\n"
                   "S hello\\r\n"
                   "W got=\n"
                   "S echo \"@R\"\"@after=$?@\"\\r\n"
                   "W after=\n",
         .flags = INTERACTIVE},
        {.name = "interactive_background_read", .pending = ITEM2,
         .script = "S $RUN sh -c 'read x; echo \"@R\"\"@got=$x@\"' &\\r\n"
                   "S for i in $(seq 100); do case $(jobs) in *Stopped*) break;; esac; sleep 0.02; done; "
                   "echo \"@R\"\"@jobs=$(jobs | awk '{print $2}')@\"\\r\n"
                   "W jobs=\n"
                   "S kill -9 %1; wait; echo \"@R\"\"@end@\"\\r\n"
                   "W end\n",
         .flags = INTERACTIVE},
        {.name = "interactive_winsize",
         .script = "Z 30 100\n"
                   "S echo \"@R\"\"@B@\"; $RUN stty size; echo \"@R\"\"@E@\"\\r\n"
                   "W E\n",
         .flags = INTERACTIVE},
        {.name = "interactive_tty",
         .script = "S echo \"@R\"\"@B@\"; $RUN tty; echo \"@R\"\"@E=$?@\"\\r\n"
                   "W E\n",
         .flags = INTERACTIVE},
        {.name = "interactive_read_prompt",
         .script = "S echo \"@R\"\"@B@\"; $RUN bash -c 'read -p \"? \" x; echo \"[$x]\"'; echo \"@R\"\"@E=$?@\"\\r\n"
                   "W B\n"
                   "R ? \n"
                   "S typed words\\r\n"
                   "W E\n",
         .flags = INTERACTIVE},
        {.name = "interactive_ctrl_d", .pending = TYPEAHEAD_ECHO,
         .script = "S echo \"@R\"\"@B@\"; $RUN cat; echo \"@R\"\"@E=$?@\"\\r\n"
                   "W B\n"
                   "S abc\\r\n"
                   "R abc\\r\\nabc\n"
                   "S \\x04\n"
                   "W E\n",
         .flags = INTERACTIVE},
};

static const size_t n_scenarios = sizeof(scenarios) / sizeof(scenarios[0]);

/* ------------------------------------------------------------------------
 * The suite's world: directories, the shared server, the runs' environment
 * ------------------------------------------------------------------------ */

enum mode { M_DIRECT, M_USER, M_SOCKET, M_COUNT };
static const char *const mode_names[M_COUNT] = {"direct", "user", "socket"};

static char top[64], bindir[96], xdgdir[96], tdir[96];
static struct tu_server shared;

static const char *cli_path(void) {
        const char *c = getenv("MPSPAWN_DIFF_CLI");
        return c && *c ? c : tu_cli();
}

static void write_file(const char *path, const char *text, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
}

/* timeout(1)'s command line, run as mpspawn --timeout. The first argument
 * is @SOCKET, or @ for the default server. */
static const char mps_timeout_sh[] =
        "#!/bin/sh\n"
        "sock=${1#@}; shift\n"
        "opts=\n"
        "while :; do case $1 in\n"
        "  -s|--signal) opts=\"$opts --signal $2\"; shift 2;;\n"
        "  -k|--kill-after) opts=\"$opts --kill-after $2\"; shift 2;;\n"
        "  --preserve-status) opts=\"$opts --preserve-status\"; shift;;\n"
        "  --) shift; break;;\n"
        "  *) break;;\n"
        "esac; done\n"
        "d=$1; shift\n"
        "exec mpspawn ${sock:+-s \"$sock\"} $opts --timeout \"$d\" -- \"$@\"\n";

/* The xargs options the scenarios use, as mpspawn -j's. */
static const char mps_xargs_sh[] =
        "#!/bin/sh\n"
        "sock=${1#@}; shift\n"
        "opts= j=1\n"
        "while :; do case $1 in\n"
        "  -P) j=$2; shift 2;;\n"
        "  -L|-n) shift 2;;\n"
        "  -0) opts=\"$opts -0\"; shift;;\n"
        "  -d) opts=\"$opts -d $2\"; shift 2;;\n"
        "  -I) opts=\"$opts -I $2\"; shift 2;;\n"
        "  *) break;;\n"
        "esac; done\n"
        "exec mpspawn ${sock:+-s \"$sock\"} -j \"$j\" $opts -- \"$@\"\n";

static void world_setup(void) {
        char path[160];
        snprintf(top, sizeof(top), "/tmp/mps-diff.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(top));
        snprintf(bindir, sizeof(bindir), "%s/bin", top);
        snprintf(xdgdir, sizeof(xdgdir), "%s/xdg", top);
        snprintf(tdir, sizeof(tdir), "%s/t", top);
        ck_assert_int_eq(mkdir(bindir, 0755), 0);
        ck_assert_int_eq(mkdir(xdgdir, 0700), 0);
        snprintf(path, sizeof(path), "%s/mpspawn", bindir);
        ck_assert_int_eq(symlink(cli_path(), path), 0);
        snprintf(path, sizeof(path), "%s/mps-timeout", bindir);
        write_file(path, mps_timeout_sh, 0755);
        snprintf(path, sizeof(path), "%s/mps-xargs", bindir);
        write_file(path, mps_xargs_sh, 0755);
        tu_server_start(&shared, NULL);
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void)st, (void)type, (void)ftw;
        remove(path);
        return 0;
}

static void rm_tree(const char *path) {
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A server that came up at $XDG_RUNTIME_DIR/mpspawn.sock (the per-user
 * server) is ours to end: ask it its pid, then SIGTERM, bounded, SIGKILL. */
static void stop_user_server(void) {
        char sock[160];
        snprintf(sock, sizeof(sock), "%s/mpspawn.sock", xdgdir);
        if (access(sock, F_OK) != 0)
                return;
        mps_client *c = NULL;
        char *msg = NULL;
        if (mps_client_open(sock, &c, &msg) < 0) {
                free(msg);
                return;
        }
        pid_t pid = mps_client_server_pid(c);
        mps_client_close(c);
        if (pid <= 0)
                return;
        fprintf(stderr, "diff: stopping the per-user server (pid %d)\n", (int)pid);
        int pfd = pidfd_open(pid, 0);
        kill(pid, SIGTERM);
        if (pfd >= 0) {
                struct pollfd p = {.fd = pfd, .events = POLLIN};
                if (poll(&p, 1, 10000) <= 0)
                        kill(pid, SIGKILL);
                close(pfd);
        }
}

static void world_teardown(void) {
        tu_server_stop(&shared);
        stop_user_server();
        rm_tree(top);
}

/* The environment of every run: fixed, so that runs compare; only the
 * variables the tests' machinery needs are passed on. */
static char **run_env(enum mode m, bool interactive) {
        static char *env[32];
        static char buf[32][512];
        size_t n = 0;
#define ADD(...) (snprintf(buf[n], sizeof(buf[n]), __VA_ARGS__), env[n] = buf[n], n++)
        ADD("PATH=%s:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", bindir);
        ADD("HOME=%s", getenv("HOME") ? getenv("HOME") : "/root");
        ADD("LC_ALL=C");
        ADD("TERM=%s", interactive ? "xterm" : "dumb");
        ADD("T=%s", tdir);
        ADD("MPS_DIFF_BIN=%s", bindir);
        ADD("XDG_RUNTIME_DIR=%s", xdgdir);
        static const char *const pass[] = {"MPSPAWN_FORKSERVER", "ASAN_OPTIONS",
                                           "UBSAN_OPTIONS", "MPSPAWN_SERVER_NO_PIDFD"};
        for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]); i++)
                if (getenv(pass[i]))
                        ADD("%s=%s", pass[i], getenv(pass[i]));
        if (interactive) {
                /* Interactive scenarios read RUN from the environment; the
                 * others set it in the snippet, unexported, so that `env`
                 * is the same in every mode. */
                ADD("PS1=$ ");
                ADD("PS2=> ");
                ADD("HISTFILE=/dev/null");
                const char *sock = m == M_SOCKET ? shared.path : "";
                if (m == M_DIRECT)
                        ADD("RUN=");
                else if (m == M_USER)
                        ADD("RUN=mpspawn --");
                else
                        ADD("RUN=mpspawn -s %s --", sock);
        }
#undef ADD
        env[n] = NULL;
        return env;
}

/* The variables' values in mode m, as a line of shell. */
static void run_vars(enum mode m, char *out, size_t len) {
        if (m == M_DIRECT)
                snprintf(out, len, "RUN=; RUN2=timeout; RUNX=xargs\n");
        else if (m == M_USER)
                snprintf(out, len, "RUN='mpspawn --'; RUN2='mps-timeout @'; RUNX='mps-xargs @'\n");
        else
                snprintf(out, len, "RUN='mpspawn -s %s --'; RUN2='mps-timeout @%s'; RUNX='mps-xargs @%s'\n",
                         shared.path, shared.path, shared.path);
}

/* ------------------------------------------------------------------------
 * One run
 * ------------------------------------------------------------------------ */

struct result {
        char *out, *err;
        size_t outlen, errlen;
        char status[48];
};

static void result_free(struct result *r) {
        free(r->out);
        free(r->err);
        memset(r, 0, sizeof(*r));
}

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

/* A fresh, empty $T for each run, so that runs see the same paths. */
static void fresh_tdir(void) {
        rm_tree(tdir);
        ck_assert_int_eq(mkdir(tdir, 0755), 0);
}

static void describe_status(int st, bool timed_out, char *out, size_t len) {
        if (timed_out)
                snprintf(out, len, "timed out (killed)");
        else if (WIFEXITED(st))
                snprintf(out, len, "exit %d", WEXITSTATUS(st));
        else if (WIFSIGNALED(st))
                snprintf(out, len, "signal %d%s", WTERMSIG(st), WCOREDUMP(st) ? " (core)" : "");
        else
                snprintf(out, len, "status %#x", st);
}

/* Appends what fd has to *buf; returns false at EOF. Output is bounded
 * (4 MiB) so that a runaway scenario cannot grow the test without limit. */
static bool slurp(int fd, char **buf, size_t *len, size_t *cap) {
        if (*len + 65537 > *cap) {
                size_t ncap = *cap ? *cap * 2 : 65536 * 2;
                if (ncap > (4u << 20) + 65537) {
                        char junk[65536];
                        ssize_t k = read(fd, junk, sizeof(junk));
                        return k > 0 || (k < 0 && errno == EINTR);
                }
                *buf = realloc(*buf, ncap);
                ck_assert_ptr_nonnull(*buf);
                *cap = ncap;
        }
        ssize_t k = read(fd, *buf + *len, 65536);
        if (k < 0 && errno == EINTR)
                return true;
        if (k <= 0)
                return false;
        *len += (size_t)k;
        (*buf)[*len] = '\0';
        return true;
}

/* The child of a plain run: a session of its own with no terminal, default
 * signals, no core files (so bash's notices do not depend on the machine's
 * core settings), stdin /dev/null. */
_Noreturn static void plain_child(const char *script, char **env, int outfd, int errfd) {
        pe_default_signals();
        setsid();
        struct rlimit core = {0, 0};
        getrlimit(RLIMIT_CORE, &core);
        core.rlim_cur = 0;
        setrlimit(RLIMIT_CORE, &core);
        int in = open("/dev/null", O_RDONLY);
        if (in < 0 || dup2(in, 0) < 0 || dup2(outfd, 1) < 0 || dup2(errfd, 2) < 0)
                _exit(120);
        if (chdir(tdir) < 0)
                _exit(121);
        close_range(3, ~0U, 0);
        execle("/bin/bash", "bash", "-c", script, (char *)NULL, env);
        _exit(127);
}

/* What each process of session sid is doing, for a run that hung: its
 * name, state and where it sleeps in the kernel. */
static void show_session(pid_t sid) {
        DIR *d = opendir("/proc");
        if (!d)
                return;
        struct dirent *e;
        while ((e = readdir(d))) {
                char path[300], stat[512] = "", wchan[64] = "";
                if (!is_digit(e->d_name[0]))
                        continue;
                snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                ssize_t k = read(fd, stat, sizeof(stat) - 1);
                close(fd);
                if (k <= 0)
                        continue;
                stat[k] = '\0';
                /* pid (comm) state ppid pgrp session ... */
                const char *rp = strrchr(stat, ')');
                int ppid = 0, pgrp = 0, session = 0;
                char state = '?';
                if (!rp || sscanf(rp + 2, "%c %d %d %d", &state, &ppid, &pgrp, &session) != 4 ||
                    session != sid)
                        continue;
                snprintf(path, sizeof(path), "/proc/%s/wchan", e->d_name);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd >= 0) {
                        k = read(fd, wchan, sizeof(wchan) - 1);
                        wchan[k > 0 ? k : 0] = '\0';
                        close(fd);
                }
                printf("diff:   hung: %.*s state %c ppid %d wchan %s\n", (int)(rp + 1 - stat), stat,
                       state, ppid, wchan);
        }
        closedir(d);
}

static void run_plain(const struct scenario *s, enum mode m, struct result *r) {
        char vars[512];
        run_vars(m, vars, sizeof(vars));
        size_t sl = strlen(vars) + strlen(s->script) + 1;
        char *script = malloc(sl);
        ck_assert_ptr_nonnull(script);
        snprintf(script, sl, "%s%s", vars, s->script);
        char **env = run_env(m, false);
        int po[2], pe[2];
        ck_assert_int_eq(pipe2(po, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(pe, O_CLOEXEC), 0);
        fresh_tdir();
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
                plain_child(script, env, po[1], pe[1]);
        free(script);
        close(po[1]);
        close(pe[1]);
        size_t ocap = 0, ecap = 0;
        r->out = calloc(1, 1);
        r->err = calloc(1, 1);
        bool open_o = true, open_e = true, timed_out = false;
        int64_t deadline = now_ms() + (s->timeout_ms ? s->timeout_ms : 10000);
        while (open_o || open_e) {
                struct pollfd p[2] = {{.fd = open_o ? po[0] : -1, .events = POLLIN},
                                      {.fd = open_e ? pe[0] : -1, .events = POLLIN}};
                int64_t left = deadline - now_ms();
                if (left <= 0) {
                        timed_out = true;
                        break;
                }
                int k = poll(p, 2, (int)left);
                if (k < 0 && errno == EINTR)
                        continue;
                ck_assert_int_ge(k, 0);
                if (p[0].revents)
                        open_o = slurp(po[0], &r->out, &r->outlen, &ocap);
                if (p[1].revents)
                        open_e = slurp(pe[0], &r->err, &r->errlen, &ecap);
        }
        close(po[0]);
        close(pe[0]);
        if (timed_out) {
                show_session(pid);
                kill(-pid, SIGKILL);
        }
        int st = 0;
        /* Output closed: bash has ended or is about to (its background
         * children would hold the pipes). Bounded all the same. */
        int pfd = pidfd_open(pid, 0);
        struct pollfd pp = {.fd = pfd, .events = POLLIN};
        if (pfd >= 0 && poll(&pp, 1, 5000) <= 0) {
                kill(-pid, SIGKILL);
                timed_out = true;
        }
        if (pfd >= 0)
                close(pfd);
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
        describe_status(st, timed_out, r->status, sizeof(r->status));
}

static void run_pty(const struct scenario *s, enum mode m, struct result *r) {
        char vars[512];
        run_vars(m, vars, sizeof(vars));
        size_t sl = strlen(vars) + strlen(s->script) + 1;
        char *script = malloc(sl);
        ck_assert_ptr_nonnull(script);
        snprintf(script, sl, "%s%s", vars, s->script);
        const char *argv[] = {"/bin/bash", "-c", script, NULL};
        struct pe_pty p;
        fresh_tdir();
        ck_assert_int_eq(pe_spawn(&p, argv, (const char *const *)run_env(m, false), tdir, 30, 100), 0);
        free(script);
        int64_t deadline = now_ms() + (s->timeout_ms ? s->timeout_ms : 20000);
        struct pollfd pf = {.fd = p.pidfd, .events = POLLIN};
        bool timed_out = false;
        /* Read until bash has ended and every slave fd is closed. */
        while (!p.eof) {
                int64_t left = deadline - now_ms();
                if (left <= 0) {
                        timed_out = true;
                        break;
                }
                pe_drain(&p, (int)(left < 200 ? left : 200));
        }
        if (timed_out || poll(&pf, 1, 5000) <= 0) {
                kill(-p.pid, SIGKILL);
                timed_out = true;
        }
        int st = 0;
        while (waitpid(p.pid, &st, 0) < 0 && errno == EINTR)
                ;
        p.pid = 0;
        describe_status(st, timed_out, r->status, sizeof(r->status));
        r->out = malloc(p.len + 1);
        ck_assert_ptr_nonnull(r->out);
        memcpy(r->out, p.buf, p.len + 1);
        r->outlen = p.len;
        r->err = calloc(1, 1);
        pe_close(&p, 0);
}

/* Appends a line to the observations of an interactive run. */
static void note(struct result *r, size_t *cap, const char *a, size_t alen) {
        if (r->outlen + alen + 2 > *cap) {
                *cap = (r->outlen + alen + 2) * 2;
                r->out = realloc(r->out, *cap);
                ck_assert_ptr_nonnull(r->out);
        }
        memcpy(r->out + r->outlen, a, alen);
        r->outlen += alen;
        r->out[r->outlen++] = '\n';
        r->out[r->outlen] = '\0';
}

/* The probes "@R@name@" in the transcript, in order; between B and E the
 * transcript itself. */
static void collect_probes(const struct pe_pty *p, struct result *r, size_t *cap) {
        const char *t = p->buf, *end = p->buf + p->len;
        const char *text_from = NULL;
        for (;;) {
                const char *a = memmem(t, (size_t)(end - t), "@R@", 3);
                if (!a)
                        break;
                const char *b = memchr(a + 3, '@', (size_t)(end - a - 3));
                if (!b)
                        break;
                size_t nl = (size_t)(b - a - 3);
                if (nl == 1 && a[3] == 'B') {
                        text_from = b + 1;
                } else if (nl >= 1 && a[3] == 'E' && text_from) {
                        char line[8192];
                        size_t tl = (size_t)(a - text_from);
                        if (tl > sizeof(line) - 8)
                                tl = sizeof(line) - 8;
                        memcpy(line, "text=", 5);
                        memcpy(line + 5, text_from, tl);
                        note(r, cap, line, tl + 5);
                        text_from = NULL;
                }
                note(r, cap, a + 3, nl);
                t = b + 1;
        }
}

/* Decodes "\r", "\n", "\xNN" and "\\" in a step's text. */
static size_t unescape(const char *in, char *out) {
        size_t n = 0;
        while (*in) {
                if (in[0] == '\\' && in[1] == 'r')
                        out[n++] = '\r', in += 2;
                else if (in[0] == '\\' && in[1] == 'n')
                        out[n++] = '\n', in += 2;
                else if (in[0] == '\\' && in[1] == '\\')
                        out[n++] = '\\', in += 2;
                else if (in[0] == '\\' && in[1] == 'x' && in[2] && in[3]) {
                        char hex[3] = {in[2], in[3], 0};
                        out[n++] = (char)strtol(hex, NULL, 16);
                        in += 4;
                } else
                        out[n++] = *in++;
        }
        out[n] = '\0';
        return n;
}

static void run_interactive(const struct scenario *s, enum mode m, struct result *r) {
        const char *argv[] = {"/bin/bash", "--norc", "--noprofile", "--noediting", "-i", NULL};
        struct pe_pty p;
        size_t cap = 0;
        r->out = calloc(1, 1);
        r->err = calloc(1, 1);
        fresh_tdir();
        ck_assert_int_eq(pe_spawn(&p, argv, (const char *const *)run_env(m, true), tdir, 24, 80), 0);
        /* Wait for bash to be ready before typing: a first probe. */
        static const char hello[] = "echo \"@R\"\"@ready@\"\r";
        pe_send(&p, hello, strlen(hello));
        long pos = pe_expect(&p, "@R@ready@", 0, 10000);
        ck_assert_msg(pos > 0, "interactive bash did not start: '%s'", p.buf);
        char *steps = strdup(s->script);
        ck_assert_ptr_nonnull(steps);
        char *save = NULL;
        for (char *line = strtok_r(steps, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char text[4096];
                size_t tl = unescape(line + 2, text);
                if (line[0] == 'S') {
                        ck_assert_int_eq(pe_send(&p, text, tl), 0);
                } else if (line[0] == 'W' || line[0] == 'R') {
                        char needle[4200];
                        if (line[0] == 'W')
                                snprintf(needle, sizeof(needle), "@R@%s", text);
                        else
                                snprintf(needle, sizeof(needle), "%s", text);
                        long k = pe_expect(&p, needle, (size_t)pos, 8000);
                        if (k < 0) {
                                char msg[4300];
                                int ml = snprintf(msg, sizeof(msg), "(%s waiting for '%s')",
                                                  k == -EIO ? "terminal closed" : "timed out", text);
                                /* Recorded at the end, after the probes. */
                                r->err = realloc(r->err, r->errlen + (size_t)ml + 2);
                                memcpy(r->err + r->errlen, msg, (size_t)ml);
                                r->errlen += (size_t)ml;
                                r->err[r->errlen++] = '\n';
                                r->err[r->errlen] = '\0';
                        } else {
                                pos = k;
                        }
                } else if (line[0] == 'Z') {
                        unsigned rows = 0, cols = 0;
                        ck_assert_int_eq(sscanf(text, "%u %u", &rows, &cols), 2);
                        ck_assert_int_eq(pe_winsize(&p, (unsigned short)rows, (unsigned short)cols), 0);
                }
        }
        free(steps);
        collect_probes(&p, r, &cap);
        snprintf(r->status, sizeof(r->status), "interactive");
        if (getenv("MPSPAWN_DIFF_TRANSCRIPT"))
                fprintf(stderr, "--- transcript %s/%s:\n%s\n---\n", s->name, mode_names[m], p.buf);
        pe_close(&p, 3000);
}

/* ------------------------------------------------------------------------
 * Normalisation and comparison
 * ------------------------------------------------------------------------ */

/* The two rules in the header comment. Returns a new buffer (the old one
 * is freed) and its length in *len: "PID" may be longer than the digits it
 * replaces. */
static char *normalise(char *s, size_t *len_io) {
        size_t len = *len_io, o = 0;
        char *d = malloc(len * 2 + 8);
        ck_assert_ptr_nonnull(d);
        bool bol = true;
        for (size_t i = 0; i < len;) {
                if (bol && len - i > 6 && memcmp(s + i, "bash: ", 6) == 0) {
                        size_t j = i + 6;
                        if (len - j > 5 && memcmp(s + j, "line ", 5) == 0) {
                                size_t k = j + 5;
                                while (k < len && is_digit(s[k]))
                                        k++;
                                if (k + 1 < len && k > j + 5 && s[k] == ':' && s[k + 1] == ' ')
                                        j = k + 2;
                        }
                        /* bash pads the pid to five columns: the padding
                         * goes with it, as pids of 4 and 6 digits come. */
                        size_t pad = j;
                        while (j < len && s[j] == ' ')
                                j++;
                        size_t k = j;
                        while (k < len && is_digit(s[k]))
                                k++;
                        if (k > j && k < len && s[k] == ' ') {
                                memcpy(d + o, s + i, pad - i);
                                o += pad - i;
                                memcpy(d + o, "PID", 3);
                                o += 3;
                                i = k;
                                bol = false;
                                continue;
                        }
                }
                if (len - i > 4 && memcmp(s + i, "pts/", 4) == 0 && is_digit(s[i + 4])) {
                        memcpy(d + o, "pts/N", 5);
                        o += 5;
                        i += 4;
                        while (i < len && is_digit(s[i]))
                                i++;
                        bol = false;
                        continue;
                }
                bol = s[i] == '\n' || s[i] == '\r';
                d[o++] = s[i++];
        }
        d[o] = '\0';
        free(s);
        *len_io = o;
        return d;
}

/* Appends text, escaped and bounded, to a report. */
static void show(FILE *f, const char *s, size_t len) {
        size_t shown = len > 1500 ? 1500 : len;
        fputc('"', f);
        for (size_t i = 0; i < shown; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c == '\n')
                        fputs("\\n", f);
                else if (c == '\r')
                        fputs("\\r", f);
                else if (c == '"' || c == '\\')
                        fprintf(f, "\\%c", c);
                else if (c < 32 || c >= 127)
                        fprintf(f, "\\x%02x", c);
                else
                        fputc(c, f);
        }
        fputc('"', f);
        if (shown < len)
                fprintf(f, "... (%zu bytes)", len);
}

static bool field_eq(const char *a, size_t al, const char *b, size_t bl) {
        return al == bl && memcmp(a, b, al) == 0;
}

static void field(const struct result *r, unsigned f, const char **ret, size_t *ret_len) {
        if (f == F_STATUS)
                *ret = r->status, *ret_len = strlen(r->status);
        else if (f == F_OUT)
                *ret = r->out, *ret_len = r->outlen;
        else
                *ret = r->err, *ret_len = r->errlen;
}

static const char *field_name(unsigned f) {
        return f == F_STATUS ? "status" : f == F_OUT ? "stdout" : "stderr";
}

/* ------------------------------------------------------------------------
 * The test
 * ------------------------------------------------------------------------ */

static void run_one(const struct scenario *s, enum mode m, struct result *r) {
        if (s->flags & INTERACTIVE)
                run_interactive(s, m, r);
        else if (s->flags & PTY)
                run_pty(s, m, r);
        else
                run_plain(s, m, r);
}

static bool run_all_pending(void) {
        const char *a = getenv("MPSPAWN_DIFF_ALL");
        return a && *a && strcmp(a, "0") != 0;
}

START_TEST(test_scenario) {
        const struct scenario *s = &scenarios[_i];
        const char *only = getenv("MPSPAWN_DIFF_ONLY");
        if (only && *only && strcmp(only, s->name) != 0)
                return;
        if (s->pending && !run_all_pending()) {
                printf("diff: PENDING %s (%s)\n", s->name, s->pending);
                fflush(stdout);
                return;
        }
        /* tests/run.sh passes the build's SANITIZE flags on. */
        const char *san = getenv("SANITIZE");
        if ((s->flags & NOT_SANITIZED) && san && *san) {
                printf("diff: SKIP %s (not under the sanitizers)\n", s->name);
                fflush(stdout);
                return;
        }
        struct result r[M_COUNT];
        memset(r, 0, sizeof(r));
        for (int m = 0; m < M_COUNT; m++) {
                for (int attempt = 0;; attempt++) {
                        run_one(s, (enum mode)m, &r[m]);
                        /* The CLI on main hangs now and then after a short
                         * job ends (issue 14 item 6): a run that timed out
                         * is logged and tried once more, unless
                         * MPSPAWN_DIFF_STRICT=1. */
                        if (attempt > 0 || !strstr(r[m].status, "timed out") ||
                            getenv("MPSPAWN_DIFF_STRICT"))
                                break;
                        printf("diff: RETRY %s: the %s run timed out (issue 14 item 6?)\n", s->name,
                               mode_names[m]);
                        fflush(stdout);
                        result_free(&r[m]);
                }
                r[m].out = normalise(r[m].out, &r[m].outlen);
                r[m].err = normalise(r[m].err, &r[m].errlen);
        }
        char *report = NULL;
        size_t rlen = 0;
        FILE *f = open_memstream(&report, &rlen);
        ck_assert_ptr_nonnull(f);
        bool ok = true;
        for (int m = M_USER; m < M_COUNT; m++) {
                for (unsigned fl = F_STATUS; fl <= F_ERR; fl <<= 1) {
                        const char *a, *b;
                        size_t al, bl;
                        field(&r[M_DIRECT], fl, &a, &al);
                        field(&r[m], fl, &b, &bl);
                        bool allowed = s->by_design && (s->differs & fl);
                        if (allowed && s->expect && (s->differs & -s->differs) == fl &&
                            !memmem(b, bl, s->expect, strlen(s->expect))) {
                                ok = false;
                                fprintf(f, "  %s: %s should show the documented difference '%s': ",
                                        mode_names[m], field_name(fl), s->expect);
                                show(f, b, bl);
                                fputc('\n', f);
                        }
                        if (allowed || field_eq(a, al, b, bl))
                                continue;
                        ok = false;
                        fprintf(f, "  %s differs from direct in %s:\n    direct: ", mode_names[m],
                                field_name(fl));
                        show(f, a, al);
                        fprintf(f, "\n    %-6s: ", mode_names[m]);
                        show(f, b, bl);
                        fputc('\n', f);
                }
        }
        fclose(f);
        const char *verdict = !ok ? "FAIL" : s->by_design ? "DESIGN" : "PASS";
        printf("diff: %s %s%s%s\n%s", verdict, s->name, s->pending ? " (pending: " : "",
               s->pending ? s->pending : "", s->pending ? ")" : "");
        if (s->pending)
                printf("\n");
        if (!ok)
                printf("%s", report);
        if (getenv("MPSPAWN_DIFF_VERBOSE")) {
                printf("  direct: %s\n  stdout: ", r[M_DIRECT].status);
                show(stdout, r[M_DIRECT].out, r[M_DIRECT].outlen);
                printf("\n  stderr: ");
                show(stdout, r[M_DIRECT].err, r[M_DIRECT].errlen);
                printf("\n");
        }
        fflush(stdout);
        for (int m = 0; m < M_COUNT; m++)
                result_free(&r[m]);
        ck_assert_msg(ok, "scenario %s: the runs differ:\n%s", s->name, report);
        free(report);
}
END_TEST

/* Every difference kept by design is listed in mpspawn(1). */
START_TEST(test_by_design_is_documented) {
        const char *topdir = getenv("MPSPAWN_TOP");
        char path[4096];
        snprintf(path, sizeof(path), "%s/docs/mpspawn.1", topdir && *topdir ? topdir : ".");
        FILE *f = fopen(path, "re");
        ck_assert_msg(f, "cannot open %s", path);
        static char man[1 << 20];
        size_t n = fread(man, 1, sizeof(man) - 1, f);
        fclose(f);
        man[n] = '\0';
        const char *sec = strstr(man, ".SH DIFFERENCES FROM A DIRECT RUN\n");
        ck_assert_msg(sec, "mpspawn(1) has no DIFFERENCES FROM A DIRECT RUN section");
        const char *next = strstr(sec + 1, "\n.SH ");
        size_t seclen = next ? (size_t)(next - sec) : strlen(sec);
        for (size_t i = 0; i < n_scenarios; i++) {
                const struct scenario *s = &scenarios[i];
                if (!s->by_design)
                        continue;
                ck_assert_msg(s->doc && memmem(sec, seclen, s->doc, strlen(s->doc)),
                              "by_design scenario %s is not listed in mpspawn(1) (looked for '%s')",
                              s->name, s->doc ? s->doc : "(no .doc)");
        }
}
END_TEST

/* bash's notice of a death by signal reads the same whatever the pid's
 * width: it pads pids to five columns, and CI machines hand out pids of
 * 4 to 7 digits. */
START_TEST(test_normalise_drops_the_pid_and_its_padding) {
        const char *in[] = {"bash: line 1:   999 Killed                  sleep 10\n",
                            "bash: line 1: 10000 Killed                  sleep 10\n",
                            "bash: line 1: 4194000 Killed                  sleep 10\n"};
        const char *want = "bash: line 1: PID Killed                  sleep 10\n";
        for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
                size_t len = strlen(in[i]);
                char *s = strdup(in[i]);
                ck_assert_ptr_nonnull(s);
                char *out = normalise(s, &len);
                ck_assert_str_eq(out, want);
                ck_assert_uint_eq(len, strlen(want));
                free(out);
        }
}
END_TEST

static Suite *differential_suite(void) {
        Suite *s = suite_create("differential");
        TCase *tc = tcase_create("scenarios");
        tcase_add_unchecked_fixture(tc, world_setup, world_teardown);
        /* Three runs of a scenario; a few wait out timeouts of their own. */
        tcase_set_timeout(tc, 120);
        tcase_add_loop_test(tc, test_scenario, 0, (int)n_scenarios);
        suite_add_tcase(s, tc);
        TCase *docs = tcase_create("docs");
        tcase_add_test(docs, test_by_design_is_documented);
        tcase_add_test(docs, test_normalise_drops_the_pid_and_its_padding);
        suite_add_tcase(s, docs);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(differential_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
