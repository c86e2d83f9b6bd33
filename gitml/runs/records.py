"""Run records (``.gitml/runs/<stage>.json``) and environments (``.gitml/env/<id>.json``).

One JSON file per stage keeps merges rare and diffs readable. Parsing is strict: a
damaged or hand-edited file is reported with its path and the first bad field, never
half-read.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gitml.runs.errors import ManifestError

FORMAT = 1
RUNS_DIR = ".gitml/runs"
ENV_DIR = ".gitml/env"
CHECKS_DIR = ".gitml/checks"
STAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
ENV_ID_RE = re.compile(r"^[0-9a-f]{32}$")
SOURCES = ("artifact", "git", "file")
_FIX = "re-run the stage with `git ml run` or restore the file with `git checkout`"


def check_stage_name(name: str) -> str:
    if not STAGE_RE.match(name) or name.endswith(".json"):
        raise ManifestError(f"invalid stage name {name!r}",
                            "use letters, digits, '.', '_' or '-', at most 100 characters")
    return name


def run_record_path(stage: str) -> str:
    return f"{RUNS_DIR}/{stage}.json"


def env_path(env_id: str) -> str:
    return f"{ENV_DIR}/{env_id}.json"


@dataclass
class FileRef:
    """A file or folder a run read or wrote, with the id of its content."""

    path: str                # posix, relative to the work tree
    oid: str | None          # store id (artifacts) or xxh3-128 of the bytes; None if missing
    size: int | None = None
    kind: str = "file"       # file | dir
    source: str = "file"     # artifact (has a pointer) | git (tracked by Git) | file (neither)
    declared: bool = False   # named with -d/-o rather than detected

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunRecord:
    stage: str
    cmd: list[str]
    cwd: str = "."
    started: str = ""
    ended: str = ""
    duration_s: float = 0.0
    exit_code: int = 0
    git_commit: str | None = None
    git_dirty: bool = False
    inputs: list[FileRef] = field(default_factory=list)
    outputs: list[FileRef] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    env: str | None = None
    processes: list[dict[str, Any]] = field(default_factory=list)
    tracer: str = ""
    # How it was invoked, so `git ml repro` re-runs it the same way.
    deps: list[str] = field(default_factory=list)
    outs: list[str] = field(default_factory=list)
    params_files: list[str] = field(default_factory=list)
    metrics_files: list[str] = field(default_factory=list)
    trace: bool = True
    # metric name -> [[step, value], ...] in the order logged (``log_metric(..., step=)``)
    history: dict[str, list[list[float]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "format": FORMAT,
            "stage": self.stage,
            "cmd": self.cmd,
            "cwd": self.cwd,
            "started": self.started,
            "ended": self.ended,
            "duration_s": self.duration_s,
            "exit_code": self.exit_code,
            "git": {"commit": self.git_commit, "dirty": self.git_dirty},
            "inputs": [f.to_dict() for f in self.inputs],
            "outputs": [f.to_dict() for f in self.outputs],
            "params": self.params,
            "metrics": self.metrics,
            "env": self.env,
            "processes": self.processes,
            "tracer": self.tracer,
            "options": {
                "deps": self.deps, "outs": self.outs, "params_files": self.params_files,
                "metrics_files": self.metrics_files, "trace": self.trace,
            },
        }
        if self.history:  # absent when empty: records of runs without steps stay as they were
            d["history"] = self.history
        return d

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"


class _Reader:
    """Typed field access that raises one-line errors naming the file and the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, what: str) -> ManifestError:
        return ManifestError(f"{self.source}: {what}", _FIX)

    def get(self, d: dict[str, Any], key: str, types: type | tuple[type, ...], where: str = "",
            required: bool = True, default: Any = None) -> Any:
        name = f"{where}{key}"
        if key not in d:
            if required:
                raise self.fail(f"missing field '{name}'")
            return default
        v = d[key]
        if isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise self.fail(f"field '{name}' must be {_tname(types)}, got bool")
        if not isinstance(v, types):
            raise self.fail(f"field '{name}' must be {_tname(types)}, got {_jtype(v)}")
        return v

    def strlist(self, d: dict[str, Any], key: str, where: str = "", required: bool = True) -> list[str]:
        v = self.get(d, key, list, where, required, [])
        for i, x in enumerate(v):
            if not isinstance(x, str):
                raise self.fail(f"field '{where}{key}[{i}]' must be a string, got {_jtype(x)}")
        return list(v)


