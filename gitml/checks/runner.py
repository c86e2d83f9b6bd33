"""Run the gates of every declared model: what `git ml check` and the commit hook do.

For each model: locate the model and its evaluation data at the requested place (a
revision, the index, or the work tree) and take their ids; with the config hash, the
baseline's model id and what the data gates compare with, that is the cache key. A hit
costs a file read: nothing is loaded and nothing heavy is imported. On a miss: load
(safely, verified), predict, build one :class:`~gitml.checks.gate.GateContext` and run
the gates of :data:`gitml.checks.registry.GATES` that apply. A gate that crashes fails
and blocks, with the error in its message (fail closed).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gitml.checks import cache
from gitml.checks.gate import Baseline, GateContext
from gitml.checks.registry import GROUPS, selected, settings, validate_settings
from gitml.checks.results import GateResult, ModelResult, config_hash
from gitml.errors import GitMLError
from gitml.models.load import load_data, load_model, locate, where_label
from gitml.models.spec import ModelSpec, model_specs, resolve_baseline

if TYPE_CHECKING:
    import pandas as pd

    from gitml.artifacts.api import Located
    from gitml.checks.evaluate import Predictions
    from gitml.repo import MLRepo

ALL_GATES = GROUPS


@dataclass
class Loaded:
    spec: ModelSpec
    model: Any
    model_src: Located
    df: pd.DataFrame
    data_src: Located
    preds: Predictions


def load(repo: MLRepo, spec: ModelSpec, rev: str | None = None, staged: bool = True) -> Loaded:
    """Model + evaluation data at a place, validated, with predictions."""
    from gitml.checks.evaluate import predict
    from gitml.models.spec import validate_columns

    df, data_src = load_data(repo, spec, rev, staged)
    validate_columns(spec, df)
    df = df[df[spec.target].notna()].reset_index(drop=True)
    model, model_src = load_model(repo, spec, rev, staged)
    return Loaded(spec, model, model_src, df, data_src, predict(model, spec, df))


def find_baseline(repo: MLRepo, spec: ModelSpec, against: str | None = None) -> Baseline:
    """Where the baseline model is (without loading it). A name that is neither a
    stage, a version nor a revision raises; a stage never assigned yet is no baseline."""
    label = against or spec.baseline
    if not label:
        return Baseline(None, None)
    commit = resolve_baseline(repo, spec, label)
    if commit is None:
        tag = label if "#" in label else f"{spec.name}#{label}"
        return Baseline(label, None, note=f"no {tag} tag yet")
    from gitml.artifacts import api

    src = api.find(spec.path, commit, repo)
    if src is None:
        return Baseline(label, None, note=f"{spec.path} does not exist at {label}")
    return Baseline(label, commit, src)


def load_baseline(repo: MLRepo, spec: ModelSpec, base: Baseline, current: Loaded) -> Baseline:
    """Load the baseline model and run it on the *current* evaluation rows (paired)."""
    from gitml.checks.evaluate import predict

    if base.commit is None or base.model_src is None:
        return base
    model, _ = load_model(repo, spec, base.commit)
    base.model = model
    base.preds = predict(model, spec, current.df)
    return base


def reference_commit(repo: MLRepo, spec: ModelSpec, base: Baseline) -> str | None:
    """The revision drift and quality compare the evaluation data with: the drift
    gate's ``reference``, else the baseline's commit, else HEAD."""
    drift = spec.gates.get("drift")
    ref_rev = drift.get("reference") if isinstance(drift, dict) else None
    if ref_rev:
        return repo.git.resolve(str(ref_rev))
    return base.commit or repo.git.head()


def _data_gate_state(repo: MLRepo, spec: ModelSpec, base: Baseline, groups: Sequence[str]) -> str:
    """What the data gates depend on beyond model/data/config: the drift/quality
    reference data's id and, for the anomaly gate, the history's tip (HEAD)."""
    if "data" not in groups:
        return ""
    parts: list[str] = []
    if settings(spec, "drift") is not None or settings(spec, "quality") is not None:
        from gitml.artifacts import api

        ref = reference_commit(repo, spec, base)
        found = api.find(spec.data, ref, repo) if ref else None
        parts.append(f"ref={found.oid if found else None}")
    if settings(spec, "anomaly") is not None:
        parts.append(f"head={repo.git.head()}")
    return ",".join(parts)


def run_gates(ctx: GateContext, groups: tuple[str, ...]) -> list[GateResult]:
    """The applicable gates of ``groups`` on one context; a crash is a blocking failure."""
    out: list[GateResult] = []
    for gate in selected(ctx.spec, groups):
        try:
            out.extend(gate.run(ctx))
        except GitMLError:
            raise  # the user's to fix (bad config, unreadable data): an error, not a result
        # gates run numpy/scipy/scikit-learn/shap on a user's model and data, which can
        # raise anything; a bug must not let a commit through, so it fails and blocks
        except Exception as e:
            why = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            out.append(GateResult(gate.name, False, {"error": why, "crashed": True},
                                  f"{gate.name} gate crashed: {why}", blocking=True))
    return out


def run_model(repo: MLRepo, spec: ModelSpec, rev: str | None = None, staged: bool = True, *,
              against: str | None = None, gates: Sequence[str] = ALL_GATES,
              use_cache: bool = True) -> ModelResult:
    """All gates of one model at one place; cached by the ids of what they depend on."""
    t0 = time.perf_counter()
    groups = tuple(gates)
    validate_settings(spec)
    model_src = locate(repo, spec.path, rev, staged, key=spec.key("path"))
    data_src = locate(repo, spec.data, rev, staged, key=spec.key("data"))
    base = find_baseline(repo, spec, against)
    chash = config_hash({"spec": spec.raw, "gates": sorted(groups), "against": against})
    base_oid = base.model_src.oid if base.model_src else None
    key = cache.cache_key(model_src.oid, data_src.oid, chash,
                          f"{base_oid}:{_data_gate_state(repo, spec, base, groups)}")
    if use_cache:
        hit = cache.get(repo, key)
        if hit is not None:
            hit.seconds = time.perf_counter() - t0
            return hit
    cur = load(repo, spec, rev, staged)
    base = load_baseline(repo, spec, base, cur)
    place = where_label(rev, staged)
    ctx = GateContext(repo, spec, cur.model, cur.df, cur.data_src, cur.preds, base, place,
                      groups, reference_commit(repo, spec, base))
    result = ModelResult(spec.name, model_src.oid, data_src.oid, chash, run_gates(ctx, groups),
                         rev=place)
    result.seconds = time.perf_counter() - t0
    crashed = any(g.metrics.get("crashed") for g in result.results)
    if use_cache and not crashed:  # a crash may be fixed by an upgrade: never cache it
        cache.put(repo, key, result)
    return result


def run_checks(repo: MLRepo, models: list[str] | None = None, rev: str | None = None,
               staged: bool = True, *, against: str | None = None,
               gates: Sequence[str] = ALL_GATES, use_cache: bool = True,
               specs: list[ModelSpec] | None = None) -> list[ModelResult]:
    """Every gate of every declared model (or the named ones, or the given ``specs``)."""
    if specs is None:
        specs = model_specs(repo, models)
    return [run_model(repo, spec, rev, staged, against=against, gates=gates, use_cache=use_cache)
            for spec in specs]
