"""Retraining: re-run the recorded training lineage of the deployed model on new data, on
a new branch, commit through the gates, register the next version, and promote it only
when it beats the deployed one on the new data.

1. The deployed version (the deploy state's active version, else the version in the
   stage, else the newest registered one) and its commit.
2. Its lineage: the run records at that commit whose outputs lead to the model file
   (``.gitml/runs/*.json``, the same graph ``git ml repro`` walks). The training table is
   the one table among those stages' inputs that no stage writes and that is not the
   evaluation data (or ``[monitor.NAME] train_data``).
3. New data: ``--data PATH`` (a table with the training table's columns), or
   ``--from-traffic`` (labelled traffic of the ``--since`` span: ``in.<col>`` and the
   joined label as the target), appended to the training table or replacing it
   (``[monitor.NAME] retrain_mode = "append" | "replace"``). 30% of the new rows are held
   out of the training; they join (or replace) the evaluation data as well
   (``refresh_eval = false`` keeps it), so the gates judge the new model on the new data.
4. A Git worktree on a new branch ``retrain/NAME/<time>`` from the deployed commit: the
   table is replaced and added, :func:`gitml.runs.repro.repro` re-runs the stale stages,
   and ``git commit`` runs the pre-commit gates (installed hooks are required: a retrained
   model is never committed around them).
5. The registry registers the commit (its recorded gates must have passed). The new and
   deployed models are compared on new rows held out of the training (30%, seeded) with
   the regression gate's statistic (the
   paired bootstrap interval of each ``max_regression`` metric): the new version is
   promoted (``--auto-promote``) only when the interval of the first metric is above zero
   and no metric is worse beyond its tolerance; otherwise it is left for review.

Every step's reason lands in Git: the commit message, the version tag's message and the
stage tag's message, so ``git ml history NAME`` tells the story.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gitml.errors import ConfigError, GitMLError, UsageError

if TYPE_CHECKING:
    import pandas as pd

    from gitml.models.spec import ModelSpec
    from gitml.repo import MLRepo

TABLES = (".parquet", ".pq", ".csv", ".tsv")


@dataclass
class RetrainResult:
    model: str
    base_version: str
    base_commit: str
    branch: str
    commit: str | None = None
    version: str | None = None
    tag: str | None = None
    train_data: str = ""
    rows_added: int = 0
    eval_refreshed: bool = False
    mode: str = "append"
    stages: list[str] = field(default_factory=list)
    comparison: dict[str, Any] = field(default_factory=dict)
    beats: bool = False
    promoted: str | None = None  # the stage tag
    deployed: bool = False
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------- what to retrain
def deployed_version(repo: MLRepo, name: str, target: str | None = None,
                     stage: str = "prod") -> tuple[str, str]:
    """(version without 'v', commit) of what serves now on the target, else the version
    in ``stage``, else the newest registered one."""
    from gitml.git import registry as reg_state
    from gitml.models.spec import one_spec
    from gitml.monitor.check import version_commit
    from gitml.registry import deploy
    from gitml.registry.settings import load_settings

    spec = one_spec(repo, name)
    try:
        t = load_settings(repo).target(target)
        st = deploy.read_state(deploy.state_file(repo, t.name, name))
    except GitMLError:
        st = None
    if st and st.get("active"):
        v = str(st["active"]).removeprefix("v")
        return v, version_commit(repo, spec, v)
    art = reg_state.load(repo.git, name).artifacts.get(name)
    chosen = None
    if art is not None:
        in_stage = art.stages().get(stage)
        chosen = in_stage[0] if in_stage else art.latest()
    if chosen is None:
        raise GitMLError(f"{name} has no deployed or registered version to retrain",
                         f"git ml register {name}")
    return chosen.version.removeprefix("v"), chosen.commit


def lineage(workdir: Path, spec: ModelSpec) -> tuple[list[str], list[str]]:
    """(stages that lead to the model, their source tables) from the run records."""
    from gitml.runs.records import load_run_records
    from gitml.runs.repro import dependencies

    runs = load_run_records(workdir)
    if not runs:
        raise GitMLError(f"{spec.name}: no run records at the deployed commit: nothing to re-run",
                         "record the training: git ml run -n train -- python train.py")

    def writes(rec: Any, path: str) -> bool:
        return any(o.path == path or path.startswith(o.path.rstrip("/") + "/") for o in rec.outputs)

    final = [s for s, r in runs.items() if writes(r, spec.path)]
    if not final:
        raise GitMLError(f"{spec.name}: no recorded stage writes {spec.path}",
                         "record the training with git ml run so it can be re-run")
    deps = dependencies(runs)
    wanted: set[str] = set()
    stack = list(final)
    while stack:
        s = stack.pop()
        if s not in wanted:
            wanted.add(s)
            stack.extend(deps[s])
    written = {o.path for s in wanted for o in runs[s].outputs}
    sources = sorted({i.path for s in wanted for i in runs[s].inputs
                      if i.path.lower().endswith(TABLES) and i.path not in written
                      and i.path != spec.data})
    return sorted(wanted), sources


def _new_rows(repo: MLRepo, spec: ModelSpec, data: Path | None, from_traffic: bool,
              since: float, labels_file: Path | None) -> pd.DataFrame:
    import pandas as pd

    from gitml.models.tables import read_frame

    if data is not None:
        return read_frame(data)
    if not from_traffic:
        raise UsageError("give --data PATH or --from-traffic", f"git ml retrain {spec.name} --from-traffic")
    from gitml.monitor.check import join_labels, read_labels, read_log, traffic_dir
    from gitml.monitor.stats import IN

    folder = traffic_dir(repo, spec.name)
    traffic = read_log(folder, time.time() - since)
    joined = join_labels(traffic, read_labels(folder, labels_file))
    if joined.empty or "label" not in joined.columns or joined["label"].isna().all():
        raise GitMLError(f"{spec.name}: no labelled traffic in the span",
                         "send labels (POST /feedback or --labels FILE), or give --data PATH")
    lab = joined[joined["label"].notna() & (joined["status"] < 400)]
    cols = {c: c[len(IN):] for c in lab.columns if c.startswith(IN)}
    out = lab[list(cols)].rename(columns=cols).reset_index(drop=True)
    out[spec.target] = lab["label"].to_numpy()
    return pd.DataFrame(out)


def _conform(new: pd.DataFrame, like: pd.DataFrame, where: str) -> pd.DataFrame:
    missing = [c for c in like.columns if c not in new.columns]
    if missing:
        raise UsageError(f"{where}: column {missing[0]!r} of the training table is missing",
                         f"the new data needs the columns {', '.join(map(str, like.columns))}")
    out = new[list(like.columns)].copy()
    for c in like.columns:
        try:
            out[c] = out[c].astype(like[c].dtype)
        except (TypeError, ValueError) as e:
            raise UsageError(f"{where}: column {c!r} cannot be read as {like[c].dtype}: {e}") from e
    return out


def _write_table(df: pd.DataFrame, path: Path) -> None:
    import io

    from gitml.store.fsutil import atomic_write_bytes

    if path.suffix.lower() in (".parquet", ".pq"):
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        atomic_write_bytes(path, buf.getvalue())
    else:
        atomic_write_bytes(path, df.to_csv(index=False, sep="\t" if path.suffix == ".tsv" else ",").encode())


# ---------------------------------------------------------------------------- comparing
def holdout(rows: pd.DataFrame, seed: int, share: float = 0.3,
            minimum: int = 50) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows to train on, rows to judge on): the comparison must not use rows the new
    model was trained on, or it would always look better."""
    import numpy as np

    n_out = max(minimum, round(share * len(rows)))
    if len(rows) < 2 * minimum:
        raise UsageError(f"only {len(rows)} new labelled rows: too few to retrain on and judge",
                         f"at least {2 * minimum} are needed")
    order = np.random.default_rng(seed).permutation(len(rows))
    return (rows.iloc[np.sort(order[n_out:])].reset_index(drop=True),
            rows.iloc[np.sort(order[:n_out])].reset_index(drop=True))


