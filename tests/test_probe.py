"""Probing from checkpoints: duality.load, the probe suite, embedding analysis."""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import duality
from duality import probe, train
from duality.analysis import embedding
from tests.train_configs import tiny

pytestmark = pytest.mark.slow  # trains, or reads a data set: the full suite only (launch/test.sh)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny VICReg run on 8 devices: its workdir and final state."""
    workdir = str(tmp_path_factory.mktemp("probe") / "run")
    cfg = tiny("vicreg", steps=3)
    cfg.data.name, cfg.data.train_subset = "fashion_mnist", 240  # the probes' class-balanced label subsets
    trainer, state = train.fit(cfg, workdir)
    return workdir, trainer, state


def test_load_restores_the_final_state_and_encodes_like_the_model(trained):
    workdir, trainer, state = trained
    enc = duality.load(workdir)
    assert enc.step == 3 and enc.config.method.name == "vicreg"
    for a, b in zip(jax.tree.leaves(enc.params), jax.tree.leaves(state.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    images = trainer.data.test_arrays["image"][:37]  # not a multiple of 8: the last batch is padded
    out = enc.encode(images, batch=16)
    assert out["h"].shape == (37, 32) and out["z"].shape == (37, 16)
    # The same numbers as one unsharded apply of the model.
    from duality.data import augment as aug
    x = aug.center_view(images, enc.size, enc.mean, enc.std)
    ref = trainer.eval_model.apply({"params": jax.device_get(state.params),
                                    "batch_stats": jax.device_get(state.batch_stats)}, x, train=False)
    np.testing.assert_allclose(out["h"], np.asarray(ref["h"]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["z"], np.asarray(ref["z"]), rtol=1e-5, atol=1e-5)
    # Augmented views depend on (seed, image index) only, not on how the images are batched.
    v8, v16 = enc.encode_views(images, batch=8), enc.encode_views(images, batch=16)
    np.testing.assert_allclose(v8[0], v16[0], rtol=1e-5, atol=1e-5)
    assert not np.allclose(v8[0], v8[1])  # two different views
    # An earlier step is a different encoder; a missing one is a clear error.
    assert duality.load(workdir, step=2).step == 2
    with pytest.raises(ValueError, match="no checkpoint at step 7"):
        duality.load(workdir, step=7)


def test_load_on_one_device_a_run_saved_on_eight(trained, tmp_path):
    workdir, trainer, _ = trained
    images = trainer.data.test_arrays["image"][:20]
    want = duality.load(workdir).encode(images)["z"]
    np.save(tmp_path / "images.npy", images)
    code = ("import sys, numpy as np, jax, duality; assert jax.device_count() == 1; "
            f"z = duality.load({workdir!r}).encode(np.load({str(tmp_path / 'images.npy')!r}))['z']; "
            f"np.save({str(tmp_path / 'z.npy')!r}, z)")
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env, timeout=300)
    np.testing.assert_allclose(np.load(tmp_path / "z.npy"), want, rtol=1e-5, atol=1e-5)


def test_missing_checkpoint_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        duality.load(str(tmp_path))


def _knn_reference(train_x, train_y, test_x, num_classes, k, temperature):
    """Loop-per-query reference: cosine similarities, the k largest, exp(s/T)-weighted votes."""
    tr = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    scores = []
    for q in test_x:
        s = tr @ (q / np.linalg.norm(q))
        top = np.argsort(-s, kind="stable")[:k]
        v = np.zeros(num_classes)
        for i in top:
            v[train_y[i]] += np.exp(s[i] / temperature)
        scores.append(v)
    return np.array(scores)


def test_knn_matches_the_reference():
    rng = np.random.default_rng(0)
    c = 5
    centres = rng.normal(size=(c, 16))
    ty = rng.integers(0, c, 300)
    tx = centres[ty] + rng.normal(0, 1.5, (300, 16))
    qy = rng.integers(0, c, 77)
    qx = centres[qy] + rng.normal(0, 1.5, (77, 16))
    got = probe.knn(tx, ty, qx, qy, c, ks=(3, 20), chunk=32)
    for k in (3, 20):
        s = _knn_reference(tx, ty, qx, c, k, 0.07)
        top1 = 100 * np.mean(np.argmax(s, 1) == qy)
        top5 = 100 * np.mean([qy[i] in np.argsort(-s[i])[:5] for i in range(len(qy))])
        np.testing.assert_allclose(got[f"k{k}"]["top1"], top1, atol=1e-3)
        np.testing.assert_allclose(got[f"k{k}"]["top5"], top5, atol=1e-3)
    assert got["k3"]["top1"] > 60


def test_label_subset_is_class_balanced_and_seeded():
    labels = np.repeat(np.arange(4), [100, 50, 10, 3])
    idx = probe.label_subset(labels, 0.1, seed=1)
    counts = np.bincount(labels[idx], minlength=4)
    np.testing.assert_array_equal(counts, [10, 5, 1, 1])
    assert len(np.unique(idx)) == len(idx)
    np.testing.assert_array_equal(idx, probe.label_subset(labels, 0.1, seed=1))
    assert not np.array_equal(idx, probe.label_subset(labels, 0.1, seed=2))


def test_linear_probe_chooses_its_penalty_without_seeing_test():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 20))
    y = rng.integers(0, 3, 600)
    x = centres[y] + rng.normal(0, 1.0, (600, 20))
    yt = rng.integers(0, 3, 200)
    xt = centres[yt] + rng.normal(0, 1.0, (200, 20))
    a = probe.linear_probe(x, y, xt, yt, 3, l2=(1e-4, 1.0, 100.0))
    b = probe.linear_probe(x, y, xt, (yt + 1) % 3, 3, l2=(1e-4, 1.0, 100.0))
    assert a["l2"] == b["l2"] and a["holdout_top1"] == b["holdout_top1"]  # test labels play no part
    assert a["l2"] != 100.0 and a["holdout_top1"]["100"] < max(a["holdout_top1"].values())
    assert a["top1"] > 90 and b["top1"] < 50


