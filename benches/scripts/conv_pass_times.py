#!/usr/bin/env python3
"""Where a training step's convolution time goes, pass by pass: the `PROF` lines a build with
`conv_pass_times.patch` writes to stderr (one per forward, backward-to-input and
backward-to-weights pass of every convolution the tape runs, with its shape and milliseconds),
summed per step. The patch is a measuring aid, never committed to the engine; it applies to
the commit named in `benches/README.md` next to the figures it made:

    git apply benches/scripts/conv_pass_times.patch && cargo build --release
    CONVPROF=1 target/release/stylize bench --train --size 256 --iters 6 2> passes.log
    git apply -R benches/scripts/conv_pass_times.patch
    benches/scripts/conv_pass_times.py passes.log 7     # 6 timed steps + 1 warm-up

Prints, per shape and pass (F forward, DX input gradient, DW weight gradient), the median time
of one call times the calls a step makes, largest first, then the total of each pass. The
warm-up step's calls are dropped.
"""
import collections
import statistics
import sys


def main(path, steps):
    calls = collections.defaultdict(list)
    for line in open(path):
        if line.startswith("PROF "):
            fields = line.split()
            calls[" ".join(fields[1:-1])].append(float(fields[-1]))
    rows, passes = [], collections.Counter()
    for key, times in calls.items():
        per_step = len(times) // steps
        timed = times[per_step:]  # the warm-up step's calls come first
        step_ms = statistics.median(timed) * per_step
        rows.append((step_ms, key, per_step))
        passes[key.split()[0]] += step_ms
    for step_ms, key, per_step in sorted(rows, reverse=True):
        print(f"{step_ms:7.1f} ms a step  {key}  (x{per_step})")
    print("per pass, ms a step:", ", ".join(f"{k} {v:.0f}" for k, v in passes.most_common()))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]))
