"""How sure is "best"? Re-run the top-k trials with other seeds before anyone applies one.

A search picks the maximum of noisy numbers, so its winner is biased upwards (the winner's
curse). Each of the top ``k`` trials is run again with ``seeds`` other values of the seed
parameter (each re-run is a trial in Git too); the trials are ranked by their mean, with a
95% Student-t interval, and the winner is called *separated* when its interval does not
overlap the runner-up's.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from gitml.repo import MLRepo
from gitml.sweep.trials import Trial, TrialSpec, run_trial


@dataclass
class Estimate:
    trial: str
    params: dict[str, Any]
    values: list[float]          # the original run first, then one per seed
    mean: float
    std: float
    ci95: float                  # half-width of the 95% interval of the mean
    reruns: list[str]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Confidence:
    metric: str
    direction: str
    estimates: list[Estimate]    # best first
    separated: bool              # the best's interval clears the runner-up's

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "direction": self.direction, "separated": self.separated,
                "estimates": [e.to_dict() for e in self.estimates]}


def top_k(trials: list[Trial], metric: str, direction: str, k: int) -> list[Trial]:
    done = [t for t in trials if t.state == "complete" and metric in t.metrics
            and "confirms" not in t.meta]
    done.sort(key=lambda t: t.metrics[metric], reverse=direction == "maximize")
    return done[:k]


def confirm(repo: MLRepo, candidates: list[Trial], *, metric: str, direction: str, seed_param: str,
            seeds: int, jobs: int = 1, base: str | None = None) -> Confidence:
    jobs_list: list[tuple[Trial, int]] = []
    for t in candidates:
        start = t.params.get(seed_param, t.overrides.get(seed_param, 0))
        start = start if isinstance(start, int) and not isinstance(start, bool) else 0
        jobs_list += [(t, start + 1 + i) for i in range(seeds)]

    def rerun(item: tuple[Trial, int]) -> Trial:
        t, seed = item
        values = {**t.overrides, seed_param: seed}
        return run_trial(repo, TrialSpec(t.stage, values, name=f"{t.name}-seed{seed}",
                                         meta={**t.meta, "confirms": t.name, "seed": seed},
                                         allow_new=True), base=base or t.base)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        reruns = list(pool.map(rerun, jobs_list))
    estimates = []
    for t in candidates:
        mine = [r for r in reruns if r.meta.get("confirms") == t.name]
        values = [float(t.metrics[metric])] + [float(r.metrics[metric]) for r in mine
                                               if r.state == "complete" and metric in r.metrics]
        mean, std, half = interval(values)
        estimates.append(Estimate(t.name, dict(t.overrides), values, mean, std, half,
                                  [r.name for r in mine]))
    estimates.sort(key=lambda e: e.mean, reverse=direction == "maximize")
    separated = len(estimates) < 2 or _clear(estimates[0], estimates[1], direction)
    return Confidence(metric, direction, estimates, separated)


def interval(values: list[float]) -> tuple[float, float, float]:
    """(mean, sample std, 95% half-width); the width is infinite with one value."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0, math.inf
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    from scipy.stats import t as student_t

    return mean, std, float(student_t.ppf(0.975, n - 1)) * std / math.sqrt(n)


def _clear(best: Estimate, second: Estimate, direction: str) -> bool:
    if direction == "maximize":
        return best.mean - best.ci95 > second.mean + second.ci95
    return best.mean + best.ci95 < second.mean - second.ci95
