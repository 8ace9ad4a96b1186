"""Plots loss against wall time for `stylize run --log` logs: the old and new default schedules.

    pip install matplotlib
    python3 benches/scripts/plot_schedule.py OUT.png TITLE:OLD.csv,NEW.csv [TITLE:OLD.csv,NEW.csv ...]

Docs tooling only: stylize never needs Python. Each log row is the loss at the start of a step,
with that step's seconds; time is their running sum. A dashed line marks each scale change. Beside
each log may sit `NAME.eval.json` (`stylize eval --json` of the saved picture): it is drawn as a
point at the end, since the old schedule's logged loss is not its saved picture's (saving clips
the pixels the optimiser let leave 0..255).
"""

import csv
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def curve(path):
    t, times, losses, changes, scale = 0.0, [], [], [], None
    with open(path) as f:
        for row in csv.DictReader(f):
            if scale is not None and row["scale"] != scale:
                changes.append(t)
            scale = row["scale"]
            t += float(row["seconds"])
            times.append(t)
            losses.append(float(row["total"]))
    return times, losses, changes


def main(out, panels):
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        title, logs = panel.split(":", 1)
        for path, colour in zip(logs.split(","), ["tab:red", "tab:blue", "tab:green"]):
            label = os.path.splitext(os.path.basename(path))[0]
            times, losses, changes = curve(path)
            ax.plot(times, losses, color=colour, label=f"{label}: {times[-1]:.0f} s")
            for c in changes:
                ax.axvline(c, color=colour, linestyle="--", linewidth=0.7)
            evaluated = os.path.splitext(path)[0] + ".eval.json"
            if os.path.exists(evaluated):
                with open(evaluated) as f:
                    total = json.load(f)["total"]
                ax.plot([times[-1]], [total], "o", color=colour, label=f"{label}, saved picture: {total:.3g}")
        ax.set_yscale("log")
        ax.set_ylim(top=2e6)
        ax.set_xlabel("wall time (s)")
        ax.set_ylabel("total loss")
        ax.set_title(title)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
