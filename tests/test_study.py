"""Comparison studies: a two-cell grid on tiny data, resume, and the grid description."""
import importlib
import json
import os

import pytest

from duality import study, train

pytestmark = pytest.mark.slow  # trains, or reads a data set: the full suite only (launch/test.sh)


def _study(arg="tiny"):
    return importlib.import_module("configs.studies.duality").get_config(arg)


def test_the_duality_study_grid():
    cells = study.cells(_study("short"))
    names = [c["name"] for c in cells]
    assert names[:7] == ["vicreg", "vicreg_exp", "vicreg_ctr", "simclr_original", "simclr_tuned", "simclr_abs",
                         "simclr_sq"]
    assert "vicreg-proj64" in names and "simclr_tuned-proj256" in names and len(names) == 11
    cfg = study.cell_config(_study("short"), cells[names.index("simclr_tuned-proj64")])
    assert (cfg.model.projector, cfg.method.loss.temperature, cfg.optim.base_lr, cfg.train.epochs) == (
        "1024-1024-64", 0.15, 0.5, 1)


def test_the_methods_study_runs_every_registered_loss_from_its_own_config():
    from duality import losses

    s = importlib.import_module("configs.studies.methods").get_config("full")
    cells = study.cells(s)
    assert [c["config"] for c in cells] == [n for n in losses.names() for _ in range(3)]
    for c in cells:  # "full" is each config's recipe, unchanged but for the seed (0, 1, 2 per loss)
        own = importlib.import_module(f"configs.{c['config']}").get_config("fashion_mnist")
        own.seed = c["axes"]["seed"]
        assert study.cell_config(s, c).to_dict() == own.to_dict(), c["name"]
    tiny = importlib.import_module("configs.studies.methods").get_config("tiny")
    assert all(study.cell_config(tiny, c).train.steps == 2 for c in study.cells(tiny))


def test_the_full_duality_study_repeats_every_setting_over_three_seeds():
    s = _study("full")
    cells = study.cells(s)
    groups = {}
    for c in cells:
        groups.setdefault(study.setting_name(c), []).append(c["axes"]["seed"])
    assert len(groups) == 11 and all(sorted(v) == [0, 1, 2] for v in groups.values())
    assert all(a in groups and b in groups for a, b in s.comparisons)  # every comparison names real settings
    assert study.cell_config(s, cells[4]).seed == 1  # vicreg_exp's second seed
    # configs/vicreg.py's own recipe is wider and crops less; the paper's comparisons keep VICReg on its neighbours'
    # encoder and views, so that the cells differ in the loss alone.
    own = importlib.import_module("configs.vicreg").get_config("fashion_mnist")
    assert tuple(own.model.widths) == (32, 64, 128, 512) and tuple(own.data.views[0]["crop_scale"]) == (0.4, 1.0)
    for c in cells:
        cfg, exp = study.cell_config(s, c), study.cell_config(s, cells[4])
        assert (cfg.model.widths, cfg.data.views) == (exp.model.widths, exp.data.views), c["name"]


def test_the_recipe_sweep_applies_each_setting():
    s = importlib.import_module("configs.studies.recipes").get_config("full")
    cells = {c["name"]: c for c in study.cells(s)}
    assert len(cells) == len(set(cells)) == 58
    wide, longer = study.cell_config(s, cells["vicreg_proj2048"]), study.cell_config(s, cells["vicreg_4ep"])
    assert (wide.model.projector, wide.train.epochs, longer.train.epochs) == ("2048-2048-2048", 3, 4)
    crops = study.cell_config(s, cells["vicreg_crop40"]).data.views
    assert [tuple(v["crop_scale"]) for v in crops] == [(0.4, 1.0)] * 2 and crops[1]["solarize_p"] == 0.2
    both = study.cell_config(s, cells["vicreg_wide_crop40"])
    assert tuple(both.model.widths) == (32, 64, 128, 512) and [tuple(v["crop_scale"]) for v in both.data.views] == [
        (0.4, 1.0)] * 2
    small = study.cell_config(s, cells["vicreg_b128"])
    assert (small.data.global_batch, small.optim.warmup_steps, small.optim.base_lr) == (128, 200, 0.3)
    siam = [c for n, c in cells.items() if n.startswith("simsiam") and "groupredscheconstant" in n]
    cfg = study.cell_config(s, siam[0])
    assert cfg.optim.groups.pred.schedule == "constant" and cfg.method.name == "simsiam"
    byol = study.cell_config(s, cells["byol_proj2-ema_0.97"])
    assert byol.model.projector == "1024-256" and byol.method.ema_base == 0.97 and byol.optim.base_lr == 0.3
    lars = study.cell_config(s, cells["moco_lars-base0.3"])
    assert (lars.optim.name, lars.optim.base_lr, lars.method.queue_size) == ("lars", 0.3, 4096)
    exp = [c for n, c in cells.items() if n.startswith("vicreg_exp")]
    assert {study.cell_config(s, c).method.loss.get("cov_coeff", 1.0) for c in exp} == {1.0, 5.0, 20.0}
    tiny = importlib.import_module("configs.studies.recipes").get_config("tiny")
    assert all(study.cell_config(tiny, c).train.steps == 2 for c in study.cells(tiny))


def test_a_misspelt_override_is_refused():
    s = _study()
    s.common = [("optim.base_rl", 0.1)]
    with pytest.raises(KeyError, match="base_rl"):
        study.cell_config(s, study.cells(s)[0])