def compare(repo: MLRepo, spec: ModelSpec, new_commit: str, base_commit: str,
            data: pd.DataFrame) -> tuple[bool, dict[str, Any]]:
    """Does the new model beat the deployed one on ``data``? The regression gate's paired
    bootstrap interval of every ``max_regression`` metric (accuracy / rmse by default)."""
    from gitml.checks.evaluate import paired_difference, predict
    from gitml.models.load import load_model

    new_model, _ = load_model(repo, spec, rev=new_commit)
    base_model, _ = load_model(repo, spec, rev=base_commit)
    new_p, base_p = predict(new_model, spec, data), predict(base_model, spec, data)
    tolerances: dict[str, float] = dict(spec.gates.get("max_regression") or {})
    if not tolerances:
        tolerances = {"accuracy" if spec.task == "classification" else "rmse": 0.0}
    out: dict[str, Any] = {"rows": len(data), "confidence": spec.confidence, "metrics": {}}
    beats = True
    for i, (metric, tol) in enumerate(tolerances.items()):
        d = paired_difference(metric, new_p, base_p, n_boot=spec.n_bootstrap,
                              confidence=spec.confidence, seed=spec.seed)
        d["tolerance"] = tol
        out["metrics"][metric] = d
        if i == 0 and not d["ci_low"] > 0:
            beats = False
        if d["ci_high"] < -tol:
            beats = False
    return beats, out


