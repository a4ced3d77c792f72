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


def _step(tx, params, grads):
    state = tx.init(params)
    updates, _ = tx.update(grads, state, params)
    return updates


def test_lars_step_is_trust_coefficient_of_the_weight_norm():
    # Unclipped LARS: one step (no momentum yet) moves a weight by lr * eta of its norm, whatever ||g||.
    import jax.numpy as jnp

    from duality.optim import lars
    w = {"kernel": jnp.full((4, 4), 2.0)}  # ||w|| = 8
    for g in (1e-3, 1e3):
        upd = _step(lars(lambda _: 0.5, 0.0, 0.02, clip_lr=False), w, {"kernel": jnp.full((4, 4), g)})
        np.testing.assert_allclose(float(jnp.linalg.norm(upd["kernel"])), 0.5 * 0.02 * 8, rtol=1e-5)


def test_clipped_lars_step_is_never_larger_than_sgd_nor_than_eta_of_the_norm():
    # LARC clipping: the step is min(eta ||w|| / ||g||, lr) * g, so its norm is min(eta ||w||, lr ||g||).
    import jax.numpy as jnp

    from duality.optim import lars
    w = {"kernel": jnp.full((4, 4), 2.0), "bias": jnp.ones((4,))}  # ||kernel|| = 8
    lr, eta = 0.5, 0.02
    tx = lars(lambda _: lr, 0.0, eta, clip_lr=True)
    for g, expected in ((1e-3, lr * 1e-3 * 4), (1.0, eta * 8), (1e3, eta * 8)):  # ||g|| = 4 g
        upd = _step(tx, w, {"kernel": jnp.full((4, 4), g), "bias": jnp.full((4,), g)})
        step = float(jnp.linalg.norm(upd["kernel"]))
        np.testing.assert_allclose(step, expected, rtol=1e-5)
        assert step <= lr * 4 * g * (1 + 1e-6) and step <= eta * 8 * (1 + 1e-6)
        # The bias is not adapted: plain SGD's step.
        np.testing.assert_allclose(np.asarray(upd["bias"]), -lr * g, rtol=1e-5)


def test_a_parameter_group_keeps_its_own_lr():
    # SimSiam's fixed predictor lr: the "pred" group stays at the peak lr while the rest warms up and decays.
    import jax
    import jax.numpy as jnp
    params = {"backbone": {"kernel": jnp.ones((3, 3))}, "pred": {"kernel": jnp.ones((3, 3))}}
    grads = jax.tree.map(jnp.ones_like, params)
    cfg = _cfg(name="sgd", momentum=0.0, weight_decay=0.0, warmup_steps=10, groups={"pred": {"schedule": "constant"}})
    tx, schedule = optim.make(cfg, 256, 100)
    state = tx.init(params)
    for step in range(100):
        updates, state = tx.update(grads, state, params)
        np.testing.assert_allclose(np.asarray(updates["pred"]["kernel"]), -0.3, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(updates["backbone"]["kernel"]), -float(schedule(step)), rtol=1e-5,
                                   atol=1e-9)
    assert float(schedule(5)) < 0.3 and float(schedule(99)) < 0.01
    cfg = _cfg(name="sgd", groups={"pred": {"base_lr": 0.1}})
    tx, _ = optim.make(cfg, 512, 100)
    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    updates, _ = tx.update(grads, state, params)  # step 1 of 0 warm-up steps: the peak, 0.1 * 512 / 256 (x momentum)
    assert not np.allclose(updates["pred"]["kernel"], updates["backbone"]["kernel"])


def test_groups_are_checked_against_the_model():
    with pytest.raises(ValueError, match="no module 'predictor'.*backbone"):
        optim.check_groups({"predictor": {"schedule": "constant"}}, ["backbone", "proj", "pred"])
    with pytest.raises(ValueError, match="unknown field.*lr"):
        optim.check_groups({"pred": {"lr": 0.1}}, ["backbone", "proj", "pred"])
    with pytest.raises(ValueError, match="schedule='step'"):
        optim.check_groups({"pred": {"schedule": "step"}}, ["backbone", "pred"])
