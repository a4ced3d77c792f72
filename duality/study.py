"""Comparison studies: a grid of pretraining runs, each probed and analysed, in one table.

  python -m duality.study --config=configs/studies/duality.py:short --workdir=studies/duality
  python -m duality.study --config=... --workdir=DIR --list          # the cells, numbered
  python -m duality.study --config=... --workdir=DIR --cell=$SLURM_ARRAY_TASK_ID   # one cell per job
  python -m duality.study --config=... --workdir=DIR --report        # table + plots from finished cells
  python -m duality.study --config=... --workdir=DIR --reanalyze     # analyses recomputed, no retraining
  python -m duality.study --config=... --workdir=DIR --backfill      # newer fields (floors, end metrics), old cells

A study config has `entries`, each a method config (`config`, a file under
configs/, at the study's `scale`), fixed `overrides` ((dotted field, value)
pairs) and `axes` ((dotted field, list of values) pairs); a cell is one
point of an entry's axes product, and `common` overrides apply to every cell. Cells run
one after another in DIR/cells/<name>/ (or one per job with --cell); each is
an ordinary pretraining workdir, so an interrupted cell resumes, and a
finished one (its cell.json exists) is skipped. After training a cell is
probed (probe.py: linear, kNN, few-label), analysed (analysis/embedding.py)
and set against its floors (`baselines`: the same encoder at initialisation
and raw pixels, probed alike); DIR/study.md and DIR/study.png collect them.
"""
from __future__ import annotations

import importlib
import itertools
import json
import os
import sys
import time

import numpy as np

from duality import fileio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def set_field(cfg, dotted: str, value):
    """cfg.<dotted> = value, refusing fields the config does not have (a typo is not a new field)."""
    *path, last = dotted.split(".")
    node = cfg
    for p in path:
        if p not in node:
            raise KeyError(f"study override {dotted!r}: the config has no field {p!r}")
        node = node[p]
    if last not in node:
        raise KeyError(f"study override {dotted!r}: the config has no field {last!r} (fields: {sorted(node)})")
    if dotted == "method.loss":  # the loss's hyperparameters: the ones given change, the others keep their values
        node[last].update(value)
    else:
        node[last] = value


def _short(value) -> str:
    """A value as a cell name reads it: a projector spec by its output width, a dict by its short items."""
    if isinstance(value, dict):
        return "_".join(f"{k[:4]}{_short(v)}" for k, v in value.items()) or "none"
    if isinstance(value, str):
        return value.split("-")[-1] if "-" in value else value
    if isinstance(value, bool):
        return "T" if value else "F"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _pairs(items):
    """(dotted field, value) pairs, as study configs write them (ConfigDict keys cannot hold dots)."""
    out = []
    for item in items:
        if len(item) != 2 or not isinstance(item[0], str):
            raise ValueError(f"study: expected (dotted field, value) pairs, got {item!r}")
        out.append((item[0], item[1]))
    return out


def cells(study) -> list[dict]:
    """[{name, entry, config (module), settings: {dotted: value}}] in a fixed order.

    A study-level `seeds` list adds a "seed" axis to every entry that has none:
    each setting then runs once per seed, and the report gives its mean,
    standard deviation and 95% interval.
    """
    out = []
    seeds = list(study.get("seeds", []) or [])
    for e in study.entries:
        axes = dict(_pairs(e.get("axes", [])))
        if seeds and "seed" not in axes:
            axes["seed"] = seeds
        keys = list(axes)
        for values in itertools.product(*(axes[k] for k in keys)) if keys else [()]:
            settings = {**dict(_pairs(study.get("common", []))), **dict(_pairs(e.get("overrides", []))),
                        **dict(zip(keys, values))}
            suffix = "".join(f"-{k.split('.')[-1][:4]}{_short(v)}" for k, v in zip(keys, values))
            out.append(dict(name=e["name"] + suffix, entry=e["name"], config=e["config"], settings=settings,
                            axes={k: v for k, v in zip(keys, values)}))
    names = [c["name"] for c in out]
    if len(set(names)) != len(names):
        raise ValueError(f"study cells have duplicate names: {sorted(n for n in names if names.count(n) > 1)}")
    return out


