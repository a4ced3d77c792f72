"""Seeds as a study axis: intervals, resolved differences, and the study report built from them."""
import math

import numpy as np
import pytest
from scipy import stats as st

from duality import stats, study


def test_summary_is_the_student_t_interval():
    x = [87.1, 87.9, 87.4]
    s = stats.summary(x)
    lo, hi = st.t.interval(0.95, 2, loc=np.mean(x), scale=st.sem(x))
    assert s["n"] == 3 and s["std"] == pytest.approx(np.std(x, ddof=1))
    assert (s["lo"], s["hi"]) == pytest.approx((lo, hi))
    one = stats.summary([90.0])
    assert one["mean"] == 90.0 and math.isnan(one["ci95"]) and "n = 1" in stats.fmt(one)


def test_difference_is_welchs_test():
    a, b = [90.1, 90.4, 90.2], [89.0, 89.5, 89.2]
    d = stats.difference(a, b)
    ref = st.ttest_ind(a, b, equal_var=False)
    assert d["p"] == pytest.approx(ref.pvalue) and d["resolved"] and d["diff"] == pytest.approx(1.0)
    close = stats.difference([87.0, 88.0, 87.5], [87.2, 87.9, 87.1])
    assert not close["resolved"] and close["p"] > 0.05
    assert not stats.difference([1.0], [2.0])["resolved"]  # one seed resolves nothing


def _record(entry, seed, top1, axes=None):
    probe = {"linear": {"top1": top1}, "knn": {"k20": {"top1": top1 - 1}, "k200": {"top1": top1 - 2}},
             "linear_1pct": {"top1": top1 - 8}, "linear_10pct": {"top1": top1 - 4}}
    analysis = {"h": {"effective_rank": 100.0}, "z": {"effective_rank": 200.0},
                "duality": {"l_c": 1e5, "l_nc": 1e5, "dimension_quartic_over_lower": 1.1},
                "negative_pairs": {"var_times_m": 2.0}}
    axes = dict(axes or {}, seed=seed)
    return dict(name=f"{entry}-seed{seed}", entry=entry, method=entry, axes=axes, settings=axes, seed=seed,
                steps=10, train_seconds=5.0, embedding_dim=1024, probe=probe, analysis=analysis)


def test_report_marks_resolved_differences_and_plots_error_bars(tmp_path):
    recs = [_record("a", s, t) for s, t in enumerate([90.1, 90.4, 90.2])]
    recs += [_record("b", s, t) for s, t in enumerate([89.0, 89.5, 89.2])]
    recs += [_record("c", s, t) for s, t in enumerate([90.0, 90.6, 89.9])]
    text = study.table(recs, {"comparisons": [("a", "b"), ("a", "c")]})
    diff_rows = [line for line in text.splitlines() if line.startswith("| a | b |") or line.startswith("| a | c |")]
    assert len(diff_rows) == 2 and "**yes**" in diff_rows[0] and diff_rows[1].endswith("| no |")
    assert "90.23 ± 0.15" in text  # setting a: mean ± std
    assert study.setting_name(recs[0]) == "a"
    study.plot(recs, str(tmp_path / "s.png"))
    assert (tmp_path / "s.png").stat().st_size > 10_000


def test_study_seeds_multiply_every_entry():
    import ml_collections
    s = ml_collections.ConfigDict(dict(scale="fashion_mnist", seeds=[0, 1, 2], entries=[
        dict(name="v", config="vicreg"), dict(name="s", config="simclr", axes=[("model.projector", ["64", "256"])])]))
    names = [c["name"] for c in study.cells(s)]
    assert names[:3] == ["v-seed0", "v-seed1", "v-seed2"] and len(names) == 9 and "s-proj256-seed2" in names