def _scipy_logistic_regression(x, y, k, l2):
    """An independent solver: the same objective in float64 numpy, minimised by scipy's L-BFGS-B."""
    from scipy.optimize import minimize

    n, d = x.shape
    onehot = np.eye(k)[y]

    def f(theta):
        w, b = theta[:d * k].reshape(d, k), theta[d * k:]
        logits = x @ w + b
        logits = logits - logits.max(1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        value = -np.mean(np.sum(onehot * logp, 1)) + 0.5 * l2 * np.sum(w * w)
        g = (np.exp(logp) - onehot) / n
        return value, np.concatenate([(x.T @ g + l2 * w).ravel(), g.sum(0)])

    res = minimize(f, np.zeros(d * k + k), jac=True, method="L-BFGS-B",
                   options=dict(maxiter=5000, gtol=1e-10, ftol=1e-15))
    return res.x[:d * k].reshape(d, k), res.x[d * k:], res.fun


def test_linear_probe_is_the_converged_logistic_regression():
    # Overlapping classes in 30-d: the optimum is interior and the penalty matters little, so a probe that
    # stopped early would differ from the optimum in its objective and its predictions.
    rng = np.random.default_rng(3)
    k, d = 5, 30
    centres = rng.normal(0, 0.6, size=(k, d))
    y = rng.integers(0, k, 3000)
    x = centres[y] + rng.normal(size=(3000, d)) * rng.uniform(0.5, 3.0, d)  # badly scaled dimensions
    xs = np.asarray(probe.standardize(x)[0], np.float64)
    w, b, best = _scipy_logistic_regression(xs, y, k, 1e-4)
    params, info = probe.fit(jnp.asarray(xs, jnp.float32), jnp.asarray(y), k, (1e-4,), max_iter=1000, tol=1e-6)
    assert int(info["iterations"][0]) < 1000 and float(info["grad_norm"][0]) < 1e-5
    ours = float(probe.objective({"w": params["w"][0], "b": params["b"][0]}, jnp.asarray(xs, jnp.float32),
                                 jnp.asarray(y), 1e-4))
    assert abs(ours - best) < 1e-5 * max(1.0, best)
    agree = np.mean(np.argmax(xs @ np.asarray(params["w"][0]) + np.asarray(params["b"][0]), 1)
                    == np.argmax(xs @ w + b, 1))
    assert agree > 0.995
    r = probe.linear_probe(x, y, x[:500], y[:500], k, l2=1e-4)
    assert r["converged"] and r["l2"] == 1e-4 and r["iterations"] < probe.MAX_ITER


def test_preconditioning_and_warm_starts_do_not_change_the_optimum():
    # Strongly correlated features: the preconditioned path (strongest penalty first, warm-started) and a
    # cold start at each penalty reach the same objective as scipy's float64 solver.
    rng = np.random.default_rng(5)
    k, d = 4, 12
    mix = rng.normal(size=(d, d)) * np.linspace(0.05, 2.0, d)
    y = rng.integers(0, k, 2000)
    x = rng.normal(0, 0.5, (k, d))[y] + rng.normal(size=(2000, d)) @ mix
    xs = np.asarray(probe.standardize(x)[0], np.float64)
    grid = (1e-4, 1e-2, 1.0)
    params, info = probe.fit(jnp.asarray(xs, jnp.float32), jnp.asarray(y), k, grid, max_iter=1000, tol=1e-6)
    for i, l2 in enumerate(grid):
        _, _, best = _scipy_logistic_regression(xs, y, k, l2)
        assert float(info["objective"][i]) == pytest.approx(best, rel=1e-5, abs=1e-6), l2
        cold, _ = probe.fit(jnp.asarray(xs, jnp.float32), jnp.asarray(y), k, (l2,), max_iter=1000, tol=1e-6)
        np.testing.assert_allclose(np.asarray(cold["w"][0]), np.asarray(params["w"][i]), atol=2e-3)


def test_embedding_statistics_on_known_matrices():
    # Equal singular values of a rank-r matrix: effective rank r.
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(50, 6)))
    assert abs(embedding.effective_rank(np.linalg.svd(q, compute_uv=False)) - 6) < 1e-6
    assert abs(embedding.effective_rank([1.0, 0.0, 0.0]) - 1) < 1e-6
    u = np.random.default_rng(1).normal(size=(1500, 64))
    stats = embedding.negative_pairs(u)  # uniform on the sphere: mean 0, variance 1/M (Prop. 3.1)
    assert abs(stats["mean"]) < 3e-3 and abs(stats["var_times_m"] - 1) < 0.05
    assert embedding.alignment(u, 3 * u) < 1e-12
    assert abs(embedding.uniformity(np.ones((10, 4))) - 0.0) < 1e-12  # all identical: log E exp(0)
    two = np.array([[1.0, 0.0], [-1.0, 0.0]])  # antipodal: ||u - v||^2 = 4
    assert abs(embedding.uniformity(two) - (-8.0)) < 1e-12


