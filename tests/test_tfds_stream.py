"""Streaming tfds sources (imagenette, imagenet2012) on tfds.testing.mock_data."""
import importlib

import jax
import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")
tf = pytest.importorskip("tensorflow")

from duality import data, methods, train  # noqa: E402
from duality.data import tfds_stream  # noqa: E402

pytestmark = pytest.mark.slow  # trains, or reads a data set: the full suite only (launch/test.sh)

RATIO = (3 / 4, 4 / 3)
VIEWS = [(32, (0.08, 1.0), RATIO), (32, (0.08, 1.0), RATIO)]
LOCAL = [(16, (0.05, 0.4), RATIO)] * 2


def _mock(n=64):
    return tfds.testing.mock_data(num_examples=n, policy=tfds.testing.MockPolicy.USE_CODE)


def _stream(**kw):
    args = dict(name="imagenette/160px-v2", split="train", global_batch=16, seed=3, views=VIEWS, local_views=LOCAL)
    args.update(kw)
    return tfds_stream.Stream(**args)


def test_stream_batches_are_a_function_of_the_step_across_epochs():
    with _mock():
        s = _stream()
        assert s.steps_per_epoch == 4 and s.host_batch == 16
        seq = [s.batch(k) for k in range(7)]  # crosses the epoch boundary at step 4
        b = seq[0]
        assert b["views"].shape == (16, 2, 32, 32, 3) and b["views"].dtype == np.uint8
        assert b["local_views"].shape == (16, 2, 16, 16, 3)
        assert b["label"].dtype == np.int32 and ((b["label"] >= 0) & (b["label"] < 10)).all()
        assert not np.array_equal(b["views"][:, 0], b["views"][:, 1])  # two independent crops
        # A new stream started at step k (a resume) reads exactly the batch the running one did.
        for k in (5, 2):
            fresh = _stream().batch(k)
            for key in fresh:
                np.testing.assert_array_equal(fresh[key], seq[k][key])
        # Epoch 1 is a different order (and different crops) from epoch 0.
        assert not np.array_equal(seq[0]["views"], seq[4]["views"])
        # Another seed, another stream.
        assert not np.array_equal(_stream(seed=4).batch(0)["views"], b["views"])


def test_stream_limit_and_batch_checks():
    with _mock():
        sub = _stream(limit=40)
        assert sub.steps_per_epoch == 2 and "train[:40]" in str(sub.split)  # a fixed global subset
        with pytest.raises(ValueError, match="fewer than the host batch"):
            _stream(limit=8)
        with pytest.raises(ValueError, match="not divisible by the 3 hosts"):
            _stream(process_count=3)


def _image(h, w):
    y, x = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return tf.constant(np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), np.full_like(x, 77)], -1)
                       .astype(np.uint8))


def test_host_random_resized_crop():
    img = _image(24, 24)
    seed = tf.constant([1, 2], tf.int64)
    # The whole square image at its own size: the identity.
    full = tfds_stream.random_resized_crop(img, seed, 24, (1.0, 1.0), (1.0, 1.0))
    np.testing.assert_array_equal(full.numpy(), img.numpy())
    # No box fits (a 1:2 image cannot give a full-area crop of ratio 3/4..4/3): the whole image, resized.
    tall = _image(40, 20)
    out = tfds_stream.random_resized_crop(tall, seed, 16, (1.0, 1.0), RATIO)
    want = tf.cast(tf.round(tf.image.resize(tf.cast(tall, tf.float32), (16, 16), antialias=True)), tf.uint8)
    np.testing.assert_array_equal(out.numpy(), want.numpy())
    # Same seed, same crop; small crops cover a narrow band of the column ramp.
    a = tfds_stream.random_resized_crop(img, seed, 12, (0.1, 0.2), RATIO).numpy()
    np.testing.assert_array_equal(a, tfds_stream.random_resized_crop(img, seed, 12, (0.1, 0.2), RATIO).numpy())
    b = tfds_stream.random_resized_crop(img, tf.constant([1, 3], tf.int64), 12, (0.1, 0.2), RATIO).numpy()
    assert not np.array_equal(a, b)
    assert a.shape == (12, 12, 3) and np.ptp(a[..., 0].astype(int)) < 255 * 0.6
    assert (a[..., 2] == 77).all()  # a constant channel stays constant: a crop, not a blend of images


