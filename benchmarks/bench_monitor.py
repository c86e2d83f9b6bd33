"""Benchmark: the monitor's false-alarm rate, detection delays, throughput, and the
server's p99 with and without the traffic log.

    .venv/bin/python benchmarks/bench_monitor.py [--days 2] [--rate 100] [--reps 20]
        [--parts fa,delay,speed,server] [--json FILE]

* fa: clean traffic (the arrests training split through a real logistic-regression
  pipeline; the reference is the evaluation split) at ``--rate`` requests a minute, one
  check a minute for ``--days`` simulated days, with labels: alarms per day per figure
  and in total (target ≤ 1 a day); once with no failed request, once with a steady
  background of ``--bg-errors`` (server errors, client errors: the share of requests that
  fail on a healthy day, which the error figures must learn rather than flag).
* delay: ``--reps`` runs of 30 clean minutes, then a shift until the alarm: age's mean
  moved by 0.5 σ; colour=Black's share doubled; labels flipped for colour=Black; server
  errors from 0.2% to 2% of requests; refused requests (4xx) from 1% to 3%.
  Requests from the start of the shift to the end of the alarming window.
* speed: rows/s through the per-window statistics at window sizes 100 … 10,000 rows.
* server (needs gitml.serve): p99 of 1-row requests with and without the traffic log (one
  run each; benchmarks/bench_traffic.py interleaves rounds and measures CPU per request).

Every figure is printed with the load average, since this machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MIN = 60_000_000


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def simulate(n_clean: int, n_shift: int, shift: str, seed: int, rate: int, labels: bool,
             stop_on_alarm: str | None = None,
             errors: tuple[float, float] = (0.0, 0.0),
             shift_errors: tuple[float, float] | None = None) -> tuple[list[Any], dict[str, Any]]:
    import numpy as np

    from gitml.monitor.config import MonitorConfig
    from gitml.monitor.sequential import detect
    from gitml.monitor.stats import label_stats, window_stats
    from tests.support.monitor import T0_US, reference, traffic_frame

    cfg = MonitorConfig()
    ref = reference()
    groups = ref.accuracy(groups=True)
    rng = np.random.default_rng(seed)
    windows = []
    series: dict[str, Any] = {}
    for i in range(n_clean + n_shift):
        s = shift if i >= n_clean else "none"
        e = shift_errors if shift_errors is not None and i >= n_clean else errors
        tr, fb = traffic_frame(rng, rate, T0_US + i * MIN, MIN, shift=s, error_rate=e[0],
                               client_error_rate=e[1])
        w = window_stats(ref, tr, T0_US + i * MIN, T0_US + (i + 1) * MIN, cfg)
        if labels:
            tr["label"] = fb["label"]
            label_stats(w, tr, ref.sensitive, ref.task)
        windows.append(w)
        if stop_on_alarm and i >= n_clean:
            series = detect(windows, cfg, groups)
            if any(a >= n_clean for a in series[stop_on_alarm].alarms):
                break
    if not series or not stop_on_alarm:
        series = detect(windows, cfg, groups)
    return windows, series


def part_fa(days: float, rate: int, seed: int, errors: tuple[float, float] = (0.0, 0.0)) -> dict[str, Any]:
    n = int(days * 1440)
    t0 = time.perf_counter()
    _, series = simulate(n, 0, "none", seed, rate, labels=True, errors=errors)
    secs = time.perf_counter() - t0
    per_fig = {f: len(s.alarms) for f, s in series.items()}
    total = sum(per_fig.values())
    return {"windows": n, "days": days, "rate_per_min": rate, "alarms": per_fig,
            "background_errors": {"server": errors[0], "client": errors[1]},
            "alarms_total": total, "false_alarms_per_day": total / days,
            "seconds": round(secs, 1), "load": load()}


def part_delay(reps: int, rate: int) -> dict[str, Any]:
    import statistics

    out: dict[str, Any] = {}
    bg = (0.002, 0.01)  # a healthy day's failures: 0.2% server errors, 1% refused requests
    for shift, figure, labels, errs in (
            ("age+0.5sd", "drift", False, None), ("Black x2", "drift", False, None),
            ("flip Black", "metric", True, None),
            ("5xx 0.2% -> 2%", "errors", False, (0.02, 0.01)),
            ("4xx 1% -> 3%", "client_errors", False, (0.002, 0.03))):
        delays: list[int] = []
        missed = 0
        for r in range(reps):
            _, series = simulate(30, 60, "none" if errs else shift, 1000 + r, rate, labels,
                                 stop_on_alarm=figure, errors=bg if errs else (0.0, 0.0),
                                 shift_errors=errs)
            hits = [a for a in series[figure].alarms if a >= 30]
            if hits:
                delays.append((hits[0] - 30 + 1) * rate)
            else:
                missed += 1
        out[shift] = {"figure": figure, "reps": reps, "missed_within_60_windows": missed,
                      "median_requests": statistics.median(delays) if delays else None,
                      "p90_requests": sorted(delays)[int(0.9 * (len(delays) - 1))] if delays else None,
                      "max_requests": max(delays) if delays else None, "load": load()}
        print(f"  delay {shift}: {out[shift]}", flush=True)
    return out


def part_speed() -> dict[str, Any]:
    import numpy as np

    from gitml.monitor.config import MonitorConfig
    from gitml.monitor.stats import window_stats
    from tests.support.monitor import T0_US, reference, traffic_frame

    cfg = MonitorConfig()
    ref = reference()
    rng = np.random.default_rng(0)
    out = {}
    for size in (100, 1000, 10_000):
        frames = [traffic_frame(rng, size, T0_US + i * MIN, MIN)[0] for i in range(5)]
        t0 = time.perf_counter()
        for i, fr in enumerate(frames):
            window_stats(ref, fr, T0_US + i * MIN, T0_US + (i + 1) * MIN, cfg)
        secs = time.perf_counter() - t0
        out[str(size)] = {"rows_per_s": round(5 * size / secs), "ms_per_window": round(1000 * secs / 5, 1),
                          "load": load()}
        print(f"  speed {size}-row windows: {out[str(size)]}", flush=True)
    return out


def part_check() -> dict[str, Any]:
    """`run_check` end to end on a traffic folder: 60 one-minute windows of 1,000 rows
    from scratch, then one more window with the rest cached."""
    import shutil
    import tempfile

    import numpy as np

    from gitml.monitor.check import run_check
    from gitml.repo import MLRepo
    from tests.support.monitor import T0_US, make_served_repo, traffic_frame, write_parquet

    base = Path(tempfile.mkdtemp(prefix="gitml-bench-monitor-"))
    try:
        repo_path = make_served_repo(base / "repo")
        repo = MLRepo.discover(repo_path)
        folder = repo.ml_dir / "traffic" / "arrests"
        rng = np.random.default_rng(0)
        for i in range(61):
            write_parquet(traffic_frame(rng, 1000, T0_US + i * MIN, MIN)[0], folder, seq=i)
        run_check(repo, "arrests", since=3600, now=(T0_US + 2 * MIN) / 1e6 + 1)  # reference cached
        (repo.ml_dir / "monitor" / "arrests" / "windows.jsonl").unlink(missing_ok=True)
        t0 = time.perf_counter()
        r1 = run_check(repo, "arrests", since=3600, now=(T0_US + 60 * MIN) / 1e6 + 1)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        r2 = run_check(repo, "arrests", since=3600, now=(T0_US + 61 * MIN) / 1e6 + 1)
        warm = time.perf_counter() - t0
        return {"cold_rows": r1.rows_processed, "cold_seconds": round(cold, 2),
                "cold_rows_per_s": round(r1.rows_processed / cold),
                "incremental_rows": r2.rows_processed, "incremental_seconds": round(warm, 2),
                "load": load()}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def part_server(duration: int) -> dict[str, Any]:
    """p50/p99 of 1-row /invocations at concurrency 16 (wrk), with and without the log."""
    import re
    import shutil
    import subprocess
    import tempfile

    from gitml.models.bundle import build_bundle
    from gitml.repo import MLRepo
    from gitml.serve import control
    from tests.support.monitor import make_served_repo
    from tests.support.serve import split_body

    wrk = shutil.which("wrk")
    if wrk is None:
        return {"skipped": "wrk is not installed (apt-get install wrk)"}
    base = Path(tempfile.mkdtemp(prefix="gitml-bench-serve-"))
    out: dict[str, Any] = {}
    try:
        repo = MLRepo.discover(make_served_repo(base / "repo"))
        build_bundle(repo, "arrests", "arrests@v1.0.0", base / "bundle", version="1.0.0")
        lua = base / "post.lua"
        lua.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                       f"wrk.body = {json.dumps(split_body(1).decode())}\n")
        for label, traffic in (("without_log", None), ("with_log", base / "traffic")):
            state = base / label / "state.json"
            state.parent.mkdir()
            control.write_state(state, {"model": "arrests", "active": "1.0.0",
                                        "versions": {"1.0.0": str(base / "bundle")}})
            proc = control.start(state, workers=1, traffic_dir=traffic)
            try:
                control.wait_ready(proc.url, "1.0.0", active=True, timeout=120)
                subprocess.run([wrk, "-t1", "-c16", "-d2s", "-s", str(lua), proc.url + "/invocations"],
                               capture_output=True, check=True)  # warm-up
                run = subprocess.run([wrk, "-t2", "-c16", f"-d{duration}s", "--latency", "-s", str(lua),
                                      proc.url + "/invocations"], capture_output=True, text=True, check=True)
            finally:
                control.stop(proc.pid)
            text = run.stdout

            def ms(pct: str, text: str = text) -> float | None:
                m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
                if not m:
                    return None
                return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

            rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
            out[label] = {"p50_ms": ms("50"), "p99_ms": ms("99"),
                          "req_per_s": float(rps.group(1)) if rps else None, "load": load()}
        if traffic is not None:
            import pandas as pd

            from gitml.serve.traffic import read_traffic

            time.sleep(1.5)
            out["logged_rows"] = len(pd.DataFrame(read_traffic(base / "traffic")))
        return out
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=float, default=2.0)
    ap.add_argument("--rate", type=int, default=100, help="requests a minute")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bg-errors", default="0.002,0.01", metavar="SERVER,CLIENT",
                    help="shares of requests failing with a 5xx and a 4xx on a healthy day (fa part)")
    ap.add_argument("--parts", default="fa,delay,speed,check,server")
    ap.add_argument("--duration", type=int, default=10, help="seconds of wrk per server run")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    res: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "load_start": load()}
    if "speed" in parts:
        res["speed"] = part_speed()
    if "delay" in parts:
        res["delay"] = part_delay(args.reps, args.rate)
    if "fa" in parts:
        res["false_alarms"] = part_fa(args.days, args.rate, args.seed)
        print(f"  false alarms: {res['false_alarms']}", flush=True)
        bg = tuple(float(x) for x in args.bg_errors.split(","))
        if any(bg):
            res["false_alarms_with_errors"] = part_fa(args.days, args.rate, args.seed + 1,
                                                      (bg[0], bg[1]))
            print(f"  false alarms with background errors: {res['false_alarms_with_errors']}", flush=True)
    if "check" in parts:
        res["check"] = part_check()
        print(f"  check: {res['check']}", flush=True)
    if "server" in parts:
        res["server"] = part_server(args.duration)
        print(f"  server: {res['server']}", flush=True)
    res["load_end"] = load()
    text = json.dumps(res, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
