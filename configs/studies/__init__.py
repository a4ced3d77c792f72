"""Study configs for `python -m duality.study` (see duality/study.py)."""
import ml_collections

# The "tiny" argument of every study: a few steps on a data subset, for the test suite.
TINY = [("data.train_subset", 240), ("data.global_batch", 16), ("model.widths", (8, 16)), ("train.steps", 2),
        ("train.log_every", 1), ("optim.warmup_steps", 1)]


def new_study(kind: str, arg: str, args: tuple, doc: str) -> ml_collections.ConfigDict:
    """The fields every Fashion-MNIST study starts with; `arg` checked against `args`."""
    if arg not in args:
        raise ValueError(f"study argument {arg!r}: choose one of {args}")
    c = ml_collections.ConfigDict()
    c.name = f"{kind} ({arg})"
    # The docstring's first paragraph after the title that is prose, not the indented commands.
    c.description = next(p for p in doc.split("\n\n")[1:] if not p.startswith(" "))
    c.scale = "fashion_mnist"
    c.analysis_samples = 2048
    return c
