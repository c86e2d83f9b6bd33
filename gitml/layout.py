"""Where gitml keeps its files (names shared by several modules; no imports)."""

from __future__ import annotations

COMMITTED_DIR = ".gitml"  # committed: config.toml, runs/, checks/, env/
COMMITTED_NAME = "config.toml"
ML_DIR = "ml"  # under Git's common dir: the store and local state, shared by worktrees
TRAFFIC_DIR = "traffic"  # under ML_DIR: traffic/<model>/ holds the served model's traffic log
SERVE_DIR = "serve"  # under ML_DIR: serve/<model>/ holds `git ml serve`'s bundles and state
