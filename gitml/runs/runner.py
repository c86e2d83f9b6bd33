"""``git ml run``: run a command, trace it, store its outputs and write its run record."""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
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

#: called with the tracking file (what ``gitml.log_*`` appended so far); True stops the command
Monitor = Callable[[Path], bool]
MONITOR_POLL_S = 0.05


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
    env: dict[str, str] = field(default_factory=dict)   # extra environment for the command
    monitor: Monitor | None = None     # polled while the command runs; True stops it
    git_add: bool = True               # stage record, environment, Git-tracked outputs (a trial
                                       # commits its whole worktree: no need)


@dataclass
class RunOutcome:
    record: RunRecord
    record_path: str
    warnings: list[str]
    added: list[dict[str, Any]]
    stopped: bool = False              # the monitor stopped the command (a pruned trial)


def options_from_record(rec: RunRecord, **overrides: Any) -> RunOptions:
    """Options that run a recorded stage again the way it was run (``repro``, ``exp``)."""
    opts = RunOptions(cmd=list(rec.cmd), stage=rec.stage, cwd=rec.cwd, deps=list(rec.deps),
                      outs=list(rec.outs), params_files=list(rec.params_files),
                      metrics_files=list(rec.metrics_files), trace=rec.trace)
    for k, v in overrides.items():
        setattr(opts, k, v)
    return opts


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


@dataclass
class _Plan:
    """What the run needs, checked before the command starts."""

    stage: str
    run_dir: Path
    cwd_rel: str
    params: dict[str, Any]
    param_paths: set[str]
    deps: list[str]
    outs: list[str]
    metric_paths: list[str]
    commit: str | None
    dirty: bool


@dataclass
class _Execution:
    """What the command did: its exit, timing, trace and what it logged."""

    exit_code: int
    started: str
    ended: str
    duration: float
    trace: TraceResult
    params: dict[str, Any]
    metrics: dict[str, float]
    history: dict[str, list[Any]]
    environment: dict[str, Any] | None
    stopped: bool = False


def run_stage(repo: MLRepo, opts: RunOptions, *, quiet: bool = False) -> RunOutcome:
    """Run ``opts.cmd`` and record it: plan, execute, classify outputs, store them,
    classify inputs, write the environment and the run record (each phase below)."""
    warnings: list[str] = []
    plan = _plan(repo, opts)
    ex = _execute(repo, opts, plan, warnings)
    params = {**plan.params, **ex.params}
    metrics = {**ex.metrics, **_metric_files(repo, plan, warnings)}
    index_paths = set(repo.git.index_paths())
    out_refs = _classify_outputs(repo, opts, plan, ex.trace, index_paths, warnings)
    added = _store_outputs(repo, opts, out_refs, ex.exit_code, warnings)
    in_refs = _classify_inputs(repo, opts, plan, ex.trace, index_paths, out_refs)
    to_stage: list[str] = []
    env_id = _save_environment(repo, ex.environment, to_stage)
    record = RunRecord(
        stage=plan.stage, cmd=list(opts.cmd), cwd=plan.cwd_rel, started=ex.started, ended=ex.ended,
        duration_s=round(ex.duration, 3), exit_code=ex.exit_code, git_commit=plan.commit,
        git_dirty=plan.dirty, inputs=sorted(in_refs.values(), key=lambda r: r.path),
        outputs=sorted(out_refs.values(), key=lambda r: r.path),
        params=params, metrics=metrics, env=env_id, processes=_slim(ex.trace.processes),
        tracer=ex.trace.mode, deps=list(opts.deps), outs=list(opts.outs),
        params_files=list(opts.params_files), metrics_files=list(opts.metrics_files), trace=opts.trace,
        history=ex.history,
    )
    rec_rel = run_record_path(plan.stage)
    atomic_write_text(repo.workdir / rec_rel, record.dumps())
    to_stage.append(rec_rel)
    to_stage += [r.path for r in out_refs.values() if r.source == "git"]
    if opts.git_add:
        repo.git.stage(to_stage)
    return RunOutcome(record, rec_rel, warnings, added, stopped=ex.stopped)


