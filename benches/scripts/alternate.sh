#!/usr/bin/env bash
# Two stylize binaries, one `bench` run each in turn, ROUNDS times: the median step of each run,
# its peak RSS and system time, so that both meet the same machine state.
#
#   benches/scripts/alternate.sh OLD_BINARY NEW_BINARY ROUNDS --size 512 --iters 4
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,5p' "$0"; exit 2; }
a=$1 b=$2 rounds=$3
shift 3
for _ in $(seq "$rounds"); do
  for bin in "$a" "$b"; do
    out=$( { /usr/bin/time -f "TIME %M %S" "$bin" bench "$@" --json; } 2>&1 )
    median=$(echo "$out" | grep '^{' | python3 -c 'import json, sys; print("%.3f" % json.load(sys.stdin)["median_s"])')
    echo "$bin $median s, peak $(echo "$out" | grep '^TIME' | awk '{printf "%.0f MiB, system %s s", $2 / 1024, $3}')"
  done
done
