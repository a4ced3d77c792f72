"""Fashion-MNIST, offline, from Debian's `dataset-fashion-mnist` package.

The package installs the four gzipped IDX files of Xiao et al. (2017) under
/usr/share/datasets/fashion-mnist/. They are read with numpy into memory
(60,000 train / 10,000 test 28x28 grayscale images, 10 classes, 55 MB).
"""
from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def _read_idx(path: str, expect_dims: int) -> np.ndarray:
    """Parse an IDX file: magic 0x00 0x00 <dtype 0x08 = uint8> <ndim>, big-endian int32 dims, data."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:  # not gzip, truncated, or corrupt
        raise ValueError(f"{path} cannot be read ({type(e).__name__}: {e}): the file is damaged or truncated; "
                         f"re-install the data set (sudo apt-get install --reinstall dataset-fashion-mnist) or "
                         f"point $DUALITY_FASHION_MNIST_DIR at a good copy") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] != expect_dims:
        raise ValueError(f"{path}: not a uint8 IDX file with {expect_dims} dimensions (bad magic {raw[:4]!r})")
    if len(raw) < 4 + 4 * expect_dims:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes); re-install the data set")
    dims = np.frombuffer(raw, ">i4", count=expect_dims, offset=4)
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * expect_dims)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {tuple(dims)} but holds {data.size} values (truncated file?)")
    return data.reshape(tuple(int(d) for d in dims))


def load(split: str, data_dir: str | None = None) -> dict[str, np.ndarray]:
    """{"image": uint8 [N, 28, 28, 1], "label": int32 [N]} for split "train" or "test"."""
    if split not in FILES:
        raise ValueError(f"fashion_mnist: unknown split {split!r}; use 'train' or 'test'")
    data_dir = data_dir or os.environ.get("DUALITY_FASHION_MNIST_DIR", DEFAULT_DIR)
    img_file, lbl_file, count = FILES[split]
    paths = [os.path.join(data_dir, f) for f in (img_file, lbl_file)]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(
            f"fashion_mnist: {', '.join(missing)} not found. Install the offline copy with "
            f"`sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or point "
            f"config.data.data_dir (or $DUALITY_FASHION_MNIST_DIR) at a folder holding {img_file} and {lbl_file}.")
    images = _read_idx(paths[0], 3)
    labels = _read_idx(paths[1], 1)
    if images.shape != (count, 28, 28) or labels.shape != (count,):
        raise ValueError(f"fashion_mnist/{split}: expected {count} 28x28 images and labels, "
                         f"got {images.shape} and {labels.shape}")
    if labels.max() >= len(CLASSES):
        raise ValueError(f"fashion_mnist/{split}: label {labels.max()} out of range")
    return {"image": images[..., None], "label": labels.astype(np.int32)}