def _plan(repo: MLRepo, opts: RunOptions) -> _Plan:
    """Everything that can be wrong with the inputs is checked before the command runs."""
    if not opts.cmd:
        raise RunError("no command to run", "put it after `--`: git ml run -n NAME -- python train.py")
    stage = check_stage_name(opts.stage or default_stage_name(opts.cmd))
    workdir = repo.workdir
    run_dir = (workdir / opts.cwd).resolve()
    params: dict[str, Any] = {}
    param_paths: set[str] = set()
    for file, keys in (params_mod.parse_spec(s) for s in opts.params_files):
        rel = _norm(repo, run_dir, file)
        param_paths.add(rel)
        params.update(params_mod.read_params(workdir / rel, keys, rel))
    deps = [_norm(repo, run_dir, d) for d in opts.deps]
    for d in deps:
        if not (workdir / d).exists():
            raise RunError(f"dependency {d} does not exist", "fix the -d path or create it first")
    commit, dirty = repo.git.head_and_dirty()
    return _Plan(stage=stage, run_dir=run_dir, cwd_rel=repo.relpath(run_dir) or ".", params=params,
                 param_paths=param_paths, deps=deps,
                 outs=[_norm(repo, run_dir, o) for o in opts.outs],
                 metric_paths=[_norm(repo, run_dir, m) for m in opts.metrics_files],
                 commit=commit, dirty=dirty and commit is not None)


def _execute(repo: MLRepo, opts: RunOptions, plan: _Plan, warnings: list[str]) -> _Execution:
    """Run the command under the tracer; ``opts.monitor`` may stop it early (pruning)."""
    started = _now()
    t0 = time.monotonic()
    env_cache = repo.ml_dir / "cache" / "environments"
    stopped = False
    with Tracer(repo.workdir, kernel=opts.trace, audit=opts.trace, env_cache=env_cache) as tracer:
        env = {**tracer.child_env(), **opts.env}
        try:
            proc = subprocess.Popen(opts.cmd, cwd=plan.run_dir, env=env,
                                    stdout=sys.stderr if opts.stdout_to_stderr else None)
        except FileNotFoundError as e:
            raise RunError(f"command not found: {opts.cmd[0]}", "check the spelling and your PATH") from e
        except PermissionError as e:
            raise RunError(f"cannot execute {opts.cmd[0]}: permission denied", "chmod +x it") from e
        stopped = _wait(proc, tracer.tracking_file, opts.monitor)
        exit_code = proc.returncode
        duration = time.monotonic() - t0
        ended = _now()
        trace = tracer.finish() if opts.trace else TraceResult(mode="none")
        warnings += trace.warnings
        t_params, t_metrics, t_history = read_tracking(tracer.tracking_file)
        environment = trace.environment or _environment_fallback(tracer, trace, warnings, env_cache)
    return _Execution(exit_code=exit_code, started=started, ended=ended, duration=duration,
                      trace=trace, params=t_params, metrics=dict(t_metrics), history=t_history,
                      environment=environment, stopped=stopped)


def _wait(proc: subprocess.Popen[bytes], tracking: Path, monitor: Monitor | None) -> bool:
    """Wait for the command; with a monitor, ask it every poll whether to stop (True = stopped)."""
    if monitor is None:
        proc.wait()
        return False
    while True:
        try:
            proc.wait(timeout=MONITOR_POLL_S)
            return False
        except subprocess.TimeoutExpired:
            pass
        if monitor(tracking):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            return True


