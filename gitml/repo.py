"""The repository context every command works in: work tree, Git, store, config."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from gitml.errors import GitMLError, NotARepositoryError
from gitml.git.repo import GitRepo
from gitml.layout import COMMITTED_DIR, COMMITTED_NAME, ML_DIR
from gitml.store.objects import ObjectStore
from gitml.store.stat_cache import StatCache

if TYPE_CHECKING:
    from gitml.config import Config




class MLRepo:
    def __init__(self, git: GitRepo) -> None:
        self.git = git
        self.workdir = git.workdir
        self.ml_dir = git.common_dir / ML_DIR
        self.store = ObjectStore(self.ml_dir / "store")
        self.stat_cache = StatCache(self.ml_dir / "stat-cache.sqlite")

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
        return (self.workdir / COMMITTED_DIR).is_dir()

    @cached_property
    def config(self) -> Config:
        from gitml.config import Config

        return Config(self.workdir / COMMITTED_DIR / COMMITTED_NAME, self.ml_dir / "config.local.toml")

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
        return self.ml_dir / "store.lock"
