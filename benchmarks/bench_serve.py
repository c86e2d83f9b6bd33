"""Benchmark: `git ml serve` against `mlflow models serve` on the same model and bodies.

    .venv/bin/python benchmarks/bench_serve.py                 # both servers, c=1,16,64, 10 s each
    .venv/bin/python benchmarks/bench_serve.py --duration 5 --concurrency 16
    .venv/bin/python benchmarks/bench_serve.py --onnx --concurrency 16   # + the compiled model
    .venv/bin/python benchmarks/bench_serve.py --startup 5    # only `git ml serve`'s cold start

One scikit-learn pipeline (one-hot on the 4 categorical columns of the arrests data,
scaling on its 3 numeric ones, logistic regression) is trained once, committed to a
temporary gitml repository as a skops file, and saved as an MLflow model from the same
fitted object. Both servers answer the same `dataframe_split` bodies (1 row and 100 rows)
under the same load generator (`wrk`, Debian package) in one run, one after the other:
requests/s, p50, p99, errors, and the load average of the machine during each run. Time to
the first healthy answer: from starting the command to the first 200 on `/ping`.

MLflow is installed with pip into its own venv (`--mlflow-venv`, default
~/.cache/gitml-bench/mlflow-venv), never into the project's environment; it serves with
`--env-manager local` (the venv's own interpreter) and its default single worker, as the
issue's figures were measured. Results: a table on stdout and
`benchmarks/results/serve-<date>.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CAT = ["colour", "sex", "employed", "citizen"]
NUM = ["year", "age", "checks"]
FEATURES = CAT + NUM

MLFLOW_CONVERT = rf"""
import sys, skops.io as sio, mlflow.sklearn, pandas as pd
from mlflow.models import infer_signature
model_file, data_file, out = sys.argv[1:4]
model = sio.load(model_file, trusted=sio.get_untrusted_types(file=model_file))
df = pd.read_parquet(data_file)
X = df[{FEATURES!r}]
mlflow.sklearn.save_model(model, out, signature=infer_signature(X, model.predict(X)),
                          input_example=X.head(2))
