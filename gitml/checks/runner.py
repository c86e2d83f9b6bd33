"""Run every gate of every declared model: what `git ml check` and the commit hook do.

For each model: locate the model and its evaluation data at the requested place (a
revision, the index, or the work tree) and take their ids; with the config hash and the
baseline's model id that is the cache key. On a miss: load (safely, verified), predict,
then evaluation (thresholds + regression vs baseline), bias per sensitive attribute,
SHAP explanations (+ rank shift vs baseline), and the data gates (drift, quality,
anomaly) when their modules are present and the model declares them.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gitml.checks import cache
from gitml.checks.results import GateResult, ModelResult, config_hash
from gitml.errors import ConfigError, GitMLError
from gitml.models.load import Source, load_data, load_model, locate, where_label
from gitml.models.spec import ModelSpec, model_specs, resolve_baseline

if TYPE_CHECKING:
    import pandas as pd

    from gitml.checks.evaluate import Predictions
    from gitml.checks.explain import Explanation
    from gitml.repo import MLRepo

ALL_GATES = ("eval", "bias", "explain", "data")


@dataclass
class Loaded:
    spec: ModelSpec
    model: Any
    model_src: Source
    df: pd.DataFrame
    data_src: Source
    preds: Predictions


@dataclass
class Baseline:
    label: str | None              # what the user asked for, e.g. "prod" / "HEAD~1"
    commit: str | None             # the resolved commit, None when there is no baseline
    model_src: Source | None = None
    model: Any = None
    preds: Predictions | None = None
    notes: list[str] = field(default_factory=list)


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
    """Where the baseline model is (without loading it)."""
    label = against or spec.baseline
    if not label:
        return Baseline(None, None)
    commit = resolve_baseline(repo, spec, label)
    if commit is None:
        return Baseline(label, None, notes=[f"{label}: no such stage tag yet"])
    try:
        src = locate(repo, spec.path, commit, key=spec.key("gates.baseline"))
    except ConfigError:
        return Baseline(label, None, notes=[f"{spec.path} does not exist at {label}"])
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


def _call_gate(fn: Callable[..., Any], available: dict[str, Any]) -> GateResult | list[GateResult] | None:
    """Call another helper's gate with the keyword arguments it declares."""
    params = inspect.signature(fn).parameters
    kwargs: dict[str, Any] = {}
    for name, p in params.items():
        if name in available:
            kwargs[name] = available[name]
        elif p.default is inspect.Parameter.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            return None  # we cannot supply what it needs
    result: Any = fn(**kwargs)
    if result is None or isinstance(result, GateResult | list):
        return result  # type: ignore[no-any-return]
    if isinstance(result, dict):
        return GateResult.from_dict(result)
    return None


def data_gates(repo: MLRepo, cur: Loaded, base: Baseline,
               metric_values: dict[str, Any] | None = None) -> list[GateResult]:
    """Drift / quality / anomaly gates from the sibling modules, when declared."""
    import importlib

    spec = cur.spec
    out: list[GateResult] = []
    ref_commit = _reference_commit(repo, spec, base)
    reference_df: pd.DataFrame | None = None
    ref_src: Source | None = None
    if ref_commit:
        try:
            ref_src = locate(repo, spec.data, ref_commit, key=spec.key("data"))
        except ConfigError:
            ref_src = None
    if ref_src is not None and ref_src.oid != cur.data_src.oid:
        from gitml.models.load import read_frame_bytes, read_source

        reference_df = read_frame_bytes(read_source(repo, ref_src), spec.data, spec.key("data"))
    metric_values = dict(metric_values or {})
    available: dict[str, Any] = {
        "repo": repo, "spec": spec, "model": spec.name, "name": spec.name,
        "current_df": cur.df, "current": cur.df, "df": cur.df,
        "reference_df": reference_df, "reference": reference_df, "previous": reference_df,
        "previous_df": reference_df, "data": spec.data, "path": spec.data,
        "metrics": metric_values, "rev": where_label(cur.model_src.rev, cur.model_src.staged),
    }
    for gate_name in ("drift", "quality", "anomaly"):
        settings = spec.gates.get(gate_name)
        if settings is None or settings is False:
            continue
        try:
            mod = importlib.import_module(f"gitml.checks.{gate_name}")
        except ImportError:
            out.append(GateResult(gate_name, True, {}, f"the {gate_name} gate is not installed",
                                  blocking=False, skipped=True))
            continue
        fn = getattr(mod, "gate", None)
        if fn is None:
            continue
        if gate_name == "drift" and reference_df is None:
            why = "evaluation data unchanged" if ref_src is not None else "no reference version"
            out.append(GateResult("drift", True, {}, f"drift: {why}", skipped=True))
            continue
        cfg = dict(settings) if isinstance(settings, dict) else {}
        cfg.pop("reference", None)
        cfg.pop("enabled", None)
        available["config"] = cfg
        available["settings"] = cfg
        try:
            res = _call_gate(fn, available)
        except GitMLError:
            raise
        except Exception as e:
            res = GateResult(gate_name, False, {"error": f"{type(e).__name__}: {e}"},
                             f"{gate_name} gate crashed: {type(e).__name__}: {e}", blocking=False)
        if isinstance(res, list):
            out.extend(res)
        elif res is not None:
            out.append(res)
    return out


