"""A training step's FLOPs by XLA's cost analysis, with its convolutions counted.

On CPU, float32 convolutions and training-mode BatchNorm run as oneDNN custom
calls (`duality/models/onednn`). XLA's cost analysis cannot see inside a
custom call and counts it as zero FLOPs, so read from the step that runs, a
ResNet-18 step's count loses its convolutions, nine tenths of its arithmetic,
and a FLOP rate or MFU computed from it would be off by that much. The count
is therefore taken from the same step built with XLA's own ops
(`model.conv_backward="xla"`, `model.norm_impl="xla"`): the same function,
whose convolutions XLA counts at 2 FLOPs per multiply-add. Nothing is run;
the variant is only compiled.
"""
from __future__ import annotations

OPAQUE_PREFIX = "duality_onednn"


def compiled_flops(compiled) -> float:
    """XLA's FLOP count of a compiled step (`jax.stages.Compiled`); NaN where the backend gives none."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", float("nan"))) if cost else float("nan")


def has_opaque_calls(compiled) -> bool:
    """Whether the program calls oneDNN's custom calls, whose FLOPs XLA's count leaves out."""
    return f'custom_call_target="{OPAQUE_PREFIX}' in compiled.as_text()


def with_xla_ops(config):
    """A copy of a run config (ml_collections) whose model's convolutions and BatchNorm are XLA's own ops."""
    c = config.copy_and_resolve_references()
    c.model.conv_backward, c.model.norm_impl = "xla", "xla"
    return c
