"""In-process measurements of one bundle, run in a fresh interpreter by `git ml profile`
(``python -m gitml.deploy.probe BUNDLE --rows 1,100``) so the memory it reports is the
model's and the server code's, not the profiler's. Prints one JSON object.

The model is loaded the way a server worker loads it (:func:`gitml.serve.loaded.load_version`:
bytes verified, safe loader, fast path built and checked), and latency is measured on that
worker's predictor over the bundle's smoke rows; ``pipe.predict(DataFrame)`` is measured
beside it for reference when the model is a scikit-learn one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any


def rss_bytes(pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gitml.deploy.probe")
    ap.add_argument("bundle")
    ap.add_argument("--rows", default="1,100")
    ap.add_argument("--budget", type=float, default=1.0, help="seconds per latency measurement")
    a = ap.parse_args(argv)
    rows = [int(x) for x in a.rows.split(",") if x.strip()]
    json.dump(probe(a.bundle, rows, a.budget), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
