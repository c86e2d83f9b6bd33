"""The gate registry: every gate in one list, each run through the one GateContext, and
a crashing gate fails closed."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from gitml.checks.gate import Baseline, GateContext, Reference
from gitml.checks.registry import GATES, selected
from gitml.checks.runner import run_gates
from tests.support.checks import arrests_split, good_model, model_spec


def _ctx(spec: Any, frame: pd.DataFrame, reference: pd.DataFrame | None = None,
         preds_frame: pd.DataFrame | None = None) -> GateContext:
    from gitml.artifacts.api import Located
    from gitml.checks.evaluate import predict

    model = good_model()
    preds = predict(model, spec, frame if preds_frame is None else preds_frame)
    ctx = GateContext(None, spec, model, frame, Located("data/eval.parquet", "0" * 32, "git", ":"),  # type: ignore[arg-type]
                      preds, Baseline(None, None), "index", ("eval", "bias", "data"))
    ctx.__dict__["reference"] = Reference(reference, "" if reference is not None else "none")
    return ctx


def test_every_gate_is_listed_once_with_its_group() -> None:
    names = [g.name for g in GATES]
    assert len(names) == len(set(names))
    assert {g.group for g in GATES} == {"eval", "bias", "explain", "data"}
    spec = model_spec()
    # the arrests declaration: eval + bias + explain, no data gates
    assert [g.name for g in selected(spec, ("eval", "bias", "explain", "data"))] == [
        "eval.threshold", "eval.trivial", "eval.regression", "bias", "explain"]
    bare = model_spec()
    del bare.gates["explain"]
    assert "explain" not in [g.name for g in selected(bare, ("eval", "bias", "explain", "data"))]
    assert [g.name for g in selected(bare, ("explain",))] == ["explain"]  # `git ml explain`
    assert "eval.trivial" not in [g.name for g in selected(model_spec(trivial=False), ("eval",))]


def test_data_gates_run_through_the_context() -> None:
    _, test = arrests_split()
    spec = model_spec(drift={"alpha": 0.01}, quality={"max_null_rate": 0.01})
    cur = test.copy()
    cur["age"] = cur["age"] + 3
    cur.loc[:100, "sex"] = None
    results = {r.gate: r for r in run_gates(_ctx(spec, cur, reference=test), ("data",))}
    assert set(results) == {"drift", "quality"}
    assert not results["drift"].passed and results["drift"].metrics["alpha"] == 0.01
    assert "age" in results["drift"].message
    assert not results["quality"].passed and results["quality"].blocks
    unchanged = {r.gate: r for r in run_gates(_ctx(spec, test), ("data",))}
    assert unchanged["drift"].skipped and unchanged["quality"].passed


def test_a_crashing_gate_blocks_with_its_error() -> None:
    """Predictions for other rows than the frame: the bias gate's arrays disagree and
    numpy raises. Before, a crash became a non-blocking result and the commit went on."""
    _, test = arrests_split()
    spec = model_spec()
    ctx = _ctx(spec, test, preds_frame=test.head(100))
    results = run_gates(ctx, ("bias",))
    crashed = [r for r in results if r.metrics.get("crashed")]
    assert crashed, [r.message for r in results]
    assert all(r.blocks and not r.passed for r in crashed)
    assert "gate crashed: ValueError" in crashed[0].message or "gate crashed: IndexError" in crashed[0].message


def test_trivial_baseline_gate_blocks_a_majority_class_model() -> None:
    from sklearn.dummy import DummyClassifier

    from gitml.checks.evaluate import predict, trivial_gate
    from tests.support.checks import FEATURES

    train, test = arrests_split()
    spec = model_spec()
    dummy = DummyClassifier(strategy="prior").fit(train[FEATURES], train["released"])
    res = trivial_gate(spec, predict(dummy, spec, test.head(300)))
    assert not res.passed and res.blocks and "majority class" in res.message
    good = trivial_gate(spec, predict(good_model(), spec, test.head(300)))
    assert good.passed and good.metrics["ci_low"] > 0 and good.metrics["metric"] == "roc_auc"


@pytest.mark.parametrize("gates, message", [
    ({"bias": {"four_fifths": 1.5}}, "four_fifths = 1.5 is outside its range"),
    ({"bias": {"max_dp_diff": -0.1}}, "max_dp_diff = -0.1 is outside its range"),
    ({"min": {"accuracy": 1.2}}, "min.accuracy = 1.2 is outside its range"),
    ({"max_regression": {"roc_auc": -0.01}}, "max_regression.roc_auc = -0.01 is outside"),
    ({"explain": {"top_k": 0}}, "explain.top_k = 0 is outside its range"),
    ({"explain": {"min_kendall_tau": 2}}, "min_kendall_tau = 2 is outside"),
    ({"min": {"accuracy": float("nan")}}, "expected a finite number"),
    ({"trivial": "yes"}, "trivial: expected true or false"),
])
def test_limits_out_of_range_are_refused_when_read(gates: dict[str, Any], message: str) -> None:
    from gitml.errors import ConfigError

    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        model_spec(**gates)


def test_data_gate_settings_are_checked_before_any_gate_runs() -> None:
    from gitml.checks.registry import validate_settings
    from gitml.errors import ConfigError

    with pytest.raises(ConfigError, match=r"gates\.drift\.alpha = 2"):
        validate_settings(model_spec(drift={"alpha": 2}))
    with pytest.raises(ConfigError, match=r"gates\.quality\.max_null_rate = 1\.5"):
        validate_settings(model_spec(quality={"max_null_rate": 1.5}))
    validate_settings(model_spec(drift=False, quality={}, anomaly={"enabled": False}))
