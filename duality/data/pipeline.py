"""Deterministic, host-sharded batches from an in-memory data set.

Batch `step` of the run is a pure function of (seed, step): epoch e uses the
permutation drawn from (seed, e), and global batch b of that epoch is
positions [b * B, (b + 1) * B) of it (the tail of an epoch that does not
fill a batch is dropped). So the data position is the step number: a
resumed run reads exactly the batches the uninterrupted run would have, with
nothing extra in the checkpoint. Each host materialises only its own slice
of every global batch (rows [h * B/H, (h + 1) * B/H)).

Rows are sorted within each device's share of the batch (`chunks` = local
devices), never across shares: sorted reads are faster, and every device
then sees the same examples in the same order whatever the split into hosts,
so 2 hosts x 4 devices train exactly as 1 host x 8 devices.
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class InMemory:
    """Batches of a dict of equally long numpy arrays (images, labels)."""

    arrays: dict[str, np.ndarray]
    global_batch: int
    seed: int = 0
    process_index: int = 0
    process_count: int = 1
    chunks: int = 1  # this host's devices: rows are sorted within each device's share

    def __post_init__(self):
        sizes = {len(v) for v in self.arrays.values()}
        if len(sizes) != 1:
            raise ValueError(f"arrays have different lengths: { {k: len(v) for k, v in self.arrays.items()} }")
        self.size = sizes.pop()
        if self.global_batch > self.size:
            raise ValueError(f"global batch {self.global_batch} exceeds the data set size {self.size}")
        if self.global_batch % self.process_count:
            raise ValueError(f"global batch {self.global_batch} is not divisible by the {self.process_count} hosts")
        self.host_batch = self.global_batch // self.process_count
        if self.host_batch % self.chunks:
            raise ValueError(f"host batch {self.host_batch} is not divisible by the {self.chunks} local devices")
        self.steps_per_epoch = self.size // self.global_batch
        self._perm_epoch, self._perm = None, None

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._perm_epoch != epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.size)
            self._perm_epoch = epoch
        return self._perm

    def indices(self, step: int) -> np.ndarray:
        """Dataset indices of this host's rows of global batch `step`."""
        epoch, b = divmod(step, self.steps_per_epoch)
        start = b * self.global_batch + self.process_index * self.host_batch
        return self._permutation(epoch)[start:start + self.host_batch]

    def batch(self, step: int) -> dict[str, np.ndarray]:
        idx = np.sort(self.indices(step).reshape(self.chunks, -1), axis=1).reshape(-1)
        return {k: v[idx] for k, v in self.arrays.items()}


def eval_batches(arrays: dict[str, np.ndarray], batch: int, process_index: int = 0, process_count: int = 1):
    """Every example once, in order, in batches of `batch` (global); the last one is padded.

    Yields (host-local batch, number of real rows in this host's slice). Padding
    repeats row 0, so shapes stay static for jit; callers drop padded rows.
    """
    n = len(next(iter(arrays.values())))
    host = batch // process_count
    for start in range(0, n, batch):
        idx = np.arange(start + process_index * host, start + (process_index + 1) * host)
        real = int(np.clip(n - idx[0], 0, host))
        idx = np.where(idx < n, idx, 0)
        yield {k: v[idx] for k, v in arrays.items()}, real