# ---------------------------------------------------------------------------- the loop
def retrain(repo: MLRepo, name: str, *, data: Path | None = None, from_traffic: bool = False,
            since: float = 86400.0, labels_file: Path | None = None,
            auto_promote: bool = False, stage: str = "prod", target: str | None = None,
            mode: Literal["append", "replace"] | None = None, reason: str = "on demand",
            log: Any = None) -> RetrainResult:
    from gitml.models.spec import one_spec
    from gitml.monitor import events
    from gitml.repo import MLRepo as _MLRepo

    say = log or (lambda msg: None)
    spec = one_spec(repo, name)
    section = repo.config.section("monitor")
    own_raw = section.get(name)
    own: dict[str, Any] = own_raw if isinstance(own_raw, dict) else {}
    mode = mode or own.get("retrain_mode") or section.get("retrain_mode") or "append"
    if mode not in ("append", "replace"):
        raise ConfigError(f"monitor.{name}.retrain_mode = {mode!r} is unknown", "use 'append' or 'replace'")
    hooks = repo.git.hooks_dir() / "pre-commit"
    if not hooks.is_file() or "git-ml-hook" not in hooks.read_text(errors="replace"):
        raise GitMLError("the gitml hooks are not installed: a retrained model must commit through the gates",
                         "git ml install")
    base_version, base_commit = deployed_version(repo, name, target, stage)
    new = _new_rows(repo, spec, data, from_traffic, since, labels_file)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    branch = f"retrain/{name}/{stamp}"
    res = RetrainResult(name, base_version, base_commit, branch, mode=str(mode))
    wt = Path(tempfile.mkdtemp(prefix=f"gitml-retrain-{name}-")) / "wt"
    say(f"new branch {branch} from {name} {base_version} ({base_commit[:10]}) in {wt}")
    repo.git.run_git("worktree", "add", "-q", "-b", branch, str(wt), base_commit)
    try:
        wrepo = _MLRepo.discover(wt)
        from gitml.artifacts import worktree as workspace

        workspace.checkout(wrepo)
        stages, sources = lineage(wt, spec)
        train_path = own.get("train_data") or section.get("train_data")
        if train_path is None:
            if len(sources) != 1:
                raise ConfigError(f"{name}: cannot tell the training table among "
                                  f"{', '.join(sources) or 'no tables'}",
                                  f'set [monitor.{name}] train_data = "data/train.parquet"')
            train_path = sources[0]
        res.train_data, res.stages = str(train_path), stages
        from gitml.models.tables import read_frame

        current = read_frame(wt / str(train_path))
        import pandas as pd

        rows, held_out = holdout(_conform(new, current, "the new data"), spec.seed)

        table = pd.concat([current, rows], ignore_index=True) if mode == "append" else rows
        res.rows_added = len(rows)
        _write_table(table, wt / str(train_path))
        changed = [wt / str(train_path)]
        refresh = own.get("refresh_eval", section.get("refresh_eval", True))
        if refresh and (wt / spec.data).is_file():
            # the gates (and their regression test against the deployed version) judge on
            # the new data too: the held-out rows join (or replace) the evaluation data
            old_eval = read_frame(wt / spec.data)
            fresh = _conform(held_out, old_eval, "the new data (evaluation columns)")
            _write_table(pd.concat([old_eval, fresh], ignore_index=True) if mode == "append"
                         else fresh, wt / spec.data)
            changed.append(wt / spec.data)
            res.eval_refreshed = True
        workspace.add(wrepo, changed)
        say(f"{mode} {len(rows)} rows to {train_path}"
            + (f" and {len(held_out)} held-out rows to {spec.data}" if res.eval_refreshed else "")
            + f"; re-running {', '.join(stages)}")
        from gitml.runs.repro import repro

        statuses = repro(wrepo, stages, quiet=True, stdout_to_stderr=True)
        failed = [s for s in statuses if s.ran and s.exit_code != 0]
        if failed:
            raise GitMLError(f"retraining stage {failed[0].stage} failed (exit {failed[0].exit_code})",
                             f"see the branch {branch}")
        msg = (f"Retrain {name} on {len(rows)} new rows ({mode}) from {base_version}\n\n"
               f"Reason: {reason}\nBase: {name} {base_version} ({base_commit})\n"
               f"Stages re-run: {', '.join(s.stage for s in statuses if s.ran)}\n")
        say("committing through the gates")
        try:
            wrepo.git.run_git("commit", "-q", "-m", msg)
        except GitMLError as e:
            raise GitMLError(f"the gates refused the retrained {name}: {_failed_gates(wt, name) or e.message}",
                             f"inspect the branch {branch}") from e
        res.commit = wrepo.git.resolve("HEAD")
        from gitml.registry import ops

        reg = ops.register(repo, name, res.commit, part="minor",
                           message=f"Registering artifact {name}: retrained from {base_version} "
                                   f"on {len(rows)} new rows ({reason})")
        res.version, res.tag = reg.version, reg.tag
        say(f"registered {reg.tag}")
        beats, res.comparison = compare(repo, spec, res.commit, base_commit, held_out)
        res.beats = beats
        first = next(iter(res.comparison["metrics"].items()))
        summary = (f"{first[0]} {first[1]['difference']:+.4f} "
                   f"[{first[1]['ci_low']:+.4f}, {first[1]['ci_high']:+.4f}] on {len(held_out)} "
                   "held-out new rows")
        if auto_promote and beats:
            tag = ops.promote(repo, name, reg.version.removeprefix("v"), stage,
                              message=f"Assigning stage {stage} to artifact {name} version {reg.version}: "
                                      f"retrained model beats {base_version} ({summary})")
            res.promoted = tag.tag
            res.deployed = _ensure_deployed(repo, name, reg.version.removeprefix("v"), stage, target, say)
            res.message = f"{reg.version} beats {base_version} ({summary}): promoted to {stage}"
        elif beats:
            res.message = f"{reg.version} beats {base_version} ({summary}); left for review (no --auto-promote)"
        else:
            res.message = f"{reg.version} does not beat {base_version} ({summary}); left for review"
        events.record(repo, name, "retrain", version=res.version, base=base_version,
                      commit=res.commit, branch=branch, beats=beats, promoted=res.promoted,
                      message=res.message)
        return res
    finally:
        repo.git.run_git("worktree", "remove", "--force", str(wt), check=False)


