"""BatchNorm shared by every model: statistics over the global batch.

With `axis_name` set (inside the data-parallel step), the batch mean and mean
square are averaged over devices, i.e. SyncBatchNorm. Compute may run in
`dtype` (bf16) while scale, bias and running statistics stay float32.

Why not `flax.linen.BatchNorm`: the same function written as one affine map,
y = x * m + (b - mean * m) with m = scale / sqrt(var + eps), differentiates
into fewer passes over the activation than flax's (x - mean) * m + b. On a
2-core CPU, forward + backward of BatchNorm + ReLU on 256x28x28x32 took 18
against flax's 26 ms in one run (40 against 90 in another; docs/performance.md). The module keeps flax's names and
layout (params `scale`, `bias`; batch_stats `mean`, `var`; class name
`BatchNorm`, so auto-named scopes stay `BatchNorm_<i>`), its statistics
(fast variance E[x^2] - E[x]^2 in float32, clipped at 0; running averages
with momentum 0.9 of the biased batch variance) and its rule of not
updating running statistics at initialisation: checkpoints written with
either load into the other, and outputs agree to float32 round-off
(tests/test_layers.py).

On CPU, in training mode, for float32 NHWC activations whose statistics are
one device's own (no data-parallel axis, or one of size 1, as in a run on
one CPU device), the normalization and the ReLU that follows it (`relu=True`)
run as two oneDNN calls instead (`models/onednn/batchnorm.cc`): statistics,
normalization and ReLU forward, the full gradient backward, the ReLU's
signs kept as a bit mask. Forward + backward of BatchNorm + ReLU on
ResNet-18's 256x28x28x64 activation took 11.5 against 16.8 ms this way
(benchmarks/batchnorm.py; docs/performance.md, eighth round); in the step,
paired in one process (benchmarks/ab_step.py), the small convnet's is 1.08x
faster, ResNet-18's within the noise (0.98-1.00x: half its BatchNorms feed
the residual addition, where the call is no faster). Its variance is computed in two passes
(mean of squared deviations), which is the more accurate of the two; outputs
and gradients agree with XLA's path to float32 round-off
(tests/test_onednn_batchnorm.py). Across several devices the statistics must
be all-reduced between the two halves of the forward pass, so XLA's path
runs there. `impl` ("auto", "xla", "onednn"; model config `norm_impl`)
overrides the choice.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


class BatchNorm(nn.Module):
    """Batch normalisation over every axis but the last (NHWC or [N, C])."""

    use_running_average: bool = False
    momentum: float = 0.9
    epsilon: float = 1e-5
    axis_name: Any = None
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    use_scale: bool = True
    use_bias: bool = True
    scale_init: Any = nn.initializers.ones
    bias_init: Any = nn.initializers.zeros
    relu: bool = False  # max(y, 0) after the normalization (fused into it where oneDNN runs it)
    impl: str = "auto"  # "auto", "xla" or "onednn": who computes the training-mode normalization

    @nn.compact
    def __call__(self, x):
        features = (x.shape[-1],)
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros(features, jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones(features, jnp.float32))
        if self._onednn(x):
            from duality.models import onednn
            scale = self.param("scale", self.scale_init, features, self.param_dtype) if self.use_scale \
                else jnp.ones(features, jnp.float32)
            bias = self.param("bias", self.bias_init, features, self.param_dtype) if self.use_bias \
                else jnp.zeros(features, jnp.float32)
            y, mean, var = onednn.batch_norm(x, scale.astype(jnp.float32), bias.astype(jnp.float32),
                                             float(self.epsilon), bool(self.relu))
            if self.axis_name is not None:  # one device on the axis: the mean over it only retypes them
                mean, var = jax.lax.pmean(jnp.stack([mean, var]), self.axis_name)
            ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
            ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
            return y
        if self.use_running_average:
            mean, var = ra_mean.value, ra_var.value
        else:
            xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
            axes = tuple(range(x.ndim - 1))
            moments = jnp.stack([jnp.mean(xf, axes), jnp.mean(jnp.square(xf), axes)])
            if self.axis_name is not None and not self.is_initializing():
                moments = jax.lax.pmean(moments, self.axis_name)  # one collective for both moments
            mean = moments[0]
            var = jnp.maximum(0.0, moments[1] - jnp.square(mean))
            if not self.is_initializing():
                ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
                ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
        mul = jax.lax.rsqrt(var + self.epsilon)
        if self.use_scale:
            mul = mul * self.param("scale", self.scale_init, features, self.param_dtype)
        shift = -mean * mul
        if self.use_bias:
            shift = shift + self.param("bias", self.bias_init, features, self.param_dtype)
        y = (x * mul + shift).astype(self.dtype)
        return jax.nn.relu(y) if self.relu else y

    def _onednn(self, x) -> bool:
        """Whether oneDNN's batch normalization (models/onednn/batchnorm.cc) computes this call.

        "auto" picks it for a training-mode float32 NHWC activation on CPU, where the library was built
        (the convolutions' switch, DUALITY_ONEDNN), and where the batch statistics are this device's own:
        no data-parallel axis, or one of size 1. Across devices the statistics are all-reduced between the
        two halves of the forward pass, which a single library call cannot do, so XLA's path runs.
        """
        if self.impl not in IMPLS:
            raise ValueError(f"BatchNorm impl={self.impl!r}: use one of {IMPLS}")
        if self.impl == "xla" or self.use_running_average or self.is_initializing():
            return False
        why = None
        if x.ndim != 4 or x.dtype != jnp.float32 or jnp.dtype(self.dtype) != jnp.float32:
            why = "a float32 NHWC input and output"
        elif jax.default_backend() != "cpu":
            why = "the CPU backend"
        elif self.axis_name is not None and jax.lax.axis_size(self.axis_name) != 1:
            why = "one device on the data-parallel axis"
        else:
            from duality.models import onednn
            if not onednn.available():
                why = f"oneDNN ({onednn.why_not() or 'unavailable'})"
        if why and self.impl == "onednn":
            raise ValueError(f"BatchNorm impl='onednn' needs {why}; use impl='auto' or 'xla'")
        return why is None


IMPLS = ("auto", "xla", "onednn")


def batch_norm(train: bool, axis_name, dtype=jnp.float32, zero_init: bool = False, name=None, affine: bool = True,
               relu: bool = False, impl: str = "auto"):
    return BatchNorm(relu=relu, impl=impl,
        use_running_average=not train, momentum=0.9, epsilon=1e-5, axis_name=axis_name if train else None,
        dtype=dtype, param_dtype=jnp.float32, use_scale=affine, use_bias=affine,
        scale_init=nn.initializers.zeros if zero_init else nn.initializers.ones, name=name)
