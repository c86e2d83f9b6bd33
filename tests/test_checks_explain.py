"""SHAP explanations: explainer choice, agreement with shap itself and with the closed
form for linear models, additivity, aggregation of one-hot columns, rank shift, --row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gitml.checks.explain import explain, explain_gate, explain_row, explainer_kind, rank_shift
from tests.conftest import gitml
from tests.support.checks import (
    FEATURES,
    arrests_split,
    good_model,
    model_spec,
    save_model,
    worse_model,
    write_config,
    write_eval,
)


def _spec(**explain_limits: float) -> Any:
    return model_spec(explain={"rows": 120, **explain_limits})


def test_linear_model_matches_closed_form_and_shap() -> None:
    """For a linear model with independent features, SHAP_j = w_j (x_j - E[x_j]); summed
    over the one-hot columns of a raw column. Ours must equal that exactly."""
    import shap

    _, test = arrests_split()
    spec = _spec()
    model = good_model("logreg")
    assert explainer_kind(model) == "linear"
    ex = explain(model, spec, test, n_rows=120, background=test)
    pre, est = model[:-1], model[-1]
    rows = test.loc[ex.row_index, FEATURES]
    bg = test.sample(n=100, random_state=1)[FEATURES]  # the background explain() samples
    Xt = pre.transform(rows)
    Bt = pre.transform(bg)
    closed = np.asarray(Xt - Bt.mean(axis=0)) * est.coef_[0]
    names = pre.get_feature_names_out()
    for j, col in enumerate(ex.columns):
        mask = np.array([n.split("__", 1)[1] == col or n.split("__", 1)[1].startswith(col + "_")
                         for n in names])
        assert np.allclose(ex.values[:, j], closed[:, mask].sum(axis=1), atol=1e-10), col
    direct = shap.LinearExplainer(est, np.asarray(Bt)).shap_values(np.asarray(Xt))
    assert np.allclose(ex.values.sum(axis=1), direct.sum(axis=1), atol=1e-10)
    assert ex.additivity_error < 1e-9
    assert ex.output == "decision_function"


@pytest.mark.parametrize("kind", ["hgb", "forest"])
def test_tree_models_are_additive_and_match_shap(kind: str) -> None:
    import shap

    _, test = arrests_split()
    spec = _spec()
    model = good_model(kind)
    assert explainer_kind(model) == "tree"
    ex = explain(model, spec, test, n_rows=120)
    assert ex.explainer == "tree"
    assert ex.additivity_error < 1e-6, ex.additivity_error
    Xt = model[:-1].transform(test.loc[ex.row_index, FEATURES])
    Xt = Xt.toarray() if hasattr(Xt, "toarray") else np.asarray(Xt)
    direct = np.asarray(shap.TreeExplainer(model[-1]).shap_values(Xt))
    if direct.ndim == 3:
        direct = direct[:, :, 1]
    assert np.allclose(ex.values.sum(axis=1), direct.sum(axis=1), atol=1e-8)
    assert ex.output == ("decision_function" if kind == "hgb" else "predict_proba")
    assert next(iter(ex.importance())) == "checks"  # the strongest feature of this data set


def test_model_agnostic_explainer_agrees_with_tree_ranking_within_budget() -> None:
    from scipy.stats import spearmanr

    _, test = arrests_split()
    spec = _spec()
    model = good_model("forest")  # explains P(Yes) in both cases
    tree = explain(model, spec, test, n_rows=15)
    perm = explain(model, spec, test, n_rows=15, force="permutation", budget_seconds=60)
    assert perm.explainer == "permutation" and perm.additivity_error < 1e-6
    ti, pi = tree.importance(), perm.importance()
    rho = spearmanr([ti[c] for c in FEATURES], [pi[c] for c in FEATURES]).statistic
    print(f"\nSpearman(tree, permutation importance) = {rho:.3f}")
    assert rho > 0.7
    assert next(iter(pi)) == next(iter(ti)) == "checks"
    short = explain(model, spec, test, n_rows=15, force="permutation", budget_seconds=0.01)
    assert 0 < len(short.values) < 15  # stopped at the time budget, kept what it had


def test_rank_shift_gate_against_a_baseline() -> None:
    _, test = arrests_split()
    spec = _spec(max_rank_shift=2, min_kendall_tau=0.3)
    prod = explain(good_model(), spec, test, n_rows=120)
    same = explain(good_model(), spec, test, n_rows=120)
    ok = explain_gate(spec, same, prod, "prod")
    assert ok.passed and ok.metrics["shift"]["kendall_tau"] == pytest.approx(1.0)
    worse = explain(worse_model(), spec, test, n_rows=120)  # never saw checks/employed
    bad = explain_gate(spec, worse, prod, "prod")
    assert not bad.passed and "rank shift" in bad.message
    assert "checks" in bad.metrics["shift"]["left_top_k"] or bad.metrics["shift"]["max_rank_shift"] > 2
    shift = rank_shift({"a": 3, "b": 2, "c": 1}, {"a": 1, "b": 2, "c": 3}, top_k=1)
    assert shift["kendall_tau"] == pytest.approx(-1.0) and shift["top_k_change"] == 1


def test_explain_row_contributions_add_up() -> None:
    from gitml.errors import UsageError

    _, test = arrests_split()
    with pytest.raises(UsageError, match="--row 9999"):
        explain_row(good_model("hgb"), _spec(), test, 9999)
    out = explain_row(good_model("hgb"), _spec(), test, 7)
    total = out["base_value"] + sum(c["shap"] for c in out["contributions"])
    assert total == pytest.approx(out["model_output"], abs=1e-6)
    assert {c["column"] for c in out["contributions"]} == set(FEATURES)
    assert out["contributions"][0]["column"] == max(out["contributions"], key=lambda c: abs(c["shap"]))["column"]


def test_cli_explain_row_and_global(repo: Path) -> None:
    write_eval(repo / "data" / "eval.parquet", n=400)
    save_model(good_model("hgb"), repo / "models" / "model.skops")
    write_config(repo, baseline="HEAD")
    gitml(repo, "add", "models/model.skops", "data/eval.parquet")
    row = json.loads(gitml(repo, "explain", "--row", "3", "--json").stdout)
    assert row["row"] == 3 and row["explainer"] == "tree"
    assert abs(row["base_value"] + sum(c["shap"] for c in row["contributions"]) - row["model_output"]) < 1e-6
    human = gitml(repo, "explain").stdout
    assert "mean |SHAP|" in human and "checks" in human
