"""``git ml run``: run a command, trace it, store its outputs and write its run record."""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitml.errors import GitMLError
from gitml.repo import MLRepo
from gitml.runs import params as params_mod
from gitml.runs.errors import ParamsError, RunError
from gitml.runs.records import (
    ENV_DIR,
    FileRef,
    RunRecord,
    check_stage_name,
    env_path,
    run_record_path,
)
from gitml.runs.tracer import Tracer, TraceResult, read_tracking, skip_file
from gitml.store import pointer as ptr
from gitml.store.fsutil import atomic_write_text


@dataclass
class RunOptions:
    cmd: list[str]
    stage: str | None = None
    cwd: str = "."                     # relative to the work tree
    deps: list[str] = field(default_factory=list)
    outs: list[str] = field(default_factory=list)
    params_files: list[str] = field(default_factory=list)   # FILE or FILE:key1,key2
    metrics_files: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    trace: bool = True
    add_outputs: bool = True
    stdout_to_stderr: bool = False     # keep our stdout clean for --json


@dataclass
class RunOutcome:
    record: RunRecord
    record_path: str
    warnings: list[str]
    added: list[dict[str, Any]]


def default_stage_name(cmd: list[str]) -> str:
    """``python train.py`` -> ``train``; ``make model`` -> ``make``."""
    for arg in cmd:
        base = os.path.basename(arg)
        stem, ext = os.path.splitext(base)
        if ext in (".py", ".R", ".r", ".sh", ".jl", ".ipynb") and stem:
            return _sanitize(stem)
    return _sanitize(os.path.basename(cmd[0]))


def _sanitize(name: str) -> str:
    out = "".join(c if c.isalnum() or c in "._-" else "-" for c in name).strip(".-_") or "run"
    return out[:100]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _norm(repo: MLRepo, base: Path, p: str) -> str:
    path = Path(p)
    if not path.is_absolute():
        path = base / path
    rel = repo.relpath(path)
    if rel.endswith(ptr.SUFFIX):
        rel = ptr.artifact_path_for(rel)
    return rel.rstrip("/")


def _containing(path: str, roots: set[str]) -> str | None:
    """The artifact in ``roots`` that is ``path`` or contains it."""
    if path in roots:
        return path
    parts = path.split("/")
    for i in range(len(parts) - 1, 0, -1):
        parent = "/".join(parts[:i])
        if parent in roots:
            return parent
    return None


def _top_new_dir(path: str, new_dirs: set[str]) -> str | None:
    parts = path.split("/")
    for i in range(1, len(parts)):
        d = "/".join(parts[:i])
        if d in new_dirs:
            return d
    return None


