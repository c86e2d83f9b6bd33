"""``git ml sweep``: Optuna drives the search, every trial is a ``git ml exp`` trial.

The loop is Optuna's ask-and-tell: a worker thread asks for a trial, samples the space
(define-by-run, so conditional parameters are only sampled when their condition holds),
runs the stage in its own throwaway worktree and tells the result back. ``-j K`` runs K
such threads; more machines join by pointing ``--storage`` at one database: trial numbers
come from the storage, so trial names (``<study>-<number>``) never collide.

While a trial runs, the first objective's step history (``log_metric(..., step=)``) is
reported to the pruner, which may stop the command early.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitml.errors import GitMLError, UsageError
from gitml.repo import MLRepo
from gitml.sweep.space import Param, Space
from gitml.sweep.trials import Trial, TrialSpec, check_name, run_trial, snapshot

if TYPE_CHECKING:
    import optuna

SAMPLERS = ("tpe", "gp", "random")
PRUNERS = ("median", "none")


@dataclass
class SweepOptions:
    stage: str
    space: Space
    trials: int
    objectives: list[tuple[str, str]]          # (metric, "maximize" | "minimize")
    jobs: int = 1
    sampler: str = "tpe"
    pruner: str = "median"
    prune_after: int = 5                       # complete trials before the pruner may stop one
    storage: str | None = None
    study: str | None = None
    seed: int | None = None


@dataclass
class SweepResult:
    study: str
    storage: str
    trials: list[Trial] = field(default_factory=list)      # run by this process
    failures: list[str] = field(default_factory=list)
    best: list[Trial] = field(default_factory=list)        # Pareto front (one trial if single)


def study_name(stage: str, space: Space) -> str:
    """Same stage and space file -> same study, so workers on other machines join it."""
    import xxhash

    text = json.dumps([p.__dict__ for p in space.params], sort_keys=True, default=str)
    return f"{stage}-{xxhash.xxh3_64_hexdigest(text.encode())[:8]}"


def default_storage(repo: MLRepo) -> str:
    return f"journal:{repo.ml_dir / 'sweeps' / 'journal.log'}"


def open_storage(url: str) -> Any:
    import optuna

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url[len("journal:"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    import time

    # Workers starting together race to create the schema; the loser finds it made on retry.
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url)
        except ImportError as e:
            raise GitMLError(f"the storage {url.split(':', 1)[0]} needs a database driver: {e}",
                             "pip install 'psycopg[binary]' (PostgreSQL) or pymysql (MySQL)") from e
        except Exception as e:  # SQLAlchemy raises many kinds for a bad URL or unreachable server
            if attempt == 4:
                raise GitMLError(f"cannot open the storage: {str(e).splitlines()[0]}",
                                 "check the --storage URL and that the database is reachable") from e
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def make_sampler(name: str, seed: int | None, n_objectives: int) -> Any:
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        from gitml.sweep.gp import make_gp_sampler

        return make_gp_sampler(seed, n_objectives)
    raise UsageError(f"unknown sampler {name!r}", f"use one of {', '.join(SAMPLERS)}")


def suggest(trial: optuna.Trial, space: Space) -> dict[str, Any]:
    chosen: dict[str, Any] = {}
    for p in space.params:
        if p.active(chosen):
            chosen[p.name] = _suggest_one(trial, p)
    return chosen


def _suggest_one(trial: optuna.Trial, p: Param) -> Any:
    assert p.low is not None or p.type == "categorical"
    if p.type == "categorical":
        return trial.suggest_categorical(p.name, list(p.choices))
    assert p.low is not None and p.high is not None
    if p.type == "int":
        return trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log, step=int(p.step or 1))
    return trial.suggest_float(p.name, p.low, p.high, log=p.log, step=p.step)


class _StepReporter:
    """The run's monitor: feeds the objective's new step values to the pruner."""

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial = trial
        self.metric = metric
        self.offset = 0
        self.last_step: int | None = None

    def __call__(self, tracking: Path) -> bool:
        try:
            with open(tracking, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return False
        end = chunk.rfind(b"\n") + 1  # only whole lines
        self.offset += end
        reported = False
        for line in chunk[:end].splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            step = row.get("step")
            if (row.get("kind") == "metric" and row.get("name") == self.metric
                    and isinstance(step, int) and (self.last_step is None or step > self.last_step)):
                self.trial.report(float(row["value"]), step)
                self.last_step = step
                reported = True
        return reported and self.trial.should_prune()


def run_sweep(repo: MLRepo, opts: SweepOptions,
              progress: Callable[[Trial | None, str | None], None] | None = None) -> SweepResult:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if opts.trials < 1 or opts.jobs < 1:
        raise UsageError("--trials and -j must be at least 1")
    if not opts.objectives:
        raise UsageError("name what to optimise", "--objective METRIC:max (or set objectives in [sweep])")
    name = check_name(opts.study or study_name(opts.stage, opts.space))
    url = opts.storage or default_storage(repo)
    single = len(opts.objectives) == 1
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=opts.prune_after, n_warmup_steps=1)
              if opts.pruner == "median" and single else optuna.pruners.NopPruner())
    study = optuna.create_study(
        study_name=name, storage=open_storage(url), load_if_exists=True,
        sampler=make_sampler(opts.sampler, opts.seed, len(opts.objectives)), pruner=pruner,
        directions=[d for _, d in opts.objectives])  # type: ignore[misc]
    result = SweepResult(study=name, storage=url)
    base = snapshot(repo)
    lock = threading.Lock()
    fatal: list[BaseException] = []

    def worker() -> None:
        try:
            work()
        except BaseException as e:  # a bug or an Optuna/storage error: stop every worker, re-raise below
            with lock:
                fatal.append(e)

    def work() -> None:
        while True:
            with lock:
                if fatal or len(study.get_trials(deepcopy=False)) >= opts.trials:
                    return
                ot = study.ask()
            try:
                trial = _one(repo, opts, study, ot, name, base)
            except GitMLError as e:
                study.tell(ot, state=optuna.trial.TrialState.FAIL)
                if isinstance(e, UsageError):
                    with lock:
                        fatal.append(e)
                    return
                with lock:
                    result.failures.append(f"trial {ot.number}: {e}")
                if progress:
                    progress(None, str(e))
                continue
            with lock:
                result.trials.append(trial)
            if progress:
                progress(trial, None)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(opts.jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if fatal:
        raise fatal[0]
    result.best = best_trials(repo, study, name)
    return result


def _one(repo: MLRepo, opts: SweepOptions, study: optuna.Study, ot: optuna.Trial, name: str,
         base: str) -> Trial:
    import optuna

    values = suggest(ot, opts.space)
    monitor = _StepReporter(ot, opts.objectives[0][0]) if len(opts.objectives) == 1 else None
    spec = TrialSpec(opts.stage, values, name=f"{name}-{ot.number}",
                     meta={"study": name, "number": ot.number, "sampler": opts.sampler},
                     allow_new=True)
    trial = run_trial(repo, spec, base=base, monitor=monitor)
    if trial.state == "pruned":
        study.tell(ot, state=optuna.trial.TrialState.PRUNED)
        return trial
    if trial.state != "complete":
        study.tell(ot, state=optuna.trial.TrialState.FAIL)
        return trial
    missing = [m for m, _ in opts.objectives if m not in trial.metrics]
    if missing:  # the caller marks the Optuna trial failed
        raise UsageError(f"stage '{opts.stage}' did not record metric {missing[0]!r}",
                         f"it records: {', '.join(sorted(trial.metrics)) or '(nothing)'}")
    study.tell(ot, [float(trial.metrics[m]) for m, _ in opts.objectives])
    return trial


def best_trials(repo: MLRepo, study: optuna.Study, name: str) -> list[Trial]:
    """The study's best trial (single objective) or Pareto front, as Git trials."""
    from gitml.sweep.trials import list_trials

    try:
        numbers = [t.number for t in study.best_trials]
    except ValueError:
        return []
    by_number = {t.meta.get("number"): t for t in list_trials(repo) if t.meta.get("study") == name}
    return [by_number[n] for n in numbers if n in by_number]
