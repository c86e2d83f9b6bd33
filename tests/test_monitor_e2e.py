"""End to end through the real model server: traffic sent over HTTP is logged by the
server, labels come back with POST /feedback, and `git ml monitor` judges it.

The monitor runs with one-second windows here ([monitor] interval = 1) so a test takes
seconds, not hours; the statistics are the same at any window length."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import git, gitml
from tests.support.monitor import Server, make_served_repo, send_windows

# latency on a machine shared by other jobs is not under the test's control: it is judged
# (and tested on simulated traffic in test_monitor_stats) but triggers no rollback here
MONITOR = '[monitor]\ninterval = 1.0\nmin_rows = 40\nheal_on = ["errors", "metric"]\n'



@pytest.fixture
def served(tmp_path: Path):
    repo = make_served_repo(tmp_path / "repo", MONITOR)
    server = Server(repo)
    try:
        yield repo, server
    finally:
        server.stop()


def _monitor(repo: Path, *args: str) -> tuple[int, dict]:
    time.sleep(1.5)  # the last bucket ends and the server's log flushes (0.2 s)
    r = gitml(repo, "monitor", "arrests", "--json", *args, check=False)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads(r.stdout)


def test_injected_drift_is_found_and_clean_traffic_is_not(served) -> None:
    repo, server = served
    send_windows(server, 14, 50, seed=1)
    code, d = _monitor(repo, "--since", "1m")
    assert [a for a in d["alarms"] if a["figure"] != "latency"] == [] and d["windows"] >= 10, d
    assert code == (1 if d["alarms"] else 0)
    assert d["latest"]["metric"]["value"] > 0.6  # labels joined from POST /feedback
    send_windows(server, 8, 50, shift="age+0.5sd", seed=2)
    code, d = _monitor(repo, "--since", "1m")
    assert code == 1 and "retrain" in d["actions"], d["alarms"]
    assert any(a["figure"] == "drift" and "age" in a["detail"] for a in d["alarms"])
    assert server.active() == "1.0.0"  # drift is not the version's fault: no rollback


def test_failing_version_rolls_back_by_itself(served) -> None:
    from gitml.monitor import events
    from gitml.registry import records
    from gitml.repo import MLRepo

    repo, server = served
    send_windows(server, 14, 50, seed=3)
    _, d = _monitor(repo, "--since", "1m", "--heal")
    assert d["healing"]["events"] == [] and not [a for a in d["alarms"] if a["figure"] != "latency"]
    server.switch("1.1.0")  # the new version predicts the opposite of the truth
    send_windows(server, 4, 50, seed=4)
    _, d = _monitor(repo, "--since", "1m", "--heal")
    assert any(a["figure"] == "metric" and a["version"] == "1.1.0" for a in d["alarms"]), d["alarms"]
    assert [e["kind"] for e in d["healing"]["events"]] == ["rollback"], d["healing"]
    assert server.active() == "1.0.0"
    recs = records.read_records(MLRepo.discover(repo).git, "local", "arrests")
    rb = [r for r in recs if r["action"] == "rollback"]
    assert rb and rb[-1]["from"] == "1.1.0" and rb[-1]["version"] == "1.0.0"
    assert rb[-1]["reason"].startswith("monitor: ") and "metric" in rb[-1]["reason"]
    assert rb[-1]["automatic"] is True
    # the served version is the old one again: the alarms of 1.1.0 are history now
    _, d = _monitor(repo, "--since", "1m", "--heal")
    assert d["version"] in ("1.1.0", "1.0.0")
    assert [e["kind"] for e in events.read(MLRepo.discover(repo), "arrests")] == ["rollback"]
    # a second failure of the same version deregisters it (GTO's name@v1.1.0!)
    server.switch("1.1.0")
    send_windows(server, 4, 50, seed=5)
    _, d = _monitor(repo, "--since", "10s", "--heal")
    assert [e["kind"] for e in d["healing"]["events"]] == ["rollback", "mark"], d["healing"]
    assert git(repo, "tag", "-l", "arrests@v1.1.0!").stdout.strip() == "arrests@v1.1.0!"
    assert server.active() == "1.0.0"


def test_a_burst_of_bad_requests_breaks_the_client_error_rate(served) -> None:
    repo, server = served
    send_windows(server, 12, 50, seed=21)
    code, d = _monitor(repo, "--since", "1m")
    assert not [a for a in d["alarms"] if a["figure"] != "latency"] and d["windows"] >= 8, d["alarms"]
    assert code == (1 if d["alarms"] else 0)  # (latency on a shared machine is its own story)
    assert d["latest"]["client_errors"]["value"] == 0 and d["snapshot"]["errors"]["failed"] == 0
    # clients start sending broken requests beside the good ones
    send_windows(server, 3, 50, seed=22, bad_per_window=24)
    time.sleep(1.5)
    r = gitml(repo, "monitor", "arrests", "--since", "10s", check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "client error rate (4xx)" in r.stdout and "ACTION NEEDED" in r.stdout, r.stdout
    assert "malformed JSON" in r.stdout  # the most frequent reasons are listed
    code, d = _monitor(repo, "--since", "10s", "--heal")
    assert code == 1 and "inspect-errors" in d["actions"], d
    alarms = [a for a in d["alarms"] if a["figure"] == "client_errors"]
    assert alarms and alarms[0]["version"] == "1.0.0" and alarms[0]["value"] > 0.5, d["alarms"]
    assert not [a for a in d["alarms"] if a["figure"] == "errors"]  # no server error among them
    errs = d["snapshot"]["errors"]
    assert errs["client_errors"] == errs["failed"] >= 60 and errs["server_errors"] == 0
    assert set(errs["by_status"]) == {"400", "415"}
    # the refusals did not begin with a new version: the clients changed, nothing rolls back
    assert d["healing"]["events"] == [] and server.active() == "1.0.0"
