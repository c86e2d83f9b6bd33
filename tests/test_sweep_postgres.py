"""More than one machine: two sweep workers share one study through a real PostgreSQL
(Optuna's RDB storage) — no trial runs twice and every trial lands in Git."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import git, gitml
from tests.support.exp import make_project
from tests.support.postgres import pg_bin, postgres_cluster

pytestmark = pytest.mark.skipif(pg_bin() is None, reason="PostgreSQL is not installed "
                                "(scripts/test.sh installs Debian's postgresql)")

SPACE = """
[params."train.lr"]
type = "float"
low = 0.01
high = 1.0
log = true

[params.depth]
type = "int"
low = 1
high = 8
"""


def test_two_workers_share_a_study_through_postgresql(repo: Path) -> None:
    import optuna

    make_project(repo)
    (repo / "sweep.toml").write_text(SPACE)
    with postgres_cluster() as url:
        cmd = ["git", "ml", "sweep", "-n", "train", "--space", "sweep.toml", "--trials", "8",
               "--objective", "score:max", "--storage", url, "--study", "shared", "--json"]
        env = {**os.environ, "TRAIN_STEP_DELAY": "0.05"}
        workers = [subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = []
        for w in workers:
            stdout, stderr = w.communicate(timeout=600)
            assert w.returncode == 0, stderr
            outs.append(json.loads(stdout))
        study = optuna.load_study(study_name="shared", storage=url)
        stored = study.get_trials(deepcopy=False)
    ran = [[t["meta"]["number"] for t in o["trials"]] for o in outs]
    # both workers did part of the work, and no trial number was run by both
    assert all(ran) and not set(ran[0]) & set(ran[1])
    numbers = sorted(ran[0] + ran[1])
    assert numbers == sorted(t.number for t in stored)
    assert len(numbers) == len(set(numbers)) and 8 <= len(numbers) <= 9   # a worker may ask once
    #                                                                 before it sees the other's last
    # every trial the storage knows is a commit in Git with the values the storage recorded
    rows = {r["meta"]["number"]: r for r in json.loads(gitml(repo, "exp", "show", "--json").stdout)
            if r["meta"].get("study") == "shared"}
    assert sorted(rows) == numbers
    for t in stored:
        r = rows[t.number]
        assert r["overrides"] == t.params
        assert t.state.name.lower() == r["state"]                     # complete or pruned
        if r["state"] == "complete":
            assert t.values == [r["metrics"]["score"]]
        assert git(repo, "rev-parse", f"refs/gitml/exps/shared-{t.number}").stdout.strip() == r["commit"]
    # the password-less URL is reported as given; the best agrees with the storage
    assert outs[0]["storage"] == url
    best_score = max(r["metrics"]["score"] for r in rows.values() if r["state"] == "complete")
    assert max(o["best"][0]["metrics"]["score"] for o in outs) == best_score
