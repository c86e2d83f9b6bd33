"""Where gitml keeps its files (names shared by several modules; no imports)."""

from __future__ import annotations

COMMITTED_DIR = ".gitml"  # committed: config.toml, runs/, checks/, env/
COMMITTED_NAME = "config.toml"
ML_DIR = "ml"  # under Git's common dir: the store and local state, shared by worktrees
