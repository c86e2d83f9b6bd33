"""`git ml retrain`: the recorded training re-runs on new data on a new branch, commits
through the real hooks' gates, is registered by the registry, and is promoted only when it
beats the deployed version on held-out new rows."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import git, gitml
from tests.support.checks import arrests_split
from tests.support.monitor import make_trained_repo, policy_shift


def test_retraining_loop(tmp_path: Path) -> None:
    repo = make_trained_repo(tmp_path / "repo")
    train, _ = arrests_split()
    # 1. more of the same data: the new version is gated and registered, but it does not
    #    beat the deployed one on the held-out new rows, so it is left for review
    train.sample(n=400, random_state=2).to_parquet(tmp_path / "same.parquet", index=False)
    r = gitml(repo, "retrain", "arrests", "--data", str(tmp_path / "same.parquet"), "--auto-promote",
              "--json", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads(r.stdout)
    assert d["tag"] == "arrests@v1.1.0" and d["beats"] is False and d["promoted"] is None
    assert "left for review" in d["message"] and d["mode"] == "append"
    assert git(repo, "tag", "-l", "arrests#prod#*").stdout.split() == ["arrests#prod#1"]
    # 2. a new release policy: the retrained model beats the deployed one and is promoted
    new = policy_shift(train.sample(n=1500, random_state=1))
    new.to_parquet(tmp_path / "new.parquet", index=False)
    r = gitml(repo, "retrain", "arrests", "--data", str(tmp_path / "new.parquet"), "--mode", "replace",
              "--auto-promote", "--reason", "monitor: drift on age", "--json", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads(r.stdout)
    assert d["base_version"] == "1.0.0" and d["version"] == "v1.2.0" and d["tag"] == "arrests@v1.2.0"
    assert d["stages"] == ["train"] and d["train_data"] == "data/train.parquet"
    assert d["rows_added"] == 1050 and d["eval_refreshed"] is True
    assert d["beats"] is True and d["promoted"].startswith("arrests#prod#")
    acc = d["comparison"]["metrics"]["accuracy"]
    assert acc["ci_low"] > 0 and d["comparison"]["rows"] == 450
    # in Git: a commit on the retrain branch, through the gates, tagged, with its reason
    assert git(repo, "rev-parse", "arrests@v1.2.0^{commit}").stdout.strip() == d["commit"]
    assert d["branch"] in git(repo, "branch", "--list", "retrain/arrests/*").stdout
    body = git(repo, "log", "-1", "--format=%B", d["commit"]).stdout
    assert "Reason: monitor: drift on age" in body and "Stages re-run: train" in body
    checks = json.loads(git(repo, "show", f"{d['commit']}:.gitml/checks/arrests.json").stdout)
    assert checks["results"] and all(x["passed"] or x.get("skipped") or not x.get("blocking", True)
                                     for x in checks["results"])
    hist = gitml(repo, "history", "arrests").stdout
    assert "v1.2.0" in hist and "prod" in hist
    assert git(repo, "worktree", "list").stdout.count("\n") == 1  # the temporary worktree is gone
    bad = gitml(repo, "retrain", "arrests", check=False)
    assert bad.returncode == 2 and "--data" in bad.stderr
