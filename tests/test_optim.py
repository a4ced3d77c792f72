"""The learning-rate schedule: linear scaling, warm-up in steps or epochs, cosine decay."""
import ml_collections
import numpy as np
import pytest

from duality import optim


def _cfg(**kw):
    c = dict(name="lars", base_lr=0.3, weight_decay=1e-6, warmup_steps=0, warmup_epochs=0, final_lr_ratio=0.001)
    c.update(kw)
    return ml_collections.ConfigDict(c)


def test_warmup_in_epochs_follows_the_batch_size():
    # 10 steps per epoch, 2 warm-up epochs: peak (0.3 * 512 / 256) at step 20, half of it at step 10.
    sched = optim.learning_rate(_cfg(warmup_epochs=2), 512, 100, steps_per_epoch=10)
    np.testing.assert_allclose(float(sched(10)), 0.3, rtol=1e-6)
    np.testing.assert_allclose(float(sched(20)), 0.6, rtol=1e-6)
    np.testing.assert_allclose(float(sched(100)), 0.6 * 0.001, rtol=1e-5)
    # Twice the batch, half the steps per epoch: the warm-up still ends after 2 epochs.
    sched = optim.learning_rate(_cfg(warmup_epochs=2), 1024, 50, steps_per_epoch=5)
    np.testing.assert_allclose(float(sched(10)), 1.2, rtol=1e-6)
    assert float(sched(5)) < 1.2


def test_warmup_steps_and_both_set():
    sched = optim.learning_rate(_cfg(warmup_steps=4), 256, 100, steps_per_epoch=10)
    np.testing.assert_allclose(float(sched(2)), 0.15, rtol=1e-6)
    with pytest.raises(ValueError, match="both set"):
        optim.learning_rate(_cfg(warmup_steps=4, warmup_epochs=1), 256, 100, steps_per_epoch=10)


def test_biases_and_norm_parameters_get_no_decay_or_trust_ratio():
    mask = optim.weights_mask({"kernel": np.zeros((3, 4)), "bias": np.zeros(4), "scale": np.zeros(4)})
    assert mask == {"kernel": True, "bias": False, "scale": False}
