#!/usr/bin/env bash
# The quality check of the shipped models (issue: "no higher than `stylize run --iters 20
# --scales 1`"): on photos never seen in training, at 256 px, the total loss (our loss, default
# weights) of `apply`'s picture against the loss `run` reaches after N L-BFGS steps.
#
#   models/quality.sh OUT_DIR PHOTO...
#
# MODELS_DIR=DIR scores the models in DIR instead of the shipped ones (each NAME.safetensors
# against examples/style_NAME.jpg). SIZE=PX scores at another size than the issue's 256 (the
# longest side, for apply, eval and run alike). INIT=noise starts `run` from noise (`--init noise --seed 0`,
# 300 steps) instead of the photo, as Johnson's own Gatys implementation does by default.
# For each shipped model and photo it writes OUT_DIR/PHOTO.MODEL.apply.png and .run20.png, and
# prints: the model's loss, run's loss after 20 steps, and the first step at which run's loss
# falls below the model's (of 100, or 300 from noise; ">100" if never), i.e. the iteration count
# the model matches.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,10p' "$0"; exit 2; }
out=$1
shift
mkdir -p "$out"
cargo build --release --quiet
bin=target/release/stylize
init=() iters=101 size=${SIZE:-256}
[ "${INIT:-content}" = noise ] && init=(--init noise --seed 0) iters=301
printf '%-28s %-14s %12s %12s %s\n' photo model apply run20 "run steps to match"
for photo in "$@"; do
  base=$(basename "${photo%.*}")
  for model in "${MODELS_DIR:-models}"/*.safetensors; do
    name=$(basename "$model" .safetensors)
    style=examples/style_$name.jpg
    $bin apply "$model" "$photo" --size "$size" -o "$out/$base.$name.apply.png" --quiet
    model_loss=$($bin eval --content "$photo" --style "$style" --size "$size" --image "$out/$base.$name.apply.png" --json |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
    $bin run "$photo" "$style" --size "$size" --scales 1 --iters "$iters" --min-change 0 "${init[@]}" -o "$out/$base.$name.run$((iters - 1)).png" \
      --log "$out/$base.$name.run.csv" --quiet
    # Row k+1 of the log is the loss at the start of step k+1, i.e. after k steps.
    read -r run20 match < <(python3 - "$out/$base.$name.run.csv" "$model_loss" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
model = float(sys.argv[2])
after = {int(r["step"]) - 1: float(r["total"]) for r in rows}
match = next((k for k in sorted(after) if after[k] <= model), None)
print(after[20], match if match is not None else ">%d" % max(after))
PY
)
    $bin run "$photo" "$style" --size "$size" --scales 1 --iters 20 "${init[@]}" -o "$out/$base.$name.run20.png" --quiet
    printf '%-28s %-14s %12.4e %12.4e %s\n' "$base" "$name" "$model_loss" "$run20" "$match"
  done
done
