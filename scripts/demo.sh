#!/usr/bin/env bash
# make demo: a private farm on loopback (Redis, a coordinator, two workers) edits
# examples/media/demo.mp4 by examples/demo.yaml with the embedded model models/fairy-tiny, shows
# `fairy watch`, writes the edited video and a side-by-side preview PNG, and stops everything it
# started. Usage: scripts/demo.sh [BUILD_DIR]   (run from the repository root; `make demo` does)
set -euo pipefail

root=$(pwd)
bin=$(cd "${1:-build}/bin" && pwd)
job_file=examples/demo.yaml
output=out/demo_edited.mp4
preview=out/demo_preview.png
run_dir=$(mktemp -d /tmp/fairy-demo.XXXXXX)
token=demo-$$-$RANDOM
pids=()

stop_all() {
  local rc=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ $rc -ne 0 ]]; then
    echo "demo: failed (exit $rc); process logs are in $run_dir" >&2
  else
    rm -rf "$run_dir"
  fi
  exit $rc
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# A free loopback port: nothing answers a connect.
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
}

wait_until() {  # wait_until SECONDS WHAT COMMAND...
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq $((seconds * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "demo: $what did not come up within $seconds s" >&2
  return 1
}

redis_port=$(free_port)
worker_port=$(free_port)
api_port=$(free_port)
export FAIRY_API=http://127.0.0.1:$api_port FAIRY_TOKEN=$token

echo "demo: starting Redis on 127.0.0.1:$redis_port, the coordinator and two workers (logs: $run_dir)"
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no --dir "$run_dir" \
  >"$run_dir/redis.log" 2>&1 &
pids+=($!)
wait_until 10 "redis-server" redis-cli -p "$redis_port" ping

"$bin/fairy-coordinator" --redis-url "redis://127.0.0.1:$redis_port/0" \
  --worker-bind "tcp://127.0.0.1:$worker_port" --api-port "$api_port" --api-token "$token" \
  --storage-root "$root" >"$run_dir/coordinator.log" 2>&1 &
pids+=($!)
wait_until 20 "fairy-coordinator" "$bin/fairy" jobs

# Two workers share this machine's cores: one LibTorch thread each.
for i in 1 2; do
  FAIRY_THREADS=1 "$bin/fairy-worker" --coordinator "tcp://127.0.0.1:$worker_port" --worker-id "demo-w$i" \
    --redis-url "redis://127.0.0.1:$redis_port/0" --storage-root "$root" --models-dir "$root/models" \
    >"$run_dir/worker$i.log" 2>&1 &
  pids+=($!)
done
wait_until 30 "two workers" bash -c "[[ \$('$bin/fairy' workers | grep -c demo-w) -ge 2 ]]"

mkdir -p out
rm -f "$output"
start=$(date +%s)
job=$("$bin/fairy" submit "$job_file")
echo "demo: submitted $job_file as $job"
"$bin/fairy" watch "$job"
seconds=$(($(date +%s) - start))

# Preview: four source frames above the same four edited frames.
select="select='eq(n\,10)+eq(n\,35)+eq(n\,60)+eq(n\,85)',tile=4x1"
ffmpeg -loglevel error -y -i examples/media/demo.mp4 -i "$output" -filter_complex \
  "[0:v]$select[a];[1:v]scale=320:180,$select[b];[a][b]vstack" -frames:v 1 -update 1 "$preview"

echo
echo "demo: done in $seconds s"
echo "  edited video:  $root/$output"
echo "  preview (top: source, bottom: \"$(sed -n 's/^instruction: //p' "$job_file")\"):  $root/$preview"
