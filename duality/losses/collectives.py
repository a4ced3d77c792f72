"""Global-batch statistics for losses that run per device.

Every loss takes `axis_name`. When it is None the loss sees the whole batch.
When it names a mapped axis (`jax.shard_map` or `jax.pmap`), each device holds
`n` rows of a global batch of `N = n * axis_size` rows, and the loss must
return the value it would have on the concatenated global batch. The helpers
here are the only places where losses talk across devices, so that rule is
enforced in one file.

Gradient convention (the one pmap has always had). A loss returns a
*per-device* value: every device holds the same number, and the cotangent
each device seeds is its own. Differentiable collectives then sum those
cotangents in their transposes (all_gather -> psum_scatter), so each device's
gradient for shared parameters is `axis_size` times its share, and `pmean`
over devices gives exactly the single-device gradient on the global batch.
This is the classic silent multi-GPU bug in reverse: a gather whose backward
does not sum (or a raw all-reduce outside autodiff) leaves gradients short by
a factor of the world size while the loss curve looks normal.

`jax.shard_map` with `check_vma=True` (its default) types values as
device-invariant (after `psum`) or device-varying; the gradient of an
invariant output is *not* seeded per device, which would make the
pmean-averaged gradient 1/axis_size too small. `per_device` therefore marks
every loss output as varying. Under `check_vma=True`, differentiate with
respect to parameters cast to varying (`jax.lax.pcast(p, axis, to="varying")`)
and `pmean` the gradients: the program pmap runs. Under `check_vma=False` and
under `jax.pmap` nothing needs doing.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def axis_size(axis_name) -> int:
    """Number of devices along `axis_name` (1 when None); a static int."""
    return 1 if axis_name is None else lax.axis_size(axis_name)


def global_rows(z, axis_name) -> int:
    """Global batch size N for per-device rows `z` ([n, ...])."""
    return z.shape[0] * axis_size(axis_name)


def first_row(n_local: int, axis_name):
    """Index of this device's first row in the global batch."""
    if axis_name is None:
        return 0
    return lax.axis_index(axis_name) * n_local


def gather(x, axis_name):
    """Concatenate rows of `x` from every device, in device order.

    Differentiable: the transpose of `lax.all_gather` sums the cotangents of
    all devices and hands each device its own slice.
    """
    if axis_name is None:
        return x
    return lax.all_gather(x, axis_name, axis=0, tiled=True)


def gather_replicated(x, axis_name):
    """Rows of every device as one replicated array, without gradient.

    Each device's rows are placed in a zero block of the global shape and
    summed over devices. Unlike `lax.all_gather` (whose result is typed
    device-varying under `shard_map(check_vma=True)`), the result is typed
    device-invariant, so it can be stored in replicated state such as a
    MoCo or SwAV queue. Exact (adds zeros); costs one all-reduce.
    """
    if axis_name is None:
        return jax.lax.stop_gradient(x)
    x = jax.lax.stop_gradient(x)
    n = x.shape[0]
    block = jnp.zeros((n * axis_size(axis_name),) + x.shape[1:], x.dtype)
    block = lax.dynamic_update_slice_in_dim(block, x, first_row(n, axis_name), axis=0)
    return lax.psum(block, axis_name)


def total(x, axis_name):
    """Sum of `x` over devices (identity on one device)."""
    if axis_name is None:
        return x
    return lax.psum(x, axis_name)


def global_max(x, axis_name):
    if axis_name is None:
        return x
    return lax.pmax(x, axis_name)


def batch_sum(x, axis_name):
    """Sum over the global batch (axis 0 of every device's rows)."""
    return total(jnp.sum(x, axis=0), axis_name)


def batch_mean(x, axis_name):
    """Mean over the global batch (axis 0 of every device's rows)."""
    return batch_sum(x, axis_name) / global_rows(x, axis_name)


def per_device(x, axis_name):
    """Mark `x` as varying over `axis_name`, leaving its value unchanged.

    Adding a zero derived from the device index makes an invariant value
    varying under `shard_map(check_vma=True)` (JAX inserts the cast, whose
    transpose sums per-device cotangents); on an already-varying value, under
    `check_vma=False` and under pmap, it is a no-op. See the module docstring.
    """
    if axis_name is None:
        return x
    zero = lax.axis_index(axis_name) * 0
    return jax.tree.map(lambda v: v + zero.astype(v.dtype), x)


# Counts such as N * M or N^2 M exceed int32 at pod scale (N = 32768, M = 8192);
# jax turns a Python int operand into an int32 constant, so every such product
# is divided as a Python float. tests/test_losses_inputs.py traces each loss
# at N = 32768, M = 65536 to keep it that way.