print("ok")
"""


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def git_env(home: Path) -> dict[str, str]:
    (home / ".gitconfig").write_text("[user]\n\tname = Bench\n\temail = bench@example.com\n"
                                     "[init]\n\tdefaultBranch = main\n")
    return {**os.environ, "HOME": str(home), "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stdout}\n{p.stderr}")
    return p.stdout


def make_repo(work: Path, env: dict[str, str]) -> tuple[Path, Any]:
    """A gitml repo with the model committed and tagged arrests@v1.0.0."""
    import skops.io as sio
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklego.datasets import load_arrests

    df = load_arrests(as_frame=True)
    for c in [*CAT, "released"]:
        df[c] = df[c].astype(object)
    train, test = train_test_split(df, test_size=0.3, random_state=0, stratify=df["released"])
    pipe = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="ignore"), CAT),
                                                 (StandardScaler(), NUM)),
                         LogisticRegression(max_iter=1000))
    pipe.fit(train[FEATURES], train["released"])
    repo = work / "repo"
    (repo / "models").mkdir(parents=True)
    (repo / "data").mkdir()
    run(["git", "init", "-q"], repo, env)
    run(["git", "ml", "init"], repo, env)
    (repo / ".gitml" / "config.toml").write_text(
        (repo / ".gitml" / "config.toml").read_text() + '\n[models.arrests]\npath = "models/model.skops"\n'
        'data = "data/eval.parquet"\ntarget = "released"\ntask = "classification"\npositive = "Yes"\n')
    sio.dump(pipe, repo / "models" / "model.skops")
    test.reset_index(drop=True).to_parquet(repo / "data" / "eval.parquet", index=False)
    run(["git", "ml", "add", "models/model.skops", "data/eval.parquet"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "--no-verify", "-m", "model"], repo, env)
    run(["git", "tag", "-a", "arrests@v1.0.0", "-m", "v1.0.0"], repo, env)
    # a second version (another regularisation) for the switch under load
    pipe.set_params(logisticregression__C=0.05).fit(train[FEATURES], train["released"])
    sio.dump(pipe, repo / "models" / "model.skops")
    run(["git", "ml", "add", "models/model.skops"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "--no-verify", "-m", "model C=0.05"], repo, env)
    run(["git", "tag", "-a", "arrests@v1.1.0", "-m", "v1.1.0"], repo, env)
    return repo, test.reset_index(drop=True)


def bodies(test: Any) -> dict[int, bytes]:
    out = {}
    for n in (1, 100):
        df = test[FEATURES].head(n)
        out[n] = json.dumps({"dataframe_split": {"columns": FEATURES,
                                                 "data": df.astype(object).values.tolist()}}).encode()
    return out


def tree_cpu(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the processes of a process group, with
    their reaped children: what startup costs whatever the machine's load."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5: pgrp
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / tick


def wait_healthy(url: str, proc: subprocess.Popen[bytes], t0: float, timeout: float = 300) -> tuple[float, float]:
    """(seconds to the first 200 on /ping, CPU seconds the server used until then)."""
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode}) before answering")
        try:
            with urllib.request.urlopen(url + "/ping", timeout=2) as r:
                if r.status == 200:
                    return time.monotonic() - t0, tree_cpu(proc.pid)
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.02)
    raise SystemExit(f"{url} not healthy within {timeout}s")


def startup_runs(repo: Path, env: dict[str, str], body: bytes, n: int, workers: int,
                 extra: list[str]) -> list[dict[str, Any]]:
    """``n`` cold starts of `git ml serve`: ready (first 200 on /v2/health/ready), first
    /invocations answer, CPU seconds of the server's process group until then."""
    out = []
    for _ in range(n):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        before = loadavg()
        t0 = time.monotonic()
        proc = subprocess.Popen(["git", "ml", "serve", "arrests@v1.0.0", "--port", str(port),
                                 "--workers", str(workers), "--no-log", *extra], cwd=repo, env=env,
                                start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            ready = None
            while ready is None and time.monotonic() - t0 < 300:
                if proc.poll() is not None:
                    raise SystemExit(f"git ml serve exited ({proc.returncode}) before answering")
                try:
                    with urllib.request.urlopen(url + "/v2/health/ready", timeout=2) as r:
                        ready = time.monotonic() - t0 if r.status == 200 else None
                except (urllib.error.URLError, OSError):
                    time.sleep(0.01)
            if ready is None:
                raise SystemExit(f"{url} not ready within 300 s")
            check_answer(url, body)
            first = time.monotonic() - t0
            cpu = tree_cpu(proc.pid)
        finally:
            stop(proc)
        out.append({"ready_s": round(ready, 3), "first_answer_s": round(first, 3),
                    "cpu_s": round(cpu, 2), "load": before})
        print(f"  ready {ready:.2f} s, first /invocations answer {first:.2f} s, {cpu:.2f} CPU-s, "
              f"load {before[0]:.2f}", flush=True)
    return out


def check_answer(url: str, body: bytes) -> list[Any]:
    req = urllib.request.Request(url + "/invocations", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return list(json.loads(r.read())["predictions"])


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text.strip())
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url: str, body: bytes, conns: int, duration: float, work: Path) -> dict[str, Any]:
    script = work / "post.lua"
    script.write_text(f"wrk.method = 'POST'\nwrk.body = {json.dumps(body.decode())}\n"
                      "wrk.headers['Content-Type'] = 'application/json'\n")
    threads = min(2, conns)
    before = loadavg()
    p = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration:g}s", "--latency",
                        "--timeout", "10s", "-s", str(script), url + "/invocations"],
                       capture_output=True, text=True)
    after = loadavg()
    return dict(parse_wrk(p), load_before=before, load_after=after)


def parse_wrk(p: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """Throughput, p50/p99, non-2xx answers and socket errors from wrk's ``--latency`` report."""
    out = p.stdout
    if p.returncode != 0 or "Requests/sec" not in out:
        raise SystemExit(f"wrk failed: {out}\n{p.stderr}")
    lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
            "p50_ms": _ms(lat["50"]), "p99_ms": _ms(lat["99"]),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(map(int, sock.groups())) if sock else 0}


