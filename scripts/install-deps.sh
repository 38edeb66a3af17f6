#!/usr/bin/env bash
# Installs the Debian 12 packages Fairy Farm needs to build, test and run (DESIGN.md section 7).
# Idempotent: installs only what is missing. Uses sudo when not root.
set -euo pipefail

PACKAGES=(
  build-essential cmake ccache pkg-config git
  libtorch-dev libopenblas0-pthread
  libzmq3-dev cppzmq-dev
  libhiredis-dev redis-server
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev libavfilter-dev ffmpeg
  libyaml-cpp-dev
  libboost-dev libboost-system-dev
  nlohmann-json3-dev libspdlog-dev libcli11-dev
  libgtest-dev libgmock-dev
  libpng-dev
  libicu-dev
  python3
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
