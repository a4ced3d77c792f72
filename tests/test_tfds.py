"""tfds sources, on tfds.testing.mock_data (no data set is downloaded)."""
import importlib

import jax
import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from duality import data, train  # noqa: E402

pytestmark = pytest.mark.slow  # trains, or reads a data set: the full suite only (launch/test.sh)


def _cfg(name):
    cfg = importlib.import_module("configs.vicreg").get_config(name)
    cfg.data.global_batch = 16
    cfg.model.update(dict(encoder="small", widths=(8, 16), projector="32-16"))
    cfg.optim.update(dict(warmup_steps=1, warmup_epochs=0))
    return cfg


@pytest.mark.parametrize("name,size,split", [("cifar10", 32, "train"), ("stl10", 96, "unlabelled")])
def test_tfds_source_batches_and_one_step(name, size, split):
    cfg = _cfg(name)
    with tfds.testing.mock_data(num_examples=64, policy=tfds.testing.MockPolicy.USE_CODE):
        d = data.build(cfg.data, cfg.data.global_batch, seed=0)
        b = d.train.batch(3)
        assert b["image"].shape == (16, size, size, 3) and b["image"].dtype == np.uint8
        np.testing.assert_array_equal(b["image"], d.train.batch(3)["image"])  # a function of the step
        assert d.test_arrays["image"].shape[1:] == (size, size, 3)
        t = train.Trainer(cfg)
        state = t.init_state(0)
        state, m = t.step_fn(state, t.device_batch(t.data.train.batch(0)))
        assert np.isfinite(float(m["loss"]))
        assert jax.device_count() == 8


def test_unprepared_tfds_data_set_says_how_to_prepare(tmp_path):
    cfg = _cfg("cifar100")
    cfg.data.data_dir = str(tmp_path)
    with pytest.raises(FileNotFoundError, match="tfds build cifar100"):
        data.build(cfg.data, 16, seed=0)
