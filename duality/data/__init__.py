"""Data sources. Every source gives the trainer the same thing: host-local
batches indexed by step (`train.batch(step)`), plus the labelled train/test
arrays for probing. Batches are {"image": uint8 [B, H, W, C], "label": int32
[B]} from fixed-size sources, whose augmentation happens entirely on device
(augment.py), or {"views": uint8 [B, V, S, S, C], "label"} (+ "local_views")
from the streaming sources of variable-size images, which crop on the host
(tfds_stream.py) and leave the rest of each view's recipe to the device.
"""
from __future__ import annotations

import jax
import numpy as np

from duality.data import augment, fashion_mnist, pipeline, tfds_source, tfds_stream

SOURCES = ("fashion_mnist", "synthetic") + tuple(tfds_source.SPECS) + tuple(tfds_stream.SPECS)


class Data:
    """Pretraining batches and the labelled splits for probing.

    The probe splits may be given as loaders (zero-argument callables), read
    on first use: a streaming source then decodes them only when a probe
    actually runs, not for every training job.
    """

    def __init__(self, train, train_arrays, test_arrays):
        self.train = train  # pipeline.InMemory or tfds_stream.Stream
        self._loaders = {"train": train_arrays, "test": test_arrays}
        self._arrays = {}

    def _get(self, which):
        if which not in self._arrays:
            v = self._loaders[which]
            self._arrays[which] = v() if callable(v) else v
        return self._arrays[which]

    @property
    def train_arrays(self) -> dict:
        return self._get("train")

    @property
    def test_arrays(self) -> dict:
        return self._get("test")


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
        source = pipeline.InMemory(pretrain, host_batch, seed + 7919 * jax.process_index(),
                                   chunks=jax.local_device_count())
        return Data(train=source, train_arrays=train, test_arrays=test)
    elif tfds_stream.base_name(cfg.name) in tfds_stream.SPECS:
        return _stream(cfg, global_batch, seed)
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
    source = pipeline.InMemory(train, global_batch, seed, jax.process_index(), jax.process_count(),
                               chunks=jax.local_device_count())
    return Data(train=source, train_arrays=train, test_arrays=test)


def _check_shape(cfg, shape):
    if tuple(shape) != (cfg.image_size, cfg.image_size, cfg.channels):
        raise ValueError(f"data: images are {tuple(shape)}, config says {cfg.image_size}x{cfg.image_size}x{cfg.channels}")


def _stream(cfg, global_batch: int, seed: int) -> Data:
    _, pre, train_split, test_split = tfds_stream.SPECS[tfds_stream.base_name(cfg.name)]
    views = [augment.view_spec(v) for v in cfg.views]
    local = [augment.view_spec(cfg.local_view)] * cfg.get("local_views", 0)
    if views[0].size != cfg.image_size:
        raise ValueError(f"data: the first view is {views[0].size}px but data.image_size={cfg.image_size}")
    data_dir = cfg.get("data_dir") or None
    train = tfds_stream.Stream(
        cfg.name, pre, global_batch, seed, [(v.size, v.crop_scale, v.crop_ratio) for v in views],
        [(v.size, v.crop_scale, v.crop_ratio) for v in local], channels=cfg.channels, data_dir=data_dir,
        process_index=jax.process_index(), process_count=jax.process_count(),
        shuffle_buffer=cfg.get("shuffle_buffer", 10_000), limit=cfg.get("train_subset", 0))
    probe_limit = cfg.get("probe_subset", 0)

    def split(name):
        return lambda: tfds_stream.load_eval(cfg.name, name, cfg.image_size, cfg.channels, data_dir, probe_limit)

    return Data(train=train, train_arrays=split(train_split), test_arrays=split(test_split))
