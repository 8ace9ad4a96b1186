#!/usr/bin/env bash
# The up-front memory estimate of `stylize run` against the measured peak RSS (issue: within 20%).
#
#   benches/scripts/memory.sh [SIZE...]        # default: 512 1024
#
# For each SIZE it runs 3 steps at one scale on a square photo (SIZE x SIZE), reads the estimate
# the run prints ("estimated peak memory ...") and the peak RSS from GNU time, and prints both and
# their ratio. Adam, because its state (two images) is whole from the first step, while L-BFGS's
# history grows by two images a step up to 100 pairs, so a short L-BFGS run never reaches the
# estimate's peak. Needs /usr/bin/time (Debian: `apt install time`).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${STYLIZE:-target/release/stylize}
[ -x "$bin" ] || cargo build --release --quiet
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
printf '%-6s %12s %12s %8s\n' size estimate_MiB peak_MiB ratio
for size in "${@:-512 1024}"; do
  for s in $size; do
    /usr/bin/time -v "$bin" run data/photos/people_astronaut_portrait.jpg examples/style_starry_night.jpg \
      -o "$dir/out.png" --size "$s" --scales 1 --iters 3 --optimizer adam 2> "$dir/err" || { cat "$dir/err"; exit 1; }
    estimate=$(grep -o 'estimated peak memory [0-9.]* [KMG]iB' "$dir/err" |
      awk '{v=$4; u=$5; m=(u=="GiB")?1024:(u=="KiB")?1/1024:1; printf "%.0f", v*m}')
    peak=$(awk '/Maximum resident set size/ {printf "%.0f", $6/1024}' "$dir/err")
    printf '%-6s %12s %12s %8s\n' "${s}²" "$estimate" "$peak" "$(awk -v e="$estimate" -v p="$peak" 'BEGIN {printf "%.2f", e/p}')"
  done
done
