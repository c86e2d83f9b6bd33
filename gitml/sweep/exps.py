"""What ``git ml exp`` does with trials: table, diff, apply, branch, remove, push, pull."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from gitml.errors import GitMLError, UsageError
from gitml.git import exps as gx
from gitml.repo import MLRepo
from gitml.store import pointer as ptr
from gitml.sweep.trials import NAME_RE, Trial, list_trials, trial_ref

if TYPE_CHECKING:
    from datetime import datetime


def resolve(repo: MLRepo, name: str) -> str:
    """A trial name (or any revision) -> commit id."""
    if NAME_RE.match(name):
        commit = gx.resolve_ref(repo.git, gx.EXPS_PREFIX + name)
        if commit is not None:
            return commit
    commit = gx.resolve_ref(repo.git, name)
    if commit is None:
        raise GitMLError(f"no experiment or revision named '{name}'", "see `git ml exp show`")
    return commit


# -- table ---------------------------------------------------------------------------
def table(trials: list[Trial], sort: str | None = None, descending: bool = True
          ) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows: name, stage, state, created, then every overridden param, then
    every metric. ``sort`` names a metric or param; trials without it go last."""
    if sort is not None:
        known = {k for t in trials for k in (*t.metrics, *t.params)}
        if trials and sort not in known:
            raise UsageError(f"no metric or param named {sort!r}",
                             f"known: {', '.join(sorted(known)[:20]) or '(none)'}")
        trials = sorted(trials, key=lambda t: _sort_key(t, sort, descending))
    params = sorted({k for t in trials for k in t.overrides})
    metrics = sorted({k for t in trials for k in t.metrics})
    columns = ["name", "stage", "state", "created", *params, *metrics]
    rows = [[t.name, t.stage, t.state, t.created, *(t.overrides.get(p, t.params.get(p)) for p in params),
             *(t.metrics.get(m) for m in metrics)] for t in trials]
    return columns, rows


def _sort_key(t: Trial, key: str, descending: bool) -> tuple[int, float, str]:
    v = t.metrics.get(key, t.params.get(key))
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        return (1, 0.0, str(v))
    return (0, -float(v) if descending else float(v), "")


def to_csv(columns: list[str], rows: list[list[Any]]) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    w.writerows([["" if v is None else v for v in r] for r in rows])
    return buf.getvalue()


def to_records(trials: list[Trial]) -> list[dict[str, Any]]:
    out = []
    for t in trials:
        d = {k: getattr(t, k) for k in ("name", "stage", "state", "commit", "base", "head", "created",
                                        "duration_s", "overhead_s", "exit_code", "params",
                                        "overrides", "metrics", "meta")}
        out.append(d)
    return out


# -- diff / apply / branch -----------------------------------------------------------
def diff(repo: MLRepo, a: str, b: str) -> dict[str, Any]:
    from gitml.runs.diff import diff as run_diff
    from gitml.runs.manifest import load

    return run_diff(repo, load(repo, resolve(repo, a)), load(repo, resolve(repo, b)), data=False)


def apply(repo: MLRepo, name: str) -> list[str]:
    """Bring the trial's changes (params files, run record, output pointers) into the work
    tree and the index, and materialise its artifacts. Refuses to overwrite local edits."""
    from gitml.artifacts import worktree

    commit = resolve(repo, name)
    base = gx.resolve_ref(repo.git, f"{commit}^") or commit
    paths = gx.changed_paths(repo.git, base, commit)
    dirty = set(gx.dirty_paths(repo.git))
    clash = sorted(p for p in paths if p in dirty)
    if clash:
        raise GitMLError(f"local changes to {', '.join(clash[:5])} would be overwritten",
                         "commit or stash them first")
    gx.checkout_paths(repo.git, commit, paths)
    arts = [ptr.artifact_path_for(p) for p in paths if p.endswith(ptr.SUFFIX)]
    if arts:
        worktree.checkout(repo, arts)
    return paths


def branch(repo: MLRepo, name: str, branch_name: str) -> str:
    commit = resolve(repo, name)
    gx.create_branch(repo.git, branch_name, commit)
    return commit


