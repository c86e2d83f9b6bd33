"""Where profiles live and how they are read: ``.gitml/profiles/<model>/<version>.json``.

A profile names the environment (id, CPU model, core count) it was measured in, so numbers
from different machines are never compared silently: readers say when they differ.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from gitml.errors import ConfigError, GitMLError

if TYPE_CHECKING:
    from gitml.registry.refs import ModelRef
    from gitml.repo import MLRepo

FORMAT = 1
PROFILES_DIR = ".gitml/profiles"
REQUIRED = ("format", "model", "commit", "environment", "cpu", "load", "latency", "server")


def profile_path(model: str, label: str, onnx: bool = False) -> str:
    return f"{PROFILES_DIR}/{model}/{label}{'.onnx' if onnx else ''}.json"


def parse(data: bytes | str, source: str) -> dict[str, Any]:
    try:
        d = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{source}: not valid JSON: {e}", "re-run `git ml profile`") from e
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: a profile is a JSON object", "re-run `git ml profile`")
    missing = [k for k in REQUIRED if k not in d]
    if missing:
        raise ConfigError(f"{source}: field {missing[0]!r} is missing", "re-run `git ml profile`")
    if d["format"] != FORMAT:
        raise ConfigError(f"{source}: unsupported profile format {d['format']!r}", "upgrade gitml")
    if not isinstance(d["server"], list):
        raise ConfigError(f"{source}: field 'server' must be a list", "re-run `git ml profile`")
    return d


def load(repo: MLRepo, ref: ModelRef, rev: str | None = None, *, onnx: bool = False) -> dict[str, Any]:
    """The profile of ``ref``'s version (its compiled model with ``onnx``): from the work
    tree, or from commit ``rev``."""
    rel = profile_path(ref.name, ref.label, onnx)
    if rev is None:
        p = repo.workdir / rel
        data: bytes | None = p.read_bytes() if p.is_file() else repo.git.read_blob("HEAD", rel)
    else:
        data = repo.git.read_blob(rev, rel)
    if data is None:
        raise GitMLError(f"{ref.text} has no profile ({rel})",
                         f"measure it first: git ml profile {ref.text}{' --onnx' if onnx else ''}")
    prof = parse(data, rel)
    if prof.get("commit") != ref.commit:
        raise GitMLError(f"{rel} was measured on commit {str(prof.get('commit'))[:12]}, but "
                         f"{ref.text} is {ref.commit[:12]}",
                         f"re-measure: git ml profile {ref.text}")
    return prof


def profiles_at(repo: MLRepo, rev: str) -> dict[str, dict[str, Any]]:
    """Every profile in the tree of ``rev`` (path → parsed profile); unreadable ones are
    reported as errors by the caller, not dropped: here they raise."""
    out = {}
    for path, data in repo.git.tree_blobs(rev, ".json").items():
        if path.startswith(PROFILES_DIR + "/"):
            out[path] = parse(data, f"{path} ({rev[:12]})")
    return out