def setting_name(record: dict) -> str:
    """A cell's name without its seed: the setting that seeds repeat."""
    return record["entry"] + "".join(f"-{k.split('.')[-1][:4]}{_short(v)}" for k, v in record["axes"].items()
                                     if k != "seed")


def cell_config(study, cell):
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from configs import base

    cfg = importlib.import_module(f"configs.{cell['config']}").get_config(study.scale)
    for k, v in cell["settings"].items():
        if isinstance(v, str) and "{h}" in v:  # the scale's hidden width, as in the method configs
            v = v.format(h=base.HIDDEN[study.scale])
        set_field(cfg, k, v)
    return cfg


def run_cell(study, cell, workdir: str) -> dict:
    from duality import probe, train
    from duality.analysis import embedding

    import jax

    wd = fileio.join(workdir, "cells", cell["name"])
    done = fileio.join(wd, "cell.json")
    if fileio.exists(done):
        record = json.loads(fileio.read_text(done))
        if json.loads(json.dumps(cell["settings"])) != record["settings"]:
            raise ValueError(f"{done} was made with other settings ({record['settings']}) than the study now "
                             f"gives this cell ({cell['settings']}); use a new --workdir or delete the cell")
        stored = _stored_config(done, record)
        changed = changed_fields(stored, as_stored(cell_config(study, cell))) if stored else []
        if changed:  # e.g. the method's config file was re-tuned after this cell ran
            raise ValueError(f"{done} was made with another configuration than its config now gives "
                             f"({'; '.join(changed[:5])}); delete the cell to re-run it")
        return record
    cfg = cell_config(study, cell)
    source = shared_run(workdir, cfg) if study.get("share_runs", True) else None
    if source is not None:  # the same configuration already ran in this or a sibling study: the same run
        path, found = source
        record = dict(found, name=cell["name"], entry=cell["entry"], axes=cell["axes"], settings=cell["settings"],
                      shared_from=os.path.relpath(os.path.dirname(path), os.path.dirname(fileio.abspath(workdir))))
        if jax.process_index() == 0:
            _write_json(done, record)
        return record
    from duality import checkpoint

    resumed = checkpoint.has_checkpoint(wd)  # its time is then this invocation's part only
    t0 = time.perf_counter()
    trainer, state = train.fit(cfg, wd)
    if int(state.step) < trainer.total_steps:  # interrupted: the next invocation resumes it
        raise KeyboardInterrupt(f"cell {cell['name']} stopped at step {int(state.step)}")
    train_s = time.perf_counter() - t0
    p = probe.probe_workdir(wd, seed=cfg.seed)
    a = embedding.analyze_workdir(wd, samples=study.get("analysis_samples", 2048), seed=cfg.seed)
    record = dict(name=cell["name"], entry=cell["entry"], method=cfg.method.name, axes=cell["axes"],
                  settings=cell["settings"], seed=cfg.seed, steps=int(state.step), train_seconds=round(train_s, 1),
                  resumed=resumed, embedding_dim=int(str(cfg.model.projector).split("-")[-1]), probe=p, analysis=a,
                  baselines=baselines(cfg, workdir, trainer), train_end=train_end(wd), code=_code_version(),
                  config=as_stored(cfg))
    if jax.process_index() == 0:
        _write_json(done, record)
    return record


def as_stored(cfg) -> dict:
    """A config as config.json and cell.json store it (tuples as lists)."""
    return json.loads(json.dumps(cfg.to_dict() if hasattr(cfg, "to_dict") else cfg))


def changed_fields(stored: dict, current: dict, strict: bool = False) -> list[str]:
    """Fields where a stored run's config and the current one disagree ("field: old -> new").

    Not strict: a field the stored config lacks was added to the code after
    the run, which ran with that field's default behaviour (as
    checkpoint.check_config reads it). Strict (sharing a run): the field sets
    must match too, since a new field may now be set to something else.
    """
    from duality import checkpoint

    a, b = checkpoint.flatten(stored), checkpoint.flatten(current)
    out = [f"{k}: {a[k]!r} -> {b.get(k, '(absent)')!r}" for k in sorted(a) if b.get(k, _ABSENT) != a[k]]
    return out + ([f"{k}: (absent) -> {b[k]!r}" for k in sorted(set(b) - set(a))] if strict else [])


