"""One trial: a stage run with overridden params, committed on ``refs/gitml/exps/<name>``.

The trial runs in a throwaway worktree checked out from a snapshot of the user's work tree
(their edits included), with its artifacts materialised from the shared store. The commit
holds the rewritten params files, the run record, the pointers of the outputs (their bytes
in the store) and, in its message, a one-line JSON summary that ``exp show`` reads for all
trials with one git call.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitml.errors import GitMLError, UsageError
from gitml.git import exps as gx
from gitml.layout import EXP_SUMMARIES
from gitml.repo import MLRepo

if TYPE_CHECKING:  # imported by run_trial only: `exp show` reads summaries, it runs nothing
    from gitml.runs.runner import Monitor, RunOutcome

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
SUMMARY_MARK = "gitml-exp: "
FORMAT = 1


@dataclass
class Trial:
    """The summary of one trial, as kept in its commit message."""

    name: str
    stage: str
    state: str                          # complete | failed | pruned
    params: dict[str, Any]
    metrics: dict[str, float]
    overrides: dict[str, Any]
    base: str                           # the commit the trial started from
    head: str | None                    # the user's HEAD when it started
    created: str
    duration_s: float
    overhead_s: float = 0.0
    exit_code: int = 0
    meta: dict[str, Any] = field(default_factory=dict)   # study, trial number, seed, ...
    commit: str = ""                    # filled in when read back

    def to_json(self) -> str:
        d = asdict(self)
        d.pop("commit")
        return json.dumps({"format": FORMAT, **d}, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_body(cls, body: str, commit: str) -> Trial | None:
        return cls.from_summary(summary_of(body), commit)

    @classmethod
    def from_summary(cls, summary: dict[str, Any] | None, commit: str) -> Trial | None:
        if summary is None:
            return None
        d = dict(summary)
        d.pop("format", None)
        try:
            return cls(**d, commit=commit)
        except TypeError:  # not a summary this version understands
            return None


def summary_of(body: str) -> dict[str, Any] | None:
    """The JSON summary line of a trial commit's message body, parsed (None: not a trial)."""
    for line in body.splitlines():
        if line.startswith(SUMMARY_MARK):
            try:
                d = json.loads(line[len(SUMMARY_MARK):])
            except ValueError:
                return None
            return d if isinstance(d, dict) else None
    return None


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise UsageError(f"invalid experiment name {name!r}",
                         "use letters, digits, '.', '_' or '-', at most 100 characters")
    return name


def trial_ref(name: str) -> str:
    return gx.EXPS_PREFIX + check_name(name)


@dataclass
class TrialSpec:
    stage: str
    values: dict[str, Any]
    name: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    allow_new: bool = False             # a sweep's conditional params need not be in the record


def snapshot(repo: MLRepo) -> str:
    return _snapshot(repo).commit


def _snapshot(repo: MLRepo) -> gx.Snapshot:
    return gx.snapshot_worktree(repo.git, "gitml exp: work tree snapshot\n")


def run_trial(repo: MLRepo, spec: TrialSpec, *, base: str | None = None,
              monitor: Monitor | None = None, quiet: bool = True,
              on_start: Callable[[Path], None] | None = None) -> Trial:
    """Run one trial and commit it; the user's branch, index and work tree are untouched."""
    from gitml.artifacts import worktree
    from gitml.runs import overrides as ov
    from gitml.runs.records import load_run_record
    from gitml.runs.runner import options_from_record, run_stage

    t0 = time.monotonic()
    if spec.name is not None:
        check_name(spec.name)
    if base is None:
        snap = _snapshot(repo)
        base, head = snap.commit, snap.head
    else:
        head = repo.git.head()
    wt = gx.add_worktree(repo.git, base)
    try:
        wrepo = MLRepo(gx.worktree_git(repo.git, wt))
        rec = load_run_record(wt, spec.stage)
        if rec is None:
            raise GitMLError(f"no run record for stage '{spec.stage}' in the work tree",
                             f"run it once first: git ml run -n {spec.stage} -- CMD")
        if not spec.allow_new:
            _check_known(wt, rec.cwd, rec.params_files, rec.cmd, rec.params, spec.values)
        worktree.checkout(wrepo)
        applied = ov.apply(wt, rec.cwd, rec.params_files, rec.cmd, spec.values, rec.params)
        if on_start is not None:
            on_start(wt)
        t_run = time.monotonic()
        outcome = run_stage(wrepo, options_from_record(
            rec, cmd=applied.cmd, env=applied.env, monitor=monitor, stdout_to_stderr=True,
            git_add=False),
            quiet=quiet)
        run_s = time.monotonic() - t_run
        missing = ov.unused(applied, outcome.record.params)
        if missing and not outcome.stopped and outcome.record.exit_code == 0:
            raise UsageError(
                f"stage '{spec.stage}' does not read param(s) {', '.join(missing)}",
                "name a key of its params files, a --flag of its command, or a gitml.log_param call")
        trial = _summary(spec, outcome, base, head, run_s)
        # os.urandom, as secrets.token_hex uses (importing secrets costs ~5 ms per command)
        name = spec.name or f"{spec.stage}-{os.urandom(3).hex()}"
        trial.name = name
        message = f"gitml exp {name} ({spec.stage}, {trial.state})\n\n{SUMMARY_MARK}{{}}\n"
        trial.overhead_s = round(max(0.0, time.monotonic() - t0 - outcome.record.duration_s), 3)
        commit = gx.commit_worktree(wt, base, message.replace("{}", trial.to_json()))
        gx.update_ref(repo.git, trial_ref(name), commit, old="")
        trial.commit = commit
        return trial
    finally:
        gx.remove_worktree(repo.git, wt)


