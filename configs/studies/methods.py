"""Every registered method, each with its own config's recipe, in one table.

  python -m duality.study --config=configs/studies/methods.py:full --workdir=studies/methods
  python -m duality.study --config=configs/studies/methods.py:full --workdir=studies/methods --cell=$SLURM_ARRAY_TASK_ID

One cell per method in `duality.methods.names()` (the paper's sample- and
dimension-contrastive criteria and the families beside them), each run from
configs/<method>.py unchanged, then probed (linear, kNN, 1%/10% labels) and
analysed (RankMe, L_c / L_nc, Prop. 3.1) like every study cell. The point is
one comparable table: the same data, encoder, budget and probe for all.

arg: "full" = each config's 3-epoch Fashion-MNIST recipe, seeds 0, 1, 2 (about
12 minutes per cell on a 2-core CPU, so run it as an array job or leave it overnight; the
top-1 of each, run through `duality.main`, is in that config's docstring and
the README), "short" = 1 epoch per cell, "tiny" = a few steps on a data
subset (the test suite).
"""
from configs.studies import TINY, new_study
from duality import methods

ARGS = ("full", "short", "tiny")


def get_config(arg: str = "full"):
    c = new_study("methods", arg, ARGS, __doc__)
    c.entries = [dict(name=name, config=name) for name in methods.names()]
    c.common = {"full": [], "short": [("train.epochs", 1)]}.get(arg, [])
    c.seeds = [0, 1, 2] if arg == "full" else []  # mean ± std and a 95% interval per method
    if arg == "tiny":
        c.analysis_samples = 64
        c.common = list(TINY)
    return c
