#!/usr/bin/env bash
# Runs the ctest suite of BUILD_DIR (extra arguments go to ctest). Tests that need Redis start their
# own redis-server on a free loopback port and stop it; nothing is left running.
set -euo pipefail
build_dir=${1:-build}
shift || true
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
cd "$build_dir"
start=$(date +%s)
ctest --output-on-failure --timeout 900 -j"$(nproc)" "$@"
echo "test run: $(( $(date +%s) - start )) s"
