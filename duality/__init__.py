"""duality: sample- and dimension-contrastive self-supervised learning in JAX.

See README.md. The loss library is `duality.losses`.
"""
__version__ = "0.1.0"
