#!/usr/bin/env bash
# An original-layout SD 1.5 InstructPix2Pix checkpoint at full size (zero weights, float16; key names
# and shapes from bench/make_sd15_original.py) through `fairy-engine info` and `convert`: the
# inferred configs against the full-size reference configuration, and the time and peak memory of
# each command.
#   bench/checkpoint_sd15.sh [BUILD_DIR] [WORK_DIR]
# Needs ~4.5 GB of disk in WORK_DIR (default: a temp folder, removed at the end) and ~5 GB of RAM.
set -euo pipefail
build=${1:-build}
work=${2:-$(mktemp -d)}
ref="$(cd "$(dirname "$0")/.." && pwd)/../shared/fixtures/ip2p-sd15-config"
engine="$build/bin/fairy-engine"
trap '[ -z "${2:-}" ] && rm -rf "$work"' EXIT
python3 "$(dirname "$0")/make_sd15_original.py" "$work/sd15.safetensors"
for cmd in "info $work/sd15.safetensors" "convert $work/sd15.safetensors --output $work/sd15-diffusers"; do
  /usr/bin/time -f "%e s, peak RSS %M KiB" -o "$work/time" "$engine" $cmd > "$work/out" 2>&1 || { cat "$work/out"; exit 1; }
  echo "fairy-engine ${cmd%% *}: $(cat "$work/time"); $(tail -1 "$work/out")"
done
if [ -d "$ref" ]; then
  python3 - "$ref" "$work/sd15-diffusers" <<'PY'
import json, sys
ref, got = sys.argv[1], sys.argv[2]
for part, name in [("unet", "config.json"), ("vae", "config.json"), ("text_encoder", "config.json"),
                   ("scheduler", "scheduler_config.json")]:
    a = json.load(open(f"{ref}/{part}/{name}"))
    b = json.load(open(f"{got}/{part}/{name}"))
    differ = {k: (a[k], b[k]) for k in a if k in b and a[k] != b[k] and not k.startswith("_")}
    absent = sorted(k for k in a if k not in b and not k.startswith("_"))
    print(f"{part}: {'same values' if not differ else 'DIFFER ' + str(differ)}"
          f"{'; not written (diffusers defaults): ' + ', '.join(absent) if absent else ''}")
    if differ:
        sys.exit(1)
PY
fi
