"""The trainer on 8 fake devices: one step of every method, exact resume, and
bad configs that fail before writing anything (faults: test_faults.py)."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from duality import methods, train
from tests.test_pipeline import needs_fmnist
from tests.train_configs import METHODS, tiny

pytestmark = [needs_fmnist, pytest.mark.slow]


# One method per Method class runs compiled steps: the twelve pairwise methods share one class and every
# line of the trainer, differing only in the loss, which tests/test_losses_*.py check on 8 devices against
# float64 references. Every method is traced through the whole step below.
RUN = sorted({type(methods.get(m)).__name__: m for m in reversed(METHODS)}.values(), key=METHODS.index)


@pytest.mark.parametrize("method", METHODS)
def test_the_step_of_every_method_traces_with_its_metrics(method):
    t = train.Trainer(tiny(method))
    batch = t.device_batch(t.data.train.batch(0))
    t.initial_params()  # concrete, computed once: the traced step reads it as a constant
    state, metrics = jax.eval_shape(t.step_fn, t.abstract_state(), batch)
    assert {"loss", "probe_loss", "grad_norm", "drift_encoder", "rankme_z", "finite"} <= set(metrics)
    assert jax.tree.structure(state) == jax.tree.structure(t.abstract_state())


@pytest.mark.parametrize("method", RUN)
def test_one_step_of_every_method_on_8_devices(method):
    assert jax.device_count() == 8
    t = train.Trainer(tiny(method))
    state = t.init_state(0)
    before = jax.device_get(state)
    for step in range(2):  # the first step has lr 0 (warm-up starts at 0)
        state, metrics = t.step_fn(state, t.device_batch(t.data.train.batch(step)))
    m = jax.device_get(metrics)
    assert int(state.step) == 2 and int(state.skipped) == 0
    for k, v in m.items():
        assert np.isfinite(v), (k, v)
    assert 0.0 <= m["probe_top1"] <= 1.0
    moved = jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))), state.params, before.params)
    assert max(jax.tree.leaves(moved)) > 0, "no parameter moved"
    if "target" in before.method:  # EMA moved towards the new online weights
        assert not np.allclose(jax.tree.leaves(state.method["target"]["params"])[0],
                               jax.tree.leaves(before.method["target"]["params"])[0])
    if "queue" in before.method:
        assert not np.allclose(state.method["queue"], before.method["queue"])
    if "center" in before.method:
        assert not np.allclose(state.method["center"], before.method["center"])
    if method == "swav":  # frozen for the first steps, and kept on the unit sphere
        np.testing.assert_allclose(state.params["prototypes"]["w"], before.params["prototypes"]["w"], atol=1e-6)
        np.testing.assert_allclose(jnp.linalg.norm(state.params["prototypes"]["w"], axis=1), 1.0, rtol=1e-5)


def _params(state):
    return jax.tree.map(np.asarray, jax.device_get(state.params))


def test_resume_equals_uninterrupted_run(tmp_path):
    cfg = tiny("byol", steps=4)  # EMA target + predictor: the most state to carry
    _, straight = train.fit(cfg, str(tmp_path / "a"))
    _, first = train.fit(cfg, str(tmp_path / "b"), stop_at=2)
    assert int(first.step) == 2
    _, resumed = train.fit(cfg, str(tmp_path / "b"))
    assert int(resumed.step) == 4
    for a, b in zip(jax.tree.leaves(_params(straight)), jax.tree.leaves(_params(resumed))):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(jax.device_get(straight.method)), jax.tree.leaves(jax.device_get(resumed.method))):
        np.testing.assert_array_equal(a, b)
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4 and (tmp_path / "b" / "config.json").exists()


def test_resume_with_a_different_model_is_refused(tmp_path):
    cfg = tiny("vicreg", steps=1)
    train.fit(cfg, str(tmp_path))
    cfg.model.projector = "64-16"
    with pytest.raises(ValueError, match="different model"):
        train.fit(cfg, str(tmp_path))


def _no_checkpoint(workdir):
    ck = os.path.join(workdir, "checkpoints")
    return not os.path.exists(ck) or not os.listdir(ck)


@pytest.mark.parametrize("change,error,match", [
    (lambda c: setattr(c.method, "name", "vicregg"), ValueError, "not a registered method.*vicreg"),
    (lambda c: setattr(c.data, "global_batch", 12), ValueError, "not divisible by the 8 devices"),
    (lambda c: c.data.update(name="fashion_mnist", data_dir="/nonexistent"), FileNotFoundError,
     "apt-get install dataset-fashion-mnist"),
    (lambda c: c.method.loss.update(temprature=0.1), ValueError,
     "method.loss.temprature is not a hyperparameter.*temperature"),
    (lambda c: setattr(c.model, "encoder", "resnet19"), ValueError, "unknown encoder 'resnet19'"),
    (lambda c: setattr(c.data, "name", "mnist"), ValueError, "choose one of.*fashion_mnist"),
    (lambda c: setattr(c.optim, "name", "adam"), ValueError, "optim.name='adam'.*one of 'lars', 'sgd', 'adamw'"),
    (lambda c: setattr(c.train, "log_every", 0), ValueError, "train.log_every=0.*an integer >= 1"),
    (lambda c: setattr(c.eval, "probe_l2", ()), ValueError, "eval.probe_l2=.*one or more finite"),
    (lambda c: setattr(c.optim, "trust_coefficient", 0.0), ValueError, "optim.trust_coefficient=0.0.*> 0"),
    (lambda c: setattr(c.optim, "groups", {"predictor": {"schedule": "constant"}}), ValueError,
     "no module 'predictor'"),
])
def test_bad_configs_fail_clearly_and_write_no_checkpoint(tmp_path, change, error, match):
    cfg = tiny("vicreg" if "temprature" not in match else "simclr", steps=1)
    change(cfg)
    with pytest.raises(error, match=match):
        train.fit(cfg, str(tmp_path))
    assert _no_checkpoint(str(tmp_path))


def test_unknown_config_field_is_an_error():
    cfg = tiny("vicreg")
    cfg.lock()  # as --config.x=... overrides see it
    with pytest.raises(AttributeError, match="bach"):
        cfg.data.global_bach = 4


@pytest.mark.parametrize("method", ["swav", "dino"])
def test_multicrop_step(method):
    cfg = tiny(method)
    cfg.data.local_views = 2
    t = train.Trainer(cfg)
    state = t.init_state(0)
    state, m = t.step_fn(state, t.device_batch(t.data.train.batch(0)))
    assert np.isfinite(float(m["loss"])) and int(state.skipped) == 0
    cfg = tiny("vicreg")
    cfg.data.local_views = 2
    with pytest.raises(ValueError, match="multi-crop"):
        train.Trainer(cfg)


def test_bfloat16_step_keeps_float32_state():
    cfg = tiny("barlow_twins")
    cfg.model.dtype = "bfloat16"
    t = train.Trainer(cfg)
    state = t.init_state(0)
    for step in range(2):
        state, m = t.step_fn(state, t.device_batch(t.data.train.batch(step)))
    assert np.isfinite(float(m["loss"]))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.params))


def test_swav_queue_must_fill_before_use(tmp_path):
    cfg = tiny("swav")
    cfg.method.queue_size = 64  # 2 steps of 16 x 2 embeddings
    with pytest.raises(ValueError, match="queue_start_step >= 2"):
        train.Trainer(cfg)
    cfg.method.queue_start_step = 2
    t = train.Trainer(cfg)
    state = t.init_state(0)
    for step in range(3):  # the step where the queue starts being used runs too
        state, m = t.step_fn(state, t.device_batch(t.data.train.batch(step)))
    assert np.isfinite(float(m["loss"])) and int(state.skipped) == 0


def test_a_failed_first_run_does_not_lock_the_workdir(tmp_path):
    cfg = tiny("vicreg", steps=1)
    cfg.method.loss.update(temprature=0.1)
    with pytest.raises(ValueError):
        train.fit(cfg, str(tmp_path))
    cfg = tiny("simclr", steps=1)  # a different method in the same workdir: nothing to resume, so allowed
    _, state = train.fit(cfg, str(tmp_path))
    assert int(state.step) == 1


def test_a_resume_records_what_changed_and_refuses_fewer_steps_than_it_ran(tmp_path, capsys):
    cfg = tiny("vicreg", steps=3)
    train.fit(cfg, str(tmp_path))
    cfg = tiny("vicreg", steps=4)
    cfg.optim.base_lr = 0.5
    train.fit(cfg, str(tmp_path))
    out = capsys.readouterr().out
    assert "resuming at step 3 with changed settings" in out and "optim.base_lr: 0.3 -> 0.5" in out
    history = [json.loads(x) for x in (tmp_path / "config_history.jsonl").read_text().splitlines()]
    assert history[-1]["from_step"] == 3 and history[-1]["changed"]["train.steps"] == [3, 4]
    assert json.loads((tmp_path / "config.json").read_text())["optim"]["base_lr"] == 0.5  # what runs now
    cfg = tiny("vicreg", steps=2)
    with pytest.raises(ValueError, match=r"checkpoint at step 4, past this config's 2 steps.*train.steps=4"):
        train.prepare(cfg, str(tmp_path))