def _tname(types: type | tuple[type, ...]) -> str:
    ts = types if isinstance(types, tuple) else (types,)
    names = {str: "a string", int: "an integer", float: "a number", bool: "true/false",
             list: "a list", dict: "an object", type(None): "null"}
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in ts))


def _jtype(v: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true/false", list: "a list",
            dict: "an object", type(None): "null"}.get(type(v), type(v).__name__)


def _parse_ref(r: _Reader, d: Any, where: str) -> FileRef:
    if not isinstance(d, dict):
        raise r.fail(f"'{where}' must be an object, got {_jtype(d)}")
    w = where + "."
    path = r.get(d, "path", str, w)
    if not path or path.startswith("/") or ".." in path.split("/"):
        raise r.fail(f"field '{w}path' must be a relative path inside the work tree, got {path!r}")
    kind = r.get(d, "kind", str, w, False, "file")
    source = r.get(d, "source", str, w, False, "file")
    if kind not in ("file", "dir"):
        raise r.fail(f"field '{w}kind' must be 'file' or 'dir', got {kind!r}")
    if source not in SOURCES:
        raise r.fail(f"field '{w}source' must be one of {', '.join(SOURCES)}, got {source!r}")
    return FileRef(path=path, oid=r.get(d, "oid", (str, type(None)), w),
                   size=r.get(d, "size", (int, type(None)), w, False, None), kind=kind,
                   source=source, declared=r.get(d, "declared", bool, w, False, False))


def parse_run_record(data: bytes | str, source: str) -> RunRecord:
    """Parse a run record strictly; ``source`` names the file in error messages."""
    r = _Reader(source)
    try:
        d = json.loads(data)
    except UnicodeDecodeError as e:
        raise r.fail("not UTF-8 text") from e
    except json.JSONDecodeError as e:
        raise r.fail(f"malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
    if not isinstance(d, dict):
        raise r.fail(f"top level must be an object, got {_jtype(d)}")
    fmt = r.get(d, "format", int)
    if fmt != FORMAT:
        raise ManifestError(f"{source}: unsupported run record format {fmt}",
                            "upgrade gitml" if fmt > FORMAT else _FIX)
    stage = r.get(d, "stage", str)
    if not STAGE_RE.match(stage):
        raise r.fail(f"invalid stage name {stage!r}")
    cmd = r.strlist(d, "cmd")
    if not cmd:
        raise r.fail("field 'cmd' must not be empty")
    git = r.get(d, "git", dict, required=False, default={})
    opts = r.get(d, "options", dict, required=False, default={})
    params = r.get(d, "params", dict, required=False, default={})
    metrics = r.get(d, "metrics", dict, required=False, default={})
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise r.fail(f"metric '{k}' must be a number, got {_jtype(v)}")
    env = r.get(d, "env", (str, type(None)), required=False)
    if env is not None and not ENV_ID_RE.match(env):
        raise r.fail(f"field 'env' must be a 32-hex-digit environment id, got {env!r}")
    inputs = [_parse_ref(r, x, f"inputs[{i}]") for i, x in enumerate(r.get(d, "inputs", list))]
    outputs = [_parse_ref(r, x, f"outputs[{i}]") for i, x in enumerate(r.get(d, "outputs", list))]
    procs = r.get(d, "processes", list, required=False, default=[])
    history = _parse_history(r, r.get(d, "history", dict, required=False, default={}))
    return RunRecord(
        stage=stage, cmd=cmd, cwd=r.get(d, "cwd", str, required=False, default="."),
        started=r.get(d, "started", str, required=False, default=""),
        ended=r.get(d, "ended", str, required=False, default=""),
        duration_s=float(r.get(d, "duration_s", (int, float), required=False, default=0.0)),
        exit_code=r.get(d, "exit_code", int),
        git_commit=r.get(git, "commit", (str, type(None)), "git.", False),
        git_dirty=r.get(git, "dirty", bool, "git.", False, False),
        inputs=inputs, outputs=outputs, params=params, metrics=dict(metrics), env=env,
        processes=[p for p in procs if isinstance(p, dict)],
        tracer=r.get(d, "tracer", str, required=False, default=""),
        deps=r.strlist(opts, "deps", "options.", False),
        outs=r.strlist(opts, "outs", "options.", False),
        params_files=r.strlist(opts, "params_files", "options.", False),
        metrics_files=r.strlist(opts, "metrics_files", "options.", False),
        trace=r.get(opts, "trace", bool, "options.", False, True),
        history=history,
    )


def _parse_history(r: _Reader, d: dict[str, Any]) -> dict[str, list[list[float]]]:
    out: dict[str, list[list[float]]] = {}
    for name, points in d.items():
        if not isinstance(points, list):
            raise r.fail(f"field 'history.{name}' must be a list, got {_jtype(points)}")
        for i, pt in enumerate(points):
            if (not isinstance(pt, list) or len(pt) != 2
                    or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in pt)):
                raise r.fail(f"field 'history.{name}[{i}]' must be [step, value]")
        out[name] = [list(pt) for pt in points]
    return out


