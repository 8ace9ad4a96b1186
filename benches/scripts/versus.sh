#!/usr/bin/env bash
# Whole steps of two stylize binaries and PyTorch 2.15, alternately, so that all three meet the
# same machine state (these shared machines drift by 20% within an hour). Run with nothing else
# on the machine; prints one JSON line per measurement, prefixed with who and what.
#
#   OLD=path/to/stylize-before NEW=target/release/stylize PY=venv/bin/python \
#     benches/scripts/versus.sh > versus.out
#
# PyTorch's feed-forward network mirrors the same 16-pixel border as stylize's apply and train.
# Needs PyTorch (`pip install torch numpy pillow` in a virtualenv) and /usr/bin/time.
set -u
cd "$(dirname "$0")/../.."
: "${OLD:?the binary before}" "${NEW:=target/release/stylize}" "${PY:=python3}"
ref=${REFERENCE:-../shared/reference/gatys_reference.py}
for r in 1 2 3; do
  echo "== round $r $(date -u +%H:%M:%S)"
  for b in old new; do
    bin=$OLD; [ $b = new ] && bin=$NEW
    echo "$b gatys 512 $(/usr/bin/time -f rss_kb=%M "$bin" bench --size 512 --iters 3 --json 2>&1 | tr '\n' ' ')"
  done
  echo "torch gatys 512 $(/usr/bin/time -f rss_kb=%M "$PY" "$ref" bench --size 512 --iters 3 --threads 2 2>&1 | tr '\n' ' ')"
  for b in old new; do
    bin=$OLD; [ $b = new ] && bin=$NEW
    echo "$b w16 train $("$bin" bench --train --size 256 --iters 3 --json)"
    echo "$b w32 train $("$bin" bench --train --width 32 --size 256 --iters 3 --json)"
    echo "$b w16 apply 512 $("$bin" bench --apply starry_night --size 512 --iters 5 --json)"
    echo "$b w16 apply 1024 $("$bin" bench --apply starry_night --size 1024 --iters 3 --json)"
  done
  "$PY" benches/scripts/pytorch_feedforward.py --border 16 --threads 2 --width 16 --train 256 --repeats 3 | sed 's/^/torch w16 /'
  "$PY" benches/scripts/pytorch_feedforward.py --border 16 --threads 2 --width 32 --train 256 --repeats 3 | sed 's/^/torch w32 /'
  # apply times the shipped model, whose output is not bounded (arch johnson2016-s).
  "$PY" benches/scripts/pytorch_feedforward.py --border 16 --threads 2 --width 16 --apply 512 1024 --repeats 5 \
    --output-range clamp | sed 's/^/torch w16 /'
  if [ "$r" -le 2 ]; then
    for b in old new; do
      bin=$OLD; [ $b = new ] && bin=$NEW
      echo "$b gatys 1024 $(/usr/bin/time -f rss_kb=%M "$bin" bench --size 1024 --iters 2 --json 2>&1 | tr '\n' ' ')"
    done
    echo "torch gatys 1024 $(/usr/bin/time -f rss_kb=%M "$PY" "$ref" bench --size 1024 --iters 2 --threads 2 2>&1 | tr '\n' ' ')"
  fi
done
echo "== end $(date -u +%H:%M:%S)"
