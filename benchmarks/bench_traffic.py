"""Benchmark: what the traffic log costs the server's latency (issue 13: ≤ ~1 ms p99 at 16).

    .venv/bin/python benchmarks/bench_traffic.py                   # 5 rounds of 10 s, c=16
    .venv/bin/python benchmarks/bench_traffic.py --rounds 3 --duration 5 --bad-every 10

Two `git ml serve arrests@v1.0.0` servers run side by side on the same repository (the
model of benchmarks/bench_serve.py), one logging every request (the default) and one with
`--no-log`. `wrk` (Debian package) loads them one after the other, alternating which goes
first in each round, so load that drifts on a shared machine favours neither; the figures
are the median over rounds of p50, p99 and requests/s. Two mixes of 1-row
`dataframe_split` bodies: all good, and one malformed request in every ``--bad-every``
(answered 400 and, with the log on, logged with its reason). At the end the logging server's
log is read back: every request wrk counted must be in it (it may hold a few more: the ones
in flight when wrk stopped). Results: a table on stdout and, with ``--json``, a file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_serve import (  # noqa: E402
    bodies,
    free_port,
    git_env,
    loadavg,
    make_repo,
    parse_wrk,
    stop,
    tree_cpu,
    wait_healthy,
)

LUA = """
local good = {good}
local bad = '{{"dataframe_split": '
local every = {every}
local i = 0
request = function()
  i = i + 1
  local body = good
  if every > 0 and i % every == 0 then body = bad end
  return wrk.format("POST", "/invocations", {{["Content-Type"] = "application/json"}}, body)
end
"""


def wrk(url: str, script: Path, conns: int, duration: float) -> dict[str, Any]:
    before = loadavg()
    p = subprocess.run(["wrk", f"-t{min(2, conns)}", f"-c{conns}", f"-d{duration:g}s", "--latency",
                        "--timeout", "10s", "-s", str(script), url + "/invocations"],
                       capture_output=True, text=True)
    return dict(parse_wrk(p), load=[before, loadavg()])


def logged_requests(folder: Path, expect_at_least: int, timeout: float = 30.0) -> int:
    """Distinct request ids in the traffic log once it has caught up (flushes every second)."""
    import pandas as pd

    from gitml.serve.traffic import read_traffic

    deadline = time.monotonic() + timeout
    while True:
        n = int(pd.DataFrame(read_traffic(folder))["request_id"].nunique())
        if n >= expect_at_least or time.monotonic() > deadline:
            return n
        time.sleep(0.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2, help="worker processes per server")
    ap.add_argument("--bad-every", type=int, default=10,
                    help="the mixed load sends one malformed request in every N (0: no mixed load)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="bench-traffic-"))
    home = work / "home"
    home.mkdir()
    env = git_env(home)
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(),
                               "duration_s": a.duration, "rounds": a.rounds, "workers": a.workers,
                               "concurrency": a.concurrency, "bad_every": a.bad_every, "runs": []}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        repo, test = make_repo(work, env)
        good = bodies(test)[1].decode()
        mixes = {"good": 0, **({f"1 bad in {a.bad_every}": a.bad_every} if a.bad_every else {})}
        scripts = {}
        for name, every in mixes.items():
            scripts[name] = work / f"{every}.lua"
            scripts[name].write_text(LUA.format(good=json.dumps(good), every=every))
        urls = {}
        pgids = {}
        for label, extra in (("log", []), ("no log", ["--no-log"])):
            port = free_port()
            proc = subprocess.Popen(["git", "ml", "serve", "arrests@v1.0.0", "--port", str(port),
                                     "--workers", str(a.workers), *extra], cwd=repo, env=env,
                                    start_new_session=True, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            procs.append(proc)
            pgids[label] = proc.pid
            urls[label] = f"http://127.0.0.1:{port}"
            wait_healthy(urls[label], proc, time.monotonic())
        folder = repo / ".git" / "ml" / "traffic" / "arrests"
        counted = 0
        for label, url in urls.items():  # warm-up
            res = wrk(url, scripts["good"], a.concurrency, 2.0)
            counted += res["requests"] if label == "log" else 0
        order = list(urls)
        for r in range(a.rounds):
            for mix in mixes:
                for label in order:
                    cpu0 = tree_cpu(pgids[label])
                    res = wrk(urls[label], scripts[mix], a.concurrency, a.duration)
                    # the server's CPU per request: what logging costs, whatever else runs here
                    res["cpu_us_per_request"] = (tree_cpu(pgids[label]) - cpu0) / max(1, res["requests"]) * 1e6
                    res.update({"server": label, "mix": mix, "round": r})
                    results["runs"].append(res)
                    if label == "log":
                        counted += res["requests"]
                    print(f"  round {r} {mix:14s} {label:7s} {res['rps']:8.1f} req/s  p50 {res['p50_ms']:6.2f} ms  "
                          f"p99 {res['p99_ms']:6.2f} ms  CPU {res['cpu_us_per_request']:5.1f} us/req  non-2xx {res['non_2xx']:6d}  socket errors "
                          f"{res['socket_errors']}  load {res['load'][0][0]:.2f}->{res['load'][1][0]:.2f}",
                          flush=True)
                order.reverse()
        logged = logged_requests(folder, counted)
        results["log_check"] = {"counted_by_wrk": counted, "logged": logged,
                                "in_flight_allowance": a.concurrency * (len(results["runs"]) // 2 + 1)}
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    summary = []
    for mix in mixes:
        row: dict[str, Any] = {"mix": mix}
        for label in ("log", "no log"):
            runs = [x for x in results["runs"] if x["mix"] == mix and x["server"] == label]
            row[label] = {k: statistics.median(x[k] for x in runs)
                          for k in ("rps", "p50_ms", "p99_ms", "cpu_us_per_request")}
        row["p99_overhead_ms"] = row["log"]["p99_ms"] - row["no log"]["p99_ms"]
        row["p50_overhead_ms"] = row["log"]["p50_ms"] - row["no log"]["p50_ms"]
        summary.append(row)
    results["summary"] = summary
    print(f"\nmedian of {a.rounds} rounds, wrk -c{a.concurrency}, {a.duration:g} s each, "
          f"{a.workers} workers per server, {os.cpu_count()} cores shared with wrk")
    print("| mix | log req/s | no-log req/s | log p50 | no-log p50 | log p99 | no-log p99 | p99 overhead "
          "| server CPU/request log / no log |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in summary:
        g, n = row["log"], row["no log"]
        print(f"| {row['mix']} | {g['rps']:.0f} | {n['rps']:.0f} | {g['p50_ms']:.2f} ms | {n['p50_ms']:.2f} ms | "
              f"{g['p99_ms']:.2f} ms | {n['p99_ms']:.2f} ms | {row['p99_overhead_ms']:+.2f} ms | "
              f"{g['cpu_us_per_request']:.0f} / {n['cpu_us_per_request']:.0f} µs |")
    lc = results["log_check"]
    lost = max(0, lc["counted_by_wrk"] - lc["logged"])
    print(f"traffic log: {lc['logged']} requests logged, {lc['counted_by_wrk']} counted by wrk "
          f"({lost} missing)")
    print(f"load average now: {' '.join(f'{x:.2f}' for x in loadavg())}")
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
