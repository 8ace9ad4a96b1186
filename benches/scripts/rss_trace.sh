#!/usr/bin/env bash
# Resident memory of a command over time: samples VmRSS every 20 ms while it runs and prints
# "milliseconds MiB" lines, to see where in a step the peak falls (benches/README.md, "Winograd
# weights per call").
#
#   benches/scripts/rss_trace.sh COMMAND [ARGS...] > trace.txt
set -u
"$@" > /dev/null 2>&1 &
pid=$!
t0=$(date +%s%N)
while kill -0 "$pid" 2>/dev/null; do
  r=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null)
  [ -n "$r" ] && echo "$(( ($(date +%s%N) - t0) / 1000000 )) $((r / 1024))"
  sleep 0.02
done
