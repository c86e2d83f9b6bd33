"""`git ml monitor` on a traffic log written exactly per the schema (the server's file
naming and types), for a real model registered at arrests@v1.0.0 in a real repository."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import gitml
from tests.support.monitor import T0_US, traffic_frame, write_parquet
from tests.support.serve import make_repo

MIN = 60_000_000


@pytest.fixture
def served(tmp_path: Path) -> tuple[Path, Path, float, float]:
    """A repo, 30 clean minutes of traffic, then 8 minutes with age's mean moved by 0.5 σ;
    the labels in a separate file. Returns (repo, labels file, end of clean, end of all)."""
    repo = make_repo(tmp_path / "repo")
    folder = repo / ".git" / "ml" / "traffic" / "arrests"
    rng = np.random.default_rng(4)
    labels = []
    for i in range(38):
        tr, fb = traffic_frame(rng, 100, T0_US + i * MIN, MIN, shift="age+0.5sd" if i >= 30 else "none")
        write_parquet(tr, folder, seq=i)
        labels.append(fb)
    lab = repo.parent / "labels.parquet"
    pd.concat(labels, ignore_index=True)[["request_id", "row", "label"]].to_parquet(lab)
    return repo, lab, (T0_US + 30 * MIN) / 1e6 + 1, (T0_US + 38 * MIN) / 1e6 + 1


def test_clean_then_shifted_traffic(served: tuple[Path, Path, float, float], tmp_path: Path) -> None:
    repo, labels, t_clean, t_end = served
    shutil.rmtree(repo / ".git" / "ml" / "monitor", ignore_errors=True)
    r = gitml(repo, "monitor", "arrests", "--since", "30m", "--now", str(t_clean),
              "--labels", str(labels), "--json", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads(r.stdout)
    assert d["windows"] == 30 and d["alarms"] == [] and not d["action_needed"]
    assert d["version"] == "1.0.0" and d["rows_processed"] == 3000
    assert 0.6 < d["latest"]["metric"]["value"] < 1.0  # live accuracy from the joined labels
    assert d["latest"]["latency"]["upper"] > d["latest"]["latency"]["level"]  # learned limit
    # the shifted minutes: only the new windows are judged (the rest is cached)
    r = gitml(repo, "monitor", "arrests", "--since", "10m", "--now", str(t_end),
              "--labels", str(labels), "--json", check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    d = json.loads(r.stdout)
    assert d["rows_processed"] == 800 and d["windows"] == 38
    assert d["actions"] == ["retrain"]
    drift = [a for a in d["alarms"] if a["figure"] == "drift"]
    assert drift and "age" in drift[0]["detail"]
    assert {a["figure"] for a in d["alarms"]} == {"drift"}
    assert d["snapshot"]["features"]["age"]["drifted"] is True
    assert d["snapshot"]["features"]["sex"]["drifted"] is False
    # the people's view says the same, and a fresh check (no cache) agrees with the cached one
    shutil.rmtree(repo / ".git" / "ml" / "monitor")
    r = gitml(repo, "monitor", "arrests", "--since", "10m", "--now", str(t_end), check=False)
    assert r.returncode == 1 and "ACTION NEEDED" in r.stdout and "drift" in r.stdout, r.stdout


def test_html_section_and_rules(served: tuple[Path, Path, float, float], tmp_path: Path) -> None:
    from gitml.monitor.html import section, write_page
    from gitml.repo import MLRepo

    repo, labels, _, t_end = served
    from gitml.monitor.check import run_check

    res = run_check(MLRepo.discover(repo), "arrests", since=600, labels_file=labels, now=t_end)
    html = section(MLRepo.discover(repo), "arrests", result=res)
    assert html.startswith('<section id="monitor-arrests">') and html.endswith("</section>")
    assert html.count("<svg") >= 5 and "action needed: retrain" in html
    assert "age: −log10 p" in html  # drift per feature over time
    write_page(tmp_path / "m.html", [html])
    assert "<style>" in (tmp_path / "m.html").read_text()
    r = gitml(repo, "monitor", "arrests", "--rules", str(tmp_path / "rules.yml"))
    assert "GitmlModelDrift" in (tmp_path / "rules.yml").read_text() and "promtool" in r.stdout
    if shutil.which("promtool"):
        chk = subprocess.run(["promtool", "check", "rules", str(tmp_path / "rules.yml")],
                             capture_output=True, text=True)
        assert chk.returncode == 0, chk.stdout + chk.stderr


def test_report_monitor_view(served: tuple[Path, Path, float, float], tmp_path: Path) -> None:
    repo, _, _, _ = served
    out = tmp_path / "monitor.html"
    r = gitml(repo, "report", "arrests", "--monitor", "--since", "4000d", "-o", str(out), check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    page = out.read_text()
    assert '<section id="monitor-arrests">' in page and page.index("monitor-arrests") < page.index("</main>")
    assert "age: −log10 p" in page and page.count("<svg") >= 5
    bad = gitml(repo, "report", "arrests", "--monitor", "--since", "nan", "-o", str(out), check=False)
    assert bad.returncode != 0 and "duration" in bad.stderr and "Traceback" not in bad.stderr


def test_bad_input_is_one_line(served: tuple[Path, Path, float, float], tmp_path: Path) -> None:
    repo, *_ = served
    r = gitml(repo, "monitor", "nosuch", check=False)
    assert r.returncode == 1 and "unknown model" in r.stderr and "Traceback" not in r.stderr
    r = gitml(repo, "monitor", "arrests", "--since", "soon", check=False)
    assert r.returncode == 2 and "duration" in r.stderr
    bad = tmp_path / "labels.csv"
    bad.write_text("id,label\nx,Yes\n")
    r = gitml(repo, "monitor", "arrests", "--labels", str(bad), check=False)
    assert r.returncode == 1 and "request_id" in r.stderr and "Traceback" not in r.stderr
    empty = tmp_path / "none"
    empty.mkdir()
    r = gitml(repo, "monitor", "arrests", "--traffic", str(empty), check=False)
    assert r.returncode == 1 and "no complete window" in r.stderr


def test_watch_serves_metrics(served: tuple[Path, Path, float, float]) -> None:
    import os
    import time
    import urllib.request

    repo, _, _, t_end = served
    proc = subprocess.Popen(["git", "ml", "monitor", "arrests", "--since", "10m", "--now", str(t_end),
                             "--watch", "--interval", "1", "--count", "3", "--serve-metrics", "0"],
                            cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ))
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "/metrics" in first, first + (proc.stderr.read() if proc.stderr else "")
        url = first.strip().split()[-1]
        text = ""
        deadline = time.monotonic() + 120
        while "gitml_monitor_windows" not in text and time.monotonic() < deadline:
            time.sleep(0.3)
            with urllib.request.urlopen(url, timeout=5) as r:
                text = r.read().decode()
        assert 'gitml_monitor_alarm{model="arrests",version="1.0.0",figure="drift"} 1.0' in text
        assert 'gitml_monitor_windows{model="arrests",version="1.0.0"} 38.0' in text
        assert proc.wait(timeout=120) == 1  # action needed in the last check
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
