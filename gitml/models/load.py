"""Reading a declared model and its evaluation data at a revision, safely.

Where: ``rev`` (a commit, tag, ...) when given; otherwise the index (``staged=True``,
what a commit is about to record) or the work tree (``staged=False``).

A path is either a gitml artifact (a ``<path>.gitml`` pointer is tracked) or a plain
file (tracked by Git, or only in the work tree). The id of an artifact is its pointer's
oid; the id of a plain file is the xxh3-128 of its bytes. Bytes are always checked
against the id before anything is parsed, so a model never loads unless it is exactly
the recorded one.

Models load only from skops files (``skops.io.load``) whose every type is trusted:
scikit-learn, NumPy and SciPy types, plus what the model's ``trusted = [...]`` lists.
Pickle/joblib files are refused: unpickling runs arbitrary code.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitml.errors import ConfigError, CorruptObjectError, GitMLError

if TYPE_CHECKING:
    import pandas as pd

    from gitml.models.spec import ModelSpec
    from gitml.repo import MLRepo

POINTER_SUFFIX = ".gitml"
TRUSTED_MODULE_ROOTS = ("sklearn", "numpy", "scipy")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav", ".dill", ".cloudpickle")


@dataclass(frozen=True)
class Source:
    """A path at a place (rev / index / work tree), with its content id."""

    path: str
    oid: str
    kind: str  # "artifact" | "git" | "file"
    where: str  # "index", "worktree" or a commit id
    rev: str | None = None
    staged: bool = True


def where_label(rev: str | None, staged: bool) -> str:
    return rev if rev else ("index" if staged else "worktree")


def _pointer_bytes(repo: MLRepo, path: str, rev: str | None, staged: bool) -> bytes | None:
    ptr = path + POINTER_SUFFIX
    if rev is not None or staged:
        return repo.git.read_blob(rev, ptr)
    p = repo.workdir / ptr
    return p.read_bytes() if p.is_file() else None


def locate(repo: MLRepo, path: str, rev: str | None = None, staged: bool = True,
           key: str | None = None) -> Source:
    """Find ``path`` and its id without reading the artifact's bytes."""
    from gitml.store import pointer as pointer_mod
    from gitml.store.ids import hash_bytes, hash_file

    where = where_label(rev, staged)
    commit = repo.git.resolve(rev) if rev is not None else None
    raw = _pointer_bytes(repo, path, commit, staged)
    if raw is not None:
        p = pointer_mod.parse(raw, source=f"{path}{POINTER_SUFFIX} ({where})")
        if p.kind != "file":
            raise ConfigError(f"{key or path}: {path} is a directory artifact",
                              "point at one model/data file inside it")
        if commit is None and not staged:
            # the work tree: its file must be the one the pointer records
            from gitml.artifacts.worktree import current_oid

            cur = current_oid(repo, path)
            if cur is not None and cur != p.oid:
                raise GitMLError(f"{path} was modified since `git ml add`; gitml only loads "
                                 "content whose id is recorded",
                                 f"run `git ml add {path}` (or use --rev/--staged)")
        return Source(path, p.oid, "artifact", where, commit, staged)
    if commit is not None or staged:
        blob = repo.git.read_blob(commit, path)
        if blob is not None:
            return Source(path, hash_bytes(blob), "git", where, commit, staged)
    if commit is None:
        wt = repo.workdir / path
        if wt.is_file():
            # not tracked (or not staged): the work tree copy is all there is
            return Source(path, hash_file(wt)[0], "file", "worktree", None, False)
    raise ConfigError(f"{key or path}: {path} not found in {where}",
                      f"`git ml add {path}` and stage it, or fix the path in .gitml/config.toml")


