"""The one table reader: Parquet, CSV/TSV, JSON lines and Feather, from bytes, a local
file, or a repository path at a revision. Evaluation data, drift, quality and the
server's smoke rows all read tables through here, so every command accepts the same
formats. pandas is imported only when a table is read.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gitml.errors import ConfigError, GitMLError, UsageError

if TYPE_CHECKING:
    import pandas as pd

    from gitml.repo import MLRepo

PARQUET = (".parquet", ".pq")
CSV = (".csv", ".tsv", ".txt")
JSONL = (".jsonl", ".ndjson")
FEATHER = (".feather", ".arrow")
TABLE_SUFFIXES = PARQUET + CSV + JSONL + FEATHER


def table_format(name: str, key: str | None = None) -> str:
    """The suffix of a table path, refusing what no reader here understands."""
    suffix = Path(name).suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        where = f"{key}: " if key else ""
        raise (ConfigError if key else UsageError)(
            f"{where}{name}: unsupported table format '{suffix or 'no extension'}'",
            "use .parquet, .csv, .tsv, .jsonl or .feather")
    return suffix


def read_frame_bytes(data: bytes, name: str, columns: Sequence[str] | None = None,
                     key: str | None = None) -> pd.DataFrame:
    """A DataFrame from the bytes of a table file; ``name`` (its path) gives the format
    and ``key`` (a config key) is named in errors when the path came from the config."""
    return _read(io.BytesIO(data), name, columns, key)


def read_frame(path: Path, columns: Sequence[str] | None = None, name: str | None = None,
               key: str | None = None) -> pd.DataFrame:
    """A DataFrame from a local file; ``name`` (the logical path) decides the format when
    the file is a store object without an extension."""
    label = name or str(path)
    if not path.exists():
        raise UsageError(f"{label}: no such file", "check the path")
    if path.is_dir():
        raise UsageError(f"{label} is a folder", "point at one table file")
    return _read(path, label, columns, key)


def read_table(repo: MLRepo, path: str, rev: str | None, columns: Sequence[str] | None = None,
               key: str | None = None) -> pd.DataFrame:
    """The table at repository path ``path`` at ``rev`` (a revision, ``":"`` for the
    index, None for the work tree: the file as it is there, added or not), through the
    one artifact resolver."""
    from gitml.artifacts import api

    if rev is None and (repo.workdir / path).is_file():
        return read_frame(repo.workdir / path, columns, name=path, key=key)
    loc = api.locate(path, rev, repo)
    local = api.local_file(loc, repo)
    if local is not None:
        return read_frame(local, columns, name=path, key=key)
    return read_frame_bytes(api.read_located(loc, repo), path, columns, key)


def _read(src: Path | io.BytesIO, name: str, columns: Sequence[str] | None,
          key: str | None) -> pd.DataFrame:
    import pandas as pd

    suffix = table_format(name, key)
    cols = list(columns) if columns else None
    try:
        if suffix in PARQUET:
            return pd.read_parquet(src, columns=cols)
        if suffix in CSV:
            return pd.read_csv(src, sep="\t" if suffix == ".tsv" else ",", usecols=cols)
        if suffix in JSONL:
            df = pd.read_json(src, lines=True)
            return df[cols] if cols else df
        return pd.read_feather(src, columns=cols)
    # pandas and its engines (pyarrow, the C parser) raise many types for bad bytes
    except Exception as e:
        first = (str(e).splitlines() or [""])[0][:200]
        where = f"{key}: " if key else ""
        raise (ConfigError if key else GitMLError)(
            f"{where}{name}: cannot read as {suffix.lstrip('.')}: {type(e).__name__}: {first}",
            "check the file and its extension") from e
