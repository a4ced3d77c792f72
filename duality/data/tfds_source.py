"""tensorflow-datasets sources with fixed-size images: cifar10, cifar100, stl10.

Each host reads only its own shard of the split (`tfds.split_for_jax_process`)
and holds it in memory as uint8; batches then come from the same
step-indexed pipeline as Fashion-MNIST (pipeline.InMemory over the host's
shard, with a per-host seed), so order is deterministic given the seed and
the data position is the step. STL-10 pretrains on its 100,000-image
"unlabelled" split and probes on train/test.

The data must already be prepared in the tfds data directory
(`tfds build <name>` on a machine with internet, then copy ~/tensorflow_datasets);
nothing is downloaded at run time.
"""
from __future__ import annotations

import numpy as np

SPECS = {  # name: (image size, channels, classes, pretraining split, probe train split, test split)
    "cifar10": (32, 3, 10, "train", "train", "test"),
    "cifar100": (32, 3, 100, "train", "train", "test"),
    "stl10": (96, 3, 10, "unlabelled", "train", "test"),
}


def _load(name: str, split: str, data_dir, per_host: bool) -> dict[str, np.ndarray]:
    import tensorflow_datasets as tfds

    if per_host:
        split = tfds.split_for_jax_process(split, drop_remainder=True)
    try:
        ds = tfds.load(name, split=split, data_dir=data_dir or None, download=False, as_supervised=False)
    except (AssertionError, FileNotFoundError, OSError) as e:
        raise FileNotFoundError(
            f"tfds data set {name!r} (split {split!r}) is not prepared in {data_dir or '~/tensorflow_datasets'}: "
            f"run `tfds build {name}` where there is internet and copy the directory, or set data.data_dir. "
            f"({type(e).__name__}: {str(e)[:200]})") from None
    images, labels = [], []
    for d in tfds.as_numpy(ds.batch(1024)):  # (batch(-1) crashes TF on data sets of unknown size)
        images.append(np.asarray(d["image"], np.uint8))
        labels.append(np.asarray(d["label"], np.int32) if "label" in d else np.full((len(d["image"]),), -1, np.int32))
    return {"image": np.concatenate(images), "label": np.concatenate(labels)}


def load(name: str, data_dir=None) -> tuple[dict, dict, dict]:
    """(this host's pretraining shard, probe train split, test split) as uint8/int32 arrays."""
    if name not in SPECS:
        raise ValueError(f"unknown tfds source {name!r}; choose one of {sorted(SPECS)}")
    _, _, _, pre, train, test = SPECS[name]
    pretrain = _load(name, pre, data_dir, per_host=True)
    return pretrain, _load(name, train, data_dir, per_host=False), _load(name, test, data_dir, per_host=False)
