"""One validation of the whole config: every field's type and range, before anything is written."""
import importlib
import math
import os

import ml_collections
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from duality import config_check, train
from duality import config_check as cc
from duality.config_check import RULES, VIEW_RULES


def _config(method="vicreg"):
    # Not type-safe: a config file may hold any Python value; the CLI's own type check comes first there.
    return ml_collections.ConfigDict(
        importlib.import_module(f"configs.{method}").get_config("fashion_mnist").to_dict(), type_safe=False)


NOT_A_NUMBER = st.one_of(st.none(), st.text(max_size=3), st.booleans(), st.just([1]))


def _bad(rule):
    """Values `rule` must reject, written from the range the rule states (its fields), not from its code."""
    if isinstance(rule, cc.Integer):
        above = [st.integers(min_value=rule.hi + 1)] if rule.hi is not None else []
        return st.one_of(st.integers(max_value=rule.lo - 1), *above, st.floats(allow_nan=True), NOT_A_NUMBER)
    if isinstance(rule, cc.Real):
        below = st.floats(max_value=rule.lo, exclude_max=not rule.lo_open, allow_nan=False)
        above = [st.floats(min_value=rule.hi, exclude_min=True, allow_nan=False)] if math.isfinite(rule.hi) else []
        return st.one_of(below, *above, st.just(math.nan), st.just(math.inf), NOT_A_NUMBER)
    if isinstance(rule, cc.Choice):
        return st.one_of(st.text(max_size=6).filter(lambda v: v not in rule.options), st.integers(10, 20), st.none())
    if isinstance(rule, cc.Boolean):
        return st.one_of(st.integers(), st.text(max_size=3), st.none())
    if isinstance(rule, cc.Interval):
        edge = [st.just((rule.lo, rule.lo))] if rule.lo_open else []
        return st.one_of(st.tuples(st.floats(0.6, 0.9), st.floats(0.1, 0.5)), *edge,
                         st.just((0.5, math.nan)), st.just((0.5,)), NOT_A_NUMBER)
    if isinstance(rule, cc.Widths):
        return st.sampled_from(["", "-", "0-8", "a-b", "8--8", "1024x256", "-5", None])
    if isinstance(rule, cc.IntTuple):
        return st.sampled_from([(), (0,), (-1, 3), ("a",), (1.5,), None])
    if isinstance(rule, cc.RealTuple):
        return st.sampled_from([(), (math.nan,), (-1.0,), ("a",)] + ([(0.0,)] if rule.positive else []))
    raise AssertionError(f"no bad values written for rule {rule!r}")


FIELDS = list(RULES)


