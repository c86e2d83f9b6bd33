"""Commit-message trailers through ``git interpret-trailers`` (Git's own parser, so the
result is exactly what ``git log --format=%(trailers)`` reads back)."""

from __future__ import annotations

import subprocess

from gitml.errors import GitMLError


def add_trailers(message: str, trailers: list[tuple[str, str]]) -> str:
    """``message`` with ``trailers`` appended at its end (a trailer with the same key and
    value is not repeated)."""
    args = ["git", "interpret-trailers", "--no-divider", "--where", "end", "--if-exists",
            "addIfDifferent", "--if-missing", "add"]
    for k, v in trailers:
        args += ["--trailer", f"{k}: {v}"]
    proc = subprocess.run(args, input=message, capture_output=True, text=True)
    if proc.returncode != 0:
        raise GitMLError(f"git interpret-trailers failed: {proc.stderr.strip()}")
    return proc.stdout
