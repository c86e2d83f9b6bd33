"""Reading a declared model and its evaluation data at a revision, safely.

Where: ``rev`` (a commit, tag, ...) when given; otherwise the index (``staged=True``,
what a commit is about to record) or the work tree (``staged=False``).

A path is either a gitml artifact (a ``<path>.gitml`` pointer is tracked) or a plain
file (tracked by Git, or only in the work tree). The id of an artifact is its pointer's
oid; the id of a plain file is the xxh3-128 of its bytes. Bytes are always checked
against the id before anything is parsed, so a model never loads unless it is exactly
the recorded one.

Models load only from skops files (``skops.io.load``) whose every type is trusted:
scikit-learn, NumPy and SciPy types, the few built-in types skops itself trusts, plus what
the model's ``trusted = [...]`` lists. Pickle/joblib files are refused: unpickling runs
arbitrary code.

Audited types, not skops' defaults: skops computes its default trust lists when
``skops.io`` is imported, by importing every scikit-learn estimator module and scanning
NumPy and SciPy for ufuncs (~0.45 CPU-s, a fifth of a server's start-up). gitml never
relies on those lists: :func:`skops_io` imports skops with them empty, so
``get_untrusted_types`` reports *every* type a file names, gitml checks each against the
policy above, and ``load`` gets exactly that audited list. Loading then imports only the
modules the model uses, and skops trusts nothing gitml did not audit.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitml.artifacts.api import INDEX, Located
from gitml.errors import ConfigError, GitMLError

if TYPE_CHECKING:
    import pandas as pd

    from gitml.models.spec import ModelSpec
    from gitml.repo import MLRepo

TRUSTED_MODULE_ROOTS = ("sklearn", "numpy", "scipy")
# The only names outside those roots in skops' default trust lists (its primitive and
# container types): trusted as before, now by gitml's policy rather than skops' lists.
SKOPS_BUILTINS = frozenset({"builtins.bool", "builtins.float", "builtins.int", "builtins.str",
                            "builtins.list", "builtins.set", "builtins.map", "builtins.tuple"})
SKOPS_DEFAULTS_MODULE = "skops.io._trusted_types"
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav", ".dill", ".cloudpickle")


def place(rev: str | None, staged: bool) -> str | None:
    """The artifact API's ``rev`` for (rev, staged): a revision, the index, or the work tree."""
    return rev if rev is not None else (INDEX if staged else None)


def where_label(rev: str | None, staged: bool) -> str:
    return rev if rev else ("index" if staged else "worktree")


def locate(repo: MLRepo, path: str, rev: str | None = None, staged: bool = True,
           key: str | None = None) -> Located:
    """Find ``path`` and its id without reading an artifact's bytes; a missing path is a
    :class:`ConfigError` naming the config ``key`` it came from."""
    from gitml.artifacts import api

    found = api.find(path, place(rev, staged), repo)
    if found is None:
        where = where_label(rev, staged)
        raise ConfigError(f"{key or path}: {path} not found in {where}",
                          f"`git ml add {path}` and stage it, or fix the path in .gitml/config.toml")
    if found.folder:
        raise ConfigError(f"{key or path}: {path} is a directory artifact",
                          "point at one model/data file inside it")
    if found.kind == "artifact" and found.rev is None:
        # the work tree: its file must be the one the pointer records
        from gitml.artifacts.worktree import current_oid

        cur = current_oid(repo, path)
        if cur is not None and cur != found.oid:
            raise GitMLError(f"{path} was modified since `git ml add`; gitml only loads "
                             "content whose id is recorded",
                             f"run `git ml add {path}` (or use --rev/--staged)")
    return found


def read_source(repo: MLRepo, src: Located) -> bytes:
    """The bytes of ``src``, verified against its id."""
    from gitml.artifacts import api

    return api.read_located(src, repo)


# models --------------------------------------------------------------------------------

class _NoDefaultTrust(types.ModuleType):
    """Stands in for ``skops.io._trusted_types`` while skops is imported: every default
    trust list is empty (anything else it would export is missing, which makes the import
    fail and :func:`skops_io` import skops as shipped)."""

    def __getattr__(self, name: str) -> list[Any]:
        if name.endswith(("_NAMES", "_TYPES")):
            return []
        raise AttributeError(name)


_IMPORT_LOCK = threading.Lock()


