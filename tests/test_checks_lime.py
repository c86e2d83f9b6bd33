"""LIME beside SHAP: one prediction explained by both, and how far they agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitml.checks.explain import explain_row
from gitml.checks.lime import agreement, explain_row_lime
from tests.conftest import gitml
from tests.support.checks import (
    FEATURES,
    arrests_split,
    good_model,
    model_spec,
    pipeline,
    save_model,
    write_config,
    write_eval,
)


def test_lime_finds_the_only_column_a_model_uses() -> None:
    from sklearn.linear_model import LogisticRegression

    train, test = arrests_split()
    model = pipeline(LogisticRegression(max_iter=1000), cat=[], num=["checks"])
    model.fit(train[FEATURES], train["released"])
    out = explain_row_lime(model, model_spec(), test.head(300), 5, num_samples=1500)
    weights = {c["column"]: c["lime"] for c in out["contributions"]}
    assert set(weights) == set(FEATURES)
    assert out["contributions"][0]["column"] == "checks"
    # the model ignores the other columns: LIME gives them (almost) nothing
    assert all(abs(w) < 0.3 * abs(weights["checks"]) for c, w in weights.items() if c != "checks")
    # its sign says which way this row's checks move P(released) from the average
    proba = model.predict_proba(test.head(300)[FEATURES])[:, list(model.classes_).index("Yes")]
    assert (weights["checks"] > 0) == (proba[5] > proba.mean())


def test_lime_and_shap_agree_on_a_real_model() -> None:
    _, test = arrests_split()
    spec = model_spec()
    model = good_model("logreg")
    df = test.head(300)
    shap_out = explain_row(model, spec, df, 11)
    lime_out = explain_row_lime(model, spec, df, 11)
    agree = agreement({c["column"]: c["shap"] for c in shap_out["contributions"]},
                      {c["column"]: c["lime"] for c in lime_out["contributions"]})
    assert agree["k"] == 5 and len(agree["top_shap"]) == len(agree["top_lime"]) == 5
    assert agree["top_shap"][0] == shap_out["contributions"][0]["column"]
    # both explain the same linear model: most of the strongest columns are shared and
    # pushed the same way
    assert agree["overlap"] >= 0.6 and agree["sign_agreement"] >= 0.6
    assert lime_out["score"] > 0.3  # LIME's local fit is meaningful


def test_agreement_arithmetic() -> None:
    shap_c = {"a": 3.0, "b": -2.0, "c": 1.0, "d": 0.1}
    lime_c = {"a": 0.3, "b": 0.25, "c": -0.01, "d": 0.2}
    out = agreement(shap_c, lime_c, k=2)
    assert out["top_shap"] == ["a", "b"] and out["top_lime"] == ["a", "b"]
    assert out["shared"] == ["a", "b"] and out["overlap"] == 1.0
    assert out["same_sign"] == ["a"] and out["sign_agreement"] == 0.5
    # |shap| ranks a>b>c>d, |lime| ranks a>b>d>c: one discordant pair of six
    assert out["kendall_tau"] == pytest.approx((5 - 1) / 6)


def test_cli_explain_lime_row(repo: Path) -> None:
    write_eval(repo / "data" / "eval.parquet", n=300)
    save_model(good_model("hgb"), repo / "models" / "model.skops")
    write_config(repo, baseline="HEAD")
    gitml(repo, "add", "models/model.skops", "data/eval.parquet")
    out = json.loads(gitml(repo, "explain", "--method", "lime", "--row", "3", "--json").stdout)
    assert out["row"] == 3 and out["lime"]["explainer"] == "lime" and out["shap"]["explainer"] == "tree"
    assert {c["column"] for c in out["lime"]["contributions"]} == set(FEATURES)
    assert 0 <= out["agreement"]["overlap"] <= 1
    human = gitml(repo, "explain", "--method", "lime", "--row", "3").stdout
    assert "LIME" in human and "agreement:" in human
    no_row = gitml(repo, "explain", "--method", "lime", check=False)
    assert no_row.returncode == 2 and "add --row N" in no_row.stderr
    bad_row = gitml(repo, "explain", "--method", "lime", "--row", "5000", check=False)
    assert bad_row.returncode == 2 and "the evaluation data has 300 rows" in bad_row.stderr
