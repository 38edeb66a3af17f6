#!/usr/bin/env bash
# bench/gpu.sh: the engine's GPU benchmark, on a machine with an NVIDIA GPU, CUDA and PyTorch and
# possibly nothing else.
#
#   bench/gpu.sh [BUILD_DIR]          (default BUILD_DIR: build-gpu beside this script's checkout)
#
# 1. Builds fairy-engine with FAIRY_ENGINE_ONLY=ON against PyTorch's bundled LibTorch
#    (python3 -c 'import torch;print(torch.utils.cmake_prefix_path)'), with PyTorch's C++ ABI.
# 2. Times the Fairy UNet loop at Stable Diffusion 1.5 size with random weights
#    (../shared/fixtures/ip2p-sd15-config, or $FAIRY_SD15_CONFIG): 120 frames at 512x384, K=3,
#    10 steps, three-way guidance, for float16 and bfloat16 (and float32 unless FAIRY_GPU_QUICK=1).
# 3. Prints a short table last. Record the card and the numbers in docs/benchmarks.md.
# Environment: FAIRY_GPU_BATCH (frames per UNet call, default 8), FAIRY_GPU_FRAMES (default 120).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-$ROOT/build-gpu}"
CONFIG="${FAIRY_SD15_CONFIG:-$ROOT/../shared/fixtures/ip2p-sd15-config/unet/config.json}"
BATCH="${FAIRY_GPU_BATCH:-8}"
FRAMES="${FAIRY_GPU_FRAMES:-120}"

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
PREFIX="$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')"
ABI="$(python3 -c 'import torch;print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')"
echo "torch $(python3 -c 'import torch;print(torch.__version__, torch.version.cuda)') at $PREFIX (CXX11 ABI $ABI)"
if [[ ! -f "$CONFIG" ]]; then
  echo "bench/gpu.sh: no UNet config at $CONFIG (set FAIRY_SD15_CONFIG)" >&2
  exit 2
fi

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DFAIRY_ENGINE_ONLY=ON -DFAIRY_BUILD_TESTS=OFF \
  -DFAIRY_BUILD_BENCH=OFF -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_CXX_FLAGS="-D_GLIBCXX_USE_CXX11_ABI=$ABI" >"$BUILD.cmake.log" 2>&1 \
  || { tail -30 "$BUILD.cmake.log"; exit 1; }
cmake --build "$BUILD" -j"$(nproc)" --target fairy-engine 2>&1 | tail -3
ENGINE="$BUILD/bin/fairy-engine"

DTYPES=(float16 bfloat16)
[[ "${FAIRY_GPU_QUICK:-0}" == "1" ]] || DTYPES+=(float32)
declare -A TOTAL FPS GFLOPS PEAK CACHE FWD
for dtype in "${DTYPES[@]}"; do
  echo "== $dtype"
  out="$("$ENGINE" bench --config "$CONFIG" --random-weights --device cuda --dtype "$dtype" \
          --resolution 512x384 --frames "$FRAMES" --anchors 3 --steps 10 --batch "$BATCH" --warmup 2 2>&1)" \
    || { echo "$out"; exit 1; }
  echo "$out"
  TOTAL[$dtype]="$(awk '/^total \(UNet loop\)/{print $4}' <<<"$out")"
  FPS[$dtype]="$(awk '/^frames\/s/{print $2}' <<<"$out")"
  GFLOPS[$dtype]="$(awk '/^loop GFLOP\/s/{print $3}' <<<"$out")"
  CACHE[$dtype]="$(awk '/^anchor cache/{print $3" "$4}' <<<"$out")"
  PEAK[$dtype]="$(awk '/^peak memory/{print $3" "$4}' <<<"$out")"
  FWD[$dtype]="$(awk '/^unet forward/{print $(NF-2)}' <<<"$out")"
done

echo
echo "Fairy UNet loop, SD1.5-size random weights, $FRAMES frames 512x384, K=3, 10 steps, batch $BATCH x 3 branches"
printf '%-10s %10s %10s %14s %14s %14s %16s\n' dtype "total s" "frames/s" "loop GFLOP/s" "fwd x matmul" "anchor cache" "peak memory"
for dtype in "${DTYPES[@]}"; do
  printf '%-10s %10s %10s %14s %14s %14s %16s\n' "$dtype" "${TOTAL[$dtype]}" "${FPS[$dtype]}" "${GFLOPS[$dtype]}" \
    "${FWD[$dtype]}" "${CACHE[$dtype]}" "${PEAK[$dtype]}"
done
echo "(Fairy paper: 120 frames in 13.8 s on 8 A100s, 78 s on one; goal: under 13.8 s on one H100)"
