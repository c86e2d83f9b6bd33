"""The data gates as the runner calls them: keyword arguments picked by name from what
the runner has (``gitml.checks.runner._call_gate``), so a signature change that would make
the runner silently skip a gate fails here."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from gitml.checks import anomaly, drift, quality
from gitml.checks.results import GateResult

runner = pytest.importorskip("gitml.checks.runner")


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklego.datasets import load_arrests

    df = load_arrests(as_frame=True)
    return df.iloc[:2500].reset_index(drop=True), df.iloc[2500:].reset_index(drop=True)


def _available(ref: pd.DataFrame | None, cur: pd.DataFrame, config: dict[str, Any],
               metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    # the same names gitml.checks.runner.data_gates offers
    return {"repo": None, "spec": None, "model": "arrests", "name": "arrests",
            "current_df": cur, "current": cur, "df": cur, "reference_df": ref, "reference": ref,
            "previous": ref, "previous_df": ref, "data": "data/eval.parquet",
            "path": "data/eval.parquet", "metrics": metrics or {}, "rev": "index",
            "config": config, "settings": config}


def test_runner_calls_drift_gate(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    ref, cur = frames
    res = runner._call_gate(drift.gate, _available(ref, cur.assign(age=cur["age"] + 3), {"alpha": 0.01}))
    assert isinstance(res, GateResult) and res.gate == "drift" and not res.passed
    assert res.metrics["alpha"] == 0.01


def test_runner_calls_quality_gate_with_model_rules(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    ref, cur = frames
    cur = cur.copy()
    cur.loc[:100, "sex"] = None
    res = runner._call_gate(quality.gate, _available(ref, cur, {"max_null_rate": 0.01}))
    assert isinstance(res, GateResult) and res.gate == "quality" and not res.passed
    assert res.metrics["data"] == "data/eval.parquet"
    ok = runner._call_gate(quality.gate, _available(None, frames[1], {}))
    assert isinstance(ok, GateResult) and ok.passed


def test_runner_calls_anomaly_gate_without_history() -> None:
    # no repository: nothing to read, a skipped (passing) result rather than a crash
    res = runner._call_gate(anomaly.gate, _available(None, pd.DataFrame(), {},
                                                     {"accuracy": 0.8}))
    assert isinstance(res, GateResult) and res.passed and res.skipped
    # pure use with a history
    hist = [(f"c{i}", v) for i, v in enumerate(0.8 + np.random.default_rng(0).normal(0, 0.005, 20))]
    assert anomaly.gate([*hist, ("new", 0.75)], {"metric": "accuracy"}).passed is False
