"""Training curves: metrics.jsonl -> PNG, newest line per step after a resume."""
import json

from duality.analysis import curves


def test_curves_keep_the_newest_line_per_step(tmp_path):
    rows = [{"step": s, "loss": 10.0 - s, "probe_top1": 0.1 * s, "z_std": 0.9, "lr": 0.1} for s in (1, 2, 3)]
    rows.append({"step": 3, "loss": -1.0, "probe_top1": 0.3, "z_std": 0.9, "lr": 0.1})  # re-logged after resume
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = curves.read_metrics(str(tmp_path))
    assert [r["step"] for r in got] == [1, 2, 3] and got[-1]["loss"] == -1.0
    out = curves.plot_training(str(tmp_path))
    assert (tmp_path / "training_curves.png").stat().st_size > 10_000 and out.endswith("training_curves.png")