def _reference_commit(repo: MLRepo, spec: ModelSpec, base: Baseline) -> str | None:
    drift = spec.gates.get("drift")
    ref_rev = drift.get("reference") if isinstance(drift, dict) else None
    if ref_rev:
        return repo.git.resolve(str(ref_rev))
    return base.commit or repo.git.head()


def _data_gate_state(repo: MLRepo, spec: ModelSpec, base: Baseline, gates: Sequence[str]) -> str:
    """What the data gates depend on beyond model/data/config: the drift/quality
    reference data's id and, for the anomaly gate, the history's tip (HEAD)."""
    if "data" not in gates:
        return ""
    parts: list[str] = []
    if spec.gates.get("drift") or spec.gates.get("quality"):
        ref = _reference_commit(repo, spec, base)
        oid = None
        if ref:
            try:
                oid = locate(repo, spec.data, ref).oid
            except GitMLError:
                oid = None
        parts.append(f"ref={oid}")
    if spec.gates.get("anomaly"):
        parts.append(f"head={repo.git.head()}")
    return ",".join(parts)


def explainer_kind(model: Any) -> str:
    from gitml.checks.explain import explainer_kind as kind

    return kind(model)


def _explanation(repo: MLRepo, spec: ModelSpec, model: Any, df: pd.DataFrame) -> Explanation:
    from gitml.checks.explain import explain

    return explain(model, spec, df, seed=spec.seed)


def run_model(repo: MLRepo, spec: ModelSpec, rev: str | None = None, staged: bool = True, *,
              against: str | None = None, gates: Sequence[str] = ALL_GATES,
              use_cache: bool = True) -> ModelResult:
    """All gates of one model at one place; cached by the ids of what they depend on."""
    t0 = time.perf_counter()
    model_src = locate(repo, spec.path, rev, staged, key=spec.key("path"))
    data_src = locate(repo, spec.data, rev, staged, key=spec.key("data"))
    base = find_baseline(repo, spec, against)
    chash = config_hash({"spec": spec.raw, "gates": sorted(gates), "against": against})
    base_oid = base.model_src.oid if base.model_src else None
    key = cache.cache_key(model_src.oid, data_src.oid, chash,
                          f"{base_oid}:{_data_gate_state(repo, spec, base, gates)}")
    if use_cache:
        hit = cache.get(repo, key)
        if hit is not None:
            hit.seconds = time.perf_counter() - t0
            return hit
    cur = load(repo, spec, rev, staged)
    base = load_baseline(repo, spec, base, cur)
    results: list[GateResult] = []
    values: dict[str, Any] = {}
    if "eval" in gates:
        from gitml.checks.evaluate import metrics, regression_gate, threshold_gate

        values = metrics(cur.preds)
        results.append(threshold_gate(spec, values))
        results.append(regression_gate(spec, cur.preds, base.preds, base.label))
        if base.notes and results[-1].skipped:
            results[-1].message += f" ({'; '.join(base.notes)})"
    if "bias" in gates and spec.sensitive:
        from gitml.checks.bias import bias_gates

        results.extend(bias_gates(spec, cur.preds, cur.df, cur.model))
    if "explain" in gates and tuple(gates) != ("explain",) and "explain" not in spec.gates \
            and explainer_kind(cur.model) == "permutation":
        # in `check` and the hook, the slow explainer runs only when declared
        results.append(GateResult("explain", True, {"explainer": "permutation"},
                                  "model-agnostic SHAP takes seconds: add [models.NAME.gates] "
                                  "explain = { budget_seconds = 10 } to run it on commit",
                                  skipped=True))
    elif "explain" in gates:
        from gitml.checks.explain import explain_gate

        new_ex = _explanation(repo, spec, cur.model, cur.df)
        base_ex = _explanation(repo, spec, base.model, cur.df) if base.model is not None else None
        results.append(explain_gate(spec, new_ex, base_ex, base.label))
    if "data" in gates:
        results.extend(data_gates(repo, cur, base, values))
    result = ModelResult(spec.name, model_src.oid, data_src.oid, chash, results,
                         rev=where_label(rev, staged))
    result.seconds = time.perf_counter() - t0
    if use_cache:
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
