"""Benchmark: `git ml run` overhead and what the tracer detects, per access method.

    .venv/bin/python benchmarks/bench_run.py

For each way a program can read or write a file (Python open, pandas, pyarrow's native
Parquet/CSV readers and writers, a Python subprocess, a shell, an atomic rename), runs it
under `git ml run` with inotify (Linux default) and with the snapshot fallback
(GITML_NO_INOTIFY=1) and reports whether the read / the write was recorded. Then times
`git ml run -- python -c pass` against `python -c pass`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES: dict[str, tuple[str, str | None, str | None]] = {
    # name: (python code or "sh:" command, file it reads, file it writes)
    "python open": ("open('out/a.txt','w').write(open('in/data.csv').read())", "in/data.csv", "out/a.txt"),
    "pandas read_csv / to_csv": (
        "import pandas as pd; pd.read_csv('in/data.csv').to_csv('out/b.csv')", "in/data.csv", "out/b.csv"),
    "pyarrow pq.read_table / pq.write_table": (
        "import pyarrow.parquet as pq; pq.write_table(pq.read_table('in/data.parquet'), 'out/c.parquet')",
        "in/data.parquet", "out/c.parquet"),
    "pyarrow.csv.read_csv": (
        "import pyarrow.csv as c, pyarrow.parquet as pq; pq.write_table(c.read_csv('in/data.csv'), 'out/d.parquet')",
        "in/data.csv", "out/d.parquet"),
    "python subprocess": (
        "import subprocess, sys; subprocess.run([sys.executable, '-c', "
        "\"open('out/e.txt','w').write(open('in/data.csv').read())\"], check=True)", "in/data.csv", "out/e.txt"),
    "shell (cat > file)": ("sh:cat in/data.csv > out/f.txt", "in/data.csv", "out/f.txt"),
    "atomic write (tmp + rename)": (
        "import os; open('out/.g.tmp','w').write('x'); os.replace('out/.g.tmp', 'out/g.txt')", None, "out/g.txt"),
    "new nested folder": (
        "import os; os.makedirs('newdir/a/b'); open('newdir/a/b/h.txt','w').write('x')", None, "newdir"),
}


def sh(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, env=env, check=True)


def make_repo(root: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    repo = root / "repo"
    (repo / "in").mkdir(parents=True)
    (repo / "out").mkdir()
    (repo / "in" / "data.csv").write_text("x,y\n" + "".join(f"{i},{i * 2}\n" for i in range(1000)))
    pq.write_table(pa.table({"x": list(range(1000))}), repo / "in" / "data.parquet")
    (repo / "out" / ".keep").write_text("")
    sh(repo, "git", "init", "-q")
    sh(repo, "git", "add", ".")
    sh(repo, "git", "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-q", "-m", "init")
    sh(repo, "git", "ml", "init")
    return repo


def main() -> int:
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
           "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@x"}
    os.environ.update(env)
    results: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode, extra in (("inotify", {}), ("snapshot", {"GITML_NO_INOTIFY": "1"})):
            for i, (name, (code, reads, writes)) in enumerate(CASES.items()):
                repo = make_repo(Path(tmp) / f"{mode}{i}")
                cmd = ["sh", "-c", code[3:]] if code.startswith("sh:") else [sys.executable, "-c", code]
                sh(repo, "git", "ml", "run", "-q", "-n", "case", "--", *cmd, env={**env, **extra})
                rec = json.loads((repo / ".gitml" / "runs" / "case.json").read_text())
                ins = {r["path"] for r in rec["inputs"]}
                outs = {r["path"] for r in rec["outputs"]}
                r_ok = "-" if reads is None else ("yes" if reads in ins else "NO")
                w_ok = "-" if writes is None else ("yes" if writes in outs else "NO")
                results.setdefault(name, {})[mode] = f"read {r_ok:3} write {w_ok:3}"
        print(f"{'access method':42} {'inotify+audit+snapshot':26} snapshot+audit (no inotify)")
        for name, r in results.items():
            print(f"{name:42} {r['inotify']:26} {r['snapshot']}")
        repo = make_repo(Path(tmp) / "overhead")
        for label, cmd in (("python -c pass", [sys.executable, "-c", "pass"]),
                           ("git ml run -- python -c pass", ["git", "ml", "run", "-q", "-n", "noop", "--",
                                                             sys.executable, "-c", "pass"]),
                           ("git ml status (baseline gitml start-up)", ["git", "ml", "status", "-q"])):
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)
                times.append(time.perf_counter() - t0)
            print(f"{label:42} median {sorted(times)[2] * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