def _metric_files(repo: MLRepo, plan: _Plan, warnings: list[str]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for m in plan.metric_paths:
        try:
            metrics.update(params_mod.read_metrics(repo.workdir / m, m))
        except ParamsError as e:
            warnings.append(str(e))
    return metrics


def _excluded(opts: RunOptions, p: str) -> bool:
    return any(fnmatch.fnmatch(p, g) or fnmatch.fnmatch(p.rsplit("/", 1)[-1], g) for g in opts.exclude)


def _classify_outputs(repo: MLRepo, opts: RunOptions, plan: _Plan, trace: TraceResult,
                      index_paths: set[str], warnings: list[str]) -> dict[str, FileRef]:
    """Declared outputs, then every traced write: inside an artifact, tracked by Git, a
    params/metrics file of the run, or new (a new folder is one artifact). ``index_paths``
    is the index as the command left it."""
    workdir = repo.workdir
    arts = {ptr.artifact_path_for(p) for p in index_paths if p.endswith(ptr.SUFFIX)}
    own = set(plan.metric_paths) | plan.param_paths
    out_refs: dict[str, FileRef] = {}
    for o in plan.outs:
        if not (workdir / o).exists():
            warnings.append(f"declared output {o} was not written")
            continue
        src = "git" if o in index_paths else ("file" if o in own else "artifact")
        out_refs[o] = FileRef(o, None, source=src, kind="dir" if (workdir / o).is_dir() else "file",
                              declared=True)
    for w in sorted(trace.writes):
        if _excluded(opts, w) or skip_file(w) or _containing(w, set(out_refs)) is not None:
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
    return out_refs


def _store_outputs(repo: MLRepo, opts: RunOptions, out_refs: dict[str, FileRef], exit_code: int,
                   warnings: list[str]) -> list[dict[str, Any]]:
    """Put the artifact outputs of a successful run in the store; fill in every output's id."""
    from gitml.artifacts import worktree

    store_outs = [r.path for r in out_refs.values() if r.source == "artifact"]
    added: list[dict[str, Any]] = []
    if exit_code == 0 and opts.add_outputs and store_outs:
        try:
            results = worktree.add(repo, [repo.workdir / p for p in store_outs])
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
            ref.size = _size(repo.workdir / ref.path)
    return added


def _classify_inputs(repo: MLRepo, opts: RunOptions, plan: _Plan, trace: TraceResult,
                     index_paths: set[str], out_refs: dict[str, FileRef]) -> dict[str, FileRef]:
    """Declared deps and traced reads that are not outputs, each with its content id (the
    outputs' new pointers are not inputs, so the index before storing them serves)."""
    from gitml.artifacts import worktree

    arts = {ptr.artifact_path_for(p) for p in index_paths if p.endswith(ptr.SUFFIX)}
    arts |= {r.path for r in out_refs.values() if r.source == "artifact"}
    in_refs: dict[str, FileRef] = {}
    candidates = [(d, True) for d in plan.deps] + [(r, False) for r in sorted(trace.reads)]
    for path, declared in candidates:
        if _excluded(opts, path) or (not declared and path in plan.param_paths):
            continue
        art = _containing(path, arts)
        target = art or path
        if target in out_refs or _containing(target, set(out_refs)) is not None:
            continue
        if target in in_refs:
            in_refs[target].declared |= declared
            continue
        source = "artifact" if art else ("git" if target in index_paths else "file")
        p = repo.workdir / target
        in_refs[target] = FileRef(target, worktree.current_oid(repo, target), _size(p),
                                  "dir" if p.is_dir() else "file", source, declared)
    return in_refs


def _save_environment(repo: MLRepo, environment: dict[str, Any] | None,
                      to_stage: list[str]) -> str | None:
    """Write the environment under its content id (once); return the id."""
    if not environment:
        return None
    from gitml.runs.environment import environment_id

    # never trust a child-written id as a file name: it is recomputed from the content
    env_id = environment_id(environment)
    environment["id"] = env_id
    rel = env_path(env_id)
    if not (repo.workdir / rel).exists():
        atomic_write_text(repo.workdir / rel, json.dumps(environment, indent=1, sort_keys=True) + "\n")
    to_stage.append(rel)
    return env_id


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


__all__ = ["ENV_DIR", "Monitor", "RunOptions", "RunOutcome", "default_stage_name", "options_from_record",
           "run_stage"]
