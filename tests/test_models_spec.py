"""Baseline names: GTO stages and versions, revisions, and typos (which are errors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitml.errors import ConfigError
from tests.conftest import git


def _spec(baseline: str) -> object:
    from gitml.models.spec import parse_model

    return parse_model("m", {"path": "m.skops", "data": "d.parquet", "target": "y",
                             "gates": {"baseline": baseline}})


def _commit(repo: Path, name: str) -> str:
    (repo / name).write_text(name)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", name)
    return git(repo, "rev-parse", "HEAD").stdout.strip()


def test_baseline_names(repo: Path) -> None:
    from gitml.models.spec import resolve_baseline
    from gitml.repo import MLRepo

    first = _commit(repo, "a")
    second = _commit(repo, "b")
    r = MLRepo.discover(repo)

    def resolve(name: str) -> str | None:
        return resolve_baseline(r, _spec(name))  # type: ignore[arg-type]

    assert resolve("prod") is None  # a known stage never assigned: no baseline yet
    assert resolve("HEAD~1") == first
    git(repo, "tag", "-a", "m#prod#1", "-m", "p", first)
    git(repo, "tag", "-a", "m#prod#2", "-m", "p", second)
    git(repo, "tag", "-a", "m@v1.0.0", "-m", "v", first)
    assert resolve("prod") == second  # the newest assignment wins
    assert resolve("m#prod") == second
    assert resolve("v1.0.0") == first and resolve("m@v1.0.0") == first
    git(repo, "tag", "-a", "other#canary#1", "-m", "c", first)
    assert resolve("canary") is None  # a stage some model uses: known, not assigned to m
    for typo in ("staging2", "0123abc", "v9.9.9", "m@v2.0.0"):
        with pytest.raises(ConfigError, match=r"models\.m\.gates\.baseline: .* is neither a stage"):
            resolve(typo)
    (repo / ".gitml" / "config.toml").write_text('[registry]\nstages = ["qa"]\n')
    r = MLRepo.discover(repo)
    assert resolve("qa") is None
    with pytest.raises(ConfigError, match="neither a stage"):
        resolve("dev")  # declared stages replace the usual ones
