"""Drift gate: calibration on null splits of a real data set, power on real shifts, and a
comparison with the goodness-of-fit χ² that treats the reference as exact (what
Evidently 0.7 uses by default for categorical columns)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gitml.checks import drift
from gitml.checks.drift import DriftConfig, adjust_pvalues, compute_drift, gate
from gitml.errors import ConfigError, GitMLError

ALPHA = 0.05
N_SPLITS = 200


@pytest.fixture(scope="module")
def arrests() -> pd.DataFrame:
    from sklego.datasets import load_arrests

    return load_arrests(as_frame=True)


def _naive_gof_alarm(codes: dict[str, np.ndarray], ref_idx: np.ndarray, cur_idx: np.ndarray,
                     alpha: float) -> tuple[bool, int, int]:
    """Evidently-style: per categorical column, scipy.stats.chisquare(current counts,
    f_exp = reference frequencies × n_current), no correction; alarm if any column fires.
    ``codes`` holds each categorical column factorized once over the whole data set."""
    fired = 0
    for c in codes.values():
        k = int(c.max()) + 1
        r = np.bincount(c[ref_idx], minlength=k).astype(float)
        cur = np.bincount(c[cur_idx], minlength=k).astype(float)
        f_exp = r / r.sum() * cur.sum()
        f_exp = np.where(f_exp == 0, 1e-4, f_exp)  # Evidently's guard against zero expectations
        f_exp *= cur.sum() / f_exp.sum()
        fired += stats.chisquare(cur, f_exp).pvalue < alpha
    return fired > 0, fired, len(codes)


def test_null_splits_are_calibrated_and_naive_gof_overfires(arrests: pd.DataFrame) -> None:
    """Two random halves of the same 5,226 rows, 200 times: the data-set alarm rate of the
    gate is ≤ 2α, while the naive goodness-of-fit χ² fires far more often."""
    rng = np.random.default_rng(20260101)
    alarms = 0
    naive_alarms = 0
    naive_fired = naive_tested = 0
    raw_fired = raw_tested = 0
    n = len(arrests)
    codes = {c: pd.factorize(arrests[c])[0] for c in arrests.columns if arrests[c].nunique() <= 10}
    # the reference is the smaller part here: that is how drift is checked in practice
    # (a reference sample vs new data) and where treating the reference as exact hurts most
    for _ in range(N_SPLITS):
        perm = rng.permutation(n)
        ref, cur = arrests.iloc[perm[: n // 3]], arrests.iloc[perm[n // 3:]]
        report = compute_drift(ref, cur, DriftConfig(alpha=ALPHA))
        alarms += report.dataset_drift
        raw_fired += sum(f.p_value is not None and f.p_value < ALPHA for f in report.tested)
        raw_tested += len(report.tested)
        any_naive, fired, tested = _naive_gof_alarm(codes, perm[: n // 3], perm[n // 3:], ALPHA)
        naive_alarms += any_naive
        naive_fired += fired
        naive_tested += tested
    rate = alarms / N_SPLITS
    naive_rate = naive_alarms / N_SPLITS
    print(f"\nnull splits: gate alarm rate {rate:.3f} (alpha {ALPHA}); uncorrected per-column "
          f"two-sample rate {raw_fired / raw_tested:.3f}; naive GOF chi2: per-column "
          f"{naive_fired / naive_tested:.3f}, data-set alarm {naive_rate:.3f}")
    assert rate <= 2 * ALPHA
    # the per-column two-sample tests are themselves calibrated (not just rescued by Holm)
    assert raw_fired / raw_tested <= 2 * ALPHA
    assert naive_fired / naive_tested > 2 * ALPHA
    assert naive_rate > 3 * rate and naive_rate > 0.2


def test_null_split_calibration_bh(arrests: pd.DataFrame) -> None:
    rng = np.random.default_rng(7)
    alarms = 0
    splits = 60
    for _ in range(splits):
        perm = rng.permutation(len(arrests))
        half = len(arrests) // 2
        rep = compute_drift(arrests.iloc[perm[:half]], arrests.iloc[perm[half:]],
                            DriftConfig(correction="bh"))
        alarms += rep.dataset_drift
    assert alarms / splits <= 3 * ALPHA  # few splits: a loose bound that still fails if broken


def test_real_shifts_are_found(arrests: pd.DataFrame) -> None:
    rng = np.random.default_rng(3)
    perm = rng.permutation(len(arrests))
    ref = arrests.iloc[perm[:2000]]
    rest = arrests.iloc[perm[2000:]]
    # 1) numerical shift: everyone two years older
    older = rest.assign(age=rest["age"] + 2)
    res = gate(ref, older, {"alpha": ALPHA})
    assert not res.passed
    feats = {f["column"]: f for f in res.metrics["features"]}
    assert feats["age"]["drifted"] and feats["age"]["test"] == "ks"
    assert not feats["sex"]["drifted"]
    assert res.metrics["drift_share"] == pytest.approx(1 / 8)
    # 2) categorical selection shift: the current sample over-represents non-citizens
    w = np.where(rest["citizen"] == "No", 2.0, 1.0)
    idx = rng.choice(len(rest), size=2000, replace=False, p=w / w.sum())
    selected = rest.iloc[idx]
    res2 = gate(ref, selected, {"alpha": ALPHA})
    feats2 = {f["column"]: f for f in res2.metrics["features"]}
    assert feats2["citizen"]["drifted"] and feats2["citizen"]["test"] == "chi2"
    assert not res2.passed
    # 3) the same shift is allowed under a drift-share budget
    res3 = gate(ref, older, {"alpha": ALPHA, "max_drift_share": 0.5})
    assert res3.passed and res3.metrics["n_drifted"] >= 1


def test_small_samples_use_anderson_darling_and_detect_shift() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 80)})
    cur = pd.DataFrame({"x": rng.normal(1.0, 1, 60)})
    rep = compute_drift(ref, cur)
    f = rep.features[0]
    assert f.test == "anderson" and f.drifted
    same = compute_drift(ref, pd.DataFrame({"x": rng.normal(0, 1, 60)}))
    assert same.features[0].test == "anderson" and not same.features[0].drifted


def test_rare_categories_merged_new_category_and_nulls() -> None:
    rng = np.random.default_rng(1)
    cats = np.array(["a", "b", "c"] + [f"rare{i}" for i in range(20)])
    p = np.array([0.5, 0.3, 0.196] + [0.0002] * 20)
    p = p / p.sum()
    ref = pd.DataFrame({"c": rng.choice(cats, 3000, p=p)})
    cur = pd.DataFrame({"c": rng.choice(cats, 3000, p=p)})
    table, names = drift.categorical_table(ref["c"], cur["c"], 5.0)
    assert table.shape[0] == 2 and table.min() >= 1
    assert not any(n.startswith("rare") for n in names)
    assert not compute_drift(ref, cur).dataset_drift
    # a new frequent category and many missing values are drift
    cur2 = cur.copy()
    cur2.loc[:400, "c"] = "brand-new"
    cur2.loc[401:700, "c"] = None
    rep = compute_drift(ref, cur2)
    assert rep.dataset_drift and rep.features[0].kind == "categorical"


def test_adjust_pvalues_matches_definitions() -> None:
    p = [0.01, 0.04, 0.03, 0.2]
    holm = adjust_pvalues(p, "holm")
    assert holm == pytest.approx([0.04, 0.09, 0.09, 0.2])
    bh = adjust_pvalues(p, "bh")
    ref = stats.false_discovery_control(p, method="bh")
    assert bh == pytest.approx(list(ref))


def test_identifier_and_type_change_columns_are_skipped() -> None:
    ref = pd.DataFrame({"id": [f"u{i}" for i in range(500)], "v": np.arange(500) % 3})
    cur = pd.DataFrame({"id": [f"w{i}" for i in range(500)], "v": (np.arange(500) % 3).astype(str)})
    rep = compute_drift(ref, cur)
    kinds = {f.column: (f.kind, f.note) for f in rep.features}
    assert kinds["id"][0] == "skipped" and "identifier" in kinds["id"][1]


def test_bad_config_and_empty_input() -> None:
    df = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(ConfigError, match="alpha"):
        gate(df, df, {"alpha": 2})
    with pytest.raises(ConfigError, match="unknown drift setting"):
        gate(df, df, {"alpah": 0.1})
    with pytest.raises(ConfigError, match="columns"):
        gate(df, df, {"columns": ["nope"]})
    with pytest.raises(GitMLError, match="no rows"):
        gate(df.iloc[:0], df, None)


def test_gate_result_is_json_clean(arrests: pd.DataFrame) -> None:
    import json

    res = gate(arrests.iloc[:1000], arrests.iloc[1000:2000], None)
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["gate"] == "drift" and isinstance(d["metrics"]["features"], list)


def test_missingness_shift_in_a_numerical_column(arrests: pd.DataFrame) -> None:
    ref, cur = arrests.iloc[:2600].copy(), arrests.iloc[2600:].copy()
    ref["age"] = ref["age"].astype(float)
    cur["age"] = cur["age"].astype(float)
    ref.loc[ref.index[:26], "age"] = np.nan  # 1% missing
    cur.loc[cur.index[:260], "age"] = np.nan  # 10% missing, same distribution otherwise
    rep = compute_drift(ref, cur)
    age = next(f for f in rep.features if f.column == "age")
    assert age.drifted and age.test.endswith("+missing") and "missing" in age.note
