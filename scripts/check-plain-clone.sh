#!/usr/bin/env bash
# Does `make test` pass for someone who clones the repository alone? Clones this checkout's
# committed HEAD into WORK_DIR/fairy-farm, with no WORK_DIR/shared beside it, runs `make test` there
# and expects a pass in which the tests that need the reference data are skipped, not failed.
# Not part of `make test`: it builds from nothing (minutes on 2 cores; ccache helps, with
# CCACHE_BASEDIR set to WORK_DIR so that runs in other folders share the cache).
#   scripts/check-plain-clone.sh [WORK_DIR]
# WORK_DIR defaults to a new folder under $TMPDIR, removed when the check passes; a WORK_DIR given
# is kept, and a clone already in it is moved to the new HEAD and rebuilt incrementally.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [[ $# -ge 1 ]]; then
  work=$(mkdir -p "$1" && cd "$1" && pwd)
  keep=1
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/fairy-plain-clone-XXXXXX")
  keep=0
fi
clone=$work/fairy-farm
log=$work/make-test.log
if [[ -e $work/shared ]]; then
  echo "check-plain-clone: $work/shared exists, so $clone would not be a plain clone" >&2
  exit 2
fi
unset FAIRY_SHARED_DIR FAIRY_REQUIRE_REFERENCE_DATA
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$work}

start=$(date +%s)
if [[ -d $clone/.git ]]; then
  git -C "$clone" fetch --quiet "$repo" HEAD
  git -C "$clone" checkout --quiet --detach FETCH_HEAD
else
  git clone --quiet --no-hardlinks "$repo" "$clone"
fi
echo "check-plain-clone: $clone at $(git -C "$clone" log -1 --format='%h %s'); log: $log"
rc=0
make -C "$clone" test > "$log" 2>&1 || rc=$?
seconds=$(( $(date +%s) - start ))

summary=$(grep -E '^[0-9]+% tests passed' "$log" | tail -1 || true)
skipped=$(sed -n 's/^reference data: \([0-9][0-9]*\) tests\{0,1\} skipped.*/\1/p' "$log" | tail -1)
skipped=${skipped:-0}
verdict=PASS
if (( rc != 0 )); then
  verdict="FAIL (make test exited $rc)"
elif (( skipped == 0 )); then
  verdict="FAIL (no test skipped for missing reference data: did the clone see a shared folder?)"
fi
echo "check-plain-clone: $verdict in ${seconds} s: ${summary:-no ctest summary};" \
     "$skipped skipped for missing reference data"
if [[ $verdict != PASS ]]; then
  tail -n 40 "$log"
  echo "check-plain-clone: kept $work"
  exit 1
fi
(( keep )) || rm -rf "$work"
