"""duality: sample- and dimension-contrastive self-supervised learning in JAX.

See README.md. The loss library is `duality.losses`; a trained encoder is `duality.load(workdir)`.
"""
__version__ = "0.1.0"


def load(workdir: str, step: int | None = None):
    """A trained encoder from a workdir (newest checkpoint, or `step`): `.encode(images)`, `.config`.

    See duality/pretrained.py.
    """
    from duality import pretrained

    return pretrained.load(workdir, step)
