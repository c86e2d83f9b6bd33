"""In-process measurements of one bundle, run in a fresh interpreter by `git ml profile`
(``python -m gitml.deploy.probe BUNDLE --rows 1,100``) so the memory it reports is the
model's and the server code's, not the profiler's. Prints one JSON object.

The model is loaded the way a server worker loads it (:func:`gitml.serve.loaded.load_version`:
bytes verified, safe loader, fast path built and checked), and latency is measured on that
worker's predictor over the bundle's smoke rows; ``pipe.predict(DataFrame)`` is measured
beside it for reference when the model is a scikit-learn one.

With ``--serve`` the interpreter then stays up and starts the servers `profile` drives:
it imports what a supervisor imports (:func:`gitml.serve.worker.preload`) once, and for
each ``serve STATE WORKERS`` line on stdin forks a :class:`~gitml.serve.supervisor.Supervisor`
(which loads the model from the bundle and forks its workers, as ``python -m
gitml.serve.supervisor`` does) and answers one JSON line ``{"pid", "url"}``; ``stop``
stops it (``{"stopped": pid}``). A server per worker count then costs a fork and a model
load instead of a fresh interpreter's imports (seconds of CPU on a loaded machine).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

SERVER_TIMEOUT = 120.0


def rss_bytes(pid: int | str = "self", field: str = "VmRSS") -> int:
    """A memory figure of ``/proc/PID/status`` in bytes: ``VmRSS`` (resident), or a part
    of it (``RssAnon``, ``RssFile``); 0 when the process is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def timing(fn: Any, args: list[Any], budget_s: float, max_n: int = 2000) -> dict[str, Any]:
    fn(*args[0])
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    i = 0
    while len(times) < max_n and (len(times) < 20 or time.perf_counter() < deadline):
        a = args[i % len(args)]
        i += 1
        t0 = time.perf_counter()
        fn(*a)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 4),
            "p99_ms": round(times[min(len(times) - 1, round(0.99 * (len(times) - 1)))], 4),
            "n": len(times)}


def probe(bundle_dir: str, rows: list[int], budget_s: float) -> dict[str, Any]:
    base = rss_bytes()
    t0 = time.perf_counter()
    from gitml.serve.loaded import load_version, smoke_columns

    version = load_version("probe", bundle_dir)
    load_s = time.perf_counter() - t0
    after = rss_bytes()
    b = version.bundle
    pred = version.predictor
    cols, n = smoke_columns(b, version.schema)
    out: dict[str, Any] = {
        "load": {"seconds": round(load_s, 3), "rss_bytes": after, "rss_python_bytes": base,
                 "model_bytes": len(b.model_bytes())},
        "path": pred.mode if b.flavor != "onnx" else "onnxruntime",
        "latency": {},
    }
    df, _, _ = b.smoke()
    for r in rows:
        if n < 1:
            break
        k = min(r, n)
        starts = list(range(0, max(1, n - k + 1), max(1, k)))[:50]
        batches = [({c: v[s:s + k] for c, v in cols.items()}, k) for s in starts]
        entry = {"rows": k, "server_path": timing(pred.predict, batches, budget_s)}
        if b.flavor != "onnx" and hasattr(version.predictor.model, "predict"):
            frames = [(df.iloc[s:s + k],) for s in starts]
            entry["dataframe"] = timing(version.predictor.model.predict, frames, budget_s / 2)
        out["latency"][str(r)] = entry
    return out


# ------------------------------------------------------------------ servers (--serve)
def _say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _fork_server(state: Path, workers: int) -> int:
    """A supervisor serving ``state`` on a free port of 127.0.0.1, in a forked child that
    logs to the state's log file and dies with this process. It gets its own session, as
    :func:`gitml.serve.control.start` gives a server: with the kernel's autogroup
    scheduling a session is what shares the CPU with the load generator's."""
    from gitml.serve.supervisor import Paths, Supervisor

    paths = Paths.of(state)
    paths.info.unlink(missing_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        from gitml.serve.worker import _die_with_parent

        os.setsid()
        _die_with_parent()
        log = os.open(paths.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        code = Supervisor(paths.state, host="127.0.0.1", port=0, workers=workers).run()
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _await_url(state: Path, pid: int) -> str:
    from gitml.serve.supervisor import Paths

    info_file = Paths.of(state).info
    deadline = time.monotonic() + SERVER_TIMEOUT
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            raise RuntimeError(f"the server exited at start; see {Paths.of(state).log}")
        try:
            info = json.loads(info_file.read_bytes())
            if info.get("pid") == pid:
                return str(info["url"])
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    raise RuntimeError(f"the server did not bind its port within {SERVER_TIMEOUT:.0f}s")


def _stop_server(pid: int, timeout: float = 15.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def serve_loop() -> int:
    """Answer ``serve STATE WORKERS`` / ``stop`` lines on stdin until it closes."""
    import gc

    from gitml.serve.worker import preload

    preload()
    gc.collect()
    child: int | None = None
    try:
        for line in sys.stdin:
            cmd = line.split()
            if cmd[:1] == ["serve"] and len(cmd) == 3 and child is None:
                child = _fork_server(Path(cmd[1]), int(cmd[2]))
                try:
                    _say({"pid": child, "url": _await_url(Path(cmd[1]), child)})
                except RuntimeError as e:
                    _stop_server(child)
                    child = None
                    _say({"error": str(e)})
            elif cmd == ["stop"] and child is not None:
                _stop_server(child)
                _say({"stopped": child})
                child = None
            else:
                _say({"error": f"unexpected command {line.strip()!r}"})
    finally:
        if child is not None:
            _stop_server(child)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gitml.deploy.probe")
    ap.add_argument("bundle")
    ap.add_argument("--rows", default="1,100")
    ap.add_argument("--budget", type=float, default=1.0, help="seconds per latency measurement")
    ap.add_argument("--serve", action="store_true",
                    help="then start servers on request (stdin: 'serve STATE WORKERS', 'stop')")
    a = ap.parse_args(argv)
    rows = [int(x) for x in a.rows.split(",") if x.strip()]
    from gitml.errors import GitMLError

    try:
        result = probe(a.bundle, rows, a.budget)
    except GitMLError as e:  # a bundle that does not load: one line for the caller
        _say({"error": str(e)})
        return 1
    _say(result)
    return serve_loop() if a.serve else 0


if __name__ == "__main__":
    sys.exit(main())
