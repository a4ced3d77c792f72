"""The methods that are their loss, applied to the projector outputs of the two views.

Nothing else to carry: no head beyond the projector, no state, no update
beyond the optimiser's. The sample-contrastive family (SimCLR, DCL and the
paper's -sq / -abs variants, spectral contrastive) and the dimension-
contrastive one (VICReg and the paper's VICReg-exp / VICReg-ctr, Barlow
Twins, TCR). Each trains with the loss of the same name; its config block is
`method.loss` with that loss's hyperparameters (duality/losses).
"""
from duality.methods import register
from duality.methods.base import Method

PAIRWISE = ("simclr", "dcl", "simclr_sq", "simclr_abs", "dcl_sq", "dcl_abs", "spectral",
            "vicreg", "vicreg_exp", "vicreg_ctr", "barlow_twins", "tcr")

for _name in PAIRWISE:
    register(_name)(Method)
