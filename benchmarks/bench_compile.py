"""Benchmark: the ONNX-compiled model against `pipe.predict(DataFrame)`, in-process and served.

    .venv/bin/python benchmarks/bench_compile.py                      # all, 10 s per server run
    .venv/bin/python benchmarks/bench_compile.py --duration 5 --servers gitml-onnx,mlflow

The arrests pipeline of issue 11 (one-hot on 4 categorical columns, scaling on 3 numeric
ones, logistic regression) is committed to a temporary gitml repository, tagged
arrests@v1.0.0 and compiled with `git ml compile --onnx` (parity gate on the evaluation
data). Then:

1. In-process single-row latency (p50/p99 over 2 s): `pipe.predict(DataFrame)`, the
   compiled model through `gitml.models.onnx.OnnxModel` on column arrays, and the server's
   own predictor path for each bundle (what a worker runs per request).
2. Server throughput at concurrency 16 (and 1-row / 100-row `dataframe_split` bodies),
   same load generator (wrk) in one run, one server after the other:
   `gitml-onnx` (the package built by `git ml package --onnx`, started with the
   Dockerfile's command), `gitml-skops` (same, without --onnx) and `mlflow models serve`
   (MLflow's sklearn flavor of the same fitted pipeline, `--env-manager local`, its
   default single worker) from a separate venv (`--mlflow-venv`; installed there with pip
   if missing, never into the project's environment).

Every figure is printed with the load average at the time; results also go to
`benchmarks/results/compile-<date>.json`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MLFLOW_SAVE = r"""
import sys, skops.io as sio, mlflow.sklearn, pandas as pd
model_file, data_file, out, cols = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
model = sio.load(model_file, trusted=sio.get_untrusted_types(file=model_file))
X = pd.read_parquet(data_file)[cols]
mlflow.sklearn.save_model(model, out, input_example=X.head(2))
print("ok")
"""


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ENV = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
       "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
       "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}


def sh(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env or ENV)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {p.stderr[-1500:]}")
    return p.stdout


def make_repo(work: Path) -> Path:
    from tests.checks_support import good_model, save_model, write_config, write_eval

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
    from tests.checks_support import FEATURES, arrests_split, good_model

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


def wait_healthy(url: str, proc: subprocess.Popen[bytes], t0: float, timeout: float = 240) -> float:
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            logs = sorted(Path(tempfile.gettempdir()).glob("gitml-bench-compile-*/mlflow.log"))
            tail = logs[-1].read_text(errors="replace")[-1500:] if logs else ""
            raise SystemExit(f"server exited ({proc.returncode}) {tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} never became healthy")


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, 15)
        proc.wait(20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait(5)


def ensure_mlflow(venv: Path) -> Path:
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if subprocess.run([str(py), "-c", "import mlflow, skops"], capture_output=True).returncode:
        subprocess.run([str(py), "-m", "pip", "install", "-q", "mlflow", "skops",
                        f"scikit-learn=={__import__('sklearn').__version__}"], check=True)
    return py


def bodies() -> dict[int, bytes]:
    from tests.checks_support import FEATURES, arrests_split

    X = arrests_split()[1][FEATURES]
    return {n: json.dumps({"dataframe_split": {"columns": FEATURES,
                                               "data": X.head(n).astype(object).values.tolist()}}).encode()
            for n in (1, 100)}


def serve(name: str, repo: Path, args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str, str]:
    from gitml.deploy.package import dockerfile_cmd

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    if name.startswith("gitml"):
        pkg = repo.parent / ("pkg-onnx" if name == "gitml-onnx" else "pkg-skops")
        cmd = dockerfile_cmd((pkg / "Dockerfile").read_text())
        cmd[0] = sys.executable
        cmd[cmd.index("--host") + 1] = "127.0.0.1"
        cmd[cmd.index("--port") + 1] = str(port)
        cmd[cmd.index("--workers") + 1] = str(args.workers)
        proc = subprocess.Popen(cmd, cwd=pkg, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=env, start_new_session=True)
        return proc, f"http://127.0.0.1:{port}", "/v2/health/ready"
    py = ensure_mlflow(args.mlflow_venv)
    model_dir = repo.parent / "mlflow-model"
    if not model_dir.exists():
        sh([str(py), "-c", MLFLOW_SAVE, str(repo / "models/model.skops"),
            str(repo / "data/eval.parquet"), str(model_dir),
            "colour,sex,employed,citizen,year,age,checks"], repo)
    mlflow = str(py.parent / "mlflow")
    env["PATH"] = str(py.parent) + os.pathsep + env.get("PATH", "")  # mlflow runs `uvicorn`
    log = open(repo.parent / "mlflow.log", "wb")  # noqa: SIM115 - the server outlives this call
    proc = subprocess.Popen([mlflow, "models", "serve", "-m", str(model_dir), "-h", "127.0.0.1",
                             "-p", str(port), "--env-manager", "local"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}", "/ping"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2, help="gitml worker processes")
    ap.add_argument("--servers", default="gitml-onnx,gitml-skops,mlflow")
    ap.add_argument("--mlflow-venv", type=Path,
                    default=Path.home() / ".cache" / "gitml-bench" / "mlflow-venv")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed (apt-get install wrk)")
    from gitml.deploy import loadgen

    work = Path(tempfile.mkdtemp(prefix="gitml-bench-compile-"))
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "cpus": os.cpu_count(), "duration_s": args.duration,
                              "concurrency": args.concurrency, "workers": args.workers}
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
        body = bodies()
        result["servers"] = {}
        print(f"\nservers at concurrency {args.concurrency}, wrk {args.duration:g} s per run:")
        for name in [s.strip() for s in args.servers.split(",") if s.strip()]:
            t0 = time.monotonic()
            proc, url, health = serve(name, repo, args)
            try:
                first = wait_healthy(url + health, proc, t0)
                runs = {}
                for rows, b in body.items():
                    loadgen.run(f"{url}/invocations", b, concurrency=4, duration_s=1)
                    la = loadavg()
                    r = loadgen.run(f"{url}/invocations", b, concurrency=args.concurrency,
                                    duration_s=args.duration, tool="wrk")
                    runs[rows] = {"rps": r.rps, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms,
                                  "errors": r.errors, "requests": r.requests,
                                  "load_avg_before": la, "load_avg_after": loadavg()}
                    print(f"  {name:12s} {rows:3d} row(s): {r.rps:8.1f} req/s  p50 {r.p50_ms:8.1f} ms"
                          f"  p99 {r.p99_ms:8.1f} ms  errors {r.errors}  load avg {la} -> "
                          f"{runs[rows]['load_avg_after']}")
                result["servers"][name] = {"first_healthy_s": round(first, 2), "runs": runs}
            finally:
                stop(proc)
        s = result["servers"]
        if "gitml-onnx" in s and "mlflow" in s:
            for rows in (1, 100):
                ratio = s["gitml-onnx"]["runs"][rows]["rps"] / max(1e-9, s["mlflow"]["runs"][rows]["rps"])
                result.setdefault("onnx_vs_mlflow", {})[rows] = round(ratio, 1)
                print(f"  gitml-onnx / mlflow throughput, {rows} row(s): {ratio:.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = args.json or ROOT / "benchmarks" / "results" / f"compile-{time.strftime('%Y-%m-%d')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
