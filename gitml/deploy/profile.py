"""``git ml profile REF``: measure a model version on this machine and record it in Git.

What is measured: the load time and memory of one server worker (in a fresh interpreter,
:mod:`gitml.deploy.probe`), the model's size, in-process latency p50/p99 for 1 and 100
rows on the server's own predictor, and the real server's throughput per worker count
(gitml's server started by :func:`gitml.serve.control.start`, driven by
:mod:`gitml.deploy.loadgen` at a fixed concurrency with MLflow-style requests), with the
server's total RSS under that load. The result goes to ``.gitml/profiles/<model>/<version>.json``
with the environment id and CPU model, and is committed (or only staged, ``commit=False``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitml.deploy.profiles import FORMAT, profile_path
from gitml.errors import GitMLError

if TYPE_CHECKING:
    from gitml.registry.refs import ModelRef
    from gitml.repo import MLRepo

CONCURRENCY = 16


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", encoding="ascii", errors="replace") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            out.append(int(d))
    return out


def tree_rss(pid: int) -> int:
    """RSS of a process and all its descendants (the supervisor and its workers)."""
    from gitml.deploy.probe import rss_bytes

    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += rss_bytes(p)
        todo.extend(_children(p))
    return total


class _RssSampler:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.peak = max(self.peak, tree_rss(self.pid))

    def __enter__(self) -> _RssSampler:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join(2)


def request_body(bundle: Any, rows: int) -> bytes:
    """An MLflow ``dataframe_split`` body of ``rows`` smoke rows (what the benchmarks send)."""
    df, _, _ = bundle.smoke()
    reps = -(-rows // max(1, len(df)))
    import pandas as pd

    part = pd.concat([df] * reps, ignore_index=True).head(rows) if reps > 1 else df.head(rows)
    data = part.astype(object).where(part.notna(), None).values.tolist()
    return json.dumps({"dataframe_split": {"columns": list(part.columns), "data": data}}).encode()


def run_probe(bundle_dir: Path, rows: list[int], budget_s: float) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "gitml.deploy.probe", str(bundle_dir),
                           "--rows", ",".join(map(str, rows)), "--budget", str(budget_s)],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise GitMLError(f"measuring the model in-process failed: {proc.stderr.strip()[-400:]}")
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def measure_server(bundle: Any, state_dir: Path, label: str, workers: list[int], rows: list[int],
                   duration_s: float, tool: str = "auto") -> list[dict[str, Any]]:
    from gitml.deploy import loadgen
    from gitml.serve import control

    state = state_dir / "state.json"
    control.write_state(state, {"model": bundle.name, "active": label,
                                "versions": {label: str(bundle.path)}})
    out = []
    for w in workers:
        srv = control.start(state, host="127.0.0.1", port=0, workers=w, traffic_dir=None)
        try:
            control.wait_ready(srv.url, label, timeout=120, model=bundle.name)
            for r in rows:
                body = request_body(bundle, r)
                loadgen.run(f"{srv.url}/invocations", body, concurrency=4, duration_s=1, tool=tool)
                with _RssSampler(srv.pid) as s:
                    res = loadgen.run(f"{srv.url}/invocations", body, concurrency=CONCURRENCY,
                                      duration_s=duration_s, tool=tool)
                out.append({"workers": w, "rows": r, "concurrency": CONCURRENCY, "rps": res.rps,
                            "p50_ms": res.p50_ms, "p99_ms": res.p99_ms, "errors": res.errors,
                            "requests": res.requests, "rss_bytes": s.peak, "tool": res.tool})
        finally:
            control.stop(srv.pid)
    return out


def profile(repo: MLRepo, ref: ModelRef, *, rows: list[int], workers: list[int],
            duration_s: float = 3.0, onnx: bool = False, commit: bool = True,
            tool: str = "auto") -> tuple[dict[str, Any], str]:
    from gitml.deploy.envrecord import capture, record_environment
    from gitml.models.bundle import build_bundle
    from gitml.store.fsutil import atomic_write_text

    if not rows or any(r < 1 for r in rows) or not workers or any(w < 1 for w in workers):
        raise GitMLError("--rows and --workers take positive integers, e.g. --rows 1,100 --workers 1,2")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gitml-profile-") as tmp:
        bundle = build_bundle(repo, ref.name, ref.commit, Path(tmp) / "bundle", version=ref.version)
        if onnx:
            from gitml.deploy.package import swap_to_onnx

            bundle = swap_to_onnx(repo, bundle)
        inproc = run_probe(bundle.path, rows, budget_s=1.0)
        server = measure_server(bundle, Path(tmp), ref.label, workers, rows, duration_s, tool)
    env = capture()
    env_id, env_rel = record_environment(repo, env)
    prof: dict[str, Any] = {
        "format": FORMAT, "model": ref.name, "version": ref.version, "commit": ref.commit,
        "flavor": bundle.flavor, "model_id": bundle.model_id, "environment": env_id,
        "cpu": env.get("cpu", {}), "machine": (env.get("platform") or {}).get("machine"),
        "memory_bytes": env.get("memory_bytes"),
        "profiled_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "load": inproc["load"], "path": inproc.get("path"), "latency": inproc["latency"],
        "server": server,
    }
    prof["duration_s"] = round(time.perf_counter() - t0, 1)
    rel = profile_path(ref.name, ref.label, onnx)
    previous = repo.workdir / rel
    note = ""
    if previous.is_file():
        try:
            old = json.loads(previous.read_bytes())
            if old.get("environment") != env_id:
                note = (f"replaces a profile measured in environment {str(old.get('environment'))[:12]}"
                        f" on {(old.get('cpu') or {}).get('model', '?')}")
        except ValueError:
            note = "replaces an unreadable profile"
    atomic_write_text(previous, json.dumps(prof, indent=2, sort_keys=True) + "\n")
    repo.git.stage([rel, env_rel])
    if commit:
        msg = (f"profile: {ref.name} {ref.label}{' (onnx)' if onnx else ''} on {(env.get('cpu') or {}).get('model', '?')}\n\n"
               f"Environment: {env_id}\n")
        repo.git.run_git("commit", "-q", "-m", msg, "--", rel, env_rel)
    if note:
        prof["_note"] = note
    return prof, rel
