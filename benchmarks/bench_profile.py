"""Benchmark: how long `git ml profile` takes, and where the time goes.

    .venv/bin/python benchmarks/bench_profile.py                  # 3 runs, default settings
    .venv/bin/python benchmarks/bench_profile.py --runs 2 --compare /path/to/other/bin

The arrests pipeline of `bench_serve.py` is committed and tagged in a temporary repository;
`git ml profile arrests@v1.0.0 --no-commit --json` (rows 1,100, workers 1,2, 3 s of load
per measurement: the defaults) runs ``--runs`` times. With ``--compare DIR`` (a folder
holding another `git-ml`, e.g. an older checkout's), the two alternate run by run, so load
that drifts on a shared machine favours neither. Per run: wall seconds, CPU seconds of
the command and everything it started (servers, probe, load generator), the profile's own
``phases_s`` and the load average. Each run starts without the bundle `git ml serve` and
`git ml profile` share (`.git/ml/serve/`), as a first profile of a version does; ``--warm``
keeps it between runs. Only the load runs have a fixed length; the rest is CPU
work that a loaded machine stretches, so CPU seconds are the figure that carries over
between machines. Results: stdout and `benchmarks/results/profile-<date>.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_serve import git_env, loadavg, make_repo  # noqa: E402


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def one_run(repo: Path, env: dict[str, str], label: str, warm: bool) -> dict[str, Any]:
    if not warm:
        shutil.rmtree(repo / ".git" / "ml" / "serve", ignore_errors=True)
    before = loadavg()
    cpu0 = children_cpu()
    t0 = time.monotonic()
    proc = subprocess.run(["git", "ml", "profile", "arrests@v1.0.0", "--no-commit", "--json"],
                          cwd=repo, env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{label}: git ml profile failed:\n{proc.stderr[-2000:]}")
    prof = json.loads(proc.stdout)
    out = {"label": label, "wall_s": round(wall, 1), "cpu_s": round(children_cpu() - cpu0, 1),
           "phases_s": prof.get("phases_s"), "load_before": before, "load_after": loadavg(),
           "server": [{k: s[k] for k in ("workers", "rows", "rps", "p99_ms", "rss_bytes")}
                      for s in prof["server"]]}
    print(f"  {label:8s} {wall:6.1f} s wall, {out['cpu_s']:5.1f} CPU-s (load runs included), load "
          f"{before[0]:.2f} -> {out['load_after'][0]:.2f}, phases {out['phases_s']}", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--compare", type=Path, help="a folder with another `git-ml` to alternate with")
    ap.add_argument("--warm", action="store_true", help="keep the built bundle between runs")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: the threaded load generator is used", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    home = work / "home"
    home.mkdir()
    env = git_env(home)
    variants = [("this", env)]
    if a.compare:
        variants.append(("compare", {**env, "PATH": str(a.compare.absolute()) + os.pathsep + env["PATH"]}))
    runs: list[dict[str, Any]] = []
    try:
        repo, _ = make_repo(work, env)
        for i in range(a.runs):
            for label, e in (variants if i % 2 == 0 else variants[::-1]):
                runs.append(one_run(repo, e, label, a.warm))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for label, _ in variants:
        mine = sorted(r["wall_s"] for r in runs if r["label"] == label)
        cpu = sorted(r["cpu_s"] for r in runs if r["label"] == label)
        print(f"{label}: median {mine[len(mine) // 2]:.1f} s wall, {cpu[len(cpu) // 2]:.1f} CPU-s")
    dest = a.json or ROOT / "benchmarks" / "results" / f"profile-{time.strftime('%Y-%m-%d-%H%M')}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(),
                                "runs": runs}, indent=2) + "\n")
    print(f"results: {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
