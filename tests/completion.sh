#!/bin/sh
# SPDX-License-Identifier: MIT
# completion.sh: the bash completion (launcher/mpspawn.bash-completion) knows
# what the programs take, as bash-completion would run it.
#
#  1. Every option that `mpspawn --help`, `mpspawn server --help` and
#     `mpforkserver --help` list is offered after "-", and every subcommand
#     --help lists is offered as the first word.
#  2. kill and --pdeathsig offer signal names; kill and wait offer the job
#     IDs that `mpspawn ps` shows on the server the line names (-s), here a
#     real server with a real job.
#  3. After PROGRAM the line is PROGRAM's: mpspawn's options are not offered.
#
# Run by tests/run.sh with BUILD from the Makefile; skipped (one passing
# check that says so) where bash or bash-completion is missing. Prints a
# Check-style summary line, which run.sh counts.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
cli=$top/$BUILD/mpspawn
server=$top/$BUILD/mpforkserver
comp=$top/launcher/mpspawn.bash-completion
bashcomp=/usr/share/bash-completion/bash_completion
tmp=$(mktemp -d /tmp/mpspawn-completion-XXXXXX)
spid=
trap '[ -n "$spid" ] && kill "$spid" 2>/dev/null; rm -rf "$tmp"' EXIT
checks=0 failures=0
pass() { checks=$((checks + 1)); echo "ok: $1"; }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAILED: $1"; }
summary() {
  pct=100
  [ "$checks" -gt 0 ] && pct=$(( (checks - failures) * 100 / checks ))
  echo "$pct%: Checks: $checks, Failures: $failures, Errors: 0"
  [ "$failures" -eq 0 ]
}

if ! command -v bash >/dev/null || [ ! -r "$bashcomp" ]; then
  pass "skipped: bash or $bashcomp is missing (make deps installs bash-completion)"
  summary; exit
fi

# complete WORD...: what the completion offers for the last WORD (may be
# empty), one per line, as bash-completion would run it for the line typed.
complete_line() {
  MPSPAWN_COMP=$comp BASHCOMP=$bashcomp bash -c '
    . "$BASHCOMP" >/dev/null 2>&1
    . "$MPSPAWN_COMP"
    COMP_WORDS=("$@")
    COMP_CWORD=$(($# - 1))
    COMP_LINE="$*"
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    case $1 in */mpforkserver) _mpforkserver ;; *) _mpspawn ;; esac
    printf "%s\n" "${COMPREPLY[@]}"' completion "$@" 2>"$tmp/err"
}
# offers WHAT WORD...: the completion of the line offers every word of WHAT.
offers() {
  what=$1; shift
  complete_line "$@" | sort -u >"$tmp/got"
  missing=$(printf '%s\n' $what | sort -u | comm -23 - "$tmp/got" | tr '\n' ' ')
  if [ -z "$missing" ]; then
    pass "'$*' offers $(echo $what | wc -w) words ($(echo $what | cut -c1-60)...)"
  else
    fail "'$*' does not offer: $missing"; sed 's/^/  | /' "$tmp/err"
  fi
}
# The options in a --help text: words starting with - in its option lines.
help_options() {
  grep -E '^ +-' | grep -oE '(^|[ ,[])--?[A-Za-z][A-Za-z-]*' | tr -d ' ,[' | sort -u
}

# --- 1. every option and subcommand --help lists ------------------------------
main_opts=$("$cli" --help | help_options)
server_opts=$("$server" --help | help_options)
sub_opts=$("$cli" server --help | help_options)
[ "$(echo $main_opts | wc -w)" -gt 30 ] && pass "mpspawn --help lists $(echo $main_opts | wc -w) options" ||
  fail "mpspawn --help lists only: $main_opts"
[ "$(echo $server_opts | wc -w)" -gt 15 ] && pass "mpforkserver --help lists $(echo $server_opts | wc -w) options" ||
  fail "mpforkserver --help lists only: $server_opts"
offers "$main_opts" "$cli" -
offers "$server_opts" "$server" -
offers "$sub_opts" "$cli" server -
offers "$(echo "$server_opts" | grep -e "^--")" "$cli" -s /tmp/x server --
subs=$("$cli" --help | sed -n '/^Subcommands/,/^$/p' | grep -oE '^  [a-z]+' | tr -d ' ')
offers "$subs" "$cli" ""
offers "$(echo "$subs" | grep -x ps)" "$cli" -s /tmp/x p
offers "--json" "$cli" ps -
offers "--json" "$cli" stats -

# --- 2. signal names and job IDs -----------------------------------------------------
offers "TERM KILL INT HUP USR1" "$cli" kill 7 ""
offers "TERM KILL" "$cli" --pdeathsig ""
offers "error warning info debug" "$server" --log-level ""
sock=$tmp/s.sock
"$server" --socket "$sock" --log-level error --idle-exit 60 &
spid=$!
for _ in 1 2 3 4 5 6 7 8 9 10; do [ -S "$sock" ] && break; sleep 0.2; done
# The jobs let go of the command substitution's pipe (their stdout), or
# $(...) would wait the 60 s for them.
id1=$("$cli" --socket "$sock" --detach --name one sh -c 'exec sleep 60 >/dev/null' | cut -d' ' -f1)
id2=$("$cli" --socket "$sock" --detach --name two sh -c 'exec sleep 60 >/dev/null' | cut -d' ' -f1)
if [ -n "$id1" ] && [ -n "$id2" ]; then
  offers "$id1 $id2" "$cli" -s "$sock" kill ""
  offers "$id1 $id2 --json" "$cli" --socket "$sock" wait ""
  offers "$id2" "$cli" -s "$sock" kill "$id2"
  if complete_line "$cli" -s "$sock" kill "$id1" "" | grep -qx "$id2"; then
    fail "kill ID offers IDs again instead of signals"
  else
    pass "kill ID offers signals, not IDs"
  fi
  "$cli" --socket "$sock" kill "$id1" KILL >/dev/null 2>&1
  "$cli" --socket "$sock" kill "$id2" KILL >/dev/null 2>&1
else
  fail "could not start two jobs on a test server"
fi
if [ -z "$(complete_line "$cli" -s "$tmp/none.sock" kill "")" ]; then
  pass "kill offers nothing, silently, when no server answers"
else
  fail "kill offers something with no server"
fi

# --- 3. PROGRAM's words are PROGRAM's ------------------------------------------------
if complete_line "$cli" --name x sleep --d | grep -qx -- --detach; then
  fail "options after PROGRAM are mpspawn's"
else
  pass "options after PROGRAM are not mpspawn's"
fi
if complete_line "$cli" -- --d | grep -qx -- --detach; then
  fail "a word after -- is completed as an mpspawn option"
else
  pass "a word after -- is not completed as an mpspawn option"
fi
offers "--socket --seccomp" "$cli" -e A=1 --s

summary