def test_center_crop_is_the_middle_of_the_resized_image():
    img = _image(40, 80)  # shorter side 40 -> 32 for size 28 (28 / 0.875), width 64, centre 28 columns
    out = tfds_stream.center_crop(img, 28).numpy()
    assert out.shape == (28, 28, 3)
    centre_col = out[..., 0].astype(float).mean()
    assert abs(centre_col - 127.5) < 3  # symmetric about the middle column
    assert np.ptp(out[..., 0].astype(int)) < 255 * 28 / 64 + 8  # only the middle 28 of 64 columns


def _cfg(arg="imagenette"):
    cfg = importlib.import_module("configs.vicreg").get_config(arg)
    cfg.data.update(dict(global_batch=16, image_size=32, probe_subset=24, shuffle_buffer=32))
    cfg.data.views = [dict(v, size=32) for v in cfg.data.views]
    cfg.model.update(dict(encoder="small", widths=(8, 16), projector="32-16", stem="cifar", dtype="float32"))
    cfg.optim.update(dict(warmup_steps=1, warmup_epochs=0))
    return cfg


def test_imagenette_multicrop_step_on_8_devices():
    """The imagenette config trains (host-cropped global and local views) and probes from the stream."""
    cfg = _cfg()
    cfg.method = methods.get("swav").config(loss=dict(temperature=0.1, epsilon=0.05), n_prototypes=8)
    cfg.model.projector = "32-16"
    cfg.data.local_views = 2
    cfg.data.local_view = dict(cfg.data.local_view, size=16)
    with _mock():
        t = train.Trainer(cfg)
        assert isinstance(t.data.train, tfds_stream.Stream)
        batch = t.device_batch(t.data.train.batch(0))
        assert batch["views"].shape == (16, 2, 32, 32, 3) and batch["local_views"].shape == (16, 2, 16, 16, 3)
        state, m = t.step_fn(t.init_state(0), batch)
        assert np.isfinite(float(m["loss"])) and int(state.step) == 1
        test = t.data.test_arrays  # decoded on first use, centre-cropped to the image size
        assert test["image"].shape == (24, 32, 32, 3) and test["label"].shape == (24,)
        assert t.features(state.params, state.batch_stats, test).shape[0] == 24
    assert jax.device_count() == 8


def test_imagenet_config_is_the_papers_setting():
    cfg = importlib.import_module("configs.vicreg").get_config("imagenet")
    assert (cfg.data.name, cfg.data.image_size, cfg.model.encoder, cfg.model.projector) == (
        "imagenet2012", 224, "resnet50", "8192-8192-8192")
    assert cfg.train.epochs == 100 and cfg.optim.warmup_epochs == 10
    byol = importlib.import_module("configs.byol").get_config("imagenet")
    # BYOL's projector and predictor are both Linear-BN-ReLU-Linear in the reference; the long-run EMA base.
    assert (byol.model.projector, byol.method.predictor, byol.method.ema_base) == ("8192-256", "8192-256", 0.99)
    siam = importlib.import_module("configs.simsiam").get_config("imagenet")
    assert siam.optim.base_lr == 0.05 and siam.model.projector_out_bn  # the reference's lr; 0.5 is Fashion-MNIST's


def test_unprepared_imagenet_says_how_to_prepare(tmp_path):
    cfg = _cfg("imagenet")
    cfg.data.data_dir = str(tmp_path)
    with pytest.raises(FileNotFoundError, match="manual download"):
        data.build(cfg.data, 16, seed=0)
