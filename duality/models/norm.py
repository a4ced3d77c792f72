"""BatchNorm shared by every model: statistics over the global batch.

With `axis_name` set (inside the data-parallel step), flax averages the
batch mean and variance over devices, i.e. SyncBatchNorm. Compute may run
in `dtype` (bf16) while scale, bias and running statistics stay float32.
"""
import functools

import flax.linen as nn
import jax.numpy as jnp


def batch_norm(train: bool, axis_name, dtype=jnp.float32, zero_init: bool = False, name=None, affine: bool = True):
    return nn.BatchNorm(
        use_running_average=not train, momentum=0.9, epsilon=1e-5, axis_name=axis_name if train else None,
        dtype=dtype, param_dtype=jnp.float32, use_scale=affine, use_bias=affine,
        scale_init=nn.initializers.zeros if zero_init else nn.initializers.ones, name=name)


conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")  # He init, as torchvision's ResNet
conv = functools.partial(nn.Conv, use_bias=False, kernel_init=conv_init, param_dtype=jnp.float32)
