#!/usr/bin/env bash
# Trains one shipped model exactly as it was trained: models/train.sh NAME STYLE [extra train flags]
#
#   models/train.sh starry_night examples/style_starry_night.jpg
#
# The photos are the 35 in data/photos under CC0, public domain or CC BY (the licence column of
# data/photos/README.md names neither BY-SA nor GPL), so the weights derive from no copyleft
# picture. They are linked into a temporary folder, since `train --photos` reads a folder.
# Everything is written to models/NAME.*: the model, its checkpoint (.ckpt, for --resume), the
# loss log (.log.csv) and the preview of a fixed photo (.preview.png). Run it again with
# --resume after an interruption; the rest of the command must stay the same. `--border 0`: the
# shipped models were trained before `train` learnt to mirror a border around its crops as
# `apply` does (now the default, see models/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,3p' "$0"; exit 2; }
name=$1 style=$2
shift 2
photos=$(mktemp -d)
trap 'rm -rf "$photos"' EXIT
grep -E '^\| `[a-z_]+\.jpg` \|' data/photos/README.md | grep -v -E 'BY-SA|GPL' |
  sed -E 's/^\| `([^`]+)`.*/\1/' | while read -r f; do ln -s "$PWD/data/photos/$f" "$photos/$f"; done
echo "training on $(ls "$photos" | wc -l) photos" >&2
cargo run --release --quiet -- train "$style" --photos "$photos" -o "models/$name.safetensors" \
  --size 256 --batch 2 --width 16 --steps 4000 --lr-decay 2000 --border 0 --checkpoint-every 50 --preview-every 100 \
  --log "models/$name.log.csv" "$@"
