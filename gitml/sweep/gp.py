"""The Gaussian-process sampler: Optuna's ``GPSampler`` when PyTorch is installed, else a
small one on scikit-learn's ``GaussianProcessRegressor`` (Matérn 5/2 kernel, expected
improvement maximised over random candidates; several objectives are scalarised with
random Chebyshev weights per trial, as ParEGO does). PyTorch is a 2 GB dependency that
gitml does not otherwise need, so the fallback keeps ``--sampler gp`` always available.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState


def make_gp_sampler(seed: int | None, n_objectives: int) -> BaseSampler:
    try:
        import torch  # noqa: F401
    except ImportError:
        return SklearnGPSampler(seed=seed)
    return optuna.samplers.GPSampler(seed=seed)


class SklearnGPSampler(BaseSampler):
    def __init__(self, *, seed: int | None = None, n_startup_trials: int = 10,
                 n_candidates: int = 2048) -> None:
        self._rng = np.random.default_rng(seed)
        self._random = RandomSampler(seed=seed)
        self._space = IntersectionSearchSpace()
        self.n_startup_trials = n_startup_trials
        self.n_candidates = n_candidates

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial
                                    ) -> dict[str, BaseDistribution]:
        space = self._space.calculate(study)
        return {k: d for k, d in space.items() if not d.single()}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if all(k in t.params for k in search_space)]
        if len(done) < self.n_startup_trials:
            return {}
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        names = sorted(search_space)
        x = np.array([self._encode(search_space, names, t.params) for t in done])
        y = self._scalarise(study, [t.values for t in done])
        # bounded length scales: with a handful of points an unbounded fit collapses to
        # tiny scales and expected improvement degenerates into random picks
        kernel = (ConstantKernel(1.0, (1e-3, 1e3))
                  * Matern(nu=2.5, length_scale=np.full(x.shape[1], 0.3), length_scale_bounds=(0.05, 10.0))
                  + WhiteKernel(1e-6, (1e-9, 1e-2)))
        gp = GaussianProcessRegressor(kernel=kernel, normalize_y=True, n_restarts_optimizer=2,
                                      random_state=int(self._rng.integers(2**31)))
        with warnings.catch_warnings():  # a length scale at its bound is expected, not news
            warnings.simplefilter("ignore")
            gp.fit(x, y)
        # half the candidates anywhere, half near the best point so far (local refinement)
        half = self.n_candidates // 2
        near = x[int(np.argmin(y))] + self._rng.normal(0.0, 0.05, (half, x.shape[1]))
        cands = np.vstack([self._rng.random((self.n_candidates - half, x.shape[1])),
                           np.clip(near, 0.0, 1.0)])
        mu, sigma = gp.predict(cands, return_std=True)
        best = y.min()
        from scipy.stats import norm

        z = (best - mu) / np.maximum(sigma, 1e-12)
        ei = (best - mu) * norm.cdf(z) + sigma * norm.pdf(z)
        return self._decode(search_space, names, cands[int(np.argmax(ei))])

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def _scalarise(self, study: optuna.Study, values: Sequence[Sequence[float]]) -> np.ndarray:
        """Lower is better; one objective as is, several by a random Chebyshev weighting."""
        signs = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in study.directions])
        v = np.array(values, dtype=float) * signs
        if v.shape[1] == 1:
            return np.asarray(v[:, 0])
        lo, hi = v.min(axis=0), v.max(axis=0)
        norm_v = (v - lo) / np.where(hi > lo, hi - lo, 1.0)
        w = self._rng.dirichlet(np.ones(v.shape[1]))
        return np.asarray((norm_v * w).max(axis=1) + 0.05 * (norm_v * w).sum(axis=1))

    @staticmethod
    def _encode(space: dict[str, BaseDistribution], names: list[str], params: dict[str, Any]) -> list[float]:
        out = []
        for n in names:
            d, v = space[n], params[n]
            if isinstance(d, CategoricalDistribution):
                out.append((d.choices.index(v) + 0.5) / len(d.choices))
            else:
                assert isinstance(d, (FloatDistribution, IntDistribution))
                lo, hi, x = float(d.low), float(d.high), float(v)
                if d.log:
                    lo, hi, x = math.log(lo), math.log(hi), math.log(x)
                out.append((x - lo) / (hi - lo) if hi > lo else 0.5)
        return out

    @staticmethod
    def _decode(space: dict[str, BaseDistribution], names: list[str], u: np.ndarray) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for n, x in zip(names, u, strict=True):
            d = space[n]
            if isinstance(d, CategoricalDistribution):
                out[n] = d.choices[min(int(x * len(d.choices)), len(d.choices) - 1)]
                continue
            assert isinstance(d, (FloatDistribution, IntDistribution))
            lo, hi = float(d.low), float(d.high)
            val = math.exp(math.log(lo) + x * (math.log(hi) - math.log(lo))) if d.log else lo + x * (hi - lo)
            if d.step is not None:
                val = lo + round((val - lo) / d.step) * d.step
            val = min(max(val, lo), hi)
            out[n] = round(val) if isinstance(d, IntDistribution) else float(val)
        return out
