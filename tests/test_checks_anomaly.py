"""Adaptive anomaly detection on simulated metric histories and on a real Git history."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gitml.checks.anomaly import (
    AnomalyConfig,
    StreamDetector,
    detect,
    direction_for,
    gate,
    history_from_git,
    metrics_from_checks,
)
from gitml.errors import ConfigError
from tests.conftest import git

N_HIST = 200
LENGTH = 60
NOISE = 0.01
DROP = 0.03


def _hist(x: np.ndarray) -> list[tuple[str, float]]:
    return [(f"c{i}", float(v)) for i, v in enumerate(x)]


def test_false_alarm_and_detection_rates() -> None:
    """60-commit histories of an accuracy around 0.85 with noise σ = 0.01: the detector
    rarely fires on noise, and catches a sustained 0.03 drop within a couple of commits."""
    rng = np.random.default_rng(42)
    cfg = AnomalyConfig()
    fa_points = monitored = fa_histories = 0
    for _ in range(N_HIST):
        pts = detect(_hist(0.85 + rng.normal(0, NOISE, LENGTH)), cfg, "accuracy")
        alarms = sum(p.alarm for p in pts)
        fa_points += alarms
        monitored += sum(p.phase != "learning" for p in pts)
        fa_histories += alarms > 0
    detected = 0
    delays: list[int] = []
    for _ in range(N_HIST):
        change = int(rng.integers(15, 50))
        x = 0.85 + rng.normal(0, NOISE, LENGTH)
        x[change:] -= DROP
        pts = detect(_hist(x), cfg, "accuracy")
        d = next((j - change for j in range(change, LENGTH) if pts[j].alarm), None)
        if d is not None and d <= 9:
            delays.append(d)
        detected += d is not None and d <= 2
    fa_rate = fa_points / monitored
    det_rate = detected / N_HIST
    print(f"\nanomaly: false alarms {fa_rate:.4f} per commit ({fa_histories / N_HIST:.2f} of "
          f"{LENGTH}-commit noise histories); 0.03 drop detected within 3 commits in "
          f"{det_rate:.2f}, within 10 in {len(delays) / N_HIST:.2f}, mean delay "
          f"{np.mean(delays):.2f} commits after the change")
    assert fa_rate < 0.006
    assert det_rate >= 0.75
    assert len(delays) / N_HIST >= 0.95
    assert np.mean(delays) < 2.0


def test_losses_watch_for_increases_and_restart_after_alarm() -> None:
    assert direction_for("log_loss") == "increase" and direction_for("roc_auc") == "decrease"
    rng = np.random.default_rng(1)
    x = 0.40 + rng.normal(0, 0.005, 40)
    x[25:] += 0.03
    pts = detect(_hist(x), None, "log_loss")
    first = next(i for i, p in enumerate(pts) if p.alarm)
    assert 25 <= first <= 27
    assert pts[first].upper is not None and pts[first].value > pts[first].upper
    # after the alarm the new level is learned: no alarm storm on the new plateau
    assert sum(p.alarm for p in pts[first + 1:]) <= 1
    assert pts[-1].level is not None and abs(pts[-1].level - 0.43) < 0.01
    # a drop of a loss is good news, not an alarm
    y = 0.40 + rng.normal(0, 0.005, 40)
    y[25:] -= 0.05
    assert not any(p.alarm for p in detect(_hist(y), None, "log_loss"))


def test_short_histories_warm_up() -> None:
    # three points: nothing can be flagged yet
    res = gate([("a", 0.9), ("b", 0.9), ("c", 0.5)], {"metric": "accuracy"})
    assert res.passed and res.skipped
    # flat history with tiny noise, then a huge drop: flagged during warm-up
    h = [(str(i), 0.90 + 0.001 * (i % 2)) for i in range(6)] + [("bad", 0.80)]
    res = gate(h, {"metric": "accuracy"})
    assert not res.passed and "warm-up" in res.message
    pts = res.metrics["points"]
    assert pts[-1]["phase"] == "warmup" and pts[-1]["lower"] > 0.80
    # a small wiggle in warm-up is fine
    res2 = gate([*h[:-1], ("ok", 0.897)], {"metric": "accuracy"})
    assert res2.passed


def test_no_fixed_threshold_scale_invariance() -> None:
    """The same history in different units gives the same alarms: limits are learned."""
    rng = np.random.default_rng(5)
    x = 0.7 + rng.normal(0, 0.02, 50)
    x[35:] -= 0.06
    a = [p.alarm for p in detect(_hist(x), None, "f1")]
    b = [p.alarm for p in detect(_hist(x * 100), None, "f1")]
    assert a == b and any(a)


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="direction"):
        AnomalyConfig.from_mapping({"direction": "down"})
    with pytest.raises(ConfigError, match="unknown anomaly setting"):
        AnomalyConfig.from_mapping({"threshold": 0.1})


def _results_doc(acc: float) -> str:
    return json.dumps({"model": "m", "results": [
        {"gate": "eval.threshold", "passed": True, "message": "",
         "metrics": {"metrics": {"accuracy": acc, "roc_auc": acc + 0.05}, "checked": {}}}]})


def test_history_from_git_and_runner_call(repo: Path) -> None:
    from gitml.repo import MLRepo

    rng = np.random.default_rng(3)
    values = list(0.85 + rng.normal(0, 0.01, 10))
    checks = repo / ".gitml" / "checks"
    checks.mkdir(parents=True, exist_ok=True)
    for i, v in enumerate(values):
        (checks / "m.json").write_text(_results_doc(float(v)))
        runs = repo / ".gitml" / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        (runs / "train.json").write_text(json.dumps({"stage": "train", "metrics": {"auc": float(v) + 0.1}}))
        git(repo, "add", ".gitml/checks/m.json", ".gitml/runs/train.json")
        git(repo, "-c", "core.hooksPath=/dev/null", "commit", "-q", "-m", f"model v{i}")
        (repo / "notes.txt").write_text(f"unrelated {i}\n")  # commits that do not touch it
        git(repo, "add", "notes.txt")
        git(repo, "-c", "core.hooksPath=/dev/null", "commit", "-q", "-m", f"notes {i}")
    r = MLRepo.discover(repo)
    hist = history_from_git(r, "m", "accuracy")
    assert [round(v, 6) for _, v in hist] == [round(float(v), 6) for v in values]
    assert len({c for c, _ in hist}) == len(values)
    msgs = {git(repo, "log", "-1", "--format=%s", c).stdout.strip() for c, _ in hist}
    assert all(m.startswith("model v") for m in msgs)  # the commit that introduced each value
    # the runner's call: history from Git + the candidate's fresh metrics
    ok = gate(None, {"metric": "accuracy"}, repo=r, model="m", metrics={"accuracy": 0.85})
    assert ok.passed and ok.metrics["n"] == len(values) + 1
    bad = gate(None, {}, repo=r, model="m", metrics={"roc_auc": 0.80, "accuracy": 0.75})
    assert not bad.passed and bad.metrics["metric"] == "roc_auc"
    assert metrics_from_checks(b"not json") == {}
    runs_hist = history_from_git(r, "train", "auc", "HEAD", AnomalyConfig(source="runs:train"))
    assert [round(v - 0.1, 6) for _, v in runs_hist] == [round(float(v), 6) for v in values]
    # the report shows the stage's history when asked for no model in particular
    from gitml.checks.report import collect, render

    data = collect(r, "HEAD")
    assert data["stages"][0]["stage"] == "train" and len(data["stages"][0]["metrics"][0]["points"]) == 10
    assert "Pipeline metrics" in render(data)


def test_stream_detector_matches_batch() -> None:
    rng = np.random.default_rng(9)
    x = 0.9 + rng.normal(0, 0.01, 40)
    x[30:] -= 0.04
    stream = StreamDetector(metric="accuracy")
    live = [stream.update(f"t{i}", float(v)).alarm for i, v in enumerate(x)]
    batch = [p.alarm for p in detect(_hist(x), None, "accuracy")]
    assert live == batch and any(live[30:33])
