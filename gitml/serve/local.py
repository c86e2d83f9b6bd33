"""What `git ml serve NAME[@vX.Y.Z|#stage]` serves: resolve, bundle, write a deploy state.

Resolution is the registry's (:func:`gitml.registry.refs.resolve`: ``NAME@vX.Y.Z``,
``NAME#stage`` by GTO's rules); a plain revision (``--rev``) serves the model as committed
there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gitml.errors import GitMLError
from gitml.layout import SERVE_DIR, TRAFFIC_DIR

if TYPE_CHECKING:
    from gitml.models.bundle import Bundle
    from gitml.repo import MLRepo



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


def resolve(repo: MLRepo, ref: str, rev: str | None = None) -> Target:
    """What ``git ml serve REF`` serves, through the one resolver of model references."""
    from gitml.registry.refs import resolve as resolve_ref

    found = resolve_ref(repo, ref, rev)
    return Target(name=found.name, commit=found.commit, version=found.label,
                  label=ref if rev is None else f"{found.name} at {rev}")


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
        except (GitMLError, OSError, ValueError):  # damaged or stale: built again below
            bundle = None
    if bundle is None or bundle.commit != target.commit:
        bundle = build_bundle(repo, target.name, target.commit, folder,
                              version=target.version, allow_pickle=allow_pickle)
    state = base / "state.json"
    write_state(state, {"model": target.name, "active": target.version,
                        "versions": {target.version: str(folder)}})
    return state, bundle