def switch_under_load(repo: Path, url: str, body: bytes, conns: int, work: Path) -> dict[str, Any]:
    """wrk at ``conns`` for the whole of two switches (1.0.0 -> 1.1.0 -> 1.0.0) of the running
    `git ml serve`: every request must succeed."""
    from gitml.models.bundle import build_bundle
    from gitml.repo import MLRepo
    from gitml.serve import control

    old = os.getcwd()
    os.chdir(repo)
    try:
        state = repo / ".git" / "ml" / "serve" / "arrests" / "state.json"
        cur = control.read_state(state)
        b2 = build_bundle(MLRepo.discover(), "arrests", "arrests@v1.1.0", work / "bundle-1.1.0")
    finally:
        os.chdir(old)
    both = {**cur["versions"], "1.1.0": str(b2.path)}
    script = work / "switch.lua"
    script.write_text(f"wrk.method = 'POST'\nwrk.body = {json.dumps(body.decode())}\n"
                      "wrk.headers['Content-Type'] = 'application/json'\n")
    before = loadavg()
    proc = subprocess.Popen(["wrk", "-t2", f"-c{conns}", "-d12s", "--latency", "--timeout", "10s",
                             "-s", str(script), url + "/invocations"], stdout=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    time.sleep(1.5)
    control.write_state(state, {"model": "arrests", "active": "1.0.0", "versions": both})
    control.wait_ready(url, "1.1.0", timeout=60)
    control.write_state(state, {"model": "arrests", "active": "1.1.0", "versions": both})
    control.wait_ready(url, "1.1.0", timeout=30, active=True)
    t_switch = time.monotonic() - t0
    time.sleep(1.0)
    control.write_state(state, {"model": "arrests", "active": "1.0.0", "versions": both})
    control.wait_ready(url, "1.0.0", timeout=30, active=True)
    t_back = time.monotonic() - t0
    out = proc.communicate(timeout=120)[0]
    if time.monotonic() - t0 < t_back:
        raise SystemExit("wrk ended before the switches did")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"requests": int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
            "failed": (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0),
            "concurrency": conns, "switched_at_s": t_switch, "switched_back_at_s": t_back,
            "load": [before, loadavg()]}


