"""The loss library: pure JAX functions, exact on one device and across many.

    from duality import losses
    loss, aux = losses.get("vicreg")(z1, z2, axis_name=None, **hparams)
    losses.names()      # every registered name

z1, z2: [N, M] embeddings of two views, rows are samples (the paper's K is
z.T). Returns a float32 scalar and a dict of float32 scalars. With
`axis_name`, statistics and negatives are over the global batch and
pmean-averaged per-device gradients equal the global-batch gradient (see
collectives.py for the exact convention under shard_map and pmap).

Families: sample_contrastive (simclr, dcl, their -sq/-abs variants,
spectral), dimension_contrastive (vicreg, vicreg_exp, vicreg_ctr,
barlow_twins, tcr, wmse), distillation (byol, simsiam, moco, dino),
clustering (swav). The paper's criteria and identities are in criteria.py,
the normalisations of Table 1 in normalization.py.
"""
from duality.losses.registry import Example, example, get, names, register
from duality.losses.criteria import (
    duality_terms, l_c, l_nc, norm_coupling_bounds, dimension_quartic, sample_quartic)
from duality.losses.normalization import center_dimensions, normalize_embeddings, standardize_dimensions
from duality.losses.sample_contrastive import simclr, dcl, simclr_sq, simclr_abs, dcl_sq, dcl_abs, spectral
from duality.losses.dimension_contrastive import vicreg, vicreg_exp, vicreg_ctr, barlow_twins, tcr, wmse
from duality.losses.distillation import byol, simsiam, moco, dino, dino_center_update
from duality.losses.clustering import swav, sinkhorn
from duality.losses.queue import enqueue, init_queue



def _import_others() -> None:
    """Import every other module here, so a loss in a new file registers itself with no edit to this one."""
    import importlib
    import pkgutil

    for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{m.name}")


_import_others()

__all__ = [
    "Example", "example", "get", "names", "register",
    "l_c", "l_nc", "duality_terms", "norm_coupling_bounds", "sample_quartic", "dimension_quartic",
    "center_dimensions", "normalize_embeddings", "standardize_dimensions",
    "simclr", "dcl", "simclr_sq", "simclr_abs", "dcl_sq", "dcl_abs", "spectral",
    "vicreg", "vicreg_exp", "vicreg_ctr", "barlow_twins", "tcr", "wmse",
    "byol", "simsiam", "moco", "dino", "dino_center_update",
    "swav", "sinkhorn", "enqueue", "init_queue",
]
