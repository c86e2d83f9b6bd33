"""Builders for the deploy tests: a repository with the arrests model committed and
tagged as a version (arrests@v1.0.0) and promoted (arrests#prod#1)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN_DIR, git, gitml
from tests.support.checks import good_model, save_model, write_config, write_eval


@contextmanager
def isolated_git(home: Path) -> Iterator[None]:
    """The git_env fixture's isolation, for module-scoped fixtures."""
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test User\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        mp.setenv("PATH", BIN_DIR + os.pathsep + os.environ.get("PATH", ""))
        for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GITML_DEBUG"):
            mp.delenv(var, raising=False)
        yield


def make_model_repo(repo: Path, model: Any = None) -> Path:
    """A repository whose HEAD holds the arrests model, tagged arrests@v1.0.0 and
    arrests#prod#1. The gates are not run (``--no-verify``): these tests are about what
    happens after a version exists."""
    repo.mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / "README.md").write_text("test repo\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "initial")
    gitml(repo, "init")
    write_eval(repo / "data" / "eval.parquet")
    save_model(good_model() if model is None else model, repo / "models" / "model.skops")
    write_config(repo, baseline="prod")
    gitml(repo, "add", "models/model.skops", "data/eval.parquet")
    git(repo, "add", ".gitml/config.toml")
    git(repo, "commit", "-q", "--no-verify", "-m", "model v1")
    git(repo, "tag", "-a", "arrests@v1.0.0", "-m", "arrests v1.0.0")
    git(repo, "tag", "-a", "arrests#prod#1", "-m", "promote")
    return repo


def gpg_key(home: Path, uid: str, *, signing_subkey: bool = False) -> tuple[str, str]:
    """A throwaway GPG key (no passphrase) in the keyring ``home``: (primary fingerprint,
    fingerprint of the key that signs: a new signing subkey with ``signing_subkey``)."""
    import subprocess

    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {**os.environ, "GNUPGHOME": str(home)}
    base = ["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    subprocess.run([*base, "--quick-gen-key", uid, "ed25519", "sign", "never"], env=env,
                   check=True, capture_output=True)

    def fprs() -> list[str]:
        out = subprocess.run(["gpg", "--batch", "--with-colons", "--list-keys", uid], env=env,
                             check=True, capture_output=True, text=True).stdout
        return [ln.split(":")[9] for ln in out.splitlines() if ln.startswith("fpr:")]

    primary = fprs()[0]
    if not signing_subkey:
        return primary, primary
    subprocess.run([*base, "--quick-add-key", primary, "ed25519", "sign", "never"], env=env,
                   check=True, capture_output=True)
    return primary, fprs()[-1]


def stop_gpg_agent(home: Path) -> None:
    import subprocess

    subprocess.run(["gpgconf", "--kill", "all"], env={**os.environ, "GNUPGHOME": str(home)},
                   capture_output=True)