def read_source(repo: MLRepo, src: Source) -> bytes:
    """The bytes of ``src``, verified against its id."""
    from gitml.store.ids import hash_bytes

    if src.kind == "artifact":
        data: bytes | None = None
        try:
            with repo.store.open(src.oid) as f:
                data = f.read()
        except GitMLError:
            data = None
        if data is None:
            try:  # not in the local store: let the API fetch it from the default remote
                from gitml.artifacts import api

                data = api.read_bytes(src.path, src.rev, repo=repo)
            except ImportError as e:  # pragma: no cover - api not installed
                raise GitMLError(f"{src.path}: object {src.oid} is not in the local store",
                                 "run `git ml pull`") from e
    elif src.kind == "git":
        data = repo.git.read_blob(src.rev, src.path)
        if data is None:
            raise GitMLError(f"{src.path}: vanished from {src.where}")
    else:
        data = (repo.workdir / src.path).read_bytes()
    got = hash_bytes(data)
    if got != src.oid:
        raise CorruptObjectError(f"{src.path}: bytes hash to {got}, the recorded id is {src.oid}",
                                 "run `git ml fsck`, then `git ml pull` to fetch a good copy")
    return data


# models --------------------------------------------------------------------------------

def _trusted(type_name: str, extra: list[str]) -> bool:
    return type_name.split(".", 1)[0] in TRUSTED_MODULE_ROOTS or type_name in extra


def load_model_bytes(data: bytes, path: str, key: str, extra_trusted: list[str] | None = None) -> Any:
    """Load a skops model from bytes, refusing pickle and any untrusted type."""
    suffix = Path(path).suffix.lower()
    if suffix in PICKLE_SUFFIXES or data[:1] == b"\x80":
        raise ConfigError(f"{key}: {path} is a pickle/joblib file; gitml never unpickles "
                          "(it can run arbitrary code)",
                          "save the model with skops: skops.io.dump(model, \"model.skops\")")
    if suffix != ".skops" and data[:2] != b"PK":
        raise ConfigError(f"{key}: {path}: unsupported model format {suffix or '(none)'}",
                          "save the model with skops.io.dump as a .skops file")
    import skops.io as sio

    extra = list(extra_trusted or [])
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as e:
        raise ConfigError(f"{key}: {path} is not a readable skops file: {type(e).__name__}: {e}",
                          "re-save the model with skops.io.dump") from e
    refused = [t for t in untrusted if not _trusted(t, extra)]
    if refused:
        raise ConfigError(
            f"{key}: {path} contains untrusted type(s): {', '.join(refused[:5])}"
            + (" ..." if len(refused) > 5 else ""),
            "if you trust them, list them in trusted = [...] under the model in .gitml/config.toml")
    try:
        return sio.load(io.BytesIO(data), trusted=list(untrusted))
    except Exception as e:
        raise ConfigError(f"{key}: {path} cannot be loaded: {type(e).__name__}: {str(e)[:200]}",
                          "re-save it with skops.io.dump using the installed scikit-learn") from e


def load_model(repo: MLRepo, spec: ModelSpec, rev: str | None = None, staged: bool = True) -> tuple[Any, Source]:
    src = locate(repo, spec.path, rev, staged, key=spec.key("path"))
    data = read_source(repo, src)
    model = load_model_bytes(data, spec.path, spec.key("path"), spec.raw.get("trusted"))
    if not hasattr(model, "predict"):
        raise ConfigError(f"{spec.key('path')}: {spec.path} holds a {type(model).__name__}, not a model",
                          "save a fitted estimator or pipeline")
    return model, src


# data ----------------------------------------------------------------------------------

def read_frame_bytes(data: bytes, path: str, key: str) -> pd.DataFrame:
    import pandas as pd

    suffix = Path(path).suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(io.BytesIO(data))
        sep = "\t" if suffix == ".tsv" else ","
        return pd.read_csv(io.BytesIO(data), sep=sep)
    except Exception as e:
        raise ConfigError(f"{key}: {path} cannot be read as {suffix.lstrip('.')}: "
                          f"{type(e).__name__}: {str(e)[:200]}", "check the file and its extension") from e


def load_data(repo: MLRepo, spec: ModelSpec, rev: str | None = None, staged: bool = True) -> tuple[pd.DataFrame, Source]:
    src = locate(repo, spec.data, rev, staged, key=spec.key("data"))
    df = read_frame_bytes(read_source(repo, src), spec.data, spec.key("data"))
    return df, src
