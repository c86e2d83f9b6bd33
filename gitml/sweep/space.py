"""The search space file (``sweep.toml``).

```toml
[sweep]                                # optional defaults for the command line
objectives = ["roc_auc:max"]
seed_param = "seed"                    # re-run the best trials with other seeds

[params.family]
type = "categorical"
choices = ["logreg", "mlp"]

[params.C]
type = "float"
low = 1e-3
high = 100.0
log = true
condition = { family = "logreg" }      # only sampled when family is logreg

[params.layers]
type = "int"
low = 1
high = 3
condition = { family = "mlp" }

[params.units_2]
type = "int"
low = 8
high = 256
log = true
condition = { layers = [2, 3] }        # one of several values
```

Parameters are sampled in an order where every condition's parameter comes first; a
parameter whose condition is not met is not sampled and not passed to the stage.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitml.errors import UsageError

TYPES = ("float", "int", "categorical")


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    condition: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def active(self, chosen: dict[str, Any]) -> bool:
        return all(k in chosen and chosen[k] in allowed for k, allowed in self.condition.items())


@dataclass(frozen=True)
class Space:
    params: tuple[Param, ...]                 # in sampling order
    objectives: tuple[str, ...] = ()
    seed_param: str | None = None
    source: str = ""


def _fail(where: str, what: str) -> UsageError:
    return UsageError(f"{where}: {what}", "see `git ml sweep --help` for the space file format")


def load(path: Path) -> Space:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise UsageError(f"{path}: no such file", "write a search space (see `git ml sweep --help`)") from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise _fail(str(path), f"malformed TOML: {e}") from e
    return parse(data, str(path))


def parse(data: dict[str, Any], source: str) -> Space:
    unknown = set(data) - {"params", "sweep"}
    if unknown:
        raise _fail(source, f"unknown table(s) {', '.join(sorted(unknown))}")
    raw = data.get("params")
    if not isinstance(raw, dict) or not raw:
        raise _fail(source, "no [params.NAME] tables")
    params = [_param(name, spec, f"{source} [params.{name}]") for name, spec in raw.items()]
    sweep = data.get("sweep", {})
    if not isinstance(sweep, dict):
        raise _fail(source, "[sweep] must be a table")
    objectives = sweep.get("objectives", [])
    if not isinstance(objectives, list) or not all(isinstance(o, str) for o in objectives):
        raise _fail(source, "[sweep] objectives must be a list of 'metric:max|min' strings")
    seed = sweep.get("seed_param")
    if seed is not None and not isinstance(seed, str):
        raise _fail(source, "[sweep] seed_param must be a string")
    return Space(tuple(_ordered(params, source)), tuple(objectives), seed, source)


def _param(name: str, spec: Any, where: str) -> Param:
    if not isinstance(spec, dict):
        raise _fail(where, "must be a table")
    extra = set(spec) - {"type", "low", "high", "log", "step", "choices", "condition"}
    if extra:
        raise _fail(where, f"unknown key(s) {', '.join(sorted(extra))}")
    kind = spec.get("type")
    if kind not in TYPES:
        raise _fail(where, f"type must be one of {', '.join(TYPES)}, got {kind!r}")
    cond = _condition(spec.get("condition", {}), where)
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise _fail(where, "a categorical parameter needs a non-empty list of choices")
        if any(isinstance(c, (list, dict)) for c in choices):
            raise _fail(where, "choices must be numbers, strings or booleans")
        return Param(name, kind, choices=tuple(choices), condition=cond)
    low, high = spec.get("low"), spec.get("high")
    for k, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _fail(where, f"{k} must be a number")
    assert isinstance(low, (int, float)) and isinstance(high, (int, float))
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise _fail(where, "an int parameter needs integer low and high")
    if low >= high:
        raise _fail(where, f"low ({low}) must be below high ({high})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise _fail(where, "log must be true or false")
    if log and low <= 0:
        raise _fail(where, "a log scale needs low > 0")
    step = spec.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0):
        raise _fail(where, "step must be a positive number")
    if step is not None and log:
        raise _fail(where, "step and log cannot be combined")
    return Param(name, kind, float(low), float(high), log, step, condition=cond)


def _condition(raw: Any, where: str) -> dict[str, tuple[Any, ...]]:
    if not isinstance(raw, dict):
        raise _fail(where, "condition must be a table like { family = \"mlp\" }")
    return {k: tuple(v) if isinstance(v, list) else (v,) for k, v in raw.items()}


def _ordered(params: list[Param], source: str) -> list[Param]:
    """Parameters in file order, moved after the parameters their conditions name."""
    by_name = {p.name: p for p in params}
    for p in params:
        for dep in p.condition:
            if dep not in by_name:
                raise _fail(source, f"[params.{p.name}] condition names unknown parameter {dep!r}")
            if by_name[dep].type != "categorical" and by_name[dep].type != "int":
                raise _fail(source, f"[params.{p.name}] condition on {dep!r} needs an int or categorical parameter")
    out: list[Param] = []
    state: dict[str, int] = {}

    def visit(p: Param, chain: tuple[str, ...]) -> None:
        if state.get(p.name) == 2:
            return
        if state.get(p.name) == 1:
            raise _fail(source, f"conditions form a cycle: {' -> '.join((*chain, p.name))}")
        state[p.name] = 1
        for dep in p.condition:
            visit(by_name[dep], (*chain, p.name))
        state[p.name] = 2
        out.append(p)

    for p in params:
        visit(p, ())
    return out


def parse_objective(text: str) -> tuple[str, str]:
    """``roc_auc:max`` -> ("roc_auc", "maximize")."""
    name, _, direction = text.rpartition(":")
    if not name or direction not in ("max", "min"):
        raise UsageError(f"invalid objective {text!r}", "use METRIC:max or METRIC:min")
    return name, "maximize" if direction == "max" else "minimize"
