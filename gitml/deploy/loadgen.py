"""Closed-loop HTTP load: ``concurrency`` connections each sending the next request as soon
as the last answer arrives, for ``duration_s``. Uses ``wrk`` when it is installed (C, so it
leaves the cores to the server), else a small threaded client with keep-alive connections.
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from gitml.errors import GitMLError


@dataclass
class LoadResult:
    tool: str
    concurrency: int
    duration_s: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float


def run(url: str, body: bytes, *, concurrency: int = 16, duration_s: float = 4.0,
        content_type: str = "application/json", tool: str = "auto") -> LoadResult:
    if tool == "wrk" or (tool == "auto" and shutil.which("wrk")):
        return _wrk(url, body, concurrency, duration_s, content_type)
    return _threads(url, body, concurrency, duration_s, content_type)


def warm(url: str, body: bytes, *, requests: int = 200, concurrency: int = 4,
         content_type: str = "application/json") -> int:
    """Send ``requests`` requests over ``concurrency`` keep-alive connections before a
    measurement (a new server's first answers take lazy paths and cold caches); returns
    how many failed. Bounded by count, not time: a loaded machine takes longer, not less."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
    left = [requests]
    failed = [0]
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            while True:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                try:
                    conn.request("POST", parts.path or "/", body=body, headers=headers)
                    resp = conn.getresponse()
                    resp.read()
                    ok = resp.status < 400
                except (OSError, http.client.HTTPException):
                    ok = False
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=10)
                if not ok:
                    with lock:
                        failed[0] += 1
        finally:
            conn.close()

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, concurrency))]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    return failed[0]


def _lua_string(b: bytes) -> str:
    return '"' + "".join(f"\\{c:03d}" for c in b) + '"'


_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "{ctype}"
done = function(summary, latency, requests)
  io.write(string.format("GITML %d %d %d %d %.3f %.3f\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


def _wrk(url: str, body: bytes, concurrency: int, duration_s: float, ctype: str) -> LoadResult:
    exe = shutil.which("wrk")
    if exe is None:
        raise GitMLError("wrk is not installed", "install it (apt-get install wrk) or use tool=threads")
    with tempfile.TemporaryDirectory(prefix="gitml-wrk-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(_WRK_SCRIPT.format(body=_lua_string(body), ctype=ctype))
        threads = max(1, min(2, concurrency))
        proc = subprocess.run(
            [exe, f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(duration_s))}s",
             "--timeout", "10s", "-s", str(script), url],
            capture_output=True, text=True, timeout=duration_s + 60)
    m = re.search(r"^GITML (\d+) (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+)$", proc.stdout, re.M)
    if proc.returncode != 0 or not m:
        raise GitMLError(f"wrk failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[:300]}")
    n, errors, dur_us, p50_us = (int(m.group(i)) for i in range(1, 5))
    p99_us = float(m.group(5))
    dur = dur_us / 1e6
    return LoadResult("wrk", concurrency, round(dur, 3), n, errors, round(n / dur, 1) if dur else 0.0,
                      round(p50_us / 1000, 3), round(p99_us / 1000, 3))


def _threads(url: str, body: bytes, concurrency: int, duration_s: float, ctype: str) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path or "/"
    lat: list[list[float]] = [[] for _ in range(concurrency)]
    errs = [0] * concurrency
    start = time.perf_counter()
    deadline = start + duration_s
    headers = {"Content-Type": ctype, "Content-Length": str(len(body))}

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status >= 400:
                    errs[i] += 1
            except (OSError, http.client.HTTPException):
                errs[i] += 1
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=10)
                continue
            lat[i].append((time.perf_counter() - t0) * 1000)
        conn.close()

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(duration_s + 15)
    dur = time.perf_counter() - start
    allv = sorted(v for xs in lat for v in xs)
    n = len(allv)
    if not n:
        return LoadResult("threads", concurrency, round(dur, 3), 0, sum(errs), 0.0, 0.0, 0.0)
    p99 = allv[min(n - 1, round(0.99 * (n - 1)))]
    return LoadResult("threads", concurrency, round(dur, 3), n + sum(errs), sum(errs),
                      round(n / dur, 1), round(allv[n // 2], 3), round(p99, 3))
