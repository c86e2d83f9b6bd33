"""Benchmark: `git ml log` over 1,000 commits that each change a model pointer and a run record.

    .venv/bin/python benchmarks/bench_log.py [--commits 1000] [--files 2000]

Builds the history with `git fast-import` (seconds), then times the in-process walk
(`gitml.runs.log.log_rows`) and the whole command (`git ml log --json`, including
interpreter start-up), cold and warm.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POINTER = "# gitml pointer: the bytes live in the gitml store (`git ml checkout` restores them)\n" \
          "version 1\nkind file\noid {oid}\nsize {size}\n"


def build(path: Path, commits: int, files: int) -> None:
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    lines: list[str] = []
    mark = 0

    def blob(data: str) -> int:
        nonlocal mark
        mark += 1
        raw = data.encode()
        lines.append(f"blob\nmark :{mark}\ndata {len(raw)}\n")
        lines.append(raw.decode() + "\n")
        return mark

    for c in range(commits):
        ops: list[str] = []
        if c == 0:
            for i in range(files):
                m = blob(f"print({i})\n")
                ops.append(f"M 100644 :{m} src/pkg{i % 40}/mod{i}.py")
            for i in range(50):
                m = blob(POINTER.format(oid=f"{i:032x}", size=i))
                ops.append(f"M 100644 :{m} data/part{i}.parquet.gitml")
            cfg = blob("[core]\n")
            ops.append(f"M 100644 :{cfg} .gitml/config.toml")
        model = blob(POINTER.format(oid=f"{c + 1000:032x}", size=c))
        ops.append(f"M 100644 :{model} models/model.skops.gitml")
        record = {"format": 1, "stage": "train", "cmd": ["python", "train.py"], "exit_code": 0,
                  "inputs": [{"path": "data/part1.parquet", "oid": f"{1:032x}", "source": "artifact"}],
                  "outputs": [{"path": "models/model.skops", "oid": f"{c + 1000:032x}",
                               "source": "artifact"}],
                  "params": {"depth": c % 10}, "metrics": {"accuracy": 0.8 + (c % 100) / 1000,
                                                           "f1": 0.7 + (c % 50) / 1000}}
        ops.append(f"M 100644 :{blob(json.dumps(record, indent=2))} .gitml/runs/train.json")
        if c % 10 == 0:
            chk = {"model": "m", "results": [{"gate": "eval", "passed": c % 20 == 0, "metrics": {}}]}
            ops.append(f"M 100644 :{blob(json.dumps(chk))} .gitml/checks/m.json")
            ops.append(f"M 100644 :{blob(POINTER.format(oid=f'{c:032x}', size=c))} data/part{c % 50}.parquet.gitml")
        msg = f"train {c}"
        lines.append(f"commit refs/heads/main\ncommitter B <b@example.com> {1700000000 + c} +0000\n"
                     f"data {len(msg)}\n{msg}\n")
        lines.extend(o + "\n" for o in ops)
        lines.append("\n")
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input="".join(lines).encode(), check=True)
    subprocess.run(["git", "checkout", "-q", "main"], cwd=path, check=True)
    (path / ".git" / "ml" / "store").mkdir(parents=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commits", type=int, default=1000)
    ap.add_argument("--files", type=int, default=2000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo_path = Path(tmp) / "repo"
        t0 = time.perf_counter()
        build(repo_path, a.commits, a.files)
        print(f"built {a.commits} commits, {a.files + 52} files per tree in {time.perf_counter() - t0:.1f}s")
        os.chdir(repo_path)
        from gitml.repo import MLRepo
        from gitml.runs.log import log_rows

        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        for label in ("in-process walk (cold)", "in-process walk (warm)"):
            t0 = time.perf_counter()
            repo = MLRepo.discover()
            rows = log_rows(repo, "HEAD")
            dt = time.perf_counter() - t0
            assert len(rows) == a.commits, len(rows)
            assert rows[0].metrics, rows[0]
            print(f"{label}: {len(rows)} commits in {dt * 1000:.0f} ms")
        env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]}
        for label, args in (("git ml log --json", ["--json"]), ("git ml log (table)", []),
                            ("git ml log -n 20", ["-n", "20"]), ("git ml show --json", ["--json"])):
            best = 1e9
            best_cpu = 1e9
            for _ in range(3):
                ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                cmd = "show" if label.startswith("git ml show") else "log"
                out = subprocess.run(["git", "ml", cmd, *args], capture_output=True, env=env, check=True)
                best = min(best, time.perf_counter() - t0)
                ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                best_cpu = min(best_cpu, ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime)
            if label == "git ml log --json":
                assert len(json.loads(out.stdout)) == a.commits
            print(f"{label}: best of 3 {best * 1000:.0f} ms wall, {best_cpu * 1000:.0f} ms CPU "
                  "(whole command incl. interpreter start-up)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
