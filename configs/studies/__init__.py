"""Study configs for `python -m duality.study` (see duality/study.py)."""

# The "tiny" argument of every study: a few steps on a data subset, for the test suite.
TINY = [("data.train_subset", 240), ("data.global_batch", 16), ("model.widths", (8, 16)), ("train.steps", 2),
        ("train.log_every", 1), ("optim.warmup_steps", 1)]
