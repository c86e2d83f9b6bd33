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


def _source_id(repo: MLRepo, target: Target) -> str:
    """The id of the model file ``target`` declares at its commit (no bytes read)."""
    from gitml.models.load import locate
    from gitml.models.spec import spec_at

    spec = spec_at(repo, target.name, target.commit)
    return locate(repo, spec.path, target.commit, key=spec.key("path")).oid


def _cached(repo: MLRepo, target: Target, folder: Path, onnx: bool) -> Bundle | None:
    """The bundle already built in ``folder`` when it still is what ``target`` serves."""
    from gitml.models.bundle import Bundle

    if not folder.is_dir():
        return None
    try:
        bundle = Bundle.open(folder)
    except (GitMLError, OSError, ValueError):  # damaged or stale: built again
        return None
    if bundle.commit != target.commit or (bundle.flavor == "onnx") != onnx:
        return None
    if onnx:  # compiled again since (a new compile record): swap the new one in
        from gitml.deploy.package import compiled_artifact

        if compiled_artifact(repo, target.name, _source_id(repo, target)).oid != bundle.model_id:
            return None
    return bundle


def bundle_for(repo: MLRepo, target: Target, *, allow_pickle: bool = False,
               onnx: bool = False) -> Bundle:
    """The target's bundle, built once per version, commit and flavor under
    :func:`serve_dir` (`git ml serve` and `git ml profile` share it). With ``onnx`` it holds
    the model `git ml compile --onnx` made from the target's model, checked against the
    scikit-learn model's answers on the smoke rows."""
    from gitml.models.bundle import build_bundle

    folder = (serve_dir(repo, target.name) / "bundles"
              / f"{target.version}-{target.commit[:12]}{'-onnx' if onnx else ''}")
    bundle = _cached(repo, target, folder, onnx)
    if bundle is None:
        bundle = build_bundle(repo, target.name, target.commit, folder,
                              version=target.version, allow_pickle=allow_pickle)
        if onnx:
            from gitml.deploy.package import swap_to_onnx

            bundle = swap_to_onnx(repo, bundle)
    return bundle


def prepare(repo: MLRepo, target: Target, *, allow_pickle: bool = False,
            onnx: bool = False) -> tuple[Path, Bundle]:
    """Build (or reuse) the target's bundle and write the deploy state that serves it."""
    from gitml.serve.control import write_state

    bundle = bundle_for(repo, target, allow_pickle=allow_pickle, onnx=onnx)
    state = serve_dir(repo, target.name) / "state.json"
    write_state(state, {"model": target.name, "active": target.version,
                        "versions": {target.version: str(bundle.path)}})
    return state, bundle
