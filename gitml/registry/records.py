"""Deploy and rollback records, kept in Git on ``refs/gitml/deployments/<target>``.

A record: ``{"action": "deploy" | "rollback" | "refused" | "stable", "model", "version",
"commit", "target", "from": previous version or null, "tag", "signed", "signer", "by",
"time" (Unix seconds, float), "reason", "url"}``. "What served at time T" is the version
of the newest deploy/rollback record at or before T.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from gitml.git import reflog

if TYPE_CHECKING:
    from gitml.git.repo import GitRepo

PREFIX = "refs/gitml/deployments/"
SERVING_ACTIONS = ("deploy", "rollback")


def ref_for(target: str) -> str:
    return PREFIX + target


def who(git: GitRepo) -> str:
    """Who deploys: Git's identity, and the host it ran on."""
    name = os.environ.get("GIT_COMMITTER_NAME") or git.get_config("user.name") or getpass.getuser()
    email = os.environ.get("GIT_COMMITTER_EMAIL") or git.get_config("user.email") or ""
    return f"{name} <{email}> on {socket.gethostname()}" if email else f"{name} on {socket.gethostname()}"


def record(git: GitRepo, target: str, action: str, model: str, version: str | None,
           **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"action": action, "model": model, "version": version,
                             "target": target, "time": round(time.time(), 3), "by": who(git)}
    entry.update(fields)
    summary = f"{action} {model} {version or ''} on {target}".replace("  ", " ")
    entry["record"] = reflog.append(git, ref_for(target), summary, entry)
    return entry


def read_records(git: GitRepo, target: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
    refs = [ref_for(target)] if target else reflog.refs(git, PREFIX)
    out: list[dict[str, Any]] = []
    for ref in refs:
        out += reflog.read(git, ref)
    if name is not None:
        out = [r for r in out if r.get("model") == name]
    out.sort(key=lambda r: float(r.get("time", 0)))
    return out


def serving_at(records: list[dict[str, Any]], model: str, target: str,
               when: float | None = None) -> dict[str, Any] | None:
    """The record that put the version serving ``model`` on ``target`` at ``when`` (now)."""
    best = None
    for r in records:
        if r.get("model") != model or r.get("target") != target:
            continue
        if r.get("action") not in SERVING_ACTIONS:
            continue
        if when is not None and float(r.get("time", 0)) > when:
            continue
        best = r
    return best