# -- remove --------------------------------------------------------------------------
def remove(repo: MLRepo, names: list[str], before: str | None = None) -> list[str]:
    """Delete trial refs by name, or every trial created before a date (YYYY-MM-DD or ISO)."""
    trials = list_trials(repo)
    by_name = {t.name: t for t in trials}
    chosen: list[str] = []
    for n in names:
        if n not in by_name:
            raise GitMLError(f"no experiment named '{n}'", "see `git ml exp show`")
        chosen.append(n)
    if before is not None:
        cutoff = _parse_date(before)
        chosen += [t.name for t in trials if _parse_date(t.created) < cutoff and t.name not in chosen]
    gx.delete_refs(repo.git, [trial_ref(n) for n in chosen])
    return chosen


def _parse_date(text: str) -> datetime:
    from datetime import UTC, datetime

    try:
        d = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise UsageError(f"invalid date {text!r}", "use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS") from e
    return d if d.tzinfo else d.replace(tzinfo=UTC)


# -- push / pull ---------------------------------------------------------------------
def push(repo: MLRepo, git_remote: str, names: list[str], *, artifacts_remote: str | None = None,
         jobs: int | None = None) -> dict[str, Any]:
    """Upload the trials' artifacts to the gitml remote, then push their refs."""
    from gitml.artifacts import sync

    trials = list_trials(repo)
    if names:
        missing = sorted(set(names) - {t.name for t in trials})
        if missing:
            raise GitMLError(f"no experiment named '{missing[0]}'", "see `git ml exp show`")
        trials = [t for t in trials if t.name in names]
    arts = _artifacts(repo, [t.commit for t in trials])
    stats = None
    if arts:
        remote = sync.open_named_remote(repo, artifacts_remote)
        try:
            stats = sync.push_artifacts(repo, arts, remote=remote, jobs=jobs)
        finally:
            remote.close()
    gx.push_refs(repo.git, git_remote, [f"+{trial_ref(t.name)}:{trial_ref(t.name)}" for t in trials])
    return {"experiments": [t.name for t in trials],
            "objects": stats.transferred if stats else 0, "bytes": stats.bytes if stats else 0}


def pull(repo: MLRepo, git_remote: str, names: list[str], *, artifacts_remote: str | None = None,
         jobs: int | None = None) -> dict[str, Any]:
    """Fetch trial refs from a Git remote, then their artifacts from the gitml remote."""
    from gitml.artifacts import sync

    remote_refs = gx.remote_refs(repo.git, git_remote, gx.EXPS_PREFIX)
    wanted = {r: c for r, c in remote_refs.items() if not names or r[len(gx.EXPS_PREFIX):] in names}
    if names and len(wanted) < len(set(names)):
        got = {r[len(gx.EXPS_PREFIX):] for r in wanted}
        raise GitMLError(f"{git_remote} has no experiment '{sorted(set(names) - got)[0]}'",
                         f"see `git ls-remote {git_remote} '{gx.EXPS_PREFIX}*'`")
    if wanted:
        gx.fetch_refs(repo.git, git_remote, [f"+{r}:{r}" for r in wanted])
    arts = _artifacts(repo, list(wanted.values()))
    stats = sync.fetch_artifacts(repo, arts, remote_name=artifacts_remote, jobs=jobs) if arts else None
    return {"experiments": sorted(r[len(gx.EXPS_PREFIX):] for r in wanted),
            "objects": stats.transferred if stats else 0, "bytes": stats.bytes if stats else 0}


def _artifacts(repo: MLRepo, commits: list[str]) -> list[tuple[str, ptr.Pointer]]:
    """Every artifact the commits point to (deduplicated by content)."""
    from gitml.artifacts import worktree

    out: dict[tuple[str, str], tuple[str, ptr.Pointer]] = {}
    for c in commits:
        for path, p in worktree.pointers(repo, c).items():
            out[(p.oid, p.kind)] = (path, p)
    return list(out.values())
