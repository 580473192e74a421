#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs libFuzzer targets for a bounded time each (`make fuzz`):
#   tests/fuzz.sh BUILD SECONDS TARGET...
# For each TARGET, BUILD/fuzz_TARGET starts from the seed corpus
# (tests/corpus/TARGET) and the kept regressions (tests/regress/TARGET),
# adds what it finds to BUILD/corpus/TARGET (scratch: never the seeds), and
# writes an input that breaks it to BUILD/artifacts/TARGET/. The whole log
# is BUILD/fuzz-TARGET.log; printed here are libFuzzer's closing statistics
# and, for a target that failed, the report.
# Exit status: 0 when no target found anything.
set -u
build=$1 seconds=$2
shift 2
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1

# Inputs as long as the bounds they test: one message (64 KiB), one batch
# line (64 KiB), one policy text (64 KiB), with a little beyond each.
max_len=70000
passed=0 failed=0 bad=""
for t in "$@"; do
  bin=$build/fuzz_$t
  log=$build/fuzz-$t.log
  mkdir -p "$build/corpus/$t" "$build/artifacts/$t"
  # The first directory is where libFuzzer writes; the others it reads.
  dirs="$build/corpus/$t tests/corpus/$t"
  [ -d "tests/regress/$t" ] && dirs="$dirs tests/regress/$t"
  dict=
  [ -f "tests/fuzz_$t.dict" ] && dict="-dict=tests/fuzz_$t.dict"
  echo "== fuzz_$t: $seconds s (log: $log)"
  # A slow input is a finding too (-timeout); leaks are (ASan's LSan).
  "$bin" -max_total_time="$seconds" -max_len=$max_len -timeout=30 \
    -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$t/" $dict $dirs >"$log" 2>&1
  rc=$?
  grep -E '^#[0-9]+[[:space:]]+DONE|^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log"
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
  else
    echo "fuzz_$t: exit status $rc; the end of its log:"
    tail -n 60 "$log"
    ls -l "$build/artifacts/$t/"
    failed=$((failed + 1)); bad="$bad fuzz_$t"
  fi
done
echo
[ -z "$bad" ] || echo "failing fuzz targets:$bad (inputs in $build/artifacts/)"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
