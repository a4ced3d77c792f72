"""The variance-balance scan: where VICReg's terms balance, on embeddings whose answer is known."""
import numpy as np
import pytest

from duality.analysis import variance_balance as vb


def test_independent_dimensions_are_scaled_to_unit_std():
    # N >> M and no correlations: the covariance term is ~0 at any scale, so the loss is least where the hinge
    # stops pushing, std 1, i.e. scale 1 / 0.5.
    rng = np.random.default_rng(0)
    z = 0.5 * rng.normal(size=(2048, 32))
    rows = vb.scale_scan(z, z + 0.05 * rng.normal(size=z.shape), scales=np.linspace(1.0, 3.0, 21))
    s = vb.summary(z, z, rows)
    assert s["best_scale"] == pytest.approx(2.0, abs=0.15)
    assert s["cov_floor_at_scale_1"] == 0.0  # 255 >= 32: a full-rank batch can be decorrelated


def test_correlated_dimensions_hold_the_scale_below_unit_std():
    # A rank-16 embedding in 1024 dimensions: the a^4 covariance term stops the scale well short of std 1.
    rng = np.random.default_rng(1)
    z = rng.normal(size=(1024, 16)) @ rng.normal(size=(16, 1024))
    z = 0.5 * z / z.std()
    rows = vb.scale_scan(z, z + 0.02 * rng.normal(size=z.shape), scales=np.linspace(0.25, 3.0, 12))
    s = vb.summary(z, z, rows)
    assert s["best_scale"] < 0.6 * s["scale_for_unit_median_std"]
    assert s["cov_at_scale_1"] > 5 * s["cov_floor_at_scale_1"] > 0


def test_the_covariance_floor_of_a_wide_batch():
    # Unit-variance Gaussians, 256 samples in 1024 dimensions: rank 255, floor = M / r - 1 per unit variance.
    z = np.random.default_rng(2).normal(size=(256, 1024))
    d = z.var(0, ddof=1)
    want = (d.sum() ** 2 / 255 - (d ** 2).sum()) / 1024
    assert vb.covariance_floor(z) == pytest.approx(want) and want == pytest.approx(1024 / 255 - 1, rel=0.05)
    with pytest.raises(ValueError, match="fewer than one batch"):
        vb.scale_scan(z[:10], z[:10], batch=256)


def test_the_command_refuses_bad_counts_with_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        vb.main(["--workdir=/nonexistent", "--samples=0"])
    assert e.value.code == 2 and "--samples=0" in capsys.readouterr().err