def test_two_cell_study_runs_resumes_and_reports(tmp_path, monkeypatch):
    s = _study("tiny")
    wd = str(tmp_path / "study_a")
    records = [study.run_cell(s, c, wd) for c in study.cells(s)]
    assert [r["name"] for r in records] == ["vicreg", "simclr_tuned"]
    assert records[1]["method"] == "simclr" and records[1]["settings"]["optim.base_lr"] == 0.5
    for r in records:
        assert r["steps"] == 2 and 0 <= r["probe"]["linear"]["top1"] <= 100 and r["resumed"] is False
        assert r["analysis"]["duality"]["relative_residual"] < 1e-5
    # Each cell carries its floors; both cells start from the same backbone (seed 0), so they share one
    # random-init probe, and the raw-pixel one equals a direct probe of the pixels.
    assert records[0]["baselines"] == records[1]["baselines"]
    assert sorted(os.listdir(os.path.join(wd, "baselines"))) == sorted(
        b["key"] + ".json" for b in records[0]["baselines"].values())
    from duality import probe

    t = train.Trainer(study.cell_config(s, study.cells(s)[0]))
    raw = probe.linear_probe(t.data.train_arrays["image"] / 255.0, t.data.train_arrays["label"],
                             t.data.test_arrays["image"] / 255.0, t.data.test_arrays["label"], 10)
    assert records[0]["baselines"]["raw_pixels"]["top1"] == pytest.approx(raw["top1"])
    other = study.cell_config(s, study.cells(s)[0])
    other.seed = 1  # another initial backbone: its own probe, not the cached one
    assert study.baselines(other, wd)["random_init"]["key"] != records[0]["baselines"]["random_init"]["key"]
    # Finished cells are not trained again.
    monkeypatch.setattr(train, "fit", lambda *a, **k: pytest.fail("a finished cell was re-run"))
    again = study.run_cell(s, study.cells(s)[0], wd)
    assert again["probe"] == records[0]["probe"]
    # Another study with a cell of the same configuration points to the run instead of repeating it ...
    other = importlib.import_module("configs.studies.duality").get_config("tiny")
    other.entries = [dict(name="vicreg_again", config="vicreg")]
    shared = study.run_cell(other, study.cells(other)[0], str(tmp_path / "study_b"))
    assert shared["shared_from"] == os.path.join("study_a", "cells", "vicreg")
    assert shared["probe"] == records[0]["probe"] and shared["name"] == "vicreg_again"
    assert records[0]["config"] == study.as_stored(study.cell_config(s, study.cells(s)[0]))
    # A sibling study finds the floors already probed (no probe runs) and keeps its own copy.
    from duality import probe as probe_module

    monkeypatch.setattr(probe_module, "linear_probe", lambda *a, **k: pytest.fail("a cached floor was re-probed"))
    floors = study.baselines(study.cell_config(s, study.cells(s)[0]), str(tmp_path / "study_c"))
    assert floors == records[0]["baselines"] and len(os.listdir(tmp_path / "study_c" / "baselines")) == 2
    monkeypatch.undo()
    monkeypatch.setattr(train, "fit", lambda *a, **k: pytest.fail("a finished cell was re-run"))
    # ... and one that differs in any field does not.
    other.common = list(other.common) + [("optim.weight_decay", 1e-5)]
    changed = study.cell_config(other, study.cells(other)[0])
    assert study.changed_fields(records[0]["config"], study.as_stored(changed)) == [
        "optim.weight_decay: 1e-06 -> 1e-05"]
    assert study.shared_run(str(tmp_path / "study_b"), changed) is None
    # A finished cell whose config file changed since (the settings alone still match) is not silently reused.
    path = os.path.join(wd, "cells", "vicreg", "cell.json")
    with open(path) as f:
        rec = json.load(f)
    rec["config"]["optim"]["weight_decay"] = 0.5
    with open(path, "w") as f:
        json.dump(rec, f)
    with pytest.raises(ValueError, match="another configuration.*weight_decay: 0.5"):
        study.run_cell(s, study.cells(s)[0], wd)
    rec["config"]["optim"]["weight_decay"] = records[0]["config"]["optim"]["weight_decay"]
    with open(path, "w") as f:
        json.dump(rec, f)
    # A cell whose settings changed since it ran is not silently reused.
    s.common = list(s.common) + [("optim.base_lr", 0.05)]
    with pytest.raises(ValueError, match="other settings"):
        study.run_cell(s, study.cells(s)[0], wd)
    text, got = study.report(s, wd)
    assert len(got) == 2 and "| vicreg | vicreg | 16 |" in text and "simclr_tuned" in text
    over = records[0]["probe"]["linear"]["top1"] - records[0]["baselines"]["random_init"]["top1"]
    assert f"| {over:.2f} (n = 1) |" in text  # the "over random init" column
    end = records[0]["train_end"]  # VICReg's own terms at the end of training, in the table
    assert {"inv", "var", "cov", "drift_encoder", "rankme_z"} <= set(end) and end["to_step"] == 2
    assert f"loss {end['loss']:.4g}, cov {end['cov']:.4g}, inv {end['inv']:.4g}, var {end['var']:.4g} |" in text
    assert os.path.getsize(os.path.join(wd, "study.png")) > 10_000
    assert os.path.exists(os.path.join(wd, "study.md")) and os.path.exists(os.path.join(wd, "study.json"))
