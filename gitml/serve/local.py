"""What `git ml serve NAME[@vX.Y.Z|#stage]` serves: resolve, bundle, write a deploy state.

Resolution reuses the gates' resolver (:func:`gitml.models.spec.resolve_baseline`, the GTO
tag grammar: ``NAME@vX.Y.Z``, ``NAME#stage`` / newest ``NAME#stage#N``); a plain revision
(``--rev``) serves the model as committed there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gitml.errors import ConfigError, UsageError
from gitml.layout import SERVE_DIR, TRAFFIC_DIR

if TYPE_CHECKING:
    from gitml.models.bundle import Bundle
    from gitml.repo import MLRepo

REF_RE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)(?:@v(?P<version>\d+\.\d+\.\d+)|#(?P<stage>[A-Za-z0-9_.-]+))?$")


@dataclass(frozen=True)
class Target:
    name: str
    commit: str
    version: str  # X.Y.Z, or the short commit when no version tag names it
    label: str    # what the user asked for


def default_traffic_dir(repo: MLRepo, model: str) -> Path:
    """Where a server of ``model`` logs traffic and where the monitor looks by default."""
    return repo.ml_dir / TRAFFIC_DIR / model


def serve_dir(repo: MLRepo, model: str) -> Path:
    return repo.ml_dir / SERVE_DIR / model


def _version_tag_of(repo: MLRepo, name: str, commit: str) -> str | None:
    for tag in repo.git.tags(f"{name}@v*"):
        m = REF_RE.match(tag)
        if m is None or m.group("version") is None or tag.endswith("!"):
            continue
        try:
            if repo.git.resolve(tag) == commit:
                return m.group("version")
        except Exception:
            continue
    return None


def resolve(repo: MLRepo, ref: str, rev: str | None = None) -> Target:
    from gitml.models.spec import one_spec, resolve_baseline

    m = REF_RE.match(ref)
    if m is None:
        raise UsageError(f"cannot parse {ref!r}", "write NAME, NAME@vX.Y.Z or NAME#stage")
    name = m.group("name")
    spec = one_spec(repo, name)
    if m.group("version") or m.group("stage"):
        if rev is not None:
            raise UsageError("give either NAME@vX.Y.Z / NAME#stage or --rev, not both")
        # the full tag name: resolve_baseline resolves it as given (GTO grammar)
        want = f"{name}@v{m.group('version')}" if m.group("version") else f"{name}#{m.group('stage')}"
        commit = resolve_baseline(repo, spec, want)
        if commit is None:
            raise ConfigError(f"{ref}: no version is assigned to stage {m.group('stage')!r}",
                              f"promote one first (`git ml promote {name} VERSION {m.group('stage')}`)")
    else:
        commit = repo.git.resolve(rev or "HEAD")
    version = m.group("version") or _version_tag_of(repo, name, commit) or commit[:12]
    return Target(name=name, commit=commit, version=version, label=ref if rev is None else f"{name} at {rev}")


def prepare(repo: MLRepo, target: Target, *, allow_pickle: bool = False) -> tuple[Path, Bundle]:
    """Build (or reuse) the target's bundle and write the deploy state that serves it."""
    from gitml.models.bundle import Bundle, build_bundle
    from gitml.serve.control import write_state

    base = serve_dir(repo, target.name)
    folder = base / "bundles" / f"{target.version}-{target.commit[:12]}"
    bundle: Bundle | None = None
    if folder.is_dir():
        try:
            bundle = Bundle.open(folder)
        except Exception:
            bundle = None
    if bundle is None or bundle.commit != target.commit:
        bundle = build_bundle(repo, target.name, target.commit, folder,
                              version=target.version, allow_pickle=allow_pickle)
    state = base / "state.json"
    write_state(state, {"model": target.name, "active": target.version,
                        "versions": {target.version: str(folder)}})
    return state, bundle
