"""One resolver of model references, by GTO's rules, for serve, deploy, package and the
gates' baselines: an unassigned stage names nothing, a version is the registered one, and
an old commit is read with the declaration it had."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitml.errors import ConfigError, GitMLError, UsageError
from gitml.models.spec import resolve_baseline, spec_at
from gitml.registry.refs import resolve
from gitml.repo import MLRepo
from tests.conftest import git, gitml
from tests.support.registry import copy_repo, template_repo


@pytest.fixture
def reg(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Path:
    # registry order is tagger time: use the real clock, not the suite's pinned date
    monkeypatch.delenv("GIT_COMMITTER_DATE", raising=False)
    monkeypatch.delenv("GIT_AUTHOR_DATE", raising=False)
    repo = copy_repo(template_repo(tmp_path_factory), tmp_path / "repo")
    gitml(repo, "register", "credit", "HEAD~1", "--version", "1.0.0")
    gitml(repo, "register", "credit", "HEAD", "--version", "1.1.0")
    gitml(repo, "promote", "credit", "1.0.0", "prod")
    return repo


def test_versions_and_stages_resolve_by_gto_rules(reg: Path) -> None:
    repo = MLRepo.discover(reg)
    old = git(reg, "rev-parse", "HEAD~1").stdout.strip()
    new = git(reg, "rev-parse", "HEAD").stdout.strip()
    prod = resolve(repo, "credit#prod")
    assert (prod.commit, prod.version, prod.stage) == (old, "1.0.0", "prod")
    for text in ("credit@1.1.0", "credit@v1.1.0"):
        ref = resolve(repo, text)
        assert (ref.commit, ref.version, ref.stage) == (new, "1.1.0", None)
    at_rev = resolve(repo, "credit", "HEAD~1")
    assert (at_rev.commit, at_rev.version) == (old, "1.0.0")
    spec = spec_at(repo, "credit", old)
    assert resolve_baseline(repo, spec, "prod") == old
    assert resolve_baseline(repo, spec, "v1.1.0") == new

    gitml(reg, "unassign", "credit", "prod")
    repo = MLRepo.discover(reg)
    with pytest.raises(GitMLError, match="no version of credit is in stage 'prod'"):
        resolve(repo, "credit#prod")
    # the tag credit#prod#N still exists, but nobody is in prod: no baseline, not a stale one
    assert resolve_baseline(repo, spec, "prod") is None
    assert resolve_baseline(repo, spec, "credit#prod") is None


def test_unknown_versions_stages_and_names_are_errors(reg: Path) -> None:
    repo = MLRepo.discover(reg)
    with pytest.raises(GitMLError, match="no such registered version"):
        resolve(repo, "credit@v9.9.9")
    with pytest.raises(UsageError, match="not a model reference"):
        resolve(repo, "cre dit")
    with pytest.raises(UsageError, match="not both"):
        resolve(repo, "credit@v1.0.0", "HEAD")
    first = git(reg, "rev-list", "--max-parents=0", "HEAD").stdout.strip()
    with pytest.raises(ConfigError, match=r"not declared at|does not exist at"):
        spec_at(repo, "credit", first)
    with pytest.raises(ConfigError, match="neither a stage"):
        resolve_baseline(repo, spec_at(repo, "credit", "HEAD"), "prdo")
