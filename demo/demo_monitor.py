"""The demo's monitoring block: shifted traffic is sent to the served model, the monitor
flags it, a retrained model passes the gates and is promoted, the server switches, and the
history says why.

Call :func:`monitor_demo` with the demo's project folder and its command runner
(``demo.demo.sh``) after the deploy steps (a version of ``arrests`` serves on the local
target, hooks installed). It needs about two minutes.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

MONITOR_CONFIG = """
[monitor]            # one-second windows so the demo takes seconds (production: 60)
interval = 1.0
min_rows = 40
"""
FEATURES = ["colour", "sex", "employed", "citizen", "year", "age", "checks"]


def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()


def send(url: str, frame: Any, seconds: int, rows_per_second: int = 50, seed: int = 0) -> int:
    """Send rows of ``frame`` (features + released) for ``seconds``, with their labels
    through POST /feedback, as a client that learns the truth later would."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sent = 0
    for _ in range(seconds):
        t0 = time.time()
        for _ in range(rows_per_second // 25):
            part = frame.iloc[rng.integers(0, len(frame), size=25)]
            body = {"dataframe_split": {"columns": FEATURES,
                                        "data": part[FEATURES].astype(object).values.tolist()}}
            _, headers, _ = _post(f"{url}/invocations", body)
            rid = headers["x-request-id"]
            _post(f"{url}/feedback", {"labels": [{"request_id": rid, "row": i, "label": str(v)}
                                                 for i, v in enumerate(part["released"])]})
            sent += len(part)
        time.sleep(max(0.0, 1.0 - (time.time() - t0)))
    time.sleep(1.5)  # the last window closes and the server's log flushes
    return sent


def monitor_demo(repo: Path, sh: Callable[..., Any], step: Callable[[str], None] | None = None) -> None:
    from sklego.datasets import load_arrests

    say = step or (lambda title: print(f"\n== {title}", flush=True))
    with open(repo / ".git" / "ml" / "config.local.toml", "a") as f:
        f.write(MONITOR_CONFIG)
    served = json.loads(sh(repo, "git ml deployments --json", quiet=True).stdout)[0]
    url, before = served["url"], served["version"]
    data = load_arrests(as_frame=True)

    say("13. Monitor the served model: clean traffic stays within the learned limits")
    t_clean = time.time()
    n = send(url, data, 20, seed=1)
    print(f"    sent {n} rows (and their labels) to {url}")
    # exactly the clean traffic: step 12's hand-made requests are not part of it
    sh(repo, f"git ml monitor arrests --since {int(time.time() - t_clean) + 1}s", check=False)

    say("14. The world changes: younger people arrive, and nobody under 25 is released any more")
    shifted = data.copy()
    shifted["age"] = shifted["age"] - 3
    shifted.loc[shifted["age"] < 25, "released"] = "No"
    t_shift = time.time()
    n = send(url, shifted, 16, seed=2)
    print(f"    sent {n} shifted rows")
    flagged = sh(repo, "git ml monitor arrests --since 20s --html monitoring.html", check=False)
    if flagged.returncode != 1:
        raise SystemExit("the monitor did not flag the shifted traffic")
    sh(repo, "git ml monitor arrests --since 20s --rules alerts.yml")

    say("15. Retrain on the labelled traffic: new branch, gates, register, promote if better")
    since = int(time.time() - t_shift) + 1  # exactly the shifted traffic, however long the steps took
    sh(repo, f"git ml retrain arrests --from-traffic --since {since}s --mode replace --auto-promote "
             "--reason 'monitor: drift on age and accuracy below its learned limit'")
    after = json.loads(sh(repo, "git ml deployments --json", quiet=True).stdout)[0]
    print(f"    serving {after['version']} (was {before})")
    if after["version"] == before:
        raise SystemExit("the retrained version was not deployed")

    say("16. The server switched; new traffic is within the limits again; the history says why")
    send(url, shifted, 8, seed=3)
    sh(repo, "git ml monitor arrests --since 8s", check=False)
    sh(repo, "git ml history arrests")
    sh(repo, "git log --oneline --all --grep 'Retrain arrests' -n 3")
    print(f"    open {repo / 'monitoring.html'}: drift per feature, live metrics with learned "
          "limits, alarms, rollbacks and retrains")
