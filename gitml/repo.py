"""The repository context every command works in: work tree, Git, store, config."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from gitml.errors import GitMLError, NotARepositoryError
from gitml.git.repo import GitRepo
from gitml.layout import (
    CONFIG_LOCK,
    KNOWN_REMOTES,
    LOCAL_CONFIG,
    ML_DIR,
    STAT_CACHE,
    STORE_DIR,
    STORE_LOCK,
    WORKTREE_LOCK,
    committed_config,
)
from gitml.store.objects import ObjectStore
from gitml.store.stat_cache import StatCache

if TYPE_CHECKING:
    from gitml.config import Config




class MLRepo:
    def __init__(self, git: GitRepo) -> None:
        self.git = git
        self.workdir = git.workdir
        self.ml_dir = git.common_dir / ML_DIR
        self.store = ObjectStore(self.ml_dir / STORE_DIR)
        self.stat_cache = StatCache(self.ml_dir / STAT_CACHE)

    @classmethod
    def discover(cls, start: Path | None = None, *, require_init: bool = True) -> MLRepo:
        repo = cls(GitRepo.discover(start))
        if require_init and not repo.is_initialised():
            raise NotARepositoryError(
                f"gitml is not set up in {repo.workdir}", "run `git ml init`")
        return repo

    def is_initialised(self) -> bool:
        """A work tree with a committed ``.gitml/`` uses gitml; the local store folder is
        created on first use, so a fresh clone works without `git ml init`."""
        return committed_config(self.workdir).parent.is_dir()

    @cached_property
    def config(self) -> Config:
        from gitml.config import Config

        return Config(committed_config(self.workdir), self.ml_dir / LOCAL_CONFIG,
                      known_path=self.ml_dir / KNOWN_REMOTES, lock_path=self.ml_dir / CONFIG_LOCK,
                      history=self._committed_configs)

    def _committed_configs(self) -> list[bytes]:
        """The committed config file at the tip of every branch, remote branch and tag
        (to find remotes the checked-out commit predates)."""
        out = self.git.run_git("for-each-ref", "--format=%(objectname)",
                               "refs/heads", "refs/remotes", "refs/tags", check=False)
        rel = committed_config(self.workdir).relative_to(self.workdir).as_posix()
        blobs: list[bytes] = []
        for oid in dict.fromkeys(out.split()):
            try:
                data = self.git.read_blob(oid, rel)
            except GitMLError:
                continue
            if data is not None:
                blobs.append(data)
        return blobs

    def relpath(self, path: Path | str) -> str:
        """Work-tree-relative POSIX path; errors for paths outside the work tree."""
        p = Path(os.path.abspath(path))
        # resolve symlinks in the folders, not in the final name (it may be a link we reject)
        absolute = Path(os.path.realpath(p.parent)) / p.name if p.name else Path(os.path.realpath(p))
        try:
            rel = absolute.relative_to(self.workdir)
        except ValueError:
            raise GitMLError(f"{path} is outside the repository {self.workdir}") from None
        s = rel.as_posix()
        return "" if s == "." else s

    def abspath(self, rel: str) -> Path:
        return self.workdir / rel

    def lock_path(self) -> Path:
        return self.ml_dir / STORE_LOCK

    def worktree_lock_path(self) -> Path:
        """Held around read-modify-writes of shared work-tree files (.gitignore, ...)."""
        return self.ml_dir / WORKTREE_LOCK
