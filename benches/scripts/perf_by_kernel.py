#!/usr/bin/env python3
"""Where a profile's time goes, summed per kernel: the innermost named function of the
`tensor`, `nn`, `vgg` or `stylize` crates on each sampled stack, with the one that called it.

`perf report`'s own per-symbol lines split one kernel over the closures rayon and the
compiler make of it (`Fn<A> for &F>::call`, `try_trait::Wrapped`...); this walks each
stack from the leaf to the first frame that names a kernel. Stacks need DWARF unwinding
(the build has no frame pointers):

    perf record -F 499 --call-graph dwarf,16384 -o train.data \\
        target/release/stylize bench --train --size 256 --iters 4
    benches/scripts/perf_by_kernel.py train.data

Prints percent of all samples, largest first. Frames of the SIMD helpers and the GEMM
micro-kernel are skipped, so their time is counted in the kernel that inlines them.
"""
import collections
import re
import subprocess
import sys

OURS = re.compile(r"^<?(tensor|nn|vgg|stylize_cli|stylize)::")
SKIP = ("simd::", "microkernel")


def kernel(frames):
    """`kernel <- caller` for one stack (leaf first). A stack with no named frame of ours but a
    closure of ours (a rayon task, whose outer frames are rayon's) is `leaf <- function` of the
    closure, so that a `memcpy` or a page fault in a task is charged to the kernel that made the
    task; a stack with neither is its leaf."""
    named, closure = [], None
    for f in frames:
        if not OURS.search(f) or any(s in f for s in SKIP):
            continue
        if f.endswith("}}"):
            closure = closure or f.split("::{{")[0]
            continue
        short = f if not named else f.split("::")[-1]
        if not named or named[-1] != short:
            named.append(short)
        if len(named) == 2:
            break
    if named:
        return " <- ".join(named)
    if closure:
        return closure if OURS.search(frames[0]) else f"{frames[0][:30]} <- {closure}"
    return frames[0][:60]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    report = subprocess.run(
        ["perf", "report", "-i", sys.argv[1], "--no-children", "--stdio", "-g",
         "folded,0,callee,function,percent", "--percent-limit", "0"],
        capture_output=True, text=True, check=True).stdout
    totals = collections.Counter()
    for line in report.splitlines():
        m = re.match(r"([0-9.]+)%\s+(.*;.*)", line)
        if m:
            frames = [f.replace(" (inlined)", "") for f in m.group(2).split(";")]
            totals[kernel(frames)] += float(m.group(1))
    for name, percent in totals.most_common(int(sys.argv[2]) if len(sys.argv) > 2 else 30):
        print(f"{percent:6.2f}%  {name}")


if __name__ == "__main__":
    main()
