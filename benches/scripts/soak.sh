#!/usr/bin/env bash
# Soak: 1,000 L-BFGS steps at 256 px in one process, with the resident memory sampled every
# second and reported as the peak within each 100-step window. Not a CI test (about 10 minutes
# on 2 cores); its result is recorded in benches/README.md. Memory must not grow: the peak of
# the last window may exceed the first window's by less than 5%.
#
# Usage: benches/scripts/soak.sh [STEPS] [SIZE]     (from the repository root, after a release build)
set -euo pipefail
steps=${1:-1000}
size=${2:-256}
bin=${STYLIZE:-target/release/stylize}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$bin" run examples/content_tubingen.jpg examples/style_starry_night.jpg -o "$dir/out.png" \
    --size "$size" --scales 1 --iters "$steps" --min-change 0 --log "$dir/log.csv" --quiet &
pid=$!
samples="$dir/samples"
while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    done_steps=0
    [ -f "$dir/log.csv" ] && done_steps=$(($(wc -l < "$dir/log.csv") - 1))
    [ -n "$rss" ] && echo "$done_steps $rss" >> "$samples"
    sleep 1
done
wait "$pid"
# The log is buffered, so a sample's step count lags by up to ~50 steps; windows are by that count.
awk -v steps="$steps" '
    BEGIN { last = 0 }
    { w = int($1 / 100); if ($2 > peak[w]) peak[w] = $2; if (w > last) last = w }
    END {
        for (w = 0; w <= last && w * 100 < steps; w++)
            if (w in peak) printf "steps %4d-%4d: peak RSS %7.1f MB\n", w * 100, w * 100 + 99, peak[w] / 1024
        first = peak[0]; end = peak[last]
        growth = (end - first) / first * 100
        printf "growth from the first window to the last: %+.1f%% (%s)\n", growth, (growth < 5 ? "under 5%: pass" : "FAIL")
        exit (growth < 5 ? 0 : 1)
    }' "$samples"
