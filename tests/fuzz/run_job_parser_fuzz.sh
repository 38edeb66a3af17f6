#!/bin/sh
# Runs the job-file fuzzer for the ctest entry job_parser_fuzz: usage FUZZER WORK_DIR SEED_CORPUS.
# Fails on any crash, sanitizer report, out-of-memory or leak. Timeouts are reported but never fail
# the run (docs/job-files.md, "Known limits": yaml-cpp 0.7 can loop forever on some malformed
# inputs; the product parses in a time-limited child, the fuzzer in process). libFuzzer's -fork
# mode exits with the exit code of the last child it reaped even when -ignore_timeouts=1 ignored
# it, so an ignored timeout in the last child is told apart from a failure here: exit code 70
# (-timeout_exitcode) with no crash-, oom- or leak- artifact is a pass.
set -u
fuzzer=$1 work=$2 seeds=$3
artifacts="$work-artifacts"
rm -rf "$work" "$artifacts" && mkdir -p "$work" "$artifacts" || exit 1
"$fuzzer" -fork=1 -ignore_timeouts=1 -ignore_ooms=0 -ignore_crashes=0 -timeout_exitcode=70 \
  -seed=1 -max_total_time=20 -timeout=3 -rss_limit_mb=2048 -malloc_limit_mb=256 -max_len=4096 \
  -artifact_prefix="$artifacts/" "$work" "$seeds"
rc=$?
failures=$(find "$artifacts" -type f ! -name 'timeout-*' | head -5)
timeouts=$(find "$artifacts" -type f -name 'timeout-*' | wc -l)
[ "$timeouts" -gt 0 ] && echo "job_parser_fuzz: $timeouts input(s) ran past 3 s (ignored; kept in $artifacts)"
if [ -n "$failures" ]; then
  echo "job_parser_fuzz: failing inputs:" $failures
  exit 1
fi
if [ "$rc" -eq 70 ]; then
  echo "job_parser_fuzz: libFuzzer exited 70 for an ignored timeout in its last child: pass"
  exit 0
fi
exit "$rc"
