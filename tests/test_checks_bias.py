"""Bias gates: agreement with Fairlearn on the same data, the four-fifths rule on the
bootstrap bound, counterfactual flips, and a deliberately biased model."""

from __future__ import annotations

import tomllib
from typing import Any

import numpy as np
import pandas as pd
import pytest

from gitml.checks.bias import attribute_gate, bias_gates, counterfactual_flip, group_labels
from gitml.checks.evaluate import Predictions, predict
from gitml.models.spec import parse_model
from tests.support.checks import CONFIG, FEATURES, arrests_split, biased_model, good_model


def _spec(**bias: float) -> Any:
    raw = tomllib.loads(CONFIG.format(baseline="prod"))["models"]["arrests"]
    if bias:
        raw["gates"]["bias"] = bias
    raw["gates"]["bootstrap"] = 300
    return parse_model("arrests", raw)


@pytest.mark.parametrize("kind", ["logreg", "biased"])
def test_agrees_with_fairlearn(kind: str) -> None:
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
        equalized_odds_ratio,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    _, test = arrests_split()
    spec = _spec()
    model = good_model() if kind == "logreg" else biased_model()
    p = predict(model, spec, test)
    y, yhat = np.asarray(p.y), np.asarray(p.pred)
    worst = 0.0
    for attr in ("colour", "sex", "citizen", "age"):
        sf = group_labels(test[attr])  # age: quartile bins, the same groups for both
        g = attribute_gate(spec, p, test[attr], attr)
        m = g.metrics
        pairs = [
            (m["dp_diff"]["value"], demographic_parity_difference(y, yhat, sensitive_features=sf)),
            (m["dp_ratio"]["value"], demographic_parity_ratio(y, yhat, sensitive_features=sf)),
            (m["eo_diff"]["value"], equalized_odds_difference(y, yhat, sensitive_features=sf)),
            (m["eo_ratio"]["value"], equalized_odds_ratio(y, yhat, sensitive_features=sf)),
        ]
        frame = MetricFrame(metrics={"selection_rate": selection_rate, "tpr": true_positive_rate,
                                     "fpr": false_positive_rate, "accuracy": accuracy_score},
                            y_true=y, y_pred=yhat, sensitive_features=sf)
        for group, row in frame.by_group.iterrows():
            ours = m["groups"][str(group)]
            for k in ("selection_rate", "tpr", "fpr", "accuracy"):
                pairs.append((ours[k], float(row[k])))
        for ours_v, theirs in pairs:
            assert ours_v == pytest.approx(theirs, abs=1e-12)
            worst = max(worst, abs(ours_v - theirs))
    print(f"\nmax |gitml - fairlearn| over 4 attributes ({kind}): {worst:.2e}")


def test_biased_model_fails_and_fair_model_passes() -> None:
    _, test = arrests_split()
    spec = _spec(four_fifths=0.8, max_dp_diff=0.2, max_eo_diff=0.25, max_counterfactual_flip=0.1)
    good = {g.gate: g for g in bias_gates(spec, predict(good_model(), spec, test), test, good_model())}
    assert all(g.passed for g in good.values()), [g.message for g in good.values()]
    biased = {g.gate: g for g in bias_gates(spec, predict(biased_model(), spec, test), test, biased_model())}
    colour = biased["bias.colour"]
    assert not colour.passed
    assert colour.metrics["four_fifths"]["upper_bound"] < 0.8
    assert colour.metrics["counterfactual"]["flip_rate"] > 0.1
    assert "four-fifths" in colour.message and "counterfactual" in colour.message
    assert biased["bias.sex"].passed  # the bias is about colour only


def test_four_fifths_uses_the_confidence_bound_not_the_point_estimate() -> None:
    """Same 0.75 selection-rate ratio: with 40 rows per group the interval reaches above
    0.8 (not enough evidence: pass); with 4,000 rows it does not (fail)."""
    spec = _spec(four_fifths=0.8)

    def case(n: int) -> Any:
        group = np.array(["a"] * n + ["b"] * n)
        pred = np.concatenate([np.r_[np.ones(int(0.8 * n)), np.zeros(n - int(0.8 * n))],
                               np.r_[np.ones(int(0.6 * n)), np.zeros(n - int(0.6 * n))]]).astype(np.int8)
        y = pred.copy()
        return attribute_gate(spec, Predictions("classification", y, pred), pd.Series(group), "g")

    small, large = case(40), case(4000)
    assert small.metrics["dp_ratio"]["value"] == pytest.approx(0.75)
    assert large.metrics["dp_ratio"]["value"] == pytest.approx(0.75)
    assert small.passed and small.metrics["four_fifths"]["upper_bound"] >= 0.8
    assert not large.passed and large.metrics["four_fifths"]["upper_bound"] < 0.8


def test_counterfactual_flip_counts_changed_predictions() -> None:
    _, test = arrests_split()
    X = test[FEATURES]
    fair = counterfactual_flip(good_model(), X, "colour")
    unfair = counterfactual_flip(biased_model(), X, "colour")
    assert fair["applicable"] and unfair["applicable"]
    # recompute by hand for the biased model: flip Black<->White, count changes
    flipped = X.copy()
    flipped["colour"] = np.where(X["colour"] == "White", "Black", "White")
    m = biased_model()
    manual = float(np.mean(m.predict(flipped) != m.predict(X)))
    assert unfair["flip_rate"] == pytest.approx(manual)
    assert unfair["flip_rate"] > 5 * fair["flip_rate"]
    not_input = counterfactual_flip(good_model(), X.drop(columns=["colour"]), "colour")
    assert not not_input["applicable"] and not_input["flip_rate"] is None  # "n/a", not 0%
