#!/usr/bin/env bash
# A later stage of a shipped model: models/tune.sh NAME STYLE START [STAGE] [extra train flags]
#
#   models/tune.sh starry_night examples/style_starry_night.jpg /tmp/stage1/starry_night.safetensors
#   models/tune.sh starry_night examples/style_starry_night.jpg /tmp/stage2/starry_night.safetensors 4
#
# Trains the network of START (copy it out of models/ first, since this writes there) further
# with the mirrored border `apply` uses, Adam afresh (`--init`) at a rate that falls linearly to
# zero over the stage, on other crops than the stages before (another seed):
#   stage 2 (the default): from the first stage (models/train.sh, trained without the border),
#     1,600 steps from 5e-4, seed 1, log NAME.tune.log.csv;
#   stage 3: from the second stage, 1,000 steps from 2.5e-4, seed 2, log NAME.tune3.log.csv
#     (tried and not shipped: no better on unseen photos, see models/README.md);
#   stage 4: from the second stage, with the output bounded (`--output-range soft`, so the loss
#     is the saved picture's), 1,600 steps from 5e-4, seed 3, log NAME.tune4.log.csv (tried and
#     not shipped: no better on unseen photos, see models/README.md).
# Stages 2 and 3 keep the raw output the first stage was trained with (`--output-range clamp`).
# The photos are those of models/photos.sh. Everything is written to models/NAME.* (or
# $MODELS_DIR/NAME.*): the model, its checkpoint (.ckpt, for --resume), the loss log and the
# preview (.preview.png). Run it again with --resume after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n '2,4p' "$0"; exit 2; }
name=$1 style=$2 start=$3
shift 3
stage=2
if [ $# -gt 0 ] && [[ $1 != -* ]]; then stage=$1; shift; fi
case $stage in
  2) steps=1600 lr=5e-4 seed=1 log=tune range=clamp ;;
  3) steps=1000 lr=2.5e-4 seed=2 log=tune3 range=clamp ;;
  4) steps=1600 lr=5e-4 seed=3 log=tune4 range=soft ;;
  *) echo "tune.sh: no stage $stage (2, 3 or 4)" >&2; exit 2 ;;
esac
dir=${MODELS_DIR:-models}
. models/photos.sh
cargo run --release --quiet -- train "$style" --photos "$photos" -o "$dir/$name.safetensors" --init "$start" \
  --size 256 --batch 2 --width 16 --steps $steps --lr $lr --lr-decay $steps --seed $seed --border 16 --output-range $range \
  --checkpoint-every 50 --preview-every 100 --log "$dir/$name.$log.log.csv" "$@"
