"""A bare repository's deploy work tree (GitOps receiver): gitml needs a work tree to read
a commit's config and pointers, so a linked work tree of the bare repository is kept beside
it, detached at the commit being deployed. The store stays in the bare repository's
``ml/`` folder (its common dir)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from gitml.errors import GitMLError

WORKTREE_NAME = "gitml-deploy-worktree"
#: variables Git sets for hooks that would point a git started elsewhere at the bare repo
_HOOK_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX",
              "GIT_QUARANTINE_PATH", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES")


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _HOOK_VARS}


def hook_git_dir() -> Path:
    """The repository a hook runs for (Git sets GIT_DIR, usually '.', in bare repositories)."""
    return Path(os.environ.get("GIT_DIR", ".")).resolve()


def _git(args: list[str], cwd: Path) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=clean_env())
    if proc.returncode != 0:
        msg = proc.stderr.strip().splitlines()
        raise GitMLError(f"git {args[0]} failed: {msg[-1] if msg else proc.returncode}")
    return proc.stdout


def peel(git_dir: Path, ref: str) -> str:
    return _git(["--git-dir", str(git_dir), "rev-parse", "--verify", ref + "^{commit}"], git_dir).strip()


def deploy_worktree(git_dir: Path, commit: str) -> Path:
    """The receiver's work tree, detached at ``commit`` (created on first use)."""
    wt = git_dir / WORKTREE_NAME
    if not (wt / ".git").exists():
        _git(["--git-dir", str(git_dir), "worktree", "prune"], git_dir)
        _git(["--git-dir", str(git_dir), "worktree", "add", "--detach", "-f", str(wt), commit], git_dir)
    else:
        _git(["checkout", "--detach", "-f", "-q", commit], wt)
    return wt
