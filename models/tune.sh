#!/usr/bin/env bash
# The second stage of a shipped model: models/tune.sh NAME STYLE STAGE1 [extra train flags]
#
#   models/tune.sh starry_night examples/style_starry_night.jpg /tmp/stage1/starry_night.safetensors
#
# Trains the first stage's network (models/train.sh; copy its model out of models/ first, since
# this writes there) further with the mirrored border `apply` uses, which the first stage was
# trained without: 1,600 steps starting from STAGE1 (`--init`), Adam afresh at 5e-4 falling
# linearly to zero over all of them, on other crops than the first stage's (seed 1). The photos
# are those of models/photos.sh. Everything is written to models/NAME.* (or $MODELS_DIR/NAME.*):
# the model, its checkpoint (.ckpt, for --resume), the loss log (.tune.log.csv) and the preview
# (.preview.png). Run it again with --resume after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n '2,3p' "$0"; exit 2; }
name=$1 style=$2 stage1=$3
shift 3
dir=${MODELS_DIR:-models}
. models/photos.sh
cargo run --release --quiet -- train "$style" --photos "$photos" -o "$dir/$name.safetensors" --init "$stage1" \
  --size 256 --batch 2 --width 16 --steps 1600 --lr 5e-4 --lr-decay 1600 --seed 1 --border 16 \
  --checkpoint-every 50 --preview-every 100 --log "$dir/$name.tune.log.csv" "$@"
