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


def _windows(shift: str, n_clean: int, n_shift: int, seed: int, *, rate: int = 100,
             error_rate: float = 0.0, client_error_rate: float = 0.0, latency: float = 2.0,
             labels: bool = False, version: str = "1.0.0", new_version: str | None = None) -> list:
    cfg = MonitorConfig()
    ref = reference()
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_clean + n_shift):
        shifted = i >= n_clean
        tr, fb = traffic_frame(rng, rate, T0_US + i * MIN, MIN, shift=shift if shifted else "none",
                               error_rate=error_rate if shifted else 0.0,
                               client_error_rate=client_error_rate if shifted else 0.0,
                               latency_ms=latency if shifted else 2.0,
                               version=(new_version or version) if shifted else version)
        w = window_stats(ref, tr, T0_US + i * MIN, T0_US + (i + 1) * MIN, cfg)
        if labels:
            tr["label"] = fb["label"]
            label_stats(w, tr, ref.sensitive, ref.task)
        out.append(w)
    return out


def _run(shift: str, n_clean: int, n_shift: int, seed: int, **kw) -> dict:
    return detect(_windows(shift, n_clean, n_shift, seed, **kw), MonitorConfig(),
                  reference().accuracy(groups=True))


def _first_alarm(series, start: int) -> int | None:
    alarms = [i for i in series.alarms if i >= start]
    return alarms[0] - start if alarms else None


def test_clean_traffic_raises_no_alarm() -> None:
    s = _run("none", 60, 0, seed=3, labels=True)
    assert {f: s[f].alarms for f in s} == {"drift": [], "errors": [], "client_errors": [],
                                           "latency": [], "metric": []}
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


def test_requests_refused_with_a_4xx_are_client_errors_not_server_errors() -> None:
    ws = _windows("none", 25, 4, seed=13, client_error_rate=0.3, latency=2.0)
    s = detect(ws, MonitorConfig(), reference().accuracy(groups=True))
    assert _first_alarm(s["client_errors"], 25) == 0 and not s["errors"].alarms
    assert not [i for i in s["client_errors"].alarms if i < 25]
    w = ws[-1]
    assert w.n_errors == 0 and 15 <= w.n_client_errors <= 45 and w.n_requests == 100
    # the refused requests take no part in drift (no prediction) or in the window's version
    assert w.drift_p is not None and w.version == "1.0.0"
    assert not s["drift"].alarms
    # error_status = 400 makes every failed request a server error
    strict = window_stats(reference(), traffic_frame(np.random.default_rng(1), 100, T0_US, MIN,
                                                     client_error_rate=0.3)[0],
                          T0_US, T0_US + MIN, MonitorConfig(error_status=400))
    assert strict.n_client_errors == 0 and strict.n_errors > 10


def _result(windows: list) -> object:
    from gitml.monitor.check import MonitorResult, alarms_since

    series = detect(windows, MonitorConfig(), reference().accuracy(groups=True))
    return MonitorResult("arrests", windows[-1].end, 3600.0, windows[-1].version, None, 0,
                         len(windows), windows, series, {}, alarms_since(windows, series, 0.0))


def test_client_errors_roll_back_only_when_they_began_with_the_version() -> None:
    from gitml.monitor.heal import began_with_version

    # a new version (1.1.0) that refuses 30% of the requests from its first window: its fault
    res = _result(_windows("none", 20, 3, seed=17, client_error_rate=0.3, new_version="1.1.0"))
    alarm = [a for a in res.alarms if a.figure == "client_errors"]
    assert alarm and alarm[0].version == "1.1.0" and began_with_version(res, alarm[0])
    # the same refusals, starting ten windows after the version did: the clients changed
    ws = _windows("none", 10, 13, seed=17, new_version="1.1.0")
    ws[20:] = _windows("none", 20, 3, seed=18, client_error_rate=0.3, version="1.1.0")[20:]
    res = _result(ws)
    alarm = [a for a in res.alarms if a.figure == "client_errors"]
    assert alarm and not began_with_version(res, alarm[0])
    # a version alone in the log has nothing to be compared with: no rollback
    res = _result(_windows("none", 20, 3, seed=17, client_error_rate=0.3, version="1.1.0"))
    alarm = [a for a in res.alarms if a.figure == "client_errors"]
    assert alarm and not began_with_version(res, alarm[0])


def test_z_of_p_is_capped_and_monotone() -> None:
    assert z_from_p(1.0) < 0 < z_from_p(0.01) < z_from_p(1e-6) <= z_from_p(0.0) <= 8.0
