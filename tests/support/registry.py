"""Shared builders for the registry and deploy tests: a gitml repository whose commits
passed real gates (a light gate set: thresholds only), with hooks installed."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN_DIR, git, gitml
from tests.support.checks import FEATURES, arrests_split, pipeline, save_model, write_eval

CONFIG = """\
[models.credit]
path = "models/model.skops"
data = "data/eval.parquet"
target = "released"
task = "classification"
positive = "Yes"
sensitive = ["colour"]

[models.credit.gates]
min = { accuracy = 0.7 }
bootstrap = 100
bias = { min_group_size = 30 }
explain = { rows = 40 }

[card.credit]
owner = "Risk team <risk@example.com>"
intended_use = "Decide whether an arrestee is released with a summons (demo data)"
"""


@contextmanager
def isolated_git_env(home: Path) -> Iterator[None]:
    """A fixed identity, no system config, real clock (registry order is tagger time)."""
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test User\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n"
        "[advice]\n\tdetachedHead = false\n[protocol \"file\"]\n\tallow = always\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        mp.setenv("PATH", BIN_DIR + os.pathsep + os.environ.get("PATH", ""))
        for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMITTER_DATE",
                    "GIT_AUTHOR_DATE"):
            mp.delenv(var, raising=False)
        yield


def commit_model(repo: Path, model: Any, message: str, *, check: bool = True) -> str:
    save_model(model, repo / "models" / "model.skops")
    gitml(repo, "add", "models/model.skops")
    proc = git(repo, "commit", "-q", "-m", message, *([] if check else ["--no-verify"]))
    assert "gates passed" in proc.stderr or not check, proc.stderr
    return git(repo, "rev-parse", "HEAD").stdout.strip()


def build_template(repo: Path, extra_config: str = "") -> Path:
    """Two gated commits: a logistic regression (HEAD~1) and a gradient-boosted model (HEAD)."""
    repo.mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / "README.md").write_text("credit\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "initial")
    gitml(repo, "init")
    gitml(repo, "install")
    write_eval(repo / "data" / "eval.parquet")
    (repo / ".gitml" / "config.toml").write_text(
        (repo / ".gitml" / "config.toml").read_text() + "\n" + CONFIG + extra_config)
    gitml(repo, "add", "data/eval.parquet")
    git(repo, "add", ".gitml/config.toml")
    commit_model(repo, logreg(1.0), "logistic regression")
    commit_model(repo, logreg(0.2), "logistic regression, stronger regularisation")
    return repo


def logreg(c: float, labels: Any = None) -> Any:
    """A fitted pipeline (one-hot + scaling + logistic regression) on the arrests data;
    ``labels`` replaces the training labels (e.g. shuffled ones)."""
    from sklearn.linear_model import LogisticRegression

    train, _ = arrests_split()
    y = train["released"] if labels is None else labels
    return pipeline(LogisticRegression(C=c, max_iter=1000)).fit(train[FEATURES], y)


_TEMPLATES: dict[str, Path] = {}


def template_repo(factory: pytest.TempPathFactory, key: str = "plain", extra_config: str = "") -> Path:
    """Built once per test process (the gates cost seconds), then copied by each test."""
    if key not in _TEMPLATES:
        base = factory.mktemp(f"registry-template-{key}")
        (base / "home").mkdir()
        with isolated_git_env(base / "home"):
            _TEMPLATES[key] = build_template(base / "repo", extra_config)
    return _TEMPLATES[key]


def copy_repo(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest, symlinks=True)
    return dest
