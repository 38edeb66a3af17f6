#!/usr/bin/env bash
# Runs the ctest suite of BUILD_DIR (extra arguments go to ctest). Tests that need Redis start their
# own redis-server on a free loopback port and stop it; nothing is left running.
#
# The reference data (golden fixtures, third-party clips) is not in the repository: it lives in
# ../shared beside the checkout (or FAIRY_SHARED_DIR). A test that needs a file of it and does not
# find it is skipped with "missing reference data: PATH"; the last line says how many were and where
# the folder goes. With FAIRY_REQUIRE_REFERENCE_DATA=1 (CI) any such skip fails the run.
set -euo pipefail
build_dir=${1:-build}
shift || true
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
cd "$build_dir"
start=$(date +%s)
junit=$PWD/Testing/fairy-tests.xml
rm -f "$junit"
rc=0
ctest --output-on-failure --timeout 900 -j"$(nproc)" --output-junit "$junit" "$@" || rc=$?
echo "test run: $(( $(date +%s) - start )) s"

# Skipped tests whose output names missing reference data (ctest's JUnit file keeps every output).
missing=()
if [[ -f $junit ]]; then
  mapfile -t missing < <(awk '
    /<testcase / { match($0, /name="[^"]*"/); name = substr($0, RSTART + 6, RLENGTH - 7)
                   skipped = 0; reason = 0 }
    /<skipped /  { skipped = 1 }
    /missing reference data: / { reason = 1 }
    /<\/testcase>/ { if (skipped && reason) print name }' "$junit")
fi
shared=${FAIRY_SHARED_DIR:-$(sed -n 's/^FAIRY_SHARED_DIR:[A-Z]*=//p' CMakeCache.txt)}
shared=$(realpath -m "$shared")
if (( ${#missing[@]} > 0 )); then
  tests=tests
  (( ${#missing[@]} != 1 )) || tests=test
  echo "reference data: ${#missing[@]} $tests skipped for missing reference data ($shared); to" \
       "run them, put the shared folder (fixtures/, media/) at ../shared beside the checkout or" \
       "set FAIRY_SHARED_DIR to it"
  if [[ ${FAIRY_REQUIRE_REFERENCE_DATA:-0} == 1 ]]; then
    echo "FAIRY_REQUIRE_REFERENCE_DATA=1: no test may skip for missing reference data; skipped:"
    printf '  %s\n' "${missing[@]}"
    (( rc != 0 )) || rc=1
  fi
else
  echo "reference data: no test skipped for missing reference data ($shared)"
fi
exit "$rc"