def run_stage(repo: MLRepo, opts: RunOptions, *, quiet: bool = False) -> RunOutcome:
    from gitml.artifacts import worktree
    from gitml.git import history

    if not opts.cmd:
        raise RunError("no command to run", "put it after `--`: git ml run -n NAME -- python train.py")
    stage = check_stage_name(opts.stage or default_stage_name(opts.cmd))
    workdir = repo.workdir
    run_dir = (workdir / opts.cwd).resolve()
    cwd_rel = repo.relpath(run_dir) or "."
    warnings: list[str] = []

    # Everything that can be wrong with the inputs is checked before the command runs.
    param_specs = [params_mod.parse_spec(s) for s in opts.params_files]
    params: dict[str, Any] = {}
    param_paths: set[str] = set()
    for file, keys in param_specs:
        rel = _norm(repo, run_dir, file)
        param_paths.add(rel)
        params.update(params_mod.read_params(workdir / rel, keys, rel))
    deps = [_norm(repo, run_dir, d) for d in opts.deps]
    for d in deps:
        if not (workdir / d).exists():
            raise RunError(f"dependency {d} does not exist", "fix the -d path or create it first")
    outs = [_norm(repo, run_dir, o) for o in opts.outs]
    metric_paths = [_norm(repo, run_dir, m) for m in opts.metrics_files]

    commit = repo.git.head()
    dirty = history.is_dirty(repo.git.raw) if commit else False

    started = _now()
    t0 = time.monotonic()
    env_cache = repo.ml_dir / "cache" / "environments"
    with Tracer(workdir, kernel=opts.trace, audit=opts.trace, env_cache=env_cache) as tracer:
        env = tracer.child_env()
        try:
            proc = subprocess.run(opts.cmd, cwd=run_dir, env=env,
                                  stdout=sys.stderr if opts.stdout_to_stderr else None)
            exit_code = proc.returncode
        except FileNotFoundError as e:
            raise RunError(f"command not found: {opts.cmd[0]}", "check the spelling and your PATH") from e
        except PermissionError as e:
            raise RunError(f"cannot execute {opts.cmd[0]}: permission denied", "chmod +x it") from e
        duration = time.monotonic() - t0
        ended = _now()
        trace = tracer.finish() if opts.trace else TraceResult(mode="none")
        warnings += trace.warnings
        t_params, t_metrics, _history = read_tracking(tracer.tracking_file)
        environment = trace.environment or _environment_fallback(tracer, trace, warnings, env_cache)

    params.update(t_params)
    metrics: dict[str, float] = dict(t_metrics)
    for m in metric_paths:
        try:
            metrics.update(params_mod.read_metrics(workdir / m, m))
        except ParamsError as e:
            warnings.append(str(e))

    # ---- classify what was written and read --------------------------------------------
    index_paths = set(repo.git.index_paths())
    arts = {ptr.artifact_path_for(p) for p in index_paths if p.endswith(ptr.SUFFIX)}
    own = set(metric_paths) | param_paths

    def excluded(p: str) -> bool:
        return any(fnmatch.fnmatch(p, g) or fnmatch.fnmatch(p.rsplit("/", 1)[-1], g) for g in opts.exclude)

    out_refs: dict[str, FileRef] = {}
    store_outs: list[str] = []
    for o in outs:
        if not (workdir / o).exists():
            warnings.append(f"declared output {o} was not written")
            continue
        src = "git" if o in index_paths else ("file" if o in own else "artifact")
        out_refs[o] = FileRef(o, None, source=src, kind="dir" if (workdir / o).is_dir() else "file",
                              declared=True)
    for w in sorted(trace.writes):
        if excluded(w) or skip_file(w):
            continue
        if _containing(w, set(out_refs)) is not None:
            continue
        art = _containing(w, arts)
        if art is not None:
            target, source = art, "artifact"
        elif w in index_paths or w in own:
            target, source = w, "git" if w in index_paths else "file"
        else:
            newdir = _top_new_dir(w, trace.new_dirs)
            target, source = (newdir, "artifact") if newdir else (w, "artifact")
        if target not in out_refs:
            out_refs[target] = FileRef(target, None, source=source,
                                       kind="dir" if (workdir / target).is_dir() else "file")
    for ref in out_refs.values():
        if ref.source == "artifact":
            store_outs.append(ref.path)

    added: list[dict[str, Any]] = []
    if exit_code == 0 and opts.add_outputs and store_outs:
        try:
            results = worktree.add(repo, [workdir / p for p in store_outs])
        except GitMLError as e:  # the run happened: record it anyway, say what to fix
            warnings.append(f"outputs not stored: {e}; fix that and run `git ml add` on them")
            results = []
        for res in results:
            ref = out_refs[res.path]
            ref.oid, ref.size, ref.kind = res.oid, res.size, res.kind
            added.append(res.to_dict())
    for ref in out_refs.values():
        if ref.oid is None and (exit_code == 0 or ref.source != "artifact"):
            ref.oid = worktree.current_oid(repo, ref.path)
            ref.size = _size(workdir / ref.path)

    arts |= {r.path for r in out_refs.values() if r.source == "artifact"}
    in_refs: dict[str, FileRef] = {}
    for path, declared in [(d, True) for d in deps] + [(r, False) for r in sorted(trace.reads)]:
        if excluded(path) or (not declared and path in param_paths):
            continue
        art = _containing(path, arts)
        target = art or path
        if target in out_refs or _containing(target, set(out_refs)) is not None:
            continue
        if target in in_refs:
            in_refs[target].declared |= declared
            continue
        source = "artifact" if art else ("git" if target in index_paths else "file")
        p = workdir / target
        in_refs[target] = FileRef(target, worktree.current_oid(repo, target), _size(p),
                                  "dir" if p.is_dir() else "file", source, declared)

    env_id = None
    to_stage: list[str] = []
    if environment:
        from gitml.runs.environment import environment_id

        # never trust a child-written id as a file name: it is recomputed from the content
        env_id = environment_id(environment)
        environment["id"] = env_id
        rel = env_path(env_id)
        if not (workdir / rel).exists():
            atomic_write_text(workdir / rel, json.dumps(environment, indent=1, sort_keys=True) + "\n")
        to_stage.append(rel)

    record = RunRecord(
        stage=stage, cmd=list(opts.cmd), cwd=cwd_rel, started=started, ended=ended,
        duration_s=round(duration, 3), exit_code=exit_code, git_commit=commit, git_dirty=dirty,
        inputs=sorted(in_refs.values(), key=lambda r: r.path),
        outputs=sorted(out_refs.values(), key=lambda r: r.path),
        params=params, metrics=metrics, env=env_id, processes=_slim(trace.processes),
        tracer=trace.mode, deps=list(opts.deps), outs=list(opts.outs),
        params_files=list(opts.params_files), metrics_files=list(opts.metrics_files), trace=opts.trace,
    )
    rec_rel = run_record_path(stage)
    atomic_write_text(workdir / rec_rel, record.dumps())
    to_stage.append(rec_rel)
    to_stage += [r.path for r in out_refs.values() if r.source == "git"]
    repo.git.stage(to_stage)
    return RunOutcome(record, rec_rel, warnings, added)


def _size(p: Path) -> int | None:
    try:
        if p.is_dir():
            return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        return p.stat().st_size
    except OSError:
        return None


def _slim(procs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for p in procs[:100]:
        out.append({k: p.get(k) for k in ("pid", "ppid", "argv", "executable", "reads", "writes", "spawned")
                    if p.get(k)})
    return out


def _environment_fallback(tracer: Tracer, trace: TraceResult, warnings: list[str],
                          cache: Path) -> dict[str, Any] | None:
    """No Python process dumped its environment (not Python, or killed): ask the
    interpreter the run used, else describe the one running gitml."""
    out = tracer.tmp / "env-fallback.json"
    for exe in trace.python_executables:
        try:
            subprocess.run([exe, str(tracer.site_dir / "_gitml_environment.py"), str(out), str(cache)],
                           capture_output=True, timeout=60, check=True)
            data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
            return data
        except (OSError, subprocess.SubprocessError, ValueError):
            continue
    from gitml.runs import environment

    environment.write(str(out), str(cache))
    env: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    env["captured_in"] = "git-ml"
    if trace.python_executables:
        warnings.append("could not capture the environment of the Python that ran; recorded gitml's own")
    return env


__all__ = ["ENV_DIR", "RunOptions", "RunOutcome", "default_stage_name", "run_stage"]
