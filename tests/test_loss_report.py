"""The main job's report: every loss finite on every family, Theorem 3.3 holds."""
import numpy as np

from duality.analysis import loss_report
from duality import losses


def test_report_covers_every_loss_and_the_theorem(tmp_path):
    r = loss_report.evaluate(8, 12)
    assert set(r["losses"]) == set(losses.names())
    for name, row in r["losses"].items():
        for fam, cell in row.items():
            assert np.isfinite(cell["value"]) and cell["finite"], (name, fam)
    for fam, t in r["theorem"].items():
        np.testing.assert_allclose(t["lhs"], t["rhs"], rtol=1e-5, err_msg=fam)
    text = loss_report.format_report(r)
    assert "Theorem 3.3" in text and "vicreg_ctr" in text
    loss_report.plot_duality(str(tmp_path / "d.png"), n=16, dims=(4, 32))
    assert (tmp_path / "d.png").stat().st_size > 10_000