def summarize_run_record(data: bytes | str, source: str) -> tuple[str, dict[str, float], dict[str, Any]]:
    """(stage, metrics, params) with only those fields checked: what `git ml log` needs,
    several times faster than :func:`parse_run_record`."""
    r = _Reader(source)
    try:
        d = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise r.fail(f"malformed JSON: {e}") from e
    if not isinstance(d, dict):
        raise r.fail(f"top level must be an object, got {_jtype(d)}")
    stage = r.get(d, "stage", str)
    metrics = r.get(d, "metrics", dict, required=False, default={})
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise r.fail(f"metric '{k}' must be a number, got {_jtype(v)}")
    return stage, metrics, r.get(d, "params", dict, required=False, default={})


def parse_environment(data: bytes | str, source: str) -> dict[str, Any]:
    r = _Reader(source)
    try:
        d = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ManifestError(f"{source}: malformed environment JSON: {e}", _FIX) from e
    if not isinstance(d, dict):
        raise r.fail("top level must be an object")
    r.get(d, "id", str)
    r.get(d, "packages", dict)
    r.get(d, "python", dict)
    return d


def parse_check(data: bytes | str, source: str) -> dict[str, Any]:
    """A gate result file written by the checks area; validated only as far as we read it."""
    try:
        d = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ManifestError(f"{source}: malformed check result JSON: {e}",
                            "re-run `git ml check` to rewrite it") from e
    if not isinstance(d, dict):
        raise ManifestError(f"{source}: check result must be a JSON object", "re-run `git ml check`")
    results = d.get("results", [])
    if not isinstance(results, list):
        raise ManifestError(f"{source}: field 'results' must be a list", "re-run `git ml check`")
    return d


def check_passed(check: dict[str, Any]) -> bool | None:
    results = [x for x in check.get("results", []) if isinstance(x, dict)]
    if "passed" in check and isinstance(check["passed"], bool):
        return bool(check["passed"])
    if not results:
        return None
    return all(bool(x.get("passed")) for x in results)


def load_run_records(workdir: Path) -> dict[str, RunRecord]:
    """Every run record in the work tree, by stage."""
    out: dict[str, RunRecord] = {}
    folder = workdir / RUNS_DIR
    if not folder.is_dir():
        return out
    for p in sorted(folder.glob("*.json")):
        rec = parse_run_record(p.read_bytes(), f"{RUNS_DIR}/{p.name}")
        if rec.stage != p.stem:
            raise ManifestError(f"{RUNS_DIR}/{p.name}: stage {rec.stage!r} does not match the file name",
                                _FIX)
        out[rec.stage] = rec
    return out


def load_run_record(workdir: Path, stage: str) -> RunRecord | None:
    p = workdir / run_record_path(stage)
    if not p.exists():
        return None
    return parse_run_record(p.read_bytes(), run_record_path(stage))
