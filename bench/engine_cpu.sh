#!/usr/bin/env bash
# bench/engine_cpu.sh: CPU throughput of the engine's UNet next to the plain matmul rate measured
# in the same process (the issue's goal: the UNet at half the matmul rate or better).
#
#   bench/engine_cpu.sh [FAIRY_ENGINE_BINARY]   (default: build/bin/fairy-engine)
#
# Runs `fairy-engine bench` on
#   1. the pix2pix-tiny model (its real weights) at 64x64: plain forwards and a 12-frame Fairy loop,
#   2. the SD 1.5-size InstructPix2Pix UNet (random weights) at 512x384: plain forwards only
#      (one CPU forward takes seconds; the 120-frame loop is for bench/gpu.sh).
# Needs ~5 GB of memory. Threads: FAIRY_THREADS (default: all cores).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENGINE="${1:-$ROOT/build/bin/fairy-engine}"
SHARED="${FAIRY_SHARED_DIR:-$ROOT/../shared}"

echo "== pix2pix-tiny, 64x64"
"$ENGINE" bench --model "$SHARED/fixtures/pix2pix-tiny" --resolution 64x64 --frames 12 --anchors 3 --steps 10 \
  --batch 4 --plain-batch 3
echo
echo "== SD 1.5-size UNet (random weights), 512x384"
"$ENGINE" bench --config "$SHARED/fixtures/ip2p-sd15-config/unet/config.json" --random-weights \
  --resolution 512x384 --frames 0 --plain-batch 1
