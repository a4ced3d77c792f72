"""The method layer: each method's config block, its checks, the command line, and old configs read as new."""
import importlib
import json
import os
import sys

import pytest
from absl import flags
from ml_collections import config_flags

from duality import checkpoint, losses, methods

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(name):
    return importlib.import_module(f"configs.{name}").get_config("fashion_mnist")


@pytest.mark.parametrize("name", methods.names())
def test_each_method_config_holds_every_hyperparameter_of_its_loss_and_passes_its_checks(name):
    m = methods.get(name)
    cfg = _config(name)
    assert cfg.method.name == name
    assert set(cfg.method.loss.keys()) == set(m.loss_fn.hyperparameters)
    assert set(cfg.method.keys()) == {"name", "loss", *m.fields}
    m.check(cfg.method, global_batch=cfg.data.global_batch, local_views=0)
    assert not set(m.loss_fn.inputs) & set(cfg.method.loss.keys())  # per-step arrays are not settings


def test_a_loss_need_not_be_a_method_and_a_method_names_its_loss():
    assert set(methods.names()) <= set(losses.names())  # every method here trains with the loss of its name
    assert methods.get("byol").loss_fn is losses.get("byol")


@pytest.mark.parametrize("field,value,match", [
    ("queue_size", 5, r"method.queue_size is not a setting of vicreg; its settings are loss, name"),
    ("loss.temprature", 0.1, r"method.loss.temprature is not a hyperparameter of the vicreg_exp loss.*temperature"),
])
def test_an_unknown_field_is_an_error_listing_the_valid_ones(field, value, match):
    cfg = _config("vicreg_exp" if "loss" in field else "vicreg")
    block = cfg.method.loss if "." in field else cfg.method
    block[field.split(".")[-1]] = value
    with pytest.raises(ValueError, match=match):
        methods.get(cfg.method.name).check(cfg.method, global_batch=256, local_views=0)


def test_multicrop_is_refused_for_a_method_without_it():
    with pytest.raises(ValueError, match="data.local_views=2.*swav, dino"):
        methods.get("byol").check(_config("byol").method, global_batch=256, local_views=2)


@pytest.mark.parametrize("name", ["vicreg", "moco", "swav", "dino"])
def test_every_loss_coefficient_and_method_field_is_settable_from_the_command_line(name, monkeypatch):
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "", flag_values=fv, lock_config=True)
    m = methods.get(name)
    args = [f"--config={os.path.join(ROOT, 'configs', name + '.py')}:fashion_mnist"]
    want = {}
    for k, v in m.loss_fn.hyperparameters.items():
        if isinstance(v, float):
            args.append(f"--config.method.loss.{k}={v * 2}")
            want[f"loss.{k}"] = v * 2
    for k, v in m.fields.items():
        if isinstance(v, int) and not isinstance(v, bool):
            args.append(f"--config.method.{k}={v + 1}")
            want[k] = v + 1
    monkeypatch.setattr(sys, "argv", ["prog", *args])  # config_flags reads its overrides from sys.argv
    fv(["prog", *args])
    got = fv.config.method
    for k, v in want.items():
        assert (got.loss[k[5:]] if k.startswith("loss.") else got[k]) == v, k
    assert want  # something was set


def _old_layout(cfg_dict, model_moves):
    """A config as the layout before method blocks stored it (the shape of every cell.json of issue 11)."""
    old = json.loads(json.dumps(cfg_dict))
    method = old["method"]
    set_loss = {k: v for k, v in method["loss"].items() if v != losses.get(method["name"]).hyperparameters[k]}
    old["method"] = dict(name=method["name"], loss=set_loss, ema_base=0.996, queue_size=0, queue_start_step=0,
                         freeze_prototypes_steps=0, center_momentum=0.9)
    for k, v in method.items():
        if k in old["method"] and k not in ("name", "loss"):
            old["method"][k] = v
    old["model"].update(predictor="", n_prototypes=0, dino_out=0)
    for model_key, field in model_moves.items():
        old["model"][model_key] = method[field]
        old["method"].pop(field, None)
    return old


@pytest.mark.parametrize("name,moves", [("vicreg_exp", {}), ("byol", {"predictor": "predictor"}),
                                        ("swav", {"n_prototypes": "n_prototypes"}), ("dino", {"dino_out": "out_dim"}),
                                        ("moco", {}), ("simsiam", {"predictor": "predictor"})])
def test_a_stored_config_of_the_old_layout_reads_as_the_same_run(name, moves, tmp_path):
    new = json.loads(json.dumps(_config(name).to_dict()))
    old = _old_layout(new, moves)
    assert old != new
    assert json.loads(json.dumps(methods.upgrade(old))) == new
    assert methods.upgrade(new) == new
    # Resuming a workdir written with the old layout: the same run, so allowed.
    (tmp_path / "config.json").write_text(json.dumps(old))
    checkpoint.check_config(str(tmp_path), new, resuming=True)
    changed = json.loads(json.dumps(new))
    changed["method"]["name" if not changed["method"]["loss"] else "loss"] = "x"  # a real change is still one
    with pytest.raises(ValueError, match="different method"):
        checkpoint.check_config(str(tmp_path), changed, resuming=True)


def test_the_trainer_never_names_a_method():
    with open(os.path.join(ROOT, "duality", "train.py")) as f:
        text = f.read()
    assert not [n for n in methods.names() + ["prototypes", "predictor", "target1"] if f'"{n}"' in text]


@pytest.mark.parametrize("name,field,value", [("dino", "out_dim", 0), ("swav", "n_prototypes", 0),
                                              ("nnclr", "queue_size", 0), ("moco", "queue_size", -1)])
def test_a_count_out_of_range_names_the_field_and_a_fix(name, field, value):
    cfg = _config(name)
    cfg.method[field] = value
    with pytest.raises(ValueError, match=rf"method.{field}={value}: {name} needs {field} >= .*e.g."):
        methods.get(name).check(cfg.method, global_batch=256, local_views=0)
