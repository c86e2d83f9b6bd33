"""``git ml repro``: re-run the stages whose inputs, params or outputs changed, in order.

Stages come from the run records in the work tree. Stage B depends on stage A when B
read something A wrote. Stages are visited in dependency order and each is checked just
before it would run, so a re-run upstream stage whose outputs changed makes its
dependants stale, and one whose outputs came out identical does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gitml.errors import GitMLError
from gitml.repo import MLRepo
from gitml.runs import params as params_mod
from gitml.runs.errors import ManifestError, ParamsError
from gitml.runs.records import RunRecord, load_run_records


@dataclass
class StageStatus:
    stage: str
    stale: bool
    reasons: list[str] = field(default_factory=list)
    ran: bool = False
    exit_code: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "stale": self.stale, "reasons": self.reasons, "ran": self.ran,
                "exit_code": self.exit_code}


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def dependencies(runs: dict[str, RunRecord]) -> dict[str, set[str]]:
    """stage -> the stages it read outputs of."""
    deps: dict[str, set[str]] = {s: set() for s in runs}
    for s, rec in runs.items():
        for other, orec in runs.items():
            if other == s:
                continue
            if any(_within(i.path, o.path) or _within(o.path, i.path)
                   for i in rec.inputs for o in orec.outputs):
                deps[s].add(other)
    return deps


def order(runs: dict[str, RunRecord]) -> list[str]:
    """Stages in dependency order (ties by name); a cycle is an error."""
    deps = dependencies(runs)
    done: list[str] = []
    pending = dict(deps)
    while pending:
        ready = sorted(s for s, d in pending.items() if not (d - set(done)))
        if not ready:
            cycle = ", ".join(sorted(pending))
            raise ManifestError(f"the stages {cycle} depend on each other in a cycle",
                                "make one of them stop reading what another writes (use -x to exclude it)")
        for s in ready:
            done.append(s)
            del pending[s]
    return done


def staleness(repo: MLRepo, rec: RunRecord) -> list[str]:
    """Why ``rec`` needs to run again (empty: up to date)."""
    from gitml.artifacts import worktree

    reasons: list[str] = []
    if rec.exit_code != 0:
        return [f"last run failed (exit {rec.exit_code})"]
    for ref in rec.inputs:
        cur = worktree.current_oid(repo, ref.path)
        if cur is None:
            reasons.append(f"input {ref.path} is missing")
        elif cur != ref.oid:
            reasons.append(f"input {ref.path} changed")
    for ref in rec.outputs:
        if ref.source == "artifact":
            try:
                p = worktree.worktree_pointer(repo, ref.path)
            except GitMLError:  # unreadable pointer: reported as stale below
                p = None
            if p is None:
                reasons.append(f"output {ref.path} has no pointer")
            elif p.oid != ref.oid:
                reasons.append(f"output {ref.path} changed since the run")
        elif not (repo.workdir / ref.path).exists():
            reasons.append(f"output {ref.path} is missing")
    for spec in rec.params_files:
        file, keys = params_mod.parse_spec(spec)
        base = repo.workdir / rec.cwd
        rel = repo.relpath(base / file)
        try:
            now = params_mod.read_params(repo.workdir / rel, keys, rel)
        except ParamsError as e:
            reasons.append(f"params: {e.message}")
            continue
        for k, v in now.items():
            if rec.params.get(k) != v:
                reasons.append(f"param {k} changed: {rec.params.get(k)!r} -> {v!r}")
    return reasons


def repro(repo: MLRepo, targets: list[str] | None = None, *, force: bool = False, dry_run: bool = False,
          quiet: bool = False, stdout_to_stderr: bool = False) -> list[StageStatus]:
    from gitml.runs.runner import options_from_record, run_stage

    runs = load_run_records(repo.workdir)
    if not runs:
        raise ManifestError("no run records in .gitml/runs", "record a stage first: git ml run -n NAME -- CMD")
    deps = dependencies(runs)
    wanted = set(runs)
    if targets:
        missing = [t for t in targets if t not in runs]
        if missing:
            raise ManifestError(f"no such stage: {', '.join(missing)}",
                                f"stages are: {', '.join(sorted(runs))}")
        wanted = set()
        stack = list(targets)
        while stack:
            s = stack.pop()
            if s not in wanted:
                wanted.add(s)
                stack.extend(deps[s])
    out: list[StageStatus] = []
    rerun: set[str] = set()
    for stage in order(runs):
        if stage not in wanted:
            continue
        rec = runs[stage]
        reasons = ["forced"] if force else staleness(repo, rec)
        if dry_run and not reasons and deps[stage] & rerun:
            reasons = [f"upstream stage {', '.join(sorted(deps[stage] & rerun))} is stale"]
        st = StageStatus(stage, bool(reasons), reasons)
        out.append(st)
        if not reasons:
            continue
        rerun.add(stage)
        if dry_run:
            continue
        if not quiet:
            import sys

            print(f"gitml: running stage '{stage}': {'; '.join(reasons)}", file=sys.stderr)
        outcome = run_stage(repo, options_from_record(rec, stdout_to_stderr=stdout_to_stderr),
                            quiet=quiet)
        st.ran = True
        st.exit_code = outcome.record.exit_code
        if outcome.record.exit_code != 0:
            break  # dependants would read stale or missing inputs
    return out
