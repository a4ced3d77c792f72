"""Training curves from a workdir's metrics.jsonl, as a PNG beside it.

Eight panels: the loss, each of its terms (as the loss returned them in
`aux`), the online probe, the embedding's spread (z_std) and batch RankMe,
how far each module's weights moved from initialisation (health.drift), the
gradient norm and the learning rate. A run whose weights do not move shows a
flat drift panel near 0; a collapsing one, RankMe falling towards 1.
"""
from __future__ import annotations

import json
import math
import os

from duality import fileio

# Everything the trainer logs that is not a term of the loss.
NOT_TERMS = {"step", "loss", "probe_loss", "probe_top1", "z_std", "rankme_z", "grad_norm", "lr"}


def read_metrics(workdir: str) -> list[dict]:

    text = fileio.read_text(fileio.join(workdir, "metrics.jsonl"))
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    # A resumed run re-logs steps after its last checkpoint: keep the newest line per step.
    return sorted({r["step"]: r for r in rows}.values(), key=lambda r: r["step"])


def loss_terms(rows: list[dict]) -> list[str]:
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    return [k for k in keys if k not in NOT_TERMS and not k.startswith(("drift_", "norm_"))]


def _series(rows, key):
    pts = [(r["step"], r[key]) for r in rows if key in r and r[key] is not None and math.isfinite(r[key])]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_training(workdir: str, out: str | None = None) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(workdir)
    out = out or fileio.join(workdir, "training_curves.png")
    fig, axes = plt.subplots(2, 4, figsize=(18, 7.5))
    ax = axes.ravel()

    def line(a, key, label=None, **kw):
        x, y = _series(rows, key)
        if x:
            a.plot(x, y, label=label or key, **kw)
        return y

    line(ax[0], "loss")
    ax[0].set(title="loss")
    terms = loss_terms(rows)
    positive = True
    for k in terms:
        positive &= all(v > 0 for v in line(ax[1], k))
    if terms and positive:
        ax[1].set_yscale("log")
    ax[1].set(title="loss terms (unweighted)")
    if terms:
        ax[1].legend(fontsize=8)
    line(ax[2], "probe_top1")
    ax[2].set(title="online linear probe top-1 (train batches)")
    line(ax[3], "z_std")
    ax[3].axhline(1.0, color="gray", lw=0.8, ls=":")
    ax[3].set(title="embedding std x sqrt(M) (1 = spread, 0 = collapsed)")
    line(ax[4], "rankme_z")
    ax[4].set(title="batch RankMe of z (1 = collapsed)")
    groups = sorted({k[len("drift_"):] for r in rows for k in r if k.startswith("drift_")})
    for i, g in enumerate(groups):
        colour = f"C{i}"
        line(ax[5], f"drift_{g}", label=f"{g}: ||W-W0||/||W0||", color=colour)
        line(ax[5], f"norm_{g}", label=f"{g}: ||W||/||W0||", color=colour, ls="--", lw=0.8)
    ax[5].set(title="weights vs initialisation")
    if groups:
        ax[5].legend(fontsize=7)
    line(ax[6], "grad_norm")
    ax[6].set(title="gradient norm", yscale="log" if all(v > 0 for v in _series(rows, "grad_norm")[1]) else "linear")
    line(ax[7], "lr")
    ax[7].set(title="learning rate (default group)")
    for a in ax:
        a.set_xlabel("step")
    fig.suptitle(os.path.basename(os.path.normpath(workdir)))
    fig.tight_layout()
    fileio.save_figure(fig, out, dpi=100)
    plt.close(fig)
    return out
