"""Training curves from a workdir's metrics.jsonl, as a PNG beside it."""
from __future__ import annotations

import json
import os

PANELS = (("loss", "loss"), ("probe_top1", "online probe top-1"), ("z_std", "embedding std (1 = spread, 0 = collapsed)"),
          ("lr", "learning rate"))


def read_metrics(workdir: str) -> list[dict]:
    from duality import fileio

    text = fileio.read_text(os.path.join(workdir, "metrics.jsonl"))
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    # A resumed run re-logs steps after its last checkpoint: keep the newest line per step.
    return sorted({r["step"]: r for r in rows}.values(), key=lambda r: r["step"])


def plot_training(workdir: str, out: str | None = None) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(workdir)
    out = out or os.path.join(workdir, "training_curves.png")
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4 * len(PANELS), 3.2))
    steps = [r["step"] for r in rows]
    for ax, (key, title) in zip(axes, PANELS):
        ax.plot(steps, [r.get(key, float("nan")) for r in rows])
        ax.set(title=title, xlabel="step")
    fig.suptitle(os.path.basename(os.path.normpath(workdir)))
    fig.tight_layout()
    from duality import fileio

    fileio.save_figure(fig, out, dpi=110)
    plt.close(fig)
    return out
