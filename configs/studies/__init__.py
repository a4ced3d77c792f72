"""Study configs for `python -m duality.study` (see duality/study.py)."""
import ml_collections

from configs import base

# The "tiny" argument of every study: the test suite's tiny scale (configs/base.TINY), two steps.
TINY = [*base.TINY, ("train.steps", 2)]


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
