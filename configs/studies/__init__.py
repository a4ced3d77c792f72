"""Study configs for `python -m duality.study` (see duality/study.py)."""
import ml_collections

from configs import base

# The "tiny" argument of every study: the test suite's tiny scale (configs/base.TINY), two steps.
TINY = [*base.TINY, ("train.steps", 2)]

# The encoder and views every Fashion-MNIST config shares (base.py: 32-64-128-256 channels, crops of 25-100%).
# configs/vicreg.py departs from both since issue 11 (a 512-channel last stage, 40-100% crops); the studies that
# compare VICReg with other methods, or sweep its optimiser, pin them back so that VICReg's cells differ from
# their neighbours in the loss (or the swept knob) only, as when they ran.
_SHARED = base.get_config("fashion_mnist")
SHARED_ENCODER_VIEWS = [("model.widths", tuple(_SHARED.model.widths)),
                        ("data.views", [dict(v) for v in _SHARED.data.views])]


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
