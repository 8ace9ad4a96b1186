#!/usr/bin/env bash
# Trains one shipped model exactly as it was trained: models/train.sh NAME STYLE [extra train flags]
#
#   models/train.sh starry_night examples/style_starry_night.jpg
#
# The photos are those of models/photos.sh.
# Everything is written to models/NAME.* (or $MODELS_DIR/NAME.*): the model, its checkpoint (.ckpt, for --resume), the
# loss log (.log.csv) and the preview of a fixed photo (.preview.png). Run it again with
# --resume after an interruption; the rest of the command must stay the same. `--border 0`: this
# first stage was trained before `train` learnt to mirror a border around its crops as `apply`
# does (now the default, see models/README.md), and `--output-range clamp` before it learnt to
# bound its output; models/tune.sh holds the later stages.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,3p' "$0"; exit 2; }
name=$1 style=$2
shift 2
dir=${MODELS_DIR:-models}
. models/photos.sh
cargo run --release --quiet -- train "$style" --photos "$photos" -o "$dir/$name.safetensors" \
  --size 256 --batch 2 --width 16 --steps 4000 --lr-decay 2000 --border 0 --output-range clamp --checkpoint-every 50 --preview-every 100 \
  --log "$dir/$name.log.csv" "$@"
