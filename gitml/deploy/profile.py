"""``git ml profile REF``: measure a model version on this machine and record it in Git.

What is measured: the load time and memory of one server worker (in a fresh interpreter,
:mod:`gitml.deploy.probe`), the model's size, in-process latency p50/p99 for 1 and 100
rows on the server's own predictor, and the real server's throughput per worker count
(gitml's supervisor and workers, driven by :mod:`gitml.deploy.loadgen` at a fixed
concurrency with MLflow-style requests after a warm-up of a few hundred requests), with the
server's total RSS under that load. The result goes to ``.gitml/profiles/<model>/<version>.json``
with the environment id and CPU model, and is committed (or only staged, ``commit=False``).

Where the time goes (``phases_s`` in the profile): building the bundle, the probe, each
server's start-up, the load runs. Only the load runs have a fixed length; the rest is
CPU work that a loaded machine stretches. So the servers are forked by the probe's
interpreter once it has measured (``probe --serve``): its imports, done once, serve every
worker count, where a fresh ``python -m gitml.serve.supervisor`` per worker count paid them
again; and the bundle is the one `git ml serve` builds and keeps
(:func:`gitml.serve.local.bundle_for`), so a version is bundled once.
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
WARMUP_REQUESTS = 200


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


def server_rss(pid: int, file_floor: int = 0) -> int:
    """RSS of a supervisor and its workers. A supervisor forked by the probe has not touched
    the shared libraries' pages the probe's interpreter read while importing (fork copies no
    page-table entries of file mappings), so its file-backed RSS is counted as at least
    ``file_floor``, the probe's: what a supervisor started as a fresh interpreter holds."""
    from gitml.deploy.probe import rss_bytes

    return tree_rss(pid) + max(0, file_floor - rss_bytes(pid, "RssFile"))


class _RssSampler:
    def __init__(self, pid: int, file_floor: int = 0) -> None:
        self.pid = pid
        self.file_floor = file_floor
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.peak = max(self.peak, server_rss(self.pid, self.file_floor))

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


class Probe:
    """``python -m gitml.deploy.probe BUNDLE --serve``: the in-process measurements, then the
    servers of each worker count, forked from that interpreter."""

    def __init__(self, bundle_dir: Path, rows: list[int], budget_s: float, log: Path) -> None:
        import queue

        self.log = log
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gitml.deploy.probe", str(bundle_dir), "--rows",
                 ",".join(map(str, rows)), "--budget", str(budget_s), "--serve"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put("")  # closed: the probe exited

    def _answer(self, what: str, timeout: float = 300.0) -> dict[str, Any]:
        import queue

        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            line = ""
        if not line:  # the probe died: the last line of its error output says why
            lines = self.log.read_text(errors="replace").strip().splitlines() if self.log.exists() else []
            raise GitMLError(f"{what} failed: {lines[-1][-400:] if lines else 'no answer from the probe'}")
        data: dict[str, Any] = json.loads(line)
        if "error" in data:
            raise GitMLError(f"{what} failed: {data['error']}")
        return data

    def measurements(self) -> dict[str, Any]:
        return self._answer("measuring the model in-process")

    def _send(self, line: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # the answer says why

    def serve(self, state: Path, workers: int) -> tuple[int, str]:
        """(supervisor pid, url) of a server of ``workers`` workers on ``state``."""
        self._send(f"serve {state} {workers}")
        data = self._answer(f"starting a server with {workers} worker(s)")
        return int(data["pid"]), str(data["url"])

    def stop_server(self) -> None:
        self._send("stop")
        self._answer("stopping the server")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def measure_server(bundle: Any, probe: Probe, state_dir: Path, label: str, workers: list[int],
                   rows: list[int], duration_s: float, tool: str = "auto",
                   phases: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    from gitml.deploy import loadgen
    from gitml.serve import control

    phases = {} if phases is None else phases
    out = []
    for w in workers:
        state = state_dir / f"state-w{w}.json"
        control.write_state(state, {"model": bundle.name, "active": label,
                                    "versions": {label: str(bundle.path)}})
        t0 = time.perf_counter()
        pid, url = probe.serve(state, w)
        try:
            from gitml.deploy.probe import rss_bytes

            file_floor = rss_bytes(probe.proc.pid, "RssFile")
            control.wait_ready(url, label, timeout=120, model=bundle.name)
            phases.setdefault("server_start", []).append(round(time.perf_counter() - t0, 2))
            for r in rows:
                body = request_body(bundle, r)
                t1 = time.perf_counter()
                loadgen.warm(f"{url}/invocations", body, requests=WARMUP_REQUESTS,
                             concurrency=min(4, CONCURRENCY))
                phases.setdefault("warm_up", []).append(round(time.perf_counter() - t1, 2))
                with _RssSampler(pid, file_floor) as s:
                    res = loadgen.run(f"{url}/invocations", body, concurrency=CONCURRENCY,
                                      duration_s=duration_s, tool=tool)
                out.append({"workers": w, "rows": r, "concurrency": CONCURRENCY, "rps": res.rps,
                            "p50_ms": res.p50_ms, "p99_ms": res.p99_ms, "errors": res.errors,
                            "requests": res.requests, "rss_bytes": s.peak, "tool": res.tool})
        finally:
            probe.stop_server()
    return out


def profile(repo: MLRepo, ref: ModelRef, *, rows: list[int], workers: list[int],
            duration_s: float = 3.0, onnx: bool = False, commit: bool = True,
            tool: str = "auto") -> tuple[dict[str, Any], str]:
    from gitml.deploy.envrecord import capture, record_environment
    from gitml.serve.local import Target, bundle_for
    from gitml.store.fsutil import atomic_write_text

    if not rows or any(r < 1 for r in rows) or not workers or any(w < 1 for w in workers):
        raise GitMLError("--rows and --workers take positive integers, e.g. --rows 1,100 --workers 1,2")
    t0 = time.perf_counter()
    phases: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gitml-profile-") as tmp:
        # the bundle `git ml serve` serves (built once per version and flavor)
        bundle = bundle_for(repo, Target(ref.name, ref.commit, ref.label, ref.text), onnx=onnx)
        phases["bundle"] = round(time.perf_counter() - t0, 2)
        t1 = time.perf_counter()
        probe = Probe(bundle.path, rows, 1.0, Path(tmp) / "probe.log")
        try:
            inproc = probe.measurements()
            phases["probe"] = round(time.perf_counter() - t1, 2)
            server = measure_server(bundle, probe, Path(tmp), ref.label, workers, rows,
                                    duration_s, tool, phases)
        finally:
            probe.close()
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
        "server": server, "phases_s": phases,
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