def _failed_gates(wt: Path, name: str) -> str:
    """The failing gates' messages from the results the pre-commit hook wrote."""
    import json

    from gitml.checks.results import results_relpath

    try:
        doc = json.loads((wt / results_relpath(name)).read_text())
    except (OSError, ValueError):
        return ""
    return "; ".join(f"{r.get('gate')}: {r.get('message')}" for r in doc.get("results", [])
                     if not r.get("passed") and r.get("blocking", True) and not r.get("skipped"))


def _ensure_deployed(repo: MLRepo, name: str, version: str, stage: str, target: str | None,
                     say: Any) -> bool:
    """The stage tag's hook deploys when installed; if the server still serves the old
    version, deploy explicitly (the same function the hook runs)."""
    from gitml.registry import deploy
    from gitml.registry.settings import load_settings

    try:
        t = load_settings(repo).target(target)
    except GitMLError:
        return False
    st = deploy.read_state(deploy.state_file(repo, t.name, name))
    if st is None:
        return False  # nothing is served on this target: promotion only
    if str(st.get("active")) != version:
        say(f"deploying {name}#{stage} to {t.name}")
        deploy.deploy(repo, f"{name}#{stage}", t.name, grace=0)
    st = deploy.read_state(deploy.state_file(repo, t.name, name))
    return bool(st and str(st.get("active")) == version)
