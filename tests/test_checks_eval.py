"""Evaluation metrics and gates, safe model loading, and config errors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gitml.checks.evaluate import (
    Predictions,
    metrics,
    paired_difference,
    predict,
    regression_gate,
    threshold_gate,
    weighted_metric,
)
from gitml.errors import ConfigError, CorruptObjectError
from gitml.models.spec import parse_model, specs_from_section, validate_columns
from tests.conftest import git, gitml
from tests.support.checks import (
    arrests_split,
    good_model,
    model_spec,
    save_model,
    worse_model,
    write_config,
    write_eval,
)


def test_weighted_metrics_equal_sklearn_on_a_real_model() -> None:
    _, test = arrests_split()
    spec = model_spec()
    p = predict(good_model(), spec, test)
    ones = np.ones((1, len(test)))
    point = metrics(p)
    assert set(point) == {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"}
    for name, value in point.items():
        assert weighted_metric(name, p, ones)[0] == pytest.approx(value, abs=1e-12), name


def test_regression_task_metrics_on_a_real_data_set() -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    df = X.assign(target=y)
    spec = parse_model("diabetes", {"path": "m.skops", "data": "d.parquet", "target": "target",
                                    "task": "regression", "gates": {"min": {"r2": 0.3}, "max": {"rmse": 40.0}}})
    model = Ridge(alpha=0.1).fit(X.iloc[:300], y.iloc[:300])
    p = predict(model, spec, df.iloc[300:])
    m = metrics(p)
    ones = np.ones((1, len(p.y)))
    for name in ("rmse", "mae", "r2"):
        assert weighted_metric(name, p, ones)[0] == pytest.approx(m[name])
    gate = threshold_gate(spec, m)
    assert m["r2"] > 0.3 and gate.passed is False  # rmse ~55 > 40
    assert "rmse" in gate.message and "over by" in gate.message


def test_paired_bootstrap_blocks_a_worse_model_but_not_noise() -> None:
    _, test = arrests_split()
    spec = model_spec()
    prod = predict(good_model(), spec, test)
    same_quality = predict(good_model("forest"), spec, test)
    worse = predict(worse_model(), spec, test)
    noise = regression_gate(spec, same_quality, prod, "prod")
    assert noise.passed, noise.message
    bad = regression_gate(spec, worse, prod, "prod")
    assert not bad.passed
    auc = bad.metrics["roc_auc"]
    assert auc["ci_high"] < -0.03 and auc["difference"] < -0.05
    assert "roc_auc worse than prod by" in bad.message
    # lower-is-better metrics are oriented too: a higher log-loss is a negative change
    assert paired_difference("log_loss", worse, prod, n_boot=200)["difference"] < 0
    # identical models: the interval is exactly zero
    d = paired_difference("accuracy", prod, prod, n_boot=200)
    assert d["ci_low"] == d["ci_high"] == 0.0


def test_bootstrap_calibration_on_null_resplits() -> None:
    """Two models of equal quality evaluated on many random eval subsets: the regression
    gate (tolerance 0) fires on about alpha/2 of them, not on half like a bare comparison."""
    _, test = arrests_split()
    spec = model_spec(max_regression={"roc_auc": 0.0}, bootstrap=100)
    a = predict(good_model(), spec, test)
    b = predict(good_model("hgb"), spec, test)
    rng = np.random.default_rng(0)
    fired = naive = 0
    trials = 25
    for _ in range(trials):
        idx = rng.choice(len(test), size=600, replace=False)
        sub = [Predictions("classification", p.y[idx], p.pred[idx], p.score[idx]) for p in (a, b)]
        g = regression_gate(spec, sub[1], sub[0], "a")
        fired += not g.passed
        naive += g.metrics["roc_auc"]["difference"] < 0
    assert fired <= 0.15 * trials
    assert naive > fired  # a bare comparison would have blocked far more often


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"models\.arrests\.task: unknown task"):
        parse_model("arrests", {"path": "m.skops", "data": "d.csv", "target": "y", "task": "ranking"})
    with pytest.raises(ConfigError, match=r"models\.arrests\.data: missing"):
        parse_model("arrests", {"path": "m.skops", "target": "y"})
    with pytest.raises(ConfigError, match=r"models\.arrests\.gates\.min\.acuracy: unknown metric"):
        parse_model("arrests", {"path": "m.skops", "data": "d.csv", "target": "y",
                                "gates": {"min": {"acuracy": 0.7}}})
    with pytest.raises(ConfigError, match=r"models\.nope: unknown model"):
        specs_from_section({"arrests": {}}, ["nope"])
    _, test = arrests_split()
    spec = parse_model("arrests", {"path": "m.skops", "data": "data/eval.parquet", "target": "releasd"})
    with pytest.raises(ConfigError, match=r"models\.arrests\.target: column 'releasd' not in data/eval\.parquet"):
        validate_columns(spec, test)
    spec = parse_model("arrests", {"path": "m.skops", "data": "d.parquet", "target": "released",
                                   "task": "regression"})
    with pytest.raises(ConfigError, match=r"models\.arrests\.task: regression but target"):
        validate_columns(spec, test)
    spec = parse_model("arrests", {"path": "m.skops", "data": "d.parquet", "target": "released",
                                   "sensitive": ["race"]})
    with pytest.raises(ConfigError, match=r"models\.arrests\.sensitive: column 'race'"):
        validate_columns(spec, test)
    # a string "1" for an integer target: the error says the type is the problem
    ints = test.assign(released=(test["released"] == "Yes").astype(int))
    spec = parse_model("arrests", {"path": "m.skops", "data": "d.parquet", "target": "released",
                                   "positive": "1"})
    with pytest.raises(ConfigError, match=r"positive: '1' is a str but 'released' holds int values") as e:
        validate_columns(spec, ints)
    assert e.value.hint == "write positive = 1 (without quotes for a number)"
    # every table format the drift command reads is accepted for evaluation data
    for suffix in (".parquet", ".csv", ".tsv", ".jsonl", ".feather"):
        parse_model("arrests", {"path": "m.skops", "data": f"d{suffix}", "target": "released"})
    with pytest.raises(ConfigError, match=r"models\.arrests\.data: d\.xlsx: unsupported format"):
        parse_model("arrests", {"path": "m.skops", "data": "d.xlsx", "target": "released"})


class NotTrusted:  # a type skops does not know: must be refused, never instantiated
    def fit(self, X: Any, y: Any) -> NotTrusted:
        return self

    def predict(self, X: Any) -> Any:
        return np.zeros(len(X))


def test_safe_loading_refuses_pickle_and_untrusted_types(tmp_path: Path) -> None:
    import skops.io as sio

    from gitml.models.load import load_model_bytes

    data = pickle.dumps(good_model())
    with pytest.raises(ConfigError, match="never unpickles"):
        load_model_bytes(data, "models/model.pkl", "models.arrests.path")
    with pytest.raises(ConfigError, match="never unpickles"):
        load_model_bytes(data, "models/model.skops", "models.arrests.path")  # pickle bytes, skops name
    blob = sio.dumps(NotTrusted())
    with pytest.raises(ConfigError, match=r"models\.arrests\.path: .*untrusted type.*NotTrusted"):
        load_model_bytes(blob, "m.skops", "models.arrests.path")
    with pytest.raises(ConfigError, match="not a readable skops file"):
        load_model_bytes(b"PK\x03\x04garbage", "m.skops", "models.arrests.path")
    with pytest.raises(ConfigError, match=r"models\.arrests\.path: m\.skops is empty \(0 bytes\)"):
        load_model_bytes(b"", "m.skops", "models.arrests.path")
    model = load_model_bytes(sio.dumps(good_model()), "m.skops", "models.arrests.path")
    assert hasattr(model, "predict_proba")


def _setup(repo: Path, model: Any = None) -> None:
    write_eval(repo / "data" / "eval.parquet")
    save_model(model if model is not None else good_model(), repo / "models" / "model.skops")
    write_config(repo, baseline="HEAD")
    gitml(repo, "add", "models/model.skops", "data/eval.parquet")


def test_cli_eval_against_a_revision_and_bad_config(repo: Path) -> None:
    _setup(repo)
    git(repo, "add", ".gitml/config.toml")
    git(repo, "commit", "-q", "-m", "model")  # hooks not installed: no gates here
    save_model(worse_model(), repo / "models" / "model.skops")
    modified = gitml(repo, "eval", check=False)
    assert modified.returncode == 1 and "modified since `git ml add`" in modified.stderr
    gitml(repo, "add", "models/model.skops")
    out = gitml(repo, "eval", "arrests", "--against", "HEAD", "--json", check=False)
    assert out.returncode == 1
    data = json.loads(out.stdout)
    reg = next(r for r in data["models"][0]["results"] if r["gate"] == "eval.regression")
    assert reg["passed"] is False and reg["metrics"]["baseline"] == "HEAD"
    human = gitml(repo, "eval", check=False)
    assert human.returncode == 1 and "eval.regression" in human.stdout and "FAIL" in human.stdout
    assert "change vs HEAD" in human.stdout and "roc_auc" in human.stdout
    bias = gitml(repo, "bias", "--against", "HEAD")  # the worse model is unfair to no one
    assert "selection ratio (4/5)" in bias.stdout and "Black" in bias.stdout
    ratio_row = next(ln for ln in bias.stdout.splitlines() if "selection ratio (4/5)" in ln)
    assert "0.800" in ratio_row, ratio_row  # the four-fifths limit, not "-"
    # the committed model at HEAD still passes (in-process: saves a CLI start-up)
    from gitml.checks.runner import run_checks
    from gitml.repo import MLRepo

    [at_head] = run_checks(MLRepo.discover(repo), rev="HEAD", against="HEAD", gates=("eval",))
    assert at_head.passed and at_head.rev == "HEAD"
    # bad config: a one-line error naming the key, exit 1, no traceback
    cfg = repo / ".gitml" / "config.toml"
    cfg.write_text(cfg.read_text().replace('target = "released"', 'target = "releasd"'))
    bad = gitml(repo, "eval", check=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "models.arrests.target: column 'releasd' not in data/eval.parquet" in bad.stderr
    unknown = gitml(repo, "eval", "nope", check=False)
    assert unknown.returncode == 1 and "models.nope: unknown model" in unknown.stderr


def test_model_bytes_must_match_the_pointer(repo: Path) -> None:
    from gitml.models.load import load_model
    from gitml.models.spec import model_specs
    from gitml.repo import MLRepo

    _setup(repo)
    r = MLRepo.discover(repo)
    spec = model_specs(r)[0]
    model, src = load_model(r, spec, None, staged=True)
    assert src.kind == "artifact" and hasattr(model, "predict")
    obj = r.store.object_path(src.oid)
    obj.chmod(0o644)
    obj.write_bytes(obj.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CorruptObjectError, match="recorded id"):
        load_model(r, spec, None, staged=True)


def test_runner_calls_the_data_gates(repo: Path) -> None:
    """drift / quality / anomaly come from the sibling modules through run_checks."""
    from gitml.checks.runner import run_checks
    from gitml.repo import MLRepo

    _setup(repo)
    write_config(repo, baseline="HEAD", extra="drift = { alpha = 0.05 }\nquality = {}\nanomaly = {}\n")
    git(repo, "add", ".gitml/config.toml")
    git(repo, "commit", "-q", "-m", "model")
    _, test = arrests_split()
    shifted = test.copy()
    shifted["age"] = shifted["age"] + 8  # a real shift in one column
    shifted.to_parquet(repo / "data" / "eval.parquet", index=False)
    gitml(repo, "add", "data/eval.parquet")
    [res] = run_checks(MLRepo.discover(repo), staged=True, gates=("eval", "data"))
    gates = {g.gate: g for g in res.results}
    assert {"drift", "quality", "anomaly"} <= set(gates), list(gates)
    assert gates["drift"].passed is False and "age" in gates["drift"].message
