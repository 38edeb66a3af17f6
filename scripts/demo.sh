#!/usr/bin/env bash
# The demo: until the farm and the embedded model land, it runs the deepest end-to-end path that
# exists (see README.md).
set -euo pipefail
build_dir=${1:-build}
bin="$build_dir/bin"
"$bin/fairy-engine" --help
