"""The monitor's figures in Prometheus: the exposition parses, the alerting rules pass
`promtool check rules`, and a real Prometheus on loopback scrapes the monitor's endpoint
and fires the drift alert (Debian's `prometheus` package; scripts/test.sh installs it)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from gitml.monitor.check import MonitorResult, alarms_since
from gitml.monitor.config import MonitorConfig
from gitml.monitor.prom import MetricsServer, alert_rules, exposition
from gitml.monitor.sequential import detect
from gitml.monitor.stats import window_stats
from tests.support.monitor import T0_US, reference, traffic_frame

MIN = 60_000_000
needs_prometheus = pytest.mark.skipif(shutil.which("prometheus") is None or shutil.which("promtool") is None,
                                      reason="Debian's prometheus package is not installed (scripts/test.sh installs it)")


def _result(shift: str) -> MonitorResult:
    cfg = MonitorConfig()
    ref = reference()
    rng = np.random.default_rng(2)
    ws = []
    for i in range(20):
        tr, _ = traffic_frame(rng, 100, T0_US + i * MIN, MIN, shift=shift if i >= 12 else "none")
        ws.append(window_stats(ref, tr, T0_US + i * MIN, T0_US + (i + 1) * MIN, cfg))
    series = detect(ws, cfg, ref.accuracy(groups=True))
    now = ws[-1].end
    return MonitorResult("arrests", now, 3600, "1.0.0", "c0ffee", 2000, len(ws), ws, series,
                         {"rows": 2000, "features": ws[-1].features}, alarms_since(ws, series, now - 3600),
                         2000, 0.5, dict(cfg.__dict__))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@needs_prometheus
def test_exposition_and_rules_pass_promtool(tmp_path: Path) -> None:
    res = _result("age+0.5sd")
    assert res.action_needed and res.actions == ["retrain"]
    text = exposition([res])
    assert 'gitml_monitor_alarm{model="arrests",version="1.0.0",figure="drift"} 1.0' in text
    assert 'gitml_monitor_alarm{model="arrests",version="1.0.0",figure="errors"} 0.0' in text
    assert 'gitml_monitor_alarm{model="arrests",version="1.0.0",figure="client_errors"} 0.0' in text
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    rules = tmp_path / "rules.yml"
    rules.write_text(alert_rules(60))
    check = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0 and "SUCCESS: 6 rules found" in check.stdout, check.stdout + check.stderr


@needs_prometheus
def test_real_prometheus_scrapes_the_monitor_and_fires_the_drift_alert(tmp_path: Path) -> None:
    clean, drifted = exposition([_result("none")]), exposition([_result("age+0.5sd")])
    assert 'figure="drift"} 0.0' in clean
    current = {"text": clean}
    server = MetricsServer("127.0.0.1", 0, lambda: current["text"]).start()
    (tmp_path / "rules.yml").write_text(alert_rules(60))
    prom_port = _free_port()
    (tmp_path / "prometheus.yml").write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "rules.yml")],
        "scrape_configs": [{"job_name": "gitml-monitor",
                            "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}]}],
    }))
    log = (tmp_path / "prom.log").open("w")
    proc = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                            stdout=subprocess.DEVNULL, stderr=log)
    api = f"http://127.0.0.1:{prom_port}/api/v1"

    def get(path: str) -> dict:
        with urllib.request.urlopen(api + path, timeout=5) as r:
            return json.loads(r.read())

    def wait(cond, what: str, timeout: float = 60.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                got = cond()
                if got:
                    return got
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}; log: {(tmp_path / 'prom.log').read_text()[-2000:]}")

    try:
        # clean figures scraped: the drift alarm series is 0 and no alert fires
        wait(lambda: [r for r in get('/query?query=gitml_monitor_alarm%7Bfigure%3D%22drift%22%7D')["data"]["result"]
                      if r["value"][1] == "0"], "the first scrape")
        assert not [a for a in get("/alerts")["data"]["alerts"] if a["labels"]["alertname"] == "GitmlModelDrift"]
        current["text"] = drifted
        alert = wait(lambda: [a for a in get("/alerts")["data"]["alerts"]
                              if a["labels"]["alertname"] == "GitmlModelDrift" and a["state"] == "firing"],
                     "the drift alert")
        assert alert[0]["labels"]["model"] == "arrests" and alert[0]["labels"]["action"] == "retrain"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        server.stop()