_ABSENT = object()


def _stored_config(path: str, record: dict):
    """The configuration a finished cell ran with: in its cell.json, else its run's config.json, else None."""
    from duality import checkpoint, methods

    if record.get("config"):
        return as_stored(methods.upgrade(record["config"]))
    return checkpoint.stored_config(os.path.dirname(path))


def shared_run(workdir: str, cfg):
    """(path, record) of a finished cell that ran this configuration, in `workdir` or a sibling study directory.

    The paper's comparisons, the methods table and the recipe sweep repeat
    runs (VICReg at its own recipe and seed 0 is a cell of all three); at 12
    minutes a run on a CPU, each runs once and the others point to it
    (`shared_from` in cell.json; the table marks them). Configurations are
    compared field by field (`changed_fields`), from the config stored in
    cell.json or the config.json the run wrote.
    """
    current = as_stored(cfg)
    root = os.path.dirname(fileio.abspath(workdir))
    for path in fileio.glob(fileio.join(root, "*", "cells", "*", "cell.json")):
        record = json.loads(fileio.read_text(path))
        if record.get("shared_from"):
            continue
        stored = _stored_config(path, record)
        if stored is not None and not changed_fields(stored, current, strict=True):
            return path, record
    return None


def _code_version() -> str:
    """The commit the run was made with (and '+dirty' for uncommitted changes), or '' outside a checkout."""
    import subprocess

    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + ("+dirty" if head and dirty else "")


def _digest(tree) -> str:
    import hashlib

    import jax

    h = hashlib.sha1()
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        h.update(jax.tree_util.keystr(path).encode())
        h.update(np.asarray(leaf).tobytes())
    return h.hexdigest()[:16]


def baselines(cfg, workdir: str, trainer=None) -> dict:
    """The floors a cell must clear, probed exactly as the cell is: its encoder at initialisation and raw pixels.

    Issue 11's bar is "at least 3 points above the random-init encoder", and a
    random convnet is a strong Fashion-MNIST feature (about 85%), so each cell
    records the linear top-1 of its own backbone before training (same seed,
    same probe, same held-out penalty choice) and of the raw pixels. Both are
    cached in DIR/baselines/: the random encoder under a digest of its initial
    backbone parameters and BatchNorm statistics (cells whose encoders start
    identical, which is every method at one seed, share one probe; the probe
    reads the backbone's h, so projector and predictor do not enter), raw
    pixels under the data set and seed; a sibling study's cache is used too.
    """
    from duality import pretrained, probe, train

    import jax

    trainer = trainer or train.Trainer(cfg)
    init = trainer.init_state(cfg.seed)
    backbone = {"params": init.params["backbone"], "batch_stats": init.batch_stats.get("backbone", {})}
    d = trainer.data
    keep = d.train_arrays["label"] >= 0
    train_y, test_y = d.train_arrays["label"][keep], d.test_arrays["label"]
    kw = dict(num_classes=cfg.data.num_classes, seed=cfg.seed)
    out = {}
    for name, key, features in (
            ("random_init", f"{cfg.data.name}-seed{cfg.seed}-init{_digest(backbone)}",
             lambda: [pretrained.Encoder(cfg, init.params, init.batch_stats).encode(x)["h"]
                      for x in (d.train_arrays["image"][keep], d.test_arrays["image"])]),
            ("raw_pixels", f"{cfg.data.name}-seed{cfg.seed}-pixels",
             lambda: [np.asarray(x, np.float32) / 255.0
                      for x in (d.train_arrays["image"][keep], d.test_arrays["image"])])):
        path = fileio.join(workdir, "baselines", key + ".json")
        siblings = fileio.join(os.path.dirname(fileio.abspath(workdir)), "*", "baselines", key + ".json")
        cached = [path] + fileio.glob(siblings)  # a sibling study may have probed it already
        cached = [c for c in cached if fileio.exists(c)]
        if cached:
            out[name] = json.loads(fileio.read_text(cached[0]))
            if cached[0] != path and jax.process_index() == 0:
                _write_json(path, out[name])
            continue
        xs, xt = features()
        r = probe.linear_probe(xs, train_y, xt, test_y, **kw)
        out[name] = {"key": key, **{k: r[k] for k in ("top1", "top5", "l2")}}
        if jax.process_index() == 0:
            _write_json(path, out[name])
    return out


