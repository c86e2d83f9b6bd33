from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gitml.cli.output import print_json, print_table, say

SPACE_HELP = """\
space file (TOML), one table per parameter:
  [params.C]       type = "float", low = 0.001, high = 100, log = true
  [params.depth]   type = "int", low = 2, high = 12
  [params.family]  type = "categorical", choices = ["logreg", "mlp"]
  [params.units]   type = "int", low = 8, high = 256, log = true, condition = { family = "mlp" }
optional [sweep]: objectives = ["roc_auc:max"], seed_param = "seed"
"""


def register(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = SPACE_HELP
    p.add_argument("-n", "--name", dest="stage", required=True, help="the stage to tune")
    p.add_argument("--space", required=True, type=Path, help="search space file (TOML)")
    p.add_argument("--trials", type=int, default=20, help="trials in the study in total (all workers)")
    p.add_argument("-j", "--jobs", type=int, default=1, help="trials to run at once on this machine")
    p.add_argument("--objective", action="append", default=[], metavar="METRIC:max|min",
                   help="what to optimise (repeat for several objectives)")
    p.add_argument("--sampler", choices=["tpe", "gp", "random"], default="tpe")
    p.add_argument("--pruner", choices=["median", "none"], default="median",
                   help="stop trials whose step metrics fall behind (single objective)")
    p.add_argument("--prune-after", type=int, default=5, metavar="N",
                   help="complete trials before the pruner may stop one")
    p.add_argument("--storage", default=None,
                   help="Optuna storage URL shared by workers (e.g. postgresql://user@host/db); "
                        "default: a journal file in the repository's gitml folder")
    p.add_argument("--study", default=None, help="study name (default: STAGE-<hash of the space>)")
    p.add_argument("--seed", type=int, default=None, help="sampler seed")
    p.add_argument("--seed-param", default=None,
                   help="param the stage seeds itself with; the top trials are re-run with other seeds")
    p.add_argument("--confirm-top", type=int, default=3, help="trials to re-run for the confidence (0: none)")
    p.add_argument("--confirm-seeds", type=int, default=3, help="re-runs per confirmed trial")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from gitml.errors import UsageError
    from gitml.repo import MLRepo
    from gitml.sweep import space as space_mod
    from gitml.sweep.search import SweepOptions, run_sweep

    repo = MLRepo.discover()
    space = space_mod.load(args.space)
    objectives = [space_mod.parse_objective(o) for o in (args.objective or list(space.objectives))]
    seed_param = args.seed_param or space.seed_param
    if seed_param and any(p.name == seed_param for p in space.params):
        raise UsageError(f"the seed param {seed_param!r} is also searched", "drop it from the space")
    quiet = args.quiet or args.json

    def progress(trial: Any, err: str | None) -> None:
        if err:
            print(f"gitml: trial failed: {err}", file=sys.stderr)
        elif not quiet:
            vals = ", ".join(f"{m}={trial.metrics.get(m, float('nan')):.4g}" for m, _ in objectives)
            print(f"{trial.name}: {trial.state} {vals}", file=sys.stderr)

    result = run_sweep(repo, SweepOptions(
        stage=args.stage, space=space, trials=args.trials, objectives=objectives, jobs=args.jobs,
        sampler=args.sampler, pruner=args.pruner, prune_after=args.prune_after, storage=args.storage, study=args.study,
        seed=args.seed), progress)
    confidence = None
    if seed_param and args.confirm_top > 0 and result.best:
        from gitml.sweep.confidence import confirm, top_k
        from gitml.sweep.trials import list_trials

        metric, direction = objectives[0]
        mine = [t for t in list_trials(repo) if t.meta.get("study") == result.study]
        pool = result.best if len(objectives) > 1 else mine
        candidates = top_k(pool, metric, direction, args.confirm_top)
        say(f"re-running the top {len(candidates)} with {args.confirm_seeds} other seeds", quiet=quiet)
        confidence = confirm(repo, candidates, metric=metric, direction=direction,
                             seed_param=seed_param, seeds=args.confirm_seeds, jobs=args.jobs)
    if args.json:
        from gitml.sweep.exps import to_records

        print_json({"study": result.study, "storage": _safe_url(result.storage),
                    "trials": to_records(result.trials), "failures": result.failures,
                    "best": to_records(result.best),
                    "confidence": confidence.to_dict() if confidence else None})
    elif not args.quiet:
        _print_summary(result, objectives, confidence)
    complete = [t for t in result.trials if t.state == "complete"]
    return 0 if complete or not result.trials else 1


def _safe_url(url: str) -> str:
    """The storage URL without a password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        return f"{scheme}://{cred.split(':', 1)[0]}@{host}"
    return url


def _print_summary(result: Any, objectives: list[tuple[str, str]], confidence: Any) -> None:
    states: dict[str, int] = {}
    for t in result.trials:
        states[t.state] = states.get(t.state, 0) + 1
    print(f"study {result.study}: ran {len(result.trials)} trials here "
          f"({', '.join(f'{v} {k}' for k, v in sorted(states.items())) or 'none'})")
    names = [m for m, _ in objectives]
    rows = [[t.name, *(f"{t.metrics.get(m, float('nan')):.4g}" for m in names),
             ", ".join(f"{k}={v}" for k, v in sorted(t.overrides.items()))] for t in result.best]
    print_table("best" if len(names) == 1 else "Pareto front", ["trial", *names, "params"], rows)
    if confidence is not None:
        e = confidence.estimates[0]
        sep = "clearly ahead" if confidence.separated else "not separated from the runner-up"
        print(f"best after re-runs: {e.trial}  {confidence.metric} = {e.mean:.4f} ± {e.ci95:.4f} "
              f"(95% CI, n={len(e.values)}), {sep}")
        print(f"apply it with: git ml exp apply {e.trial}")
    elif result.best:
        print(f"apply the best with: git ml exp apply {result.best[0].name} "
              "(pass --seed-param to measure its confidence first)")