def skops_io() -> types.ModuleType:
    """``skops.io``, imported without its default trust lists when this process has not
    imported it yet (see the module docstring). Emptier defaults only make skops trust
    less; gitml passes the audited list to every load either way."""
    with _IMPORT_LOCK:
        mod = sys.modules.get("skops.io")
        if mod is not None:
            return mod
        sys.modules.setdefault(SKOPS_DEFAULTS_MODULE, _NoDefaultTrust(SKOPS_DEFAULTS_MODULE))
        try:
            return importlib.import_module("skops.io")
        except Exception:  # a skops release that needs more from that module: as shipped
            for name in [n for n in sys.modules if n == "skops.io" or n.startswith("skops.io.")]:
                del sys.modules[name]
            return importlib.import_module("skops.io")


def _trusted(type_name: str, extra: list[str]) -> bool:
    return (type_name.split(".", 1)[0] in TRUSTED_MODULE_ROOTS or type_name in SKOPS_BUILTINS
            or type_name in extra)


def _check_format(data: bytes, path: str, key: str) -> None:
    suffix = Path(path).suffix.lower()
    if not data:
        raise ConfigError(f"{key}: {path} is empty (0 bytes)",
                          "save the model again with skops.io.dump, then `git ml add` it")
    if suffix in PICKLE_SUFFIXES or data[:1] == b"\x80":
        raise ConfigError(f"{key}: {path} is a pickle/joblib file; gitml never unpickles "
                          "(it can run arbitrary code)",
                          "save the model with skops: skops.io.dump(model, \"model.skops\")")
    if suffix != ".skops" and data[:2] != b"PK":
        raise ConfigError(f"{key}: {path}: unsupported model format {suffix or '(none)'}",
                          "save the model with skops.io.dump as a .skops file")


def audit_types(data: bytes, path: str, key: str, extra_trusted: list[str] | None = None) -> list[str]:
    """The types the skops file ``data`` names (every one, when :func:`skops_io` imported
    skops; else those outside skops' defaults), sorted; a :class:`ConfigError` naming them
    when any is not trusted."""
    _check_format(data, path, key)
    sio = skops_io()
    extra = list(extra_trusted or [])
    try:
        found = sorted(sio.get_untrusted_types(data=data))
    # skops parses a zip + JSON schema of arbitrary content: bad bytes raise any type
    except Exception as e:
        raise ConfigError(f"{key}: {path} is not a readable skops file: {type(e).__name__}: {e}",
                          "re-save the model with skops.io.dump") from e
    refused = [t for t in found if not _trusted(t, extra)]
    if refused:
        raise ConfigError(
            f"{key}: {path} contains untrusted type(s): {', '.join(refused[:5])}"
            + (" ..." if len(refused) > 5 else ""),
            "if you trust them, list them in trusted = [...] under the model in .gitml/config.toml")
    return found


def load_model_bytes(data: bytes, path: str, key: str, extra_trusted: list[str] | None = None) -> Any:
    """Load a skops model from bytes, refusing pickle and any untrusted type: skops gets the
    audited type list and trusts nothing else."""
    audited = audit_types(data, path, key, extra_trusted)
    sio = skops_io()
    try:
        return sio.loads(data, trusted=audited)
    # constructing the trusted objects runs scikit-learn code of another version: anything
    except Exception as e:
        raise ConfigError(f"{key}: {path} cannot be loaded: {type(e).__name__}: {str(e)[:200]}",
                          "re-save it with skops.io.dump using the installed scikit-learn") from e


def load_model(repo: MLRepo, spec: ModelSpec, rev: str | None = None,
               staged: bool = True) -> tuple[Any, Located]:
    src = locate(repo, spec.path, rev, staged, key=spec.key("path"))
    data = read_source(repo, src)
    model = load_model_bytes(data, spec.path, spec.key("path"), spec.raw.get("trusted"))
    if not hasattr(model, "predict"):
        raise ConfigError(f"{spec.key('path')}: {spec.path} holds a {type(model).__name__}, not a model",
                          "save a fitted estimator or pipeline")
    return model, src


# data ----------------------------------------------------------------------------------

def load_data(repo: MLRepo, spec: ModelSpec, rev: str | None = None,
              staged: bool = True) -> tuple[pd.DataFrame, Located]:
    from gitml.models.tables import read_frame_bytes

    src = locate(repo, spec.data, rev, staged, key=spec.key("data"))
    df = read_frame_bytes(read_source(repo, src), spec.data, key=spec.key("data"))
    return df, src
