"""The Git diff driver for pointers: ``git diff`` / ``git log -p`` show the pointer plus a
summary of the data it points at (schema, rows, column statistics for Parquet/CSV).

Git calls ``git-ml-hook textconv FILE`` with a temporary file holding the pointer (its
name ends with the artifact's name, so the format is known) or the work-tree pointer.
"""

from __future__ import annotations

import sys
from pathlib import Path

TEXTCONV_MAX_CSV = 256 * 1024 * 1024  # `git log -p` must stay quick: bigger CSVs get their schema only


def _content_path(repo: object, oid: str) -> Path | None:
    from gitml.artifacts.api import local_path_of
    from gitml.repo import MLRepo

    assert isinstance(repo, MLRepo)
    if not repo.store.has(oid):
        return None
    return local_path_of(repo, oid)


def main(path: str) -> int:
    from gitml.errors import GitMLError
    from gitml.store import pointer as ptr

    out = sys.stdout
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        print(f"gitml textconv: cannot read {path}: {e.strerror}", file=sys.stderr)
        return 1
    try:
        p = ptr.parse(data, path)
    except GitMLError:
        out.write(data.decode("utf-8", "replace"))  # not a pointer: show it as it is
        return 0
    out.write(data.decode("utf-8", "replace"))
    if p.kind == "dir":
        out.write(f"# folder of {p.files} files\n")
        return 0
    from gitml.runs import tabular

    name = Path(path).name
    if tabular.kind_of(name) is None and not name.endswith(".gitml"):
        return 0
    try:
        from gitml.repo import MLRepo

        repo = MLRepo.discover()
        content = _content_path(repo, p.oid)
    except GitMLError as e:
        out.write(f"# (no summary: {e.message})\n")
        return 0
    if content is None:
        if tabular.kind_of(name) is not None:
            out.write("# (content not in the local store; `git ml pull` to see its summary)\n")
        return 0
    try:
        summary = tabular.summarize(content, name, max_csv_bytes=TEXTCONV_MAX_CSV)
    except Exception as e:  # a damaged or mislabelled file must not break `git diff`
        out.write(f"# (cannot summarise: {type(e).__name__}: {e})\n")
        return 0
    if summary is not None:
        for line in tabular.format_summary(summary):
            out.write(f"# {line}\n")
    return 0
