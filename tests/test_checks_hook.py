"""The gates in real `git commit`s: hooks installed by `git ml install`, real models on
the arrests data set, the production baseline as a GTO stage tag."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import git, gitml
from tests.support.checks import (
    biased_model,
    good_model,
    save_model,
    worse_model,
    write_config,
    write_eval,
)


def _stage_model(repo: Path, model: object) -> None:
    save_model(model, repo / "models" / "model.skops")
    gitml(repo, "add", "models/model.skops")


def _head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").stdout.strip()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Built once per module (gate runs cost seconds): a repo with hooks, a good model
    committed through the gates and tagged arrests#prod#1. Tests work on copies."""
    from tests.conftest import BIN_DIR

    home = tmp_path_factory.mktemp("home-checks")
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test User\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        mp.setenv("PATH", BIN_DIR + os.pathsep + os.environ.get("PATH", ""))
        for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
            mp.delenv(var, raising=False)
        repo = tmp_path_factory.mktemp("checks-template") / "repo"
        repo.mkdir()
        git(repo, "init", "-q")
        (repo / "README.md").write_text("test repo\n")
        git(repo, "add", "README.md")
        git(repo, "commit", "-q", "-m", "initial")
        gitml(repo, "init")
        yield _commit_good(repo)


@pytest.fixture
def gated(template: Path, tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(template, repo, symlinks=True)
    return repo


def _commit_good(repo: Path) -> Path:
    gitml(repo, "install")
    write_eval(repo / "data" / "eval.parquet")
    save_model(good_model(), repo / "models" / "model.skops")
    write_config(repo, baseline="prod")
    gitml(repo, "add", "models/model.skops", "data/eval.parquet")
    git(repo, "add", ".gitml/config.toml")
    proc = git(repo, "commit", "-m", "good model")
    assert "arrests: " in proc.stderr and "gates passed" in proc.stderr, proc.stderr
    # no prod tag yet: the regression gate is reported as skipped, not counted as passed
    assert ", 1 skipped" in proc.stderr and "skipped: eval.regression" in proc.stderr, proc.stderr
    assert "no arrests#prod tag yet" in proc.stderr
    git(repo, "tag", "-a", "arrests#prod#1", "-m", "promote")
    return repo


def test_good_model_passes_and_results_are_committed(gated: Path) -> None:
    repo = gated
    committed = git(repo, "show", "HEAD:.gitml/checks/arrests.json").stdout
    data = json.loads(committed)
    for key in ("model", "model_oid", "data_oid", "config_hash", "results", "created"):
        assert key in data
    assert data["model"] == "arrests" and data["passed"] is True
    pointer = git(repo, "show", "HEAD:models/model.skops.gitml").stdout
    assert f"oid {data['model_oid']}" in pointer
    gates = {r["gate"]: r for r in data["results"]}
    assert {"eval.threshold", "eval.regression", "bias.colour", "bias.sex", "explain"} <= set(gates)
    assert gates["eval.threshold"]["metrics"]["metrics"]["accuracy"] > 0.8
    assert gates["eval.regression"]["skipped"] is True  # no prod tag existed yet
    assert gates["explain"]["metrics"]["importance"]["checks"] > 0
    # nothing left uncommitted by the hook
    assert git(repo, "status", "--porcelain").stdout.strip() == ""


def test_worse_model_is_blocked_by_a_real_commit(gated: Path) -> None:
    repo = gated
    before = _head(repo)
    _stage_model(repo, worse_model())
    proc = git(repo, "commit", "-m", "worse model", check=False)
    assert proc.returncode != 0
    assert _head(repo) == before
    err = proc.stderr
    assert "eval.regression FAILED" in err and "worse than prod by" in err, err
    assert "roc_auc" in err
    # the failing result is kept for the user outside the work tree: a blocked commit
    # leaves the committed results file untouched (nothing shows as modified)
    blocked = json.loads((repo / ".git/ml/checks/blocked/arrests.json").read_text())
    assert blocked["passed"] is False and ".git/ml/checks/blocked" in err
    assert json.loads((repo / ".gitml/checks/arrests.json").read_text())["passed"] is True
    assert ".gitml/checks" not in git(repo, "status", "--porcelain").stdout
    # the same staged model again: served from the cache, still blocked
    t0 = time.perf_counter()
    proc2 = git(repo, "commit", "-m", "worse model again", check=False)
    cached_seconds = time.perf_counter() - t0
    assert proc2.returncode != 0 and "eval.regression FAILED" in proc2.stderr
    assert cached_seconds < 20.0, cached_seconds  # sanity bound only; timing is for benchmarks


def test_biased_model_is_blocked_by_the_bias_gate(gated: Path) -> None:
    repo = gated
    before = _head(repo)
    _stage_model(repo, biased_model())
    proc = git(repo, "commit", "-m", "biased model", check=False)
    assert proc.returncode != 0 and _head(repo) == before
    err = proc.stderr
    assert "bias.colour FAILED" in err and "four-fifths" in err and "counterfactual" in err, err
    # evaluation alone would have let it through: only fairness blocks it
    assert "eval.regression FAILED" not in err and "eval.threshold FAILED" not in err
    assert "bias.sex FAILED" not in err


def test_unchanged_model_costs_nothing(gated: Path) -> None:
    repo = gated
    (repo / "README.md").write_text("more text\n")
    git(repo, "add", "README.md")
    t0 = time.perf_counter()
    proc = git(repo, "commit", "-m", "docs only")
    elapsed = time.perf_counter() - t0
    assert "gates" not in proc.stderr  # nothing ran
    assert elapsed < 20.0, elapsed  # sanity bound; the real check is that no gate ran
    # the prod tag now exists, so the first check computes the regression gate; the
    # second one is served from the cache keyed by (model, data, config, baseline) ids
    first = json.loads(gitml(repo, "check", "--staged", "--json").stdout)
    assert first["passed"] is True and first["models"][0]["cached"] is False
    t0 = time.perf_counter()
    second = json.loads(gitml(repo, "check", "--staged", "--json").stdout)
    assert second["models"][0]["cached"] is True
    assert second["models"][0]["results"] == first["models"][0]["results"]
    assert time.perf_counter() - t0 < 20.0


def test_equally_good_retrained_model_passes_against_prod(gated: Path) -> None:
    """Noise is not a regression: a forest that scores within noise of prod commits."""
    repo = gated
    _stage_model(repo, good_model("forest"))
    proc = git(repo, "commit", "-m", "retrained forest")
    assert "gates passed" in proc.stderr
    data = json.loads(git(repo, "show", "HEAD:.gitml/checks/arrests.json").stdout)
    reg = next(r for r in data["results"] if r["gate"] == "eval.regression")
    assert reg["skipped"] is False and reg["passed"] is True
    assert reg["metrics"]["baseline"] == "prod"
    acc = reg["metrics"]["accuracy"]
    assert acc["ci_low"] < acc["difference"] < acc["ci_high"]
    explain = next(r for r in data["results"] if r["gate"] == "explain")
    assert explain["metrics"]["shift"]["baseline"] == "prod"


def test_commit_of_named_paths_leaves_the_index_clean(gated: Path) -> None:
    """`git commit -m … -- PATHS` commits from a temporary index: the gate results the hook
    adds must reach both the commit and the real index, or `git status` shows them reverted."""
    repo = gated
    save_model(good_model("forest"), repo / "models" / "model.skops")
    gitml(repo, "add", "models/model.skops")
    proc = git(repo, "commit", "-m", "retrained, named paths", "--", "models/model.skops.gitml")
    assert "gates passed" in proc.stderr
    committed = git(repo, "show", "HEAD:.gitml/checks/arrests.json").stdout
    assert json.loads(committed)["model"] == "arrests"
    assert (repo / ".gitml/checks/arrests.json").read_text() == committed
    assert git(repo, "status", "--porcelain").stdout.strip() == ""


def _config(repo: Path) -> Path:
    return repo / ".gitml" / "config.toml"


def _commit_config(repo: Path, old: str, new: str) -> subprocess.CompletedProcess[str]:
    cfg = _config(repo)
    text = cfg.read_text()
    assert old in text
    cfg.write_text(text.replace(old, new))
    git(repo, "add", ".gitml/config.toml")
    return git(repo, "commit", "-m", "config change", check=False)


def test_a_typo_in_the_model_path_stops_the_commit(gated: Path) -> None:
    """Before: "models/modle.skops is not staged; gates not run" and the commit went in."""
    before = _head(gated)
    proc = _commit_config(gated, 'path = "models/model.skops"', 'path = "models/modle.skops"')
    assert proc.returncode != 0 and _head(gated) == before
    assert "models.arrests.path: models/modle.skops is not found" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_typo_in_the_baseline_stops_the_commit(gated: Path) -> None:
    """Before: `staging2` read as a stage with no tag yet; the regression gate was skipped
    and the hook said the gates passed."""
    before = _head(gated)
    proc = _commit_config(gated, 'baseline = "prod"', 'baseline = "staging2"')
    assert proc.returncode != 0 and _head(gated) == before
    assert "models.arrests.gates.baseline: 'staging2' is neither a stage" in proc.stderr, proc.stderr
    git(gated, "reset", "-q", "--hard")
    proc = _commit_config(gated, 'baseline = "prod"', 'baseline = "0123abc"')
    assert proc.returncode != 0 and "'0123abc' is neither a stage" in proc.stderr


def test_a_limit_out_of_range_stops_the_commit(gated: Path) -> None:
    before = _head(gated)
    proc = _commit_config(gated, "four_fifths = 0.8", "four_fifths = 1.5")
    assert proc.returncode != 0 and _head(gated) == before
    assert "models.arrests.gates.bias.four_fifths = 1.5 is outside its range" in proc.stderr


def test_declared_data_rules_are_enforced_at_commit(gated: Path) -> None:
    """Rules under [data."<path>".rules] block a commit of that data, with no model's
    `quality = true` needed. Before, only `git ml validate` enforced them."""
    import pandas as pd

    from tests.support.checks import arrests_split

    train, _ = arrests_split()
    (gated / "data" / "train.parquet").parent.mkdir(exist_ok=True)
    train.to_parquet(gated / "data" / "train.parquet", index=False)
    cfg = _config(gated)
    cfg.write_text(cfg.read_text() + '\n[data."data/train.parquet".rules]\n'
                   "max_null_rate = 0.0\nmin_rows = 100\n")
    gitml(gated, "add", "data/train.parquet")
    git(gated, "add", ".gitml/config.toml")
    ok = git(gated, "commit", "-m", "training data")
    assert "data data/train.parquet: quality passed" in ok.stderr, ok.stderr
    before = _head(gated)
    bad = train.copy()
    bad.loc[:50, "age"] = None
    pd.DataFrame(bad).to_parquet(gated / "data" / "train.parquet", index=False)
    gitml(gated, "add", "data/train.parquet")
    proc = git(gated, "commit", "-m", "nulls", check=False)
    assert proc.returncode != 0 and _head(gated) == before
    assert "data data/train.parquet: quality FAILED" in proc.stderr and "'age' null rate" in proc.stderr


def test_a_majority_class_model_never_passes_the_default_gates(gated: Path) -> None:
    """With no thresholds declared, a model that predicts the majority class for everyone
    used to pass (its AUC interval straddled any limit on 300 rows)."""
    from sklearn.dummy import DummyClassifier

    from tests.support.checks import FEATURES, arrests_split

    cfg = _config(gated)
    text = cfg.read_text()
    text = "\n".join(ln for ln in text.splitlines()
                     if not ln.startswith(("min =", "max_regression =", "bias =", "explain =")))
    cfg.write_text(text + "\n")
    write_eval(gated / "data" / "eval.parquet", n=300)
    train, _ = arrests_split()
    _stage_model(gated, DummyClassifier(strategy="prior").fit(train[FEATURES], train["released"]))
    gitml(gated, "add", "data/eval.parquet")
    git(gated, "add", ".gitml/config.toml")
    before = _head(gated)
    proc = git(gated, "commit", "-m", "dummy", check=False)
    assert proc.returncode != 0 and _head(gated) == before
    assert "eval.trivial FAILED" in proc.stderr and "majority class" in proc.stderr, proc.stderr