def test_probe_and_analyze_modes_write_their_reports(trained):
    workdir, _, _ = trained
    r = probe.probe_workdir(workdir)
    with open(os.path.join(workdir, "probe_step3.json")) as f:
        saved = json.load(f)
    assert saved["linear"]["top1"] == r["linear"]["top1"] and set(saved["knn"]) == {"k20", "k200"}
    assert saved["linear_1pct"]["train_examples"] == 10 and saved["linear_10pct"]["train_examples"] == 24
    a = embedding.analyze_workdir(workdir, samples=40)
    d = a["duality"]
    assert a["samples"] == 40 and d["n"] == 40 and d["m"] == 16
    assert d["relative_residual"] < 1e-5  # Theorem 3.3 on a trained encoder's embeddings
    assert d["dimension_quartic_over_lower"] >= 1 - 1e-5 and d["sample_quartic_over_lower_unit_dims"] >= 1 - 1e-5
    assert 0 <= a["alignment"] <= 4 and a["uniformity"] <= 0
    assert a["h"]["effective_rank"] != a["h"]["effective_rank_centred"]  # RankMe is on the raw matrix
    assert os.path.getsize(os.path.join(workdir, "analysis_step3.png")) > 10_000
    assert "Theorem 3.3" in embedding.format_report(a) and "kNN k=20" in probe.format_report(r)