@pytest.mark.parametrize("field", FIELDS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_field_rejects_values_outside_its_range_naming_field_value_range_and_fix(field, data):
    cfg = _config()
    block, key = field.split(".") if "." in field else (None, field)
    value = data.draw(_bad(RULES[field]))
    node = cfg[block] if block else cfg
    node[key] = value
    assume(type(node[key]) is type(value))  # ConfigDict turns a bool or int given for a float into a float
    with pytest.raises(ValueError) as e:
        config_check.check(cfg)
    msg = str(e.value)
    assert msg.startswith(f"{field}={value!r} is out of range: it must be ") and "e.g." in msg, msg


@pytest.mark.parametrize("key", list(VIEW_RULES))
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_every_augmentation_field_of_every_view_is_checked(key, data):
    cfg = _config("dino")
    cfg.data.local_views = 2
    where = data.draw(st.sampled_from(["data.views[0]", "data.views[1]", "data.local_view"]))
    value = data.draw(_bad(VIEW_RULES[key]))
    view = cfg.data.local_view if where == "data.local_view" else cfg.data.views[int(where[-2])]
    view[key] = value
    assume(type(view[key]) is type(value))
    with pytest.raises(ValueError) as e:
        config_check.check(cfg)
    assert str(e.value).startswith(f"{where}.{key}={value!r} is out of range: it must be "), str(e.value)


def test_the_shipped_configs_pass_at_every_scale():
    from duality import methods

    for name in methods.names():
        for scale in ("fashion_mnist", "cifar10", "imagenet"):
            config_check.check(importlib.import_module(f"configs.{name}").get_config(scale))


@pytest.mark.parametrize("change,match", [
    (lambda c: c.method.loss.update(temperature=0.0), r"method.loss .*temperature must be > 0"),
    (lambda c: c.method.loss.update(temperature=-1.0), r"method.loss .*temperature must be > 0"),
    (lambda c: c.train.update(steps=0, epochs=0), r"train.steps=0 and train.epochs=0"),
    (lambda c: c.data.update(std=(0.3, 0.3)), r"data.std=\(0.3, 0.3\) has 2 entries for data.channels=1"),
])
def test_cross_field_and_loss_hyperparameter_checks(change, match):
    cfg = _config("simclr")
    change(cfg)
    with pytest.raises(ValueError, match=match):
        config_check.check(cfg)


def test_wmse_sub_batch_must_divide_the_global_batch_before_step_1():
    cfg = _config("wmse")
    cfg.data.global_batch = 200  # 128 does not divide it
    with pytest.raises(ValueError, match=r"method.loss .*w_size=128 must be .* divides the global batch 200"):
        config_check.check(cfg)


@pytest.mark.parametrize("field,value", [("data.global_batch", 0), ("seed", -1), ("optim.base_lr", math.nan),
                                         ("train.steps", -5), ("train.keep_checkpoints", 0)])
def test_prepare_refuses_before_writing_anything(tmp_path, field, value):
    cfg = _config()
    block, key = field.split(".") if "." in field else (None, field)
    (cfg[block] if block else cfg)[key] = value
    workdir = tmp_path / "run"
    with pytest.raises(ValueError, match=rf"^{field}="):
        train.prepare(cfg, str(workdir))
    assert not workdir.exists() and os.listdir(tmp_path) == []


def test_every_field_of_the_base_config_has_a_rule_or_its_own_check():
    from configs import base

    own = {  # checked where they are used, with their own messages (tested in test_train.py / test_methods.py)
        "data.name": "data.build", "data.data_dir": "data.build", "model.encoder": "the model",
        "data.views": "VIEW_RULES", "data.local_view": "VIEW_RULES", "eval.probe_l2": "train.prepare",
        "optim.groups": "optim.check_groups"}
    cfg = base.get_config("fashion_mnist")
    fields = {f"{b}.{k}" for b in cfg.keys() if hasattr(cfg[b], "keys") and b != "method" for k in cfg[b].keys()}
    fields |= {k for k in cfg.keys() if not hasattr(cfg[k], "keys")}
    assert fields - set(RULES) - set(own) == set()


@pytest.mark.parametrize("method,field,value,match", [
    ("vicreg", "cov_coeff", -1.0, "cov_coeff must be >= 0"), ("vicreg_exp", "gamma", 0.0, "gamma must be > 0"),
    ("vicreg_ctr", "sim_coeff", math.nan, "sim_coeff must be >= 0"), ("barlow_twins", "lambd", -0.1, "lambd"),
    ("tcr", "inv_coeff", -1.0, "inv_coeff"), ("wmse", "w_iter", 0, "w_iter must be an integer >= 1"),
    ("dino", "teacher_temperature", 0.0, "teacher_temperature must be > 0"),
    ("swav", "sinkhorn_iters", 0, "sinkhorn_iters must be an integer >= 1"),
    ("moco", "temperature", -0.2, "temperature must be > 0"), ("nnclr", "temperature", 0.0, "temperature must be > 0"),
    ("spectral", "mu", -1.0, "mu must be > 0"), ("simclr", "variant", "C", "variant='C' is not one of"),
])
def test_each_loss_hyperparameter_out_of_range_is_caught_before_training(method, field, value, match):
    cfg = _config(method)
    cfg.method.loss[field] = value
    with pytest.raises(ValueError, match=rf"^method.loss .*{method}: {match}"):
        config_check.check(cfg)


@pytest.mark.parametrize("method,field,value", [
    ("byol", "ema_base", 1.5), ("moco", "ema_base", -0.1), ("dino", "ema_base", math.nan),
    ("dino", "center_momentum", -0.5), ("byol", "ema_base", "0.99")])
def test_a_momentum_outside_0_1_is_caught_before_training(method, field, value):
    # BYOL with ema_base=1.5 passed every check and trained to NaN at step 113 (benchmarks/bad_inputs.py).
    cfg = _config(method)
    cfg.method[field] = value
    with pytest.raises(ValueError, match=rf"^method.{field}={value!r} is out of range: {method} needs a number in "
                                         rf"\[0, 1\]"):
        config_check.check(cfg)


def test_a_workdir_where_no_directory_can_be_made_is_refused_though_access_says_yes():
    from duality import checkpoint

    if not os.path.isdir("/proc"):
        pytest.skip("needs /proc")
    with pytest.raises(PermissionError, match="cannot create a directory in /proc"):
        checkpoint.check_writable("/proc/duality-test/run")
