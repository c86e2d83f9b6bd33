"""Append-only JSON logs kept as commit chains on hidden refs (``refs/gitml/...``).

Each entry is a commit of the empty tree whose message is a one-line summary followed by
the entry as JSON; its parent is the previous entry. Appends are compare-and-swap
(``git update-ref REF NEW OLD``), so two writers never lose an entry: the loser retries on
the new tip. The refs travel with ``git push/fetch origin 'refs/gitml/*:refs/gitml/*'``.
"""

from __future__ import annotations

import json
import subprocess
from typing import TYPE_CHECKING, Any

from gitml.errors import GitMLError

if TYPE_CHECKING:
    from gitml.git.repo import GitRepo

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
_MARK = "\n\ngitml-record: "


def _git(git: GitRepo, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=git.workdir, capture_output=True, text=True,
                          input=input)


def tip(git: GitRepo, ref: str) -> str | None:
    proc = _git(git, "rev-parse", "--verify", "--quiet", ref + "^{commit}")
    return proc.stdout.strip() or None


def append(git: GitRepo, ref: str, summary: str, entry: dict[str, Any]) -> str:
    """Add ``entry`` to the log at ``ref``; returns the new entry's commit id."""
    if not ref.startswith("refs/gitml/"):
        raise GitMLError(f"{ref}: record logs live under refs/gitml/")
    message = summary.splitlines()[0] + _MARK + json.dumps(entry, sort_keys=True) + "\n"
    # the empty tree must exist as an object for commit-tree
    _git(git, "hash-object", "-t", "tree", "-w", "--stdin", input="")
    for _ in range(20):
        old = tip(git, ref)
        args = ["commit-tree", EMPTY_TREE, "-F", "-"]
        if old:
            args += ["-p", old]
        proc = _git(git, *args, input=message)
        if proc.returncode != 0:
            raise GitMLError(f"cannot write a record on {ref}: {proc.stderr.strip()}")
        new = proc.stdout.strip()
        upd = _git(git, "update-ref", "-m", "gitml record", ref, new, old or "0" * 40)
        if upd.returncode == 0:
            return new
    raise GitMLError(f"cannot update {ref}: too many concurrent writers")


def read(git: GitRepo, ref: str) -> list[dict[str, Any]]:
    """Every entry on ``ref``, oldest first (each with its ``record`` commit id)."""
    if tip(git, ref) is None:
        return []
    proc = _git(git, "log", "--first-parent", "--format=%H%x00%B%x01", ref)
    if proc.returncode != 0:
        raise GitMLError(f"cannot read {ref}: {proc.stderr.strip()}")
    out: list[dict[str, Any]] = []
    for chunk in proc.stdout.split("\x01"):
        chunk = chunk.lstrip("\n")
        if not chunk:
            continue
        commit, _, body = chunk.partition("\0")
        _, mark, payload = body.partition(_MARK.strip("\n"))
        if not mark:
            continue
        try:
            entry = json.loads(payload)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entry["record"] = commit
            out.append(entry)
    out.reverse()
    return out


def refs(git: GitRepo, prefix: str) -> list[str]:
    proc = _git(git, "for-each-ref", "--format=%(refname)", prefix)
    return [r for r in proc.stdout.splitlines() if r]
