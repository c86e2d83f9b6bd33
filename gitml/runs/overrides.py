"""Override a stage's parameters where the stage declares them (``-S key=value``).

A key is looked for, in order, in the stage's params files (``-p FILE[:keys]``, nested keys
with dots, the file rewritten in its own format), on its command line (``--key VALUE``,
``--key=VALUE`` or ``key=VALUE``), and otherwise handed to ``gitml.log_param(key, default)``
calls through ``$GITML_PARAM_OVERRIDES``. After the run, :func:`unused` names the keys that
reached none of them, so a typo never silently runs the baseline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitml.runs import params as params_mod
from gitml.runs.errors import ParamsError
from gitml.store.fsutil import atomic_write_text


@dataclass
class Applied:
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, list[str]] = field(default_factory=dict)   # file -> keys written there
    on_cmd: list[str] = field(default_factory=list)
    python: dict[str, Any] = field(default_factory=dict)         # left to gitml.log_param


def parse_value(text: str) -> Any:
    """``6`` -> 6, ``0.5`` -> 0.5, ``true`` -> True, ``[1,2]`` -> [1, 2], anything else a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignments(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParamsError(f"invalid -S {item!r}", "use -S key=value (nested keys with dots)")
        out[key] = parse_value(value)
    return out


def format_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def apply(workdir: Path, cwd: str, params_files: list[str], cmd: list[str],
          values: dict[str, Any], recorded: dict[str, Any] | None = None) -> Applied:
    """Write ``values`` into the stage's params files and command line under ``workdir``.
    ``recorded`` (the stage's last params) lets a positional argument be found: the one
    argument equal to the recorded value of a param the script logged."""
    applied = Applied(cmd=list(cmd))
    left = dict(values)
    base = workdir / cwd
    for spec in params_files:
        file, keys = params_mod.parse_spec(spec)
        path = (base / file).resolve()
        nested = params_mod.load_file(path, file)
        flat = params_mod.flatten(nested)
        hits = [k for k in left if k in flat and (keys is None or _selected(k, keys))]
        if not hits:
            continue
        for k in hits:
            _set(nested, k, left.pop(k))
        atomic_write_text(path, _dump(path, nested))
        applied.files[file] = hits
    for k in list(left):
        if _set_arg(applied.cmd, k, left[k]) or _set_positional(applied.cmd, k, left[k], recorded or {}):
            applied.on_cmd.append(k)
            left.pop(k)
    if left:
        from gitml.runs.tracking import OVERRIDES_VAR

        applied.python = left
        applied.env[OVERRIDES_VAR] = json.dumps(left, sort_keys=True)
    return applied


def unused(applied: Applied, recorded_params: dict[str, Any]) -> list[str]:
    """Keys handed to ``log_param`` that the run never logged (so never used)."""
    return sorted(k for k, v in applied.python.items() if recorded_params.get(k) != v)


def _selected(key: str, keys: list[str]) -> bool:
    return any(key == k or key.startswith(k + ".") for k in keys)


def _set(nested: dict[str, Any], dotted: str, value: Any) -> None:
    d = nested
    parts = dotted.split(".")
    # keys may themselves contain dots ("a.b": 1 at the top): take the longest existing prefix
    i = 0
    while i < len(parts) - 1:
        for j in range(len(parts) - 1, i, -1):
            name = ".".join(parts[i:j])
            if isinstance(d.get(name), dict):
                d = d[name]
                i = j
                break
        else:
            break
    d[".".join(parts[i:])] = value


def _set_arg(cmd: list[str], key: str, value: Any) -> bool:
    text = format_value(value)
    for flag in dict.fromkeys((f"--{key}", f"--{key.replace('_', '-')}")):
        for i, arg in enumerate(cmd):
            if arg == flag and i + 1 < len(cmd):
                cmd[i + 1] = text
                return True
            if arg.startswith(flag + "="):
                cmd[i] = f"{flag}={text}"
                return True
    for i, arg in enumerate(cmd):
        if arg.startswith(key + "=") and i > 0:
            cmd[i] = f"{key}={text}"
            return True
    return False


def _set_positional(cmd: list[str], key: str, value: Any, recorded: dict[str, Any]) -> bool:
    if key not in recorded or isinstance(recorded[key], (bool, dict, list)) or recorded[key] is None:
        return False
    old = recorded[key]
    hits = [i for i, arg in enumerate(cmd) if i > 0 and not arg.startswith("-")
            and (arg == str(old) or parse_value(arg) == old)]
    if len(hits) != 1:  # absent or ambiguous: leave it to gitml.log_param
        return False
    cmd[hits[0]] = format_value(value)
    return True


def _dump(path: Path, nested: dict[str, Any]) -> str:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return json.dumps(nested, indent=2) + "\n"
    if suffix == ".toml":
        import tomli_w

        return tomli_w.dumps(nested)
    import yaml

    return str(yaml.safe_dump(nested, sort_keys=False, default_flow_style=False))
