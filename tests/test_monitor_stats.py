"""The monitor's statistics on traffic frames that follow the traffic-log schema,
simulated from the arrests data and a real model (tests/support/monitor.py)."""

from __future__ import annotations

import numpy as np
import pytest

from gitml.monitor.config import MonitorConfig
from gitml.monitor.sequential import detect
from gitml.monitor.stats import label_stats, window_stats, z_from_p
from gitml.monitor.windows import split
from tests.support.monitor import T0_US, reference, traffic_frame

MIN = 60_000_000


def test_windows_are_aligned_merged_and_resumable() -> None:
    # 3 rows in minute 0, 10 in minute 1, 0 in minute 2, 12 in minute 3, 4 in minute 4 (open)
    ts = np.array(sorted([T0_US + 1] * 3 + [T0_US + MIN + 5] * 10 + [T0_US + 3 * MIN] * 12
                         + [T0_US + 4 * MIN + 9] * 4), dtype=np.int64)
    ws = split(ts, 60, 10, now_us=T0_US + 4 * MIN + 30_000_000)
    assert [(w.start_us - T0_US, w.end_us - T0_US, w.n_rows) for w in ws] == [
        (0, 2 * MIN, 13), (3 * MIN, 4 * MIN, 12)]
    # the minute still filling is never closed; resuming after a window cuts the same rest
    assert split(ts, 60, 10, now_us=T0_US + 4 * MIN + 30_000_000, after_us=ws[0].end_us) == ws[1:]
    assert split(ts, 60, 10, now_us=T0_US + 10 * MIN)[-1].n_rows == 12  # 4 rows < min_rows


def _run(shift: str, n_clean: int, n_shift: int, seed: int, *, rate: int = 100,
         error_rate: float = 0.0, latency: float = 2.0, labels: bool = False) -> dict:
    cfg = MonitorConfig()
    ref = reference()
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_clean + n_shift):
        shifted = i >= n_clean
        tr, fb = traffic_frame(rng, rate, T0_US + i * MIN, MIN, shift=shift if shifted else "none",
                               error_rate=error_rate if shifted else 0.0,
                               latency_ms=latency if shifted else 2.0)
        w = window_stats(ref, tr, T0_US + i * MIN, T0_US + (i + 1) * MIN, cfg)
        if labels:
            tr["label"] = fb["label"]
            label_stats(w, tr, ref.sensitive, ref.task)
        out.append(w)
    return detect(out, cfg, ref.accuracy(groups=True))


def _first_alarm(series, start: int) -> int | None:
    alarms = [i for i in series.alarms if i >= start]
    return alarms[0] - start if alarms else None


def test_clean_traffic_raises_no_alarm() -> None:
    s = _run("none", 60, 0, seed=3, labels=True)
    assert {f: s[f].alarms for f in s} == {"drift": [], "errors": [], "latency": [], "metric": []}
    z = [p.z for p in s["drift"].points]
    assert max(z) < 4  # no single window is anywhere near alarming on its own


@pytest.mark.parametrize("shift", ["age+0.5sd", "Black x2"])
def test_injected_drift_is_found_within_a_few_windows(shift: str) -> None:
    s = _run(shift, 20, 10, seed=5)
    assert s["drift"].alarms and min(s["drift"].alarms) >= 20, s["drift"].alarms
    assert _first_alarm(s["drift"], 20) is not None and _first_alarm(s["drift"], 20) <= 6


def test_labels_flipped_for_one_group_break_the_live_metric() -> None:
    s = _run("flip Black", 20, 10, seed=7, labels=True)
    assert not [i for i in s["metric"].alarms if i < 20]
    first = _first_alarm(s["metric"], 20)
    assert first is not None and first <= 4
    assert not s["drift"].alarms  # the inputs did not move: only the metric says so


def test_error_rate_and_latency_break_limits_learned_from_history() -> None:
    s = _run("none", 25, 6, seed=11, error_rate=0.2, latency=6.0)
    assert _first_alarm(s["errors"], 25) == 0
    assert _first_alarm(s["latency"], 25) is not None and _first_alarm(s["latency"], 25) <= 1
    assert not [i for f in ("errors", "latency") for i in s[f].alarms if i < 25]
    p = s["latency"].points[24]
    assert p.level is not None and p.upper is not None and p.level < p.upper < 6.0


def test_z_of_p_is_capped_and_monotone() -> None:
    assert z_from_p(1.0) < 0 < z_from_p(0.01) < z_from_p(1e-6) <= z_from_p(0.0) <= 8.0