def ensure_mlflow(venv: Path) -> Path:
    py = venv / "bin" / "python"
    if not py.exists() or subprocess.run([str(py), "-c", "import mlflow, skops"],
                                         capture_output=True).returncode != 0:
        import sklearn

        print(f"installing mlflow into {venv} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "mlflow",
                        f"scikit-learn=={sklearn.__version__}", "skops"], check=True)
    return py


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--workers", type=int, default=2, help="gitml worker processes")
    ap.add_argument("--servers", default="gitml,mlflow")
    ap.add_argument("--no-log", action="store_true", help="gitml without the traffic log")
    ap.add_argument("--mlflow-venv", type=Path,
                    default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gitml-bench" / "mlflow-venv")
    ap.add_argument("--onnx", action="store_true",
                    help="also serve the model compiled by `git ml compile --onnx` (server "
                         "gitml-onnx: `git ml package --onnx`, run with its Dockerfile's command)")
    ap.add_argument("--startup", type=int, default=0, metavar="N",
                    help="only measure N cold starts of `git ml serve` (no load runs, no MLflow)")
    ap.add_argument("--serve-onnx", action="store_true",
                    help="with --startup: `git ml serve --onnx` (compiles the model first)")
    ap.add_argument("--gitml-bin", type=Path,
                    help="a folder with another `git-ml` executable to measure (before/after)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    if a.startup:
        return startup_main(a)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    conc = [int(x) for x in a.concurrency.split(",")]
    servers = a.servers.split(",")
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    home = work / "home"
    home.mkdir()
    env = git_env(home)
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(),
                               "duration_s": a.duration, "workers": a.workers,
                               "traffic_log": not a.no_log, "runs": [], "startup_s": {}}
    try:
        repo, test = make_repo(work, env)
        body = bodies(test)
        import skops.io as sio

        model = sio.load(repo / "models" / "model.skops",
                         trusted=sio.get_untrusted_types(file=str(repo / "models" / "model.skops")))
        answers = {n: [str(x) for x in model.predict(test[FEATURES].head(n))] for n in body}
        procs: list[subprocess.Popen[bytes]] = []
        urls: dict[str, str] = {}
        try:
            if "gitml" in servers:
                for label in ("first (bundle built)", "again (bundle cached)"):
                    port = free_port()
                    cmd = ["git", "ml", "serve", "arrests@v1.0.0", "--port", str(port),
                           "--workers", str(a.workers)] + (["--no-log"] if a.no_log else [])
                    t0 = time.monotonic()
                    proc = subprocess.Popen(cmd, cwd=repo, env=env, start_new_session=True,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    procs.append(proc)
                    url = f"http://127.0.0.1:{port}"
                    wall, cpu = wait_healthy(url, proc, t0)
                    results["startup_s"][f"gitml {label}"] = {"wall": wall, "cpu": cpu, "load": loadavg()}
                    print(f"gitml: first healthy answer {label}: {wall:.2f} s "
                          f"({cpu:.2f} CPU-s, load {loadavg()[0]:.2f})", flush=True)
                    if label.startswith("first"):
                        stop(proc)
                    else:
                        urls["gitml"] = url
            if a.onnx:
                from gitml.deploy.package import dockerfile_cmd

                run(["git", "ml", "compile", "arrests@v1.0.0", "--onnx"], repo, env)
                run(["git", "commit", "-q", "--no-verify", "-m", "compiled"], repo, env)
                pkg = work / "pkg-onnx"
                run(["git", "ml", "package", "arrests@v1.0.0", "--onnx", "-o", str(pkg),
                     "--workers", str(a.workers)], repo, env)
                port = free_port()
                cmd = dockerfile_cmd((pkg / "Dockerfile").read_text())
                cmd[0] = sys.executable
                cmd[cmd.index("--host") + 1] = "127.0.0.1"
                cmd[cmd.index("--port") + 1] = str(port)
                t0 = time.monotonic()
                proc = subprocess.Popen(cmd, cwd=pkg, env=env, start_new_session=True,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                procs.append(proc)
                url = f"http://127.0.0.1:{port}"
                wall, cpu = wait_healthy(url, proc, t0)
                results["startup_s"]["gitml-onnx"] = {"wall": wall, "cpu": cpu, "load": loadavg()}
                print(f"gitml-onnx: first healthy answer {wall:.2f} s ({cpu:.2f} CPU-s, "
                      f"load {loadavg()[0]:.2f})", flush=True)
                urls["gitml-onnx"] = url
            if "mlflow" in servers:
                py = ensure_mlflow(a.mlflow_venv)
                version = subprocess.run([str(py), "-c", "import mlflow; print(mlflow.__version__)"],
                                         capture_output=True, text=True).stdout.strip()
                results["mlflow_version"] = version
                out = work / "mlflow-model"
                conv = subprocess.run([str(py), "-c", MLFLOW_CONVERT, str(repo / "models" / "model.skops"),
                                       str(repo / "data" / "eval.parquet"), str(out)],
                                      capture_output=True, text=True)
                if conv.returncode != 0:
                    raise SystemExit(f"saving the MLflow model failed:\n{conv.stderr[-3000:]}")
                port = free_port()
                menv = {**env, "PATH": str(py.parent) + os.pathsep + env["PATH"]}
                t0 = time.monotonic()
                proc = subprocess.Popen([str(py.parent / "mlflow"), "models", "serve", "-m", str(out),
                                         "-h", "127.0.0.1", "-p", str(port), "--env-manager", "local"],
                                        env=menv, start_new_session=True, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
                procs.append(proc)
                url = f"http://127.0.0.1:{port}"
                wall, cpu = wait_healthy(url, proc, t0)
                results["startup_s"]["mlflow"] = {"wall": wall, "cpu": cpu, "load": loadavg()}
                print(f"mlflow {version}: first healthy answer {wall:.2f} s ({cpu:.2f} CPU-s, "
                      f"load {loadavg()[0]:.2f})", flush=True)
                urls["mlflow"] = url
            # interleaved: for each body and concurrency, the servers back to back (order
            # alternating), so load that drifts on a shared machine favours neither
            for name, url in urls.items():
                for n, b in body.items():
                    if check_answer(url, b) != answers[n]:
                        raise SystemExit(f"{name}: answers differ from the model's on the {n}-row body")
                    wrk(url, b, max(conc), min(2.0, a.duration), work)  # warm-up
            order = list(urls)
            for n, b in body.items():
                for c in conc:
                    for name in order:
                        r = wrk(urls[name], b, c, a.duration, work)
                        r.update({"server": name, "rows": n, "concurrency": c})
                        results["runs"].append(r)
                        print(f"  {name:10s} rows={n:<3d} c={c:<3d} {r['rps']:8.1f} req/s  "
                              f"p50 {r['p50_ms']:8.2f} ms  p99 {r['p99_ms']:8.2f} ms  "
                              f"errors {r['non_2xx'] + r['socket_errors']}  "
                              f"load {r['load_before'][0]:.2f}->{r['load_after'][0]:.2f}", flush=True)
                    order.reverse()
            if "gitml" in urls:
                sw = switch_under_load(repo, urls["gitml"], body[1], 64, work)
                results["switch_under_load"] = sw
                print(f"\nswitch 1.0.0 -> 1.1.0 -> 1.0.0 under wrk -c64: {sw['requests']} requests, "
                      f"{sw['failed']} failed (switched at {sw['switched_at_s']:.1f} s and back at "
                      f"{sw['switched_back_at_s']:.1f} s of 12 s)", flush=True)
        finally:
            for proc in procs:
                stop(proc)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    by = {(r["server"], r["rows"], r["concurrency"]): r for r in results["runs"]}
    ratios = []
    for (srv, n, c), r in sorted(by.items()):
        m = by.get(("mlflow", n, c))
        if srv.startswith("gitml") and m is not None:
            ratios.append({"server": srv, "rows": n, "concurrency": c, "rps_ratio": r["rps"] / m["rps"],
                           "p99_ratio": r["p99_ms"] / m["p99_ms"]})
    results["ratios"] = ratios
    print("\n| server | rows | conc | gitml req/s | mlflow req/s | × | gitml p99 | mlflow p99 | p99 ratio | load (1 min) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for q in ratios:
        g, m = by[(q["server"], q["rows"], q["concurrency"])], by[("mlflow", q["rows"], q["concurrency"])]
        print(f"| {q['server']} | {q['rows']} | {q['concurrency']} | {g['rps']:.0f} | {m['rps']:.1f} | {q['rps_ratio']:.1f} | "
              f"{g['p99_ms']:.1f} ms | {m['p99_ms']:.0f} ms | {q['p99_ratio']:.3f} | "
              f"{g['load_before'][0]:.1f} / {m['load_before'][0]:.1f} |")
    dest = a.json or ROOT / "benchmarks" / "results" / f"serve-{time.strftime('%Y-%m-%d-%H%M')}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults: {dest}")
    return 0


def startup_main(a: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    home = work / "home"
    home.mkdir()
    env = git_env(home)
    if a.gitml_bin:
        env["PATH"] = str(a.gitml_bin.absolute()) + os.pathsep + env["PATH"]
    try:
        repo, test = make_repo(work, env)
        extra = []
        if a.serve_onnx:
            run(["git", "ml", "compile", "arrests@v1.0.0", "--onnx"], repo, env)
            run(["git", "commit", "-q", "--no-verify", "-m", "compiled"], repo, env)
            extra = ["--onnx"]
        body = bodies(test)[1]
        print("first start (builds the bundle):", flush=True)
        first = startup_runs(repo, env, body, 1, a.workers, extra)
        print(f"{a.startup} starts with the bundle cached:", flush=True)
        runs = startup_runs(repo, env, body, a.startup, a.workers, extra)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ready = sorted(r["ready_s"] for r in runs)
    cpu = sorted(r["cpu_s"] for r in runs)
    print(f"median: ready {ready[len(ready) // 2]:.2f} s, {cpu[len(cpu) // 2]:.2f} CPU-s "
          f"({a.workers} workers{', onnx' if a.serve_onnx else ''})")
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(),
               "workers": a.workers, "onnx": a.serve_onnx, "first": first, "cached": runs}
    dest = a.json or ROOT / "benchmarks" / "results" / f"serve-startup-{time.strftime('%Y-%m-%d-%H%M')}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
