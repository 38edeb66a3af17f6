#!/usr/bin/env bash
# Farm overhead: the same edit through `fairy-engine edit` (one process), through the farm with one
# worker, and with two workers (redis-server, fairy-coordinator, fairy-worker on loopback), and the
# anchor_mode recompute variant. Prints wall times and ratios against the single-process edit
# measured in the same run. Usage:
#   bench/farm_overhead.sh [BUILD_DIR] [CLIP] [RESOLUTION] [STEPS]
# Defaults: build, ../shared/media/bigbuckbunny.mp4 (132 frames; split into 3 shots), 128, 10;
# the model is the embedded models/fairy-tiny (FAIRY_BENCH_MODEL=DIR for another).
# With two workers on a 2-core machine each worker gets one LibTorch thread (FAIRY_THREADS=1);
# the single-process edit and the one-worker farm use every core.
set -euo pipefail
build=${1:-build}
clip=${2:-$(cd "$(dirname "$0")/../.." && pwd)/shared/media/bigbuckbunny.mp4}
res=${3:-128}
steps=${4:-10}
bin=$(cd "$build/bin" && pwd)
model=${FAIRY_BENCH_MODEL:-$(cd "$(dirname "$0")/.." && pwd)/models/fairy-tiny}
work=$(mktemp -d /tmp/fairy-farm-overhead-XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
now() { date +%s.%N; }

t0=$(now)
"$bin/fairy-engine" edit --model "$model" --input "$clip" --output "$work/ref.mp4" --instruction "make it sepia" \
  --steps "$steps" --resolution "$res" --max-shot 50 --batch 4 --no-progress 2>"$work/edit.log"
t_ref=$(echo "$(now) - $t0" | bc)

redis_port=$(free_port)
redis-server --port "$redis_port" --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
sleep 0.5
run_farm() {  # $1 = workers, $2 = anchor_mode
  local wport api
  wport=$(free_port); api=$(free_port)
  redis-cli -p "$redis_port" flushall >/dev/null
  "$bin/fairy-coordinator" --redis-url "redis://127.0.0.1:$redis_port" --worker-bind "tcp://127.0.0.1:$wport" \
    --api-port "$api" --api-token bench --storage-root "$work" --storage-root "$(dirname "$clip")" \
    --storage-root "$(dirname "$model")" \
    --default-model "$model" --log-level warning >"$work/coord.log" 2>&1 &
  local cpid=$!
  local wpids=()
  local threads=$(( $(nproc) / $1 )); (( threads >= 1 )) || threads=1
  for i in $(seq 1 "$1"); do
    FAIRY_THREADS=$threads "$bin/fairy-worker" --coordinator "tcp://127.0.0.1:$wport" --worker-id "w$i" --redis-url "redis://127.0.0.1:$redis_port" \
      --storage-root "$work" --storage-root "$(dirname "$clip")" --storage-root "$(dirname "$model")" --log-level warning >"$work/worker$i.log" 2>&1 &
    wpids+=($!)
  done
  sleep 1
  cat >"$work/job.yaml" <<YAML
input: $clip
output: $work/out-$1-$2.mp4
instruction: make it sepia
edit: {resolution: $res, steps: $steps, anchor_mode: $2}
shots: {max_length: 50}
YAML
  local t
  t=$(now)
  FAIRY_API="http://127.0.0.1:$api" FAIRY_TOKEN=bench "$bin/fairy" submit --wait "$work/job.yaml" >/dev/null
  echo "$(now) - $t" | bc
  kill "${wpids[@]}" "$cpid" 2>/dev/null || true
  wait "${wpids[@]}" "$cpid" 2>/dev/null || true
}
t_one=$(run_farm 1 cache)
t_two=$(run_farm 2 cache)
t_rec=$(run_farm 2 recompute)
printf '%-34s %9s %7s\n' "run ($(basename "$clip"), ${res}px, $steps steps)" "seconds" "ratio"
printf '%-34s %9.1f %7.2f\n' "fairy-engine edit (reference)" "$t_ref" 1
printf '%-34s %9.1f %7.2f\n' "farm, 1 worker, cache" "$t_one" "$(echo "$t_one / $t_ref" | bc -l)"
printf '%-34s %9.1f %7.2f\n' "farm, 2 workers, cache" "$t_two" "$(echo "$t_two / $t_ref" | bc -l)"
printf '%-34s %9.1f %7.2f\n' "farm, 2 workers, recompute" "$t_rec" "$(echo "$t_rec / $t_ref" | bc -l)"
