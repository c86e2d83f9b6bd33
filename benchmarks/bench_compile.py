"""Benchmark: the ONNX-compiled model against `pipe.predict(DataFrame)`, in process.

    .venv/bin/python benchmarks/bench_compile.py

The arrests pipeline of issue 11 (one-hot on 4 categorical columns, scaling on 3 numeric
ones, logistic regression) is committed to a temporary gitml repository, tagged
arrests@v1.0.0, compiled with `git ml compile --onnx` (parity gate on the evaluation data)
and packaged with and without `--onnx`. Single-row latency (p50/p99 over 2 s each) of
`pipe.predict(DataFrame)`, of the compiled model through `gitml.models.onnx.OnnxModel` on
column arrays, and of the server's own predictor for each bundle (what a worker runs per
request); model sizes. Each figure with the load average at the time; results also go to
`benchmarks/results/compile-<date>.json`.

Served throughput of the compiled model against `mlflow models serve` is measured by the
serving benchmark, same harness, same run: `benchmarks/bench_serve.py --onnx`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


ENV = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
       "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
       "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}


def sh(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env or ENV)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {p.stderr[-1500:]}")
    return p.stdout


def make_repo(work: Path) -> Path:
    from tests.support.checks import good_model, save_model, write_config, write_eval

    repo = work / "repo"
    repo.mkdir(parents=True)
    sh(["git", "init", "-q"], repo)
    sh(["git", "ml", "init", "--no-hooks"], repo)
    write_eval(repo / "data" / "eval.parquet")
    save_model(good_model("logreg"), repo / "models" / "model.skops")
    write_config(repo, baseline="prod")
    sh(["git", "ml", "add", "models/model.skops", "data/eval.parquet"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "model"], repo)
    sh(["git", "tag", "-a", "arrests@v1.0.0", "-m", "v1.0.0"], repo)
    out = sh(["git", "ml", "compile", "arrests@v1.0.0", "--onnx", "--json"], repo)
    sh(["git", "commit", "-q", "-m", "compiled"], repo)
    print(f"compile: {json.loads(out)['parity']}")
    return repo


def in_process(repo: Path) -> dict[str, Any]:
    from gitml.deploy.compile import time_single_row
    from gitml.models.onnx import OnnxModel
    from gitml.serve.loaded import load_version, smoke_columns
    from tests.support.checks import FEATURES, arrests_split, good_model

    X = arrests_split()[1][FEATURES].head(200)
    pipe = good_model("logreg")
    onnx = OnnxModel((repo / "models" / "model.onnx").read_bytes())
    rows_df = [X.iloc[[i]] for i in range(len(X))]
    rows_cols = [{c: [r[c]] for c in FEATURES} for r in X.to_dict("records")]
    out: dict[str, Any] = {}
    for name, fn, rows in (("pipe.predict(DataFrame)", pipe.predict, rows_df),
                           ("OnnxModel.predict(columns)", onnx.predict, rows_cols)):
        la = loadavg()
        t = time_single_row(fn, rows, budget_s=2.0, max_n=5000)
        out[name] = {"p50_ms": t.p50_ms, "p99_ms": t.p99_ms, "n": t.n, "load_avg": la}
    for flavor, folder in (("skops", repo.parent / "pkg-skops" / "bundle"),
                           ("onnx", repo.parent / "pkg-onnx" / "bundle")):
        v = load_version("bench", str(folder))
        cols, n = smoke_columns(v.bundle, v.schema)
        batches = [({c: a[i:i + 1] for c, a in cols.items()}, 1) for i in range(n)]
        la = loadavg()
        t = time_single_row(lambda b, p=v.predictor: p.predict(*b), batches, budget_s=2.0,
                            max_n=5000)
        out[f"server predictor ({flavor}, {v.predictor.mode if flavor == 'skops' else 'onnxruntime'})"] = {
            "p50_ms": t.p50_ms, "p99_ms": t.p99_ms, "n": t.n, "load_avg": la}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gitml-bench-compile-"))
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "cpus": os.cpu_count()}
    try:
        repo = make_repo(work)
        sh(["git", "ml", "package", "arrests@v1.0.0", "-o", str(work / "pkg-skops")], repo)
        sh(["git", "ml", "package", "arrests@v1.0.0", "-o", str(work / "pkg-onnx"), "--onnx"], repo)
        result["size_bytes"] = {"skops": (repo / "models/model.skops").stat().st_size,
                                "onnx": (repo / "models/model.onnx").stat().st_size}
        result["in_process_1row"] = in_process(repo)
        print("\nin-process, 1 row:")
        for k, v in result["in_process_1row"].items():
            print(f"  {k:45s} p50 {v['p50_ms']:8.3f} ms  p99 {v['p99_ms']:8.3f} ms  "
                  f"(n={v['n']}, load avg {v['load_avg']})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = args.json or ROOT / "benchmarks" / "results" / f"compile-{time.strftime('%Y-%m-%d')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