def _check_known(wt: Path, cwd: str, params_files: list[str], cmd: list[str],
                 recorded: dict[str, Any], values: dict[str, Any]) -> None:
    from gitml.runs import params as params_mod

    known = set(recorded)
    for spec in params_files:
        file, _ = params_mod.parse_spec(spec)
        try:
            known |= set(params_mod.flatten(params_mod.load_file(wt / cwd / file, file)))
        except GitMLError:
            continue
    unknown = [k for k in values if k not in known
               and not any(a == f"--{k}" or a.startswith((f"--{k}=", f"{k}=")) for a in cmd)]
    if unknown:
        raise UsageError(f"unknown param(s) {', '.join(sorted(unknown))}",
                         f"the stage's params are: {', '.join(sorted(known)[:20]) or '(none)'}")


def _summary(spec: TrialSpec, outcome: RunOutcome, base: str, head: str | None,
             run_s: float) -> Trial:
    rec = outcome.record
    state = "pruned" if outcome.stopped else ("complete" if rec.exit_code == 0 else "failed")
    return Trial(name="", stage=spec.stage, state=state, params=rec.params, metrics=rec.metrics,
                 overrides=dict(spec.values), base=base, head=head,
                 created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 duration_s=round(run_s, 3), exit_code=rec.exit_code, meta=dict(spec.meta))


def list_trials(repo: MLRepo) -> list[Trial]:
    """Every trial in this repository, oldest first.

    Git lists the refs (no object read); the summaries come from a cache keyed by commit
    id (a commit never changes, so an entry is never stale), and only the commits it lacks
    are read, in one call. 1,000 trials cost one small listing instead of 1,000 object
    reads streamed through a pipe, which under load made the wall time ~10x the CPU time."""
    refs = gx.ref_commits(repo.git, gx.EXPS_PREFIX)
    path = repo.ml_dir / EXP_SUMMARIES
    cache = _load_summaries(path)
    missing = sorted({c for c in refs.values() if c not in cache})
    for commit, body in gx.commit_bodies(repo.git, missing).items():
        cache[commit] = summary_of(body)
    live = {c: cache[c] for c in set(refs.values()) if c in cache}
    if missing or len(live) != len(cache):
        _save_summaries(path, live)
    out = []
    for ref, commit in refs.items():
        t = Trial.from_summary(live.get(commit), commit)
        if t is not None:
            t.name = ref[len(gx.EXPS_PREFIX):]
            out.append(t)
    out.sort(key=lambda t: (t.created, t.name))
    return out


_CACHE_FORMAT = 1


def _load_summaries(path: Path) -> dict[str, dict[str, Any] | None]:
    """commit -> summary (None: a commit under the prefix that is not a trial); an
    unreadable or foreign cache is treated as empty."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != _CACHE_FORMAT:
        return {}
    summaries = data.get("summaries")
    if not isinstance(summaries, dict):
        return {}
    return {c: d for c, d in summaries.items() if d is None or isinstance(d, dict)}


def _save_summaries(path: Path, summaries: dict[str, dict[str, Any] | None]) -> None:
    from gitml.store.fsutil import atomic_write_text

    with contextlib.suppress(OSError):  # a cache: the next listing reads the commits again
        atomic_write_text(path, json.dumps({"format": _CACHE_FORMAT, "summaries": summaries},
                                           sort_keys=True))


def get_trial(repo: MLRepo, name: str) -> Trial:
    for t in list_trials(repo):
        if t.name == name:
            return t
    raise GitMLError(f"no experiment named '{name}'", "see `git ml exp show`")
