"""Every gate gitml runs, in one list (:data:`GATES`), in the order they run.

A gate is a name, a group (what `git ml eval` / `bias` / `explain` / `check` select by),
when it applies to a model, and a function of the :class:`~gitml.checks.gate.GateContext`.
Each function imports its module when it runs, so a model that declares only
evaluation gates never imports shap, scipy's tests or pyarrow's footer reader.

Adding a gate: write ``run(ctx) -> list[GateResult]`` in its module, add a line here,
and (if it has settings) a parser to :func:`validate_settings`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gitml.checks.gate import GateContext
    from gitml.checks.results import GateResult
    from gitml.models.spec import ModelSpec

GROUPS = ("eval", "bias", "explain", "data")


@dataclass(frozen=True)
class BuiltinGate:
    """A gate of :data:`GATES` (implements :class:`gitml.checks.gate.Gate`)."""

    name: str
    group: str
    when: Callable[[ModelSpec, tuple[str, ...]], bool]
    body: Callable[[GateContext], list[GateResult]]

    def applies(self, spec: ModelSpec, only: tuple[str, ...]) -> bool:
        return self.when(spec, only)

    def run(self, ctx: GateContext) -> list[GateResult]:
        return self.body(ctx)


def settings(spec: ModelSpec, gate: str) -> Mapping[str, Any] | None:
    """A data gate's settings table (``drift = { alpha = 0.01 }``, ``quality = true``),
    or None when it is not declared or switched off (``false`` / ``enabled = false``)."""
    value = spec.gates.get(gate)
    if value is None or value is False:
        return None
    if isinstance(value, Mapping):
        if value.get("enabled", True) is False:
            return None
        return {k: v for k, v in value.items() if k not in ("enabled", "reference")}
    return {}


# ------------------------------------------------------------------------ when they apply
def _always(spec: ModelSpec, only: tuple[str, ...]) -> bool:
    return True


def _trivial_declared(spec: ModelSpec, only: tuple[str, ...]) -> bool:
    return spec.gates.get("trivial", True) is not False


def _has_sensitive(spec: ModelSpec, only: tuple[str, ...]) -> bool:
    return bool(spec.sensitive)


def _explain_wanted(spec: ModelSpec, only: tuple[str, ...]) -> bool:
    # SHAP costs seconds and a large import: on commit it runs only when declared;
    # `git ml explain` (which asks for this group alone) always runs it
    return "explain" in spec.gates or only == ("explain",)


def _declared(gate: str) -> Callable[[ModelSpec, tuple[str, ...]], bool]:
    def when(spec: ModelSpec, only: tuple[str, ...]) -> bool:
        return settings(spec, gate) is not None
    return when


# ------------------------------------------------------------------------ the gates' bodies
def _threshold(ctx: GateContext) -> list[GateResult]:
    from gitml.checks.evaluate import threshold_gate

    return [threshold_gate(ctx.spec, ctx.metrics)]


def _trivial(ctx: GateContext) -> list[GateResult]:
    from gitml.checks.evaluate import trivial_gate

    return [trivial_gate(ctx.spec, ctx.preds)]


def _regression(ctx: GateContext) -> list[GateResult]:
    from gitml.checks.evaluate import regression_gate

    base = ctx.baseline
    res = regression_gate(ctx.spec, ctx.preds, base.preds, base.label)
    if res.skipped and base.note:
        res.message += f" ({base.note})"
    return [res]


def _bias(ctx: GateContext) -> list[GateResult]:
    from gitml.checks.bias import bias_gates

    return bias_gates(ctx.spec, ctx.preds, ctx.frame, ctx.model)


def _explain(ctx: GateContext) -> list[GateResult]:
    from gitml.checks.explain import explain, explain_gate

    spec = ctx.spec
    new = explain(ctx.model, spec, ctx.frame, seed=spec.seed)
    base_model = ctx.baseline.model
    base = explain(base_model, spec, ctx.frame, seed=spec.seed) if base_model is not None else None
    return [explain_gate(spec, new, base, ctx.baseline.label)]


def _drift(ctx: GateContext) -> list[GateResult]:
    from gitml.checks.drift import DriftConfig, gate
    from gitml.checks.results import GateResult

    cfg = DriftConfig.from_mapping(settings(ctx.spec, "drift"), ctx.spec.key("gates.drift"))
    ref = ctx.reference
    if ref.frame is None:
        return [GateResult("drift", True, {}, f"drift: {ref.why_none}", skipped=True)]
    return [gate(ref.frame, ctx.frame, cfg, model=ctx.spec.name)]


def _quality(ctx: GateContext) -> list[GateResult]:
    from gitml.checks.quality import gate, rules_for
    from gitml.checks.quality.rules import QualityRules

    declared = settings(ctx.spec, "quality") or {}
    rules = (QualityRules.from_mapping(declared, ctx.spec.key("gates.quality")) if declared
             else rules_for(ctx.repo.config.data, ctx.spec.data))
    return [gate(ctx.frame, ctx.reference.frame, rules, name=ctx.spec.data)]


def _anomaly(ctx: GateContext) -> list[GateResult]:
    from gitml.checks.anomaly import AnomalyConfig, gate

    cfg = AnomalyConfig.from_mapping(settings(ctx.spec, "anomaly"), ctx.spec.key("gates.anomaly"))
    return [gate(None, cfg, repo=ctx.repo, model=ctx.spec.name, metrics=ctx.metrics, rev=ctx.place)]


GATES: tuple[BuiltinGate, ...] = (
    BuiltinGate("eval.threshold", "eval", _always, _threshold),
    BuiltinGate("eval.trivial", "eval", _trivial_declared, _trivial),
    BuiltinGate("eval.regression", "eval", _always, _regression),
    BuiltinGate("bias", "bias", _has_sensitive, _bias),
    BuiltinGate("explain", "explain", _explain_wanted, _explain),
    BuiltinGate("drift", "data", _declared("drift"), _drift),
    BuiltinGate("quality", "data", _declared("quality"), _quality),
    BuiltinGate("anomaly", "data", _declared("anomaly"), _anomaly),
)


def selected(spec: ModelSpec, groups: tuple[str, ...]) -> list[BuiltinGate]:
    """The gates of ``groups`` that apply to ``spec``, in :data:`GATES` order."""
    return [g for g in GATES if g.group in groups and g.applies(spec, groups)]


def validate_settings(spec: ModelSpec) -> None:
    """Parse every declared data gate's settings now, so a wrong value is an error when
    the config is read, not when (or whether) the gate runs."""
    from gitml.checks.anomaly import AnomalyConfig
    from gitml.checks.drift import DriftConfig
    from gitml.checks.quality.rules import QualityRules

    for name, parse in (("drift", DriftConfig.from_mapping), ("quality", QualityRules.from_mapping),
                        ("anomaly", AnomalyConfig.from_mapping)):
        value = spec.gates.get(name)
        if value is not None and not isinstance(value, bool | Mapping):
            from gitml.errors import ConfigError

            raise ConfigError(f"{spec.key('gates.' + name)}: expected true/false or a table, "
                              f"got {value!r}", f"e.g. {name} = {{}} or {name} = false")
        found = settings(spec, name)
        if found is not None:
            parse(found, spec.key(f"gates.{name}"))
