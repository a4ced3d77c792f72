"""Data sources. Every source gives the trainer the same thing: host-local
batches {"image": uint8 [B, H, W, C], "label": int32 [B]} indexed by step
(`train.batch(step)`), plus the labelled train/test arrays for probing.
Augmentation happens on device (augment.py).
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np

from duality.data import fashion_mnist, pipeline, tfds_source

SOURCES = ("fashion_mnist", "synthetic") + tuple(tfds_source.SPECS)


@dataclasses.dataclass
class Data:
    train: pipeline.InMemory  # pretraining batches
    train_arrays: dict  # labelled train split (probing)
    test_arrays: dict  # labelled test split (probing)


def build(cfg, global_batch: int, seed: int) -> Data:
    if cfg.name == "fashion_mnist":
        train = fashion_mnist.load("train", cfg.get("data_dir") or None)
        test = fashion_mnist.load("test", cfg.get("data_dir") or None)
    elif cfg.name in tfds_source.SPECS:
        pretrain, train, test = tfds_source.load(cfg.name, cfg.get("data_dir") or None)
        if cfg.get("train_subset"):
            pretrain = {k: v[: cfg.train_subset] for k, v in pretrain.items()}
        _check_shape(cfg, pretrain["image"].shape[1:])
        # This host's shard only: the host batch comes from it, with a per-host seed.
        host_batch = global_batch // jax.process_count()
        source = pipeline.InMemory(pretrain, host_batch, seed + 7919 * jax.process_index())
        return Data(train=source, train_arrays=train, test_arrays=test)
    elif cfg.name == "synthetic":  # random images of the configured shape: benchmarks and smoke tests
        rng = np.random.default_rng(seed)
        shape = (cfg.image_size, cfg.image_size, cfg.channels)
        n = max(cfg.get("train_subset") or 0, 4 * global_batch)
        train = {"image": rng.integers(0, 256, (n,) + shape, np.uint8),
                 "label": rng.integers(0, cfg.num_classes, (n,)).astype(np.int32)}
        test = {k: v[: max(n // 6, 1)] for k, v in train.items()}
    else:
        raise ValueError(f"data.name={cfg.name!r}: choose one of {SOURCES}")
    if cfg.get("train_subset"):
        train = {k: v[: cfg.train_subset] for k, v in train.items()}
        test = {k: v[: max(cfg.train_subset // 6, 1)] for k, v in test.items()}
    _check_shape(cfg, train["image"].shape[1:])
    source = pipeline.InMemory(train, global_batch, seed, jax.process_index(), jax.process_count())
    return Data(train=source, train_arrays=train, test_arrays=test)


def _check_shape(cfg, shape):
    if tuple(shape) != (cfg.image_size, cfg.image_size, cfg.channels):
        raise ValueError(f"data: images are {tuple(shape)}, config says {cfg.image_size}x{cfg.image_size}x{cfg.channels}")
