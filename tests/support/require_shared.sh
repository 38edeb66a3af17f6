#!/bin/sh
# The shell-level FAIRY_REQUIRE_SHARED, for ctest entries that run a command rather than GoogleTest:
#   require_shared.sh CONFIGURED_SHARED_DIR RELATIVE_PATH COMMAND [ARG...]
# The shared folder is $FAIRY_SHARED_DIR, else CONFIGURED_SHARED_DIR (as SharedDir() in
# test_paths.h). When RELATIVE_PATH is not in it, prints the reason and exits 77, which
# fairy_require_shared() registers as the test's SKIP_RETURN_CODE; else runs COMMAND with every
# ARG that starts with @shared@/ resolved against the shared folder.
set -eu
shared=${FAIRY_SHARED_DIR:-$1}
need=$2
shift 2
if [ ! -e "$shared/$need" ]; then
  echo "missing reference data: $shared/$need (put the reference data folder at ../shared beside" \
       "the checkout, or set FAIRY_SHARED_DIR to it)"
  exit 77
fi
n=$#
while [ "$n" -gt 0 ]; do
  arg=$1
  shift
  case $arg in @shared@/*) arg=$shared/${arg#@shared@/} ;; esac
  set -- "$@" "$arg"
  n=$((n - 1))
done
exec "$@"
