"""The one table reader and the one "path at a revision" resolver: every format, read
from a gitml artifact or a plain Git file, at a commit, in the index and in the work tree."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gitml.errors import ConfigError, GitMLError, UsageError
from tests.conftest import git, gitml

FRAME = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})


def _write(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix
    if suffix == ".parquet":
        df.to_parquet(path, index=False)
    elif suffix == ".csv":
        df.to_csv(path, index=False)
    elif suffix == ".tsv":
        df.to_csv(path, index=False, sep="\t")
    elif suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_feather(path)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".tsv", ".jsonl", ".feather"])
def test_every_format_at_every_place(repo: Path, suffix: str) -> None:
    from gitml.artifacts.api import INDEX, find
    from gitml.models.tables import read_table
    from gitml.repo import MLRepo

    art, plain = f"data/t{suffix}", f"plain/t{suffix}"
    _write(repo / art, FRAME)
    _write(repo / plain, FRAME)
    gitml(repo, "add", art)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tables")
    _write(repo / art, FRAME.head(2))  # the work tree moves on; HEAD and the index do not
    r = MLRepo.discover(repo)
    for path in (art, plain):
        for rev in ("HEAD", INDEX):
            assert read_table(r, path, rev).equals(FRAME), (path, rev)
    assert len(read_table(r, art, None)) == 2  # the work-tree file as it is
    located = find(art, "HEAD", r)
    assert located is not None and located.kind == "artifact"
    git_file = find(plain, INDEX, r)
    assert git_file is not None and git_file.kind == "git"
    assert find("nope.csv", "HEAD", r) is None


def test_errors_name_the_config_key(repo: Path) -> None:
    from gitml.models.tables import read_frame_bytes

    with pytest.raises(ConfigError, match=r"models\.m\.data: d\.parquet: cannot read as parquet"):
        read_frame_bytes(b"not parquet", "d.parquet", key="models.m.data")
    with pytest.raises(GitMLError, match=r"d\.jsonl: cannot read as jsonl"):
        read_frame_bytes(b"{not json", "d.jsonl")
    with pytest.raises(UsageError, match=r"unsupported table format '\.xlsx'"):
        read_frame_bytes(b"", "d.xlsx")
