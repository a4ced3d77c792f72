"""Data: the offline Fashion-MNIST files, the step-indexed pipeline, augmentations."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from duality.data import augment as A
from duality.data import fashion_mnist, pipeline

HAVE_FMNIST = os.path.exists(os.path.join(fashion_mnist.DEFAULT_DIR, "train-images-idx3-ubyte.gz"))
needs_fmnist = pytest.mark.skipif(not HAVE_FMNIST and not os.environ.get("CI"),
                                  reason="apt-get install dataset-fashion-mnist (CI installs it)")


@needs_fmnist
def test_fashion_mnist_counts_shapes_and_classes():
    for split, n in (("train", 60000), ("test", 10000)):
        d = fashion_mnist.load(split)
        assert d["image"].shape == (n, 28, 28, 1) and d["image"].dtype == np.uint8
        assert d["label"].shape == (n,) and set(np.unique(d["label"])) == set(range(10))
        assert np.bincount(d["label"]).min() == n // 10  # balanced classes


def test_missing_files_say_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist.load("train", str(tmp_path))
    with pytest.raises(ValueError, match="unknown split"):
        fashion_mnist.load("validation", str(tmp_path))


def test_corrupt_idx_file_is_rejected(tmp_path):
    import gzip
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        with gzip.open(tmp_path / name, "wb") as f:
            f.write(b"\x00\x00\x08\x03" + b"\x00" * 8)
    with pytest.raises(ValueError, match="truncated IDX header"):
        fashion_mnist.load("train", str(tmp_path))
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x03" + np.array([60000, 28, 28], ">i4").tobytes() + b"\x00" * 100)
    with pytest.raises(ValueError, match="header says .* but holds 100 values"):
        fashion_mnist.load("train", str(tmp_path))


def _arrays(n=100):
    return {"image": np.arange(n)[:, None].repeat(4, 1).astype(np.int64), "label": np.arange(n)}


def test_pipeline_is_a_function_of_seed_and_step():
    a, b = pipeline.InMemory(_arrays(), 10, seed=3), pipeline.InMemory(_arrays(), 10, seed=3)
    np.testing.assert_array_equal(a.batch(17)["label"], b.batch(17)["label"])
    assert not np.array_equal(a.batch(0)["label"], pipeline.InMemory(_arrays(), 10, seed=4).batch(0)["label"])
    epoch = np.concatenate([a.batch(s)["label"] for s in range(10)])  # one epoch: every example once
    np.testing.assert_array_equal(np.sort(epoch), np.arange(100))
    assert not np.array_equal(np.sort(a.batch(10)["label"]), np.sort(a.batch(0)["label"]))  # reshuffled


def test_hosts_read_disjoint_slices_of_the_global_batch():
    hosts = [pipeline.InMemory(_arrays(), 12, seed=1, process_index=h, process_count=3) for h in range(3)]
    one = pipeline.InMemory(_arrays(), 12, seed=1)
    parts = [h.indices(5) for h in hosts]
    np.testing.assert_array_equal(np.concatenate(parts), one.indices(5))
    with pytest.raises(ValueError, match="not divisible by the 5 hosts"):
        pipeline.InMemory(_arrays(), 12, process_count=5)


def test_eval_batches_cover_everything_once():
    seen = np.concatenate([b["label"][:real] for b, real in pipeline.eval_batches(_arrays(23), 10)])
    np.testing.assert_array_equal(seen, np.arange(23))


def _images(b=4, h=16, w=16, c=3, seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(0, 256, (b, h, w, c)), jnp.uint8)


IDENTITY = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, gray_p=0.0, blur_p=0.0,
                solarize_p=0.0)


def test_same_key_same_views_and_ranges():
    x = _images()
    spec = A.ViewSpec(12, blur_p=0.5, solarize_p=0.5)
    a = A.augment(jax.random.key(0), x, spec, 0.0, 1.0)
    np.testing.assert_array_equal(a, A.augment(jax.random.key(0), x, spec, 0.0, 1.0))
    assert not np.array_equal(a, A.augment(jax.random.key(1), x, spec, 0.0, 1.0))
    assert a.shape == (4, 12, 12, 3) and a.dtype == jnp.float32
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert not np.array_equal(a[0], a[1])  # per-example keys


def test_probability_zero_is_identity_and_flip_reverses_columns():
    x = _images()
    ident = A.augment(jax.random.key(0), x, A.ViewSpec(16, **IDENTITY), 0.0, 1.0)
    np.testing.assert_allclose(ident, np.asarray(x) / 255.0, atol=1e-6)
    flipped = A.augment(jax.random.key(0), x, A.ViewSpec(16, **dict(IDENTITY, flip_p=1.0)), 0.0, 1.0)
    np.testing.assert_allclose(flipped, np.asarray(x)[:, :, ::-1] / 255.0, atol=1e-6)


def test_each_colour_op_does_what_it_says():
    x = _images(c=3)
    gray = A.augment(jax.random.key(0), x, A.ViewSpec(16, **dict(IDENTITY, gray_p=1.0)), 0.0, 1.0)
    np.testing.assert_allclose(gray[..., 0], gray[..., 2], atol=1e-6)  # channels equal
    sol = A.augment(jax.random.key(0), x, A.ViewSpec(16, **dict(IDENTITY, solarize_p=1.0)), 0.0, 1.0)
    assert float(sol.max()) <= 0.5 + 1e-6  # everything above 0.5 inverted
    blur = A.augment(jax.random.key(0), x, A.ViewSpec(16, **dict(IDENTITY, blur_p=1.0, blur_sigma=(2.0, 2.0))), 0.0, 1.0)
    assert float(jnp.var(blur)) < float(jnp.var(np.asarray(x) / 255.0))  # smoothing removes variance
    jit = A.augment(jax.random.key(0), x, A.ViewSpec(16, **dict(IDENTITY, jitter_p=1.0)), 0.0, 1.0)
    assert not np.allclose(jit, np.asarray(x) / 255.0, atol=1e-3)


def test_crop_zooms_in_and_grayscale_images_skip_colour_ops():
    x = _images(c=1, h=28, w=28)
    spec = A.ViewSpec(28, crop_scale=(0.1, 0.1), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=1.0, gray_p=1.0)
    out = A.augment(jax.random.key(0), x, spec, 0.0, 1.0)
    assert out.shape == (4, 28, 28, 1)
    with pytest.raises(ValueError, match="crop_scale"):
        A.ViewSpec(8, crop_scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="unknown augmentation field"):
        A.view_spec({"size": 8, "blurr_p": 0.1})


def test_blur_keeps_a_constant_image_constant():
    """Reflected borders: zero padding would darken the edges of a blurred image."""
    x = jnp.full((2, 16, 16, 3), 200, jnp.uint8)
    out = A.augment(jax.random.key(0), x, A.ViewSpec(16, **dict(IDENTITY, blur_p=1.0, blur_sigma=(2.0, 2.0))), 0.0, 1.0)
    np.testing.assert_allclose(out, 200 / 255, atol=1e-5)


def test_a_truncated_or_non_gzip_data_file_names_the_file_and_the_fix(tmp_path):
    import gzip
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        with gzip.open(tmp_path / name, "wb") as f:
            f.write(b"\x00\x00\x08\x03" + np.array([60000, 28, 28], ">i4").tobytes() + bytes(5000))
    data = (tmp_path / "train-images-idx3-ubyte.gz").read_bytes()
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(data[: len(data) // 2])  # cut mid-stream
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz cannot be read \(EOFError.*re-install"):
        fashion_mnist.load("train", str(tmp_path))
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"plain bytes, not gzip")
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz cannot be read \(BadGzipFile"):
        fashion_mnist.load("train", str(tmp_path))


@pytest.mark.parametrize("kernel,sigma", [(3, 0.1), (3, 1.0), (5, 0.7), (23, 2.0)])
def test_blur_equals_dm_pix_gaussian_blur(kernel, sigma):
    """The slice-sum blur is dm-pix's separable Gaussian on the reflect-padded image (issue 14 rewrote it)."""
    import dm_pix as pix

    img = jax.random.uniform(jax.random.key(1), (30, 26, 3))
    r = kernel // 2
    ref = pix.gaussian_blur(jnp.pad(img, ((r, r), (r, r), (0, 0)), mode="reflect"), sigma, kernel, padding="VALID")
    np.testing.assert_allclose(A._blur(img, jnp.float32(sigma), kernel), ref, atol=2e-6)
    batch = jax.random.uniform(jax.random.key(2), (4, 12, 12, 1))
    sigmas = jnp.array([0.2, 0.5, 1.0, 2.0])
    per_image = jax.vmap(lambda x, s: A._blur(x, s, 3))(batch, sigmas)  # as augment() calls it
    for b in range(4):
        ref = pix.gaussian_blur(jnp.pad(batch[b], ((1, 1), (1, 1), (0, 0)), mode="reflect"), sigmas[b], 3,
                                padding="VALID")
        np.testing.assert_allclose(per_image[b], ref, atol=2e-6)