def train_end(run_dir: str, last: float = 0.1) -> dict:
    """The training metrics (every loss term, drift, RankMe of z) averaged over the rows logged in the last
    `last` of the steps: whether each loss term did its job, beside the probe that says whether it helped."""
    from duality.analysis import curves

    if not fileio.exists(fileio.join(run_dir, "metrics.jsonl")):
        return {}
    rows = [r for r in curves.read_metrics(run_dir) if "loss" in r]  # training rows, one per step
    if not rows:
        return {}
    total = max(r["step"] for r in rows)
    tail = [r for r in rows if r["step"] > (1 - last) * total] or rows[-1:]
    keys = [k for k in tail[-1] if k != "step" and isinstance(tail[-1][k], (int, float))]
    out = {k: float(np.nanmean([r[k] for r in tail if k in r])) for k in keys}
    return {"from_step": int(tail[0]["step"]), "to_step": int(total), **out}


def _finished(study, workdir: str):
    """(cell, path of its cell.json, record) for each finished cell, in the study's order."""
    for c in cells(study):
        path = fileio.join(workdir, "cells", c["name"], "cell.json")
        if fileio.exists(path):
            yield c, path, json.loads(fileio.read_text(path))


def backfill(study, workdir: str) -> int:
    """Add what newer code records (floors, end-of-training metrics) to finished cells; returns the count."""
    n = 0
    for c, path, record in _finished(study, workdir):
        if record.get("shared_from"):
            continue  # a pointer: its source cell is backfilled in its own study
        changed = False
        if "baselines" not in record:
            record["baselines"], changed = baselines(cell_config(study, c), workdir), True
        if not record.get("train_end") and fileio.exists(fileio.join(os.path.dirname(path), "metrics.jsonl")):
            record["train_end"], changed = train_end(os.path.dirname(path)), True
        if changed:
            _write_json(path, record)
            n += 1
    return n


def reanalyze(study, workdir: str, samples=None) -> int:
    """Recompute every finished cell's analysis from its checkpoint (no retraining); returns the count."""
    from duality.analysis import embedding

    n = 0
    for _, path, record in _finished(study, workdir):
        run_dir = os.path.dirname(path)
        if record.get("shared_from"):  # the run lives in the cell it was shared from
            run_dir = fileio.join(os.path.dirname(fileio.abspath(workdir)), record["shared_from"])
        record["analysis"] = embedding.analyze_workdir(
            run_dir, samples=samples or study.get("analysis_samples", 2048), seed=record["seed"])
        _write_json(path, record)
        n += 1
    return n


def _write_json(path: str, obj) -> None:
    fileio.write_text(path, json.dumps(obj, indent=2))


COLUMNS = [  # header, getter
    ("linear top-1", lambda r: r["probe"]["linear"]["top1"]),
    ("kNN-20", lambda r: r["probe"]["knn"]["k20"]["top1"]),
    ("kNN-200", lambda r: r["probe"]["knn"]["k200"]["top1"]),
    ("1% labels", lambda r: r["probe"]["linear_1pct"]["top1"]),
    ("10% labels", lambda r: r["probe"]["linear_10pct"]["top1"]),
    ("RankMe h", lambda r: r["analysis"]["h"]["effective_rank"]),  # uncentred, as RankMe is defined
    ("RankMe z", lambda r: r["analysis"]["z"]["effective_rank"]),
    ("L_c", lambda r: r["analysis"]["duality"]["l_c"]),
    ("L_nc", lambda r: r["analysis"]["duality"]["l_nc"]),
    ("Lemma 3.4 ratio", lambda r: r["analysis"]["duality"]["dimension_quartic_over_lower"]),
    ("var x M", lambda r: r["analysis"]["negative_pairs"]["var_times_m"]),
]


def _fmt(v) -> str:
    return f"{v:.2f}" if abs(v) < 1e4 else f"{v:.3g}"


