"""Record the environment gitml itself runs in (``.gitml/env/<id>.json``), for commands
that measure or build something in-process (profile, compile) rather than via `git ml run`."""

from __future__ import annotations

import json
from typing import Any

from gitml.repo import MLRepo


def capture() -> dict[str, Any]:
    from gitml.runs import environment

    env = environment.capture()
    env["captured_in"] = "git-ml"
    return env


def record_environment(repo: MLRepo, env: dict[str, Any] | None = None) -> tuple[str, str]:
    """Write the environment if new; returns (id, path relative to the work tree)."""
    from gitml.runs.environment import environment_id
    from gitml.runs.records import env_path
    from gitml.store.fsutil import atomic_write_text

    env = env or capture()
    env_id = environment_id(env)
    env["id"] = env_id
    rel = env_path(env_id)
    if not (repo.workdir / rel).exists():
        atomic_write_text(repo.workdir / rel, json.dumps(env, indent=1, sort_keys=True) + "\n")
    return env_id, rel
