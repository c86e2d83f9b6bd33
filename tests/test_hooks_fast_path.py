"""Commits that stage nothing of gitml's start no Python in the hooks; anything else does."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from gitml.hooks.watch import declared_paths
from tests.conftest import git, gitml

REAL_HOOK = str(Path(sys.executable).parent / "git-ml-hook")


def _spy(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A `git-ml-hook` first on PATH that logs each call, then runs the real one."""
    bindir = tmp_path / "spy-bin"
    bindir.mkdir()
    log = tmp_path / "hook-calls.log"
    spy = bindir / "git-ml-hook"
    spy.write_text(f'#!/bin/sh\necho "$1" >> "{log}"\nexec "{REAL_HOOK}" "$@"\n')
    spy.chmod(0o755)
    return {"PATH": str(bindir) + os.pathsep + os.environ["PATH"]}, log


def _commit(repo: Path, env: dict[str, str], message: str) -> None:
    old = os.environ["PATH"]
    os.environ["PATH"] = env["PATH"]
    try:
        git(repo, "commit", "-q", "-m", message)
    finally:
        os.environ["PATH"] = old


def _calls(log: Path) -> list[str]:
    calls = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return [c for c in calls if c in ("pre-commit", "commit-msg")]


def test_unrelated_commit_starts_no_python_but_artifacts_and_config_do(
        repo: Path, tmp_path: Path) -> None:
    gitml(repo, "install")
    env, log = _spy(tmp_path)
    (repo / "m.bin").write_bytes(b"v1")
    gitml(repo, "add", "m.bin")
    _commit(repo, env, "artifact")
    assert _calls(log) == ["pre-commit", "commit-msg"]
    assert "Gitml-Artifact: m.bin" in git(repo, "log", "-1", "--format=%B").stdout

    (repo / "README.md").write_text("edited\n")
    git(repo, "add", "README.md")
    _commit(repo, env, "docs only")
    assert _calls(log) == []

    # a config edit: the list was made for another config, so Python decides
    cfg = repo / ".gitml" / "config.toml"
    cfg.write_text(cfg.read_text() + '\n[data."data/plain.csv"]\n')
    git(repo, "add", ".gitml/config.toml")
    _commit(repo, env, "declare data")
    assert _calls(log) == ["pre-commit", "commit-msg"]

    # a path the config declares, kept in Git itself: pre-commit runs
    (repo / "data").mkdir()
    (repo / "data" / "plain.csv").write_text("a,b\n1,2\n")
    git(repo, "add", "data/plain.csv")
    _commit(repo, env, "plain data")
    assert _calls(log)[:1] == ["pre-commit"]

    # a deleted pointer is gitml's business too
    git(repo, "rm", "-q", "m.bin.gitml")
    _commit(repo, env, "drop artifact")
    assert _calls(log) == ["pre-commit", "commit-msg"]


def test_missing_or_foreign_watch_list_takes_the_full_path(repo: Path, tmp_path: Path) -> None:
    gitml(repo, "install")
    env, log = _spy(tmp_path)
    watch = Path(git(repo, "rev-parse", "--git-common-dir").stdout.strip())
    watch = (watch if watch.is_absolute() else repo / watch) / "ml" / "hook-watch"
    watch.unlink(missing_ok=True)
    (repo / "a.txt").write_text("a")
    git(repo, "add", "a.txt")
    _commit(repo, env, "no list yet")
    assert _calls(log)[:1] == ["pre-commit"]
    assert watch.read_text().startswith("config ")
    watch.write_text("config 0000000000000000000000000000000000000000\n")
    (repo / "b.txt").write_text("b")
    git(repo, "add", "b.txt")
    _commit(repo, env, "list of another config")
    assert _calls(log)[:1] == ["pre-commit"]


def test_declared_paths_come_from_models_and_data_tables() -> None:
    config = {
        "models": {"m": {"path": "models/m.skops", "data": "/data/eval.csv/", "target": "y"},
                   "bad": "not a table"},
        "data": {"data/train.parquet": {"rules": {}}},
        "core": {"remote": "origin"},
    }
    assert declared_paths(config) == ["data/eval.csv", "data/train.parquet", "models/m.skops"]
