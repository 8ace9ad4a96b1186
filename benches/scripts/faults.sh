#!/usr/bin/env bash
# Two stylize binaries alternately (or one binary under two GLIBC_TUNABLES settings), three
# rounds of apply, Gatys and training benchmarks, each with its median time, peak RSS, page
# faults and system time (benches/README.md, "Huge pages"). Needs /usr/bin/time.
#
#   OLD=path/to/stylize-before NEW=target/release/stylize benches/scripts/faults.sh
#   OLD=BIN NEW=BIN NEW_TUNABLES=glibc.malloc.hugetlb=1 benches/scripts/faults.sh
set -u
cd "$(dirname "$0")/../.."
: "${OLD:?the binary before}" "${NEW:=target/release/stylize}" "${NEW_TUNABLES:=}"
run() { # label bin tunables args...
  local label=$1 bin=$2 tunables=$3
  shift 3
  local out med rss
  out=$(GLIBC_TUNABLES=$tunables /usr/bin/time -f "RSS %M faults %R sys %S" "$bin" "$@" --json 2>&1)
  med=$(echo "$out" | grep median_s | python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["median_s"])')
  rss=$(echo "$out" | grep "^RSS" | awk '{printf "%.0f MiB, %d faults, sys %s", $2/1024, $4, $6}')
  echo "$label | $* | $med s | $rss"
}
for round in 1 2 3; do
  echo "== round $round $(date -u +%H:%M:%S)"
  for args in "bench --apply starry_night --size 512 --iters 10" "bench --size 512 --iters 3" \
    "bench --train --size 256 --iters 5" "bench --apply starry_night --size 1024 --iters 5" "bench --size 1024 --iters 2"; do
    # shellcheck disable=SC2086 # each args string is the words of one command
    run old "$OLD" "" $args
    # shellcheck disable=SC2086
    run new "$NEW" "$NEW_TUNABLES" $args
  done
done
echo "== end $(date -u +%H:%M:%S)"