def cell_table(records: list[dict]) -> str:
    head = ["cell", "method", "d", "seed"] + [h for h, _ in COLUMNS] + ["train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 4 + "---:|" * (len(COLUMNS) + 1)]
    for r in records:
        name = r["name"] + (f" (= {r['shared_from']})" if r.get("shared_from") else "")
        lines.append("| " + " | ".join([name, r["method"], str(r["embedding_dim"]), str(r["seed"])]
                                       + [_fmt(g(r)) for _, g in COLUMNS]
                                       + [f"{r['train_seconds']:.0f}" + (" (resumed)" if r.get("resumed") else "")])
                     + " |")
    return "\n".join(lines)


def settings(records: list[dict]) -> dict:
    """{setting name: [records]} in the order the cells come."""
    groups = {}
    for r in records:
        groups.setdefault(setting_name(r), []).append(r)
    return groups


def _over_random(r):
    """Linear top-1 minus the same seed's random-init encoder (paired: both share the initial backbone)."""
    return r["probe"]["linear"]["top1"] - r["baselines"]["random_init"]["top1"]


SUMMARY = [("linear top-1", COLUMNS[0][1]), ("over random init", _over_random),
           ("random init", lambda r: r["baselines"]["random_init"]["top1"]), ("kNN-20", COLUMNS[1][1]),
           ("1% labels", COLUMNS[3][1]), ("10% labels", COLUMNS[4][1]), ("RankMe z", COLUMNS[6][1])]


def _cell_summary(get, rs) -> str:
    """stats.fmt over the records that have the field (cells from before it existed do not)."""
    from duality import stats

    values = []
    for r in rs:
        try:
            values.append(get(r))
        except KeyError:
            pass
    return stats.fmt(stats.summary(values)) + ("" if len(values) == len(rs) else f" ({len(values)} of {len(rs)})") \
        if values else "n/a"


def summary_table(records: list[dict]) -> str:
    """One row per setting: mean ± std [95% CI] over its seeds."""
    head = ["setting", "method", "d", "n"] + [h for h, _ in SUMMARY] + ["train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * (len(SUMMARY) + 2)]
    for name, rs in settings(records).items():
        cols = [_cell_summary(g, rs) for _, g in SUMMARY]
        whole = [r["train_seconds"] for r in rs if not r.get("resumed")]  # a resumed cell timed only its last part
        secs = f"{np.mean(whole):.0f}" if whole else "n/a"
        lines.append("| " + " | ".join([name, rs[0]["method"], str(rs[0]["embedding_dim"]), str(len(rs))] + cols
                                       + [secs]) + " |")
    return "\n".join(lines)


GENERIC = ("from_step", "to_step", "lr", "grad_norm", "probe_loss", "probe_top1", "rankme_z", "z_std", "finite")


def training_table(records: list[dict]) -> str:
    """One row per setting: its loss terms, encoder drift and batch RankMe of z at the end of training (means
    over seeds of each cell's `train_end`), to read beside the probe: did each term of the objective do its job?"""
    lines = ["| setting | loss terms | encoder drift | RankMe z (batch) | z std x sqrt(d) |",
             "|---|---|---:|---:|---:|"]
    for name, rs in settings(records).items():
        ends = [r["train_end"] for r in rs if r.get("train_end")]
        if not ends:
            continue

        def mean(k):
            v = [e[k] for e in ends if k in e]
            return float(np.mean(v)) if v else float("nan")

        terms = sorted((k for k in ends[0] if k not in GENERIC and not k.startswith(("drift_", "norm_"))),
                       key=lambda k: (k != "loss", k))  # the total, then its terms
        lines.append(f"| {name} | " + ", ".join(f"{k} {mean(k):.4g}" for k in terms)
                     + f" | {mean('drift_encoder'):.3f} | {mean('rankme_z'):.1f} | {mean('z_std'):.3f} |")
    return "\n".join(lines)


def comparisons(study, records: list[dict]) -> list[tuple[str, str]]:
    """The study's own `comparisons` (pairs of setting names) that have results, else each setting vs the best."""
    groups = settings(records)
    pairs = [tuple(p) for p in (study.get("comparisons", []) or [])]
    if pairs:
        return [(a, b) for a, b in pairs if a in groups and b in groups]
    if len(groups) < 2:
        return []
    best = max(groups, key=lambda k: np.mean([COLUMNS[0][1](r) for r in groups[k]]))
    return [(best, k) for k in groups if k != best]


def difference_table(study, records: list[dict]) -> str:
    from duality import stats

    groups = settings(records)
    lines = ["| A | B | n (A, B) | A - B (linear top-1) | 95% CI | p (Welch) | resolved |",
             "|---|---|---|---:|---:|---:|---|"]
    for a, b in comparisons(study, records):
        d = stats.difference([COLUMNS[0][1](r) for r in groups[a]], [COLUMNS[0][1](r) for r in groups[b]])
        ci = f"[{d['diff'] - d['ci95']:+.2f}, {d['diff'] + d['ci95']:+.2f}]" if d["ci95"] == d["ci95"] else "n/a"
        p = f"{d['p']:.3f}" if d["p"] == d["p"] else "n/a"
        lines.append(f"| {a} | {b} | {len(groups[a])}, {len(groups[b])} | {d['diff']:+.2f} | {ci} | {p} | "
                     f"{'**yes**' if d['resolved'] else 'no'} |")
    return "\n".join(lines)


def table(records: list[dict], study=None) -> str:
    """study.md's tables: settings over seeds, the differences between them, then every cell."""
    out = ["## Settings", "", "Mean ± standard deviation [95% confidence interval of the mean] over seeds "
           "(Student t; n = 1 has no interval). *over random init*: linear top-1 minus that of the same seed's "
           "encoder at initialisation, probed the same way (raw pixels are in study.json).", "",
           summary_table(records), ""]
    diff = difference_table(study or {}, records)
    if diff.count("\n") > 1:
        out += ["## Differences", "", "Linear top-1 of A minus B with the 95% Welch interval of the difference; "
                "resolved = the interval excludes 0.", "", diff, ""]
    train = training_table(records)
    if train.count("\n") > 1:
        out += ["## Training", "", "Each objective's own terms at the end of training (mean over the steps logged "
                "in the last 10% of the run, then over seeds), the encoder's relative distance from its "
                "initialisation ||W - W0|| / ||W0||, and the batch RankMe of z.", "", train, ""]
    out += ["## Cells", "", cell_table(records)]
    return "\n".join(out)


def plot(records: list[dict], path: str, title: str = "") -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from duality import stats

    groups = settings(records)
    fig, ax = plt.subplots(1, 3, figsize=(17, max(4, 0.45 * len(groups) + 1.5)))
    names = list(groups)[::-1]
    y = np.arange(len(names))
    lo = 100.0
    for off, (label, get) in zip((-0.2, 0.0, 0.2), COLUMNS[:3]):
        summ = [stats.summary(get(r) for r in groups[n]) for n in names]
        err = [0.0 if s["ci95"] != s["ci95"] else s["ci95"] for s in summ]
        ax[0].barh(y + off, [s["mean"] for s in summ], height=0.2, xerr=err, capsize=2, label=label)
        lo = min(lo, min(s["mean"] - e for s, e in zip(summ, err)))
    floors = [r["baselines"]["random_init"]["top1"] for r in records if "baselines" in r]
    if floors:  # the bar issue 11 sets: 3 points over the random-init encoder
        ax[0].axvline(np.mean(floors), color="k", ls="--", lw=1, label="random-init encoder (linear)")
        ax[0].axvline(np.mean(floors) + 3, color="k", ls=":", lw=1, label="random init + 3")
        lo = min(lo, np.mean(floors))
    ax[0].set_yticks(y, [f"{n} (n={len(groups[n])})" for n in names])
    ax[0].set_xlim(max(0, lo - 3), 100)
    ax[0].set(xlabel="top-1 (%), mean with 95% CI over seeds", title="probes")
    ax[0].legend(loc="lower right")
    by_entry = {}
    for r in records:
        by_entry.setdefault(r["entry"], []).append(r)
    for entry, rs in by_entry.items():
        dims = sorted({r["embedding_dim"] for r in rs})
        if len(dims) > 1:
            summ = [stats.summary(r["probe"]["linear"]["top1"] for r in rs if r["embedding_dim"] == d) for d in dims]
            ax[1].errorbar(dims, [s["mean"] for s in summ], yerr=[0.0 if s["ci95"] != s["ci95"] else s["ci95"]
                                                                  for s in summ], fmt="o-", capsize=3, label=entry)
    ax[1].set_xscale("log", base=2)
    ax[1].set(xlabel="embedding dimension d", ylabel="linear top-1 (%), mean with 95% CI",
              title="embedding-dimension sweep")
    if ax[1].lines:
        ax[1].legend()
    lc = [r["analysis"]["duality"]["l_c"] for r in records]
    lnc = [r["analysis"]["duality"]["l_nc"] for r in records]
    ax[2].scatter(lc, lnc)
    for r, a, b in zip(records, lc, lnc):
        ax[2].annotate(r["name"], (a, b), fontsize=6)
    ax[2].set(xscale="log", yscale="log", xlabel="L_c (unit embeddings)", ylabel="L_nc",
              title="sample- vs dimension-contrastive criterion (each cell)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fileio.save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def report(study, workdir: str) -> tuple[str, list[dict]]:
    records = [record for _, _, record in _finished(study, workdir)]
    if not records:
        return "", []
    md = [f"# Study {study.get('name', '')}", "", study.get("description", "").strip(), "",
          f"{len(records)} of {len(cells(study))} cells finished; scale `{study.scale}`.", "",
          table(records, study), ""]
    text = "\n".join(md)
    fileio.write_text(fileio.join(workdir, "study.md"), text)  # each written whole (fileio)
    _write_json(fileio.join(workdir, "study.json"), records)
    plot(records, fileio.join(workdir, "study.png"), study.get("name", ""))
    return text, records


def main(argv=None):
    from absl import app, flags
    from ml_collections import config_flags

    config_flags.DEFINE_config_file("config", None, "Study config (configs/studies/<name>.py[:arg]).")
    flags.DEFINE_string("workdir", None, "Where the cells, table and plots go.")
    flags.DEFINE_integer("cell", None, "Run only this cell (0-based; e.g. a job-array index).")
    flags.DEFINE_bool("list", False, "Print the cells and exit.")
    flags.DEFINE_bool("report", False, "Only write the table and plots from finished cells.")
    flags.DEFINE_bool("reanalyze", False, "Recompute finished cells' analyses from their checkpoints, then report.")
    flags.DEFINE_bool("backfill", False, "Add what newer code records (random-init and raw-pixel probes, "
                      "end-of-training metrics) to finished cells that lack it, then report.")
    flags.mark_flags_as_required(["config", "workdir"])
    FLAGS = flags.FLAGS

    def run(argv):
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        from absl import logging

        logging.set_verbosity(logging.WARNING)  # the console shows progress lines, not every metric write
        from duality import runtime

        runtime.tune_allocator()  # as duality.main does
        runtime.tune_xla_cpu()
        study, workdir = FLAGS.config, FLAGS.workdir
        all_cells = cells(study)
        if FLAGS.list:
            for i, c in enumerate(all_cells):
                print(f"{i:3d}  {c['name']:<32} configs/{c['config']}.py  {c['settings']}")
            return
        fileio.makedirs(workdir)
        if FLAGS.reanalyze:
            print(f"re-analysed {reanalyze(study, workdir)} finished cell(s)")
        elif FLAGS.backfill:
            print(f"backfilled {backfill(study, workdir)} finished cell(s)")
        elif not FLAGS.report:
            chosen = all_cells if FLAGS.cell is None else [all_cells[FLAGS.cell]]
            for i, c in enumerate(chosen):
                print(f"\n=== study cell {c['name']} ({i + 1}/{len(chosen)}) ===", flush=True)
                r = run_cell(study, c, workdir)
                print(f"=== {c['name']}: linear top-1 {r['probe']['linear']['top1']:.2f}%, "
                      f"kNN-20 {r['probe']['knn']['k20']['top1']:.2f}%", flush=True)
        import jax

        if jax.process_index() != 0:
            return
        text, records = report(study, workdir)
        print("\n" + text)
        if records:
            print(f"written: {fileio.join(workdir, 'study.md')}, study.json, study.png")

    app.run(run, argv)


if __name__ == "__main__":
    main()
