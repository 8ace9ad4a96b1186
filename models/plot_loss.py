"""Plots a `stylize train --log LOG.csv` loss log as the PNG beside each shipped model.

    pip install matplotlib
    python3 models/plot_loss.py models/starry_night.log.csv models/starry_night.loss.png

Docs tooling only: stylize never needs Python. The curves are the batch losses of each step
(noisy, since every step sees other crops) with a 50-step running mean over them.
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def running_mean(values, n=50):
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= n:
            acc -= values[i - n]
        out.append(acc / min(i + 1, n))
    return out


def main(log_path, png_path):
    with open(log_path) as f:
        rows = list(csv.DictReader(f))
    step = [int(r["step"]) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for key, colour in [("total", "black"), ("style", "tab:blue"), ("content", "tab:orange")]:
        values = [float(r[key]) for r in rows]
        ax.plot(step, values, color=colour, alpha=0.15, linewidth=0.6)
        ax.plot(step, running_mean(values), color=colour, linewidth=1.6, label=key)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (default weights: content 1, style 1, tv 0.001)")
    ax.set_title(png_path.rsplit("/", 1)[-1].replace(".loss.png", "").replace("_", " "))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
