#!/usr/bin/env bash
# Anchor cache against recompute (issue 4): for each model, what a frames task pays to fetch a
# shot's anchor cache through Redis (anchor_mode: cache) against what it pays to recompute the
# anchor pass itself (anchor_mode: recompute), and the network bandwidth where the two cost the same.
#
#   bench/cache_vs_recompute.sh [BUILD_DIR]        (default: build)
#
# Per row, in one invocation:
#   1. `fairy-engine bench --frames K` runs the anchor pass alone (K anchors x 3 guidance branches,
#      every step, filling the anchor cache): its time is the recompute cost, its cache the bytes.
#   2. `bench_anchor_cache` publishes and fetches a blob of exactly that many bytes through
#      AnchorStore and a private redis-server on loopback (AOF off): the fetch time at loopback speed.
#   3. crossover = cache bytes / anchor pass seconds: below that per-worker bandwidth recomputing is
#      faster than fetching. Both the bytes and the time grow linearly with the steps, so the
#      crossover holds for any step count; rows run few steps where the CPU is slow.
# Rows: the embedded fairy-tiny at 128x72, 10 steps; the InstructPix2Pix SD 1.5 UNet (random weights,
# ../shared/fixtures/ip2p-sd15-config or $FAIRY_SD15_CONFIG) at 512x384 with a float32 and a float16
# cache. Environment: FAIRY_CVR_DEVICE (cpu; cuda on a GPU host), FAIRY_CVR_DTYPE (float32),
# FAIRY_CVR_SD15_STEPS (1 on cpu, 10 otherwise), FAIRY_CVR_ANCHORS (3).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
bin=$(cd "$build/bin" && pwd)
device=${FAIRY_CVR_DEVICE:-cpu}
dtype=${FAIRY_CVR_DTYPE:-float32}
anchors=${FAIRY_CVR_ANCHORS:-3}
if [[ "$device" == cpu ]]; then sd_steps=${FAIRY_CVR_SD15_STEPS:-1}; else sd_steps=${FAIRY_CVR_SD15_STEPS:-10}; fi
sd15=${FAIRY_SD15_CONFIG:-$root/../shared/fixtures/ip2p-sd15-config/unet/config.json}
for tool in "$bin/fairy-engine" "$bin/bench_anchor_cache"; do
  [[ -x "$tool" ]] || { echo "cache_vs_recompute.sh: $tool not built (make, or cmake --build $build)" >&2; exit 2; }
done
[[ -f "$sd15" ]] || { echo "cache_vs_recompute.sh: no UNet config at $sd15 (set FAIRY_SD15_CONFIG)" >&2; exit 2; }

rows=()
# $1 label, $2 steps, then fairy-engine bench's model and size arguments.
row() {
  local label=$1 steps=$2 out bytes anchor_s mib cache_out publish fetch
  shift 2
  echo "== $label, $steps step(s)"
  out=$("$bin/fairy-engine" bench "$@" --frames "$anchors" --anchors "$anchors" --steps "$steps" \
        --device "$device" --dtype "$dtype" --warmup 0 2>&1) || { echo "$out"; exit 1; }
  echo "$out"
  anchor_s=$(awk '/^anchor pass/{print $3}' <<<"$out")
  bytes=$(awk '/^anchor cache/{print $6}' <<<"$out")
  mib=$(( (bytes + (1 << 20) - 1) >> 20 ))
  cache_out=$("$bin/bench_anchor_cache" --sizes-mib "$mib" --repeat 3 2>&1) || { echo "$cache_out"; exit 1; }
  echo "$cache_out"
  publish=$(awk '/ MiB: publish /{print $4}' <<<"$cache_out")
  fetch=$(awk '/ MiB: publish /{print $7}' <<<"$cache_out")
  rows+=("$(awk -v l="$label" -v st="$steps" -v b="$bytes" -v a="$anchor_s" -v m="$mib" -v p="$publish" -v f="$fetch" 'BEGIN {
    x = b / a;  # bytes per second where fetching costs what recomputing costs
    printf "%-26s %5d %11.1f %13.2f %11.3f %11.3f %12.1f %13.1f\n", l, st, b / 1048576, a, m / p, m / f, x / 1e6, x * 8 / 1e6 }')")
}

row "fairy-tiny 128x72" 10 --model "$root/models/fairy-tiny" --resolution 128x72
row "SD1.5 512x384 f32 cache" "$sd_steps" --config "$sd15" --random-weights --resolution 512x384
row "SD1.5 512x384 f16 cache" "$sd_steps" --config "$sd15" --random-weights --resolution 512x384 --fp16-cache

echo
echo "Anchor cache vs recompute, K=$anchors, 3 guidance branches, device $device ($dtype), Redis on loopback"
printf '%-26s %5s %11s %13s %11s %11s %12s %13s\n' model steps "cache MiB" "recompute s" "publish s" "fetch s" \
  "cross MB/s" "cross Mbit/s"
printf '%s\n' "${rows[@]}"
echo "(recompute s: the anchor pass; cross: the per-worker bandwidth where fetching the cache costs as much"
echo " as recomputing it: a slower network favours anchor_mode: recompute, a faster one cache)"
