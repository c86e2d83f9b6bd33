"""`git ml exp`: trials as commits on hidden refs, made without touching the user's
branch, index or work tree; shown, compared, applied, branched, removed, queued, pushed
and pulled; kept by `git gc` and `git ml gc`."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import git, gitml
from tests.support.exp import make_project, user_state


def _show(repo: Path, *args: str) -> list[dict]:
    return json.loads(gitml(repo, "exp", "show", "--json", *args).stdout)


def _blob(repo: Path, rev: str, path: str) -> str:
    return git(repo, "show", f"{rev}:{path}").stdout


def test_trial_is_a_commit_on_a_hidden_ref_and_leaves_the_user_alone(repo: Path) -> None:
    make_project(repo)
    (repo / "notes.txt").write_text("an uncommitted edit the trial must include\n")
    before = user_state(repo)
    out = gitml(repo, "exp", "run", "-n", "train", "-S", "train.lr=0.3", "-S", "depth=4",
                "--exp-name", "best-guess", "--json")
    trial = json.loads(out.stdout)
    assert trial["state"] == "complete"
    assert user_state(repo) == before                       # branch, index, work tree untouched
    assert git(repo, "worktree", "list").stdout.count("\n") == 1   # throwaway worktree removed
    ref = "refs/gitml/exps/best-guess"
    commit = git(repo, "rev-parse", ref).stdout.strip()
    assert commit == trial["commit"]
    # the params file in the trial is rewritten, the log_param default overridden
    assert yaml.safe_load(_blob(repo, ref, "params.yaml"))["train"] == {"lr": 0.3, "epochs": 5}
    rec = json.loads(_blob(repo, ref, ".gitml/runs/train.json"))
    assert rec["params"]["train.lr"] == 0.3 and rec["params"]["depth"] == 4
    # step histories are kept, in order
    assert [s for s, _ in rec["history"]["score"]] == [1, 2, 3, 4, 5]
    assert rec["metrics"]["score"] == rec["history"]["score"][-1][1]
    assert trial["metrics"]["score"] > 0.99
    # the uncommitted edit is in the trial's parent (a snapshot of the work tree)
    assert _blob(repo, f"{ref}^", "notes.txt").startswith("an uncommitted edit")
    # the output artifact's pointer is committed and its bytes are in the store
    pointer = _blob(repo, ref, "model.gitml")
    oid = next(line.split()[1] for line in pointer.splitlines() if line.startswith("oid "))
    assert oid != next(line.split()[1] for line in (repo / "model.gitml").read_text().splitlines()
                       if line.startswith("oid "))
    # both kinds of gc keep the trial and its artifact
    git(repo, "gc", "-q", "--prune=now")
    gitml(repo, "gc")
    assert git(repo, "rev-parse", ref).stdout.strip() == commit
    gitml(repo, "fsck")
    shown = _show(repo)
    assert [t["name"] for t in shown] == ["best-guess"]
    restored = repo.parent / "restored"
    gitml(repo, "exp", "branch", "best-guess", "from-trial")
    git(repo, "worktree", "add", "-q", str(restored), "from-trial")
    gitml(restored, "checkout")
    weights = json.loads((restored / "model" / "weights.json").read_text())
    assert weights == {"lr": 0.3, "depth": 4, "family": "tree", "units": None}


def test_show_sort_formats_diff_apply_remove(repo: Path) -> None:
    make_project(repo)
    for name, lr in (("low", "0.05"), ("mid", "0.3"), ("high", "0.7")):
        gitml(repo, "exp", "run", "-n", "train", "-S", f"train.lr={lr}", "--exp-name", name)
    rows = _show(repo, "--sort", "score")
    assert [r["name"] for r in rows] == ["mid", "low", "high"]
    scores = [r["metrics"]["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    csv_lines = gitml(repo, "exp", "show", "--csv", "--sort", "score", "--asc").stdout.splitlines()
    header = csv_lines[0].split(",")
    assert header[:4] == ["name", "stage", "state", "created"] and "train.lr" in header
    assert [line.split(",")[0] for line in csv_lines[1:]] == ["high", "low", "mid"]
    table = gitml(repo, "exp", "show").stdout
    assert "mid" in table and "train.lr" in table
    bad = gitml(repo, "exp", "show", "--sort", "nope", check=False)
    assert bad.returncode == 2 and "no metric or param named 'nope'" in bad.stderr

    d = json.loads(gitml(repo, "exp", "diff", "low", "mid", "--json").stdout)
    assert d["params"]["train.lr"]["old"] == 0.05 and d["params"]["train.lr"]["new"] == 0.3
    assert d["metrics"]["score"]["delta"] > 0

    gitml(repo, "exp", "apply", "mid")
    assert yaml.safe_load((repo / "params.yaml").read_text())["train"]["lr"] == 0.3
    assert json.loads((repo / "model" / "weights.json").read_text())["lr"] == 0.3
    staged = git(repo, "diff", "--cached", "--name-only").stdout.split()
    assert "params.yaml" in staged and ".gitml/runs/train.json" in staged
    # applying another over local changes to the same files is refused
    clash = gitml(repo, "exp", "apply", "low", check=False)
    assert clash.returncode == 1 and "would be overwritten" in clash.stderr

    gitml(repo, "exp", "remove", "high")
    assert [r["name"] for r in _show(repo)] == ["low", "mid"]
    gitml(repo, "exp", "remove", "--all-before", "2999-01-01")
    assert _show(repo) == []
    missing = gitml(repo, "exp", "remove", "ghost", check=False)
    assert missing.returncode == 1 and "no experiment named 'ghost'" in missing.stderr


def test_bad_overrides_are_errors_and_leave_no_trial(repo: Path) -> None:
    make_project(repo)
    typo = gitml(repo, "exp", "run", "-n", "train", "-S", "lr_typo=1", check=False)
    assert typo.returncode == 2 and "unknown param(s) lr_typo" in typo.stderr
    form = gitml(repo, "exp", "run", "-n", "train", "-S", "noequals", check=False)
    assert form.returncode == 1 and "invalid -S" in form.stderr
    stage = gitml(repo, "exp", "run", "-n", "nostage", "-S", "depth=1", check=False)
    assert stage.returncode == 1 and "no run record for stage 'nostage'" in stage.stderr
    assert git(repo, "for-each-ref", "refs/gitml/").stdout == ""
    assert git(repo, "worktree", "list").stdout.count("\n") == 1


def test_queue_runs_later_from_the_snapshot_taken_when_queued(repo: Path) -> None:
    make_project(repo)
    gitml(repo, "exp", "run", "-n", "train", "-S", "depth=3", "--exp-name", "q1", "--queue")
    gitml(repo, "exp", "run", "-n", "train", "-S", "depth=5", "--exp-name", "q2", "--queue")
    # an edit after queueing does not reach the queued trials
    (repo / "params.yaml").write_text("train:\n  lr: 0.9\n  epochs: 5\n")
    assert _show(repo) == []
    gitml(repo, "exp", "run", "--run-all", "-j", "2")
    rows = {r["name"]: r for r in _show(repo)}
    assert set(rows) == {"q1", "q2"}
    assert rows["q1"]["params"]["depth"] == 3 and rows["q2"]["params"]["depth"] == 5
    assert all(r["params"]["train.lr"] == 0.1 for r in rows.values())
    assert git(repo, "for-each-ref", "refs/gitml/exps-queue/").stdout == ""


def test_push_and_pull_move_refs_and_artifacts(repo: Path, tmp_path: Path) -> None:
    make_project(repo)
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    store_remote = tmp_path / "store-remote"
    gitml(repo, "remote", "add", "shared", str(store_remote), "--default")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "remote")
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "main")
    gitml(repo, "push")
    gitml(repo, "exp", "run", "-n", "train", "-S", "depth=6", "--exp-name", "shared-trial")
    out = json.loads(gitml(repo, "exp", "push", "origin", "--json").stdout)
    assert out["experiments"] == ["shared-trial"] and out["objects"] >= 1

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    assert json.loads(gitml(clone, "exp", "show", "--json").stdout) == []
    got = json.loads(gitml(clone, "exp", "pull", "origin", "--json").stdout)
    assert got["experiments"] == ["shared-trial"] and got["objects"] >= 1
    rows = json.loads(gitml(clone, "exp", "show", "--json").stdout)
    assert rows[0]["params"]["depth"] == 6
    gitml(clone, "exp", "apply", "shared-trial")
    assert json.loads((clone / "model" / "weights.json").read_text())["depth"] == 6
    none = gitml(clone, "exp", "pull", "origin", "ghost", check=False)
    assert none.returncode == 1 and "has no experiment 'ghost'" in none.stderr


def test_show_reads_summaries_from_a_cache_keyed_by_commit(repo: Path) -> None:
    make_project(repo)
    for name, depth in (("a", "3"), ("b", "5")):
        gitml(repo, "exp", "run", "-n", "train", "-S", f"depth={depth}", "--exp-name", name)
    # a ref under the prefix whose commit is no trial is listed by nobody
    git(repo, "update-ref", "refs/gitml/exps/not-a-trial", "HEAD")
    truth = _show(repo)
    assert [r["name"] for r in truth] == ["a", "b"]
    cache = repo / ".git" / "ml" / "cache" / "exp-summaries.json"
    data = json.loads(cache.read_text())
    commits = {r["name"]: r["commit"] for r in truth}
    head = git(repo, "rev-parse", "HEAD").stdout.strip()
    assert set(data["summaries"]) == {commits["a"], commits["b"], head}
    assert data["summaries"][head] is None
    # the listing trusts the cache for a known commit (commits never change) ...
    data["summaries"][commits["a"]]["metrics"]["score"] = -1.0
    cache.write_text(json.dumps(data))
    assert {r["name"]: r["metrics"]["score"] for r in _show(repo)}["a"] == -1.0
    # ... a damaged cache is rebuilt from the commits
    cache.write_text("{not json")
    assert _show(repo) == truth
    # a removed trial leaves the cache; a new one enters it
    gitml(repo, "exp", "remove", "a")
    quiet = gitml(repo, "exp", "run", "-q", "-n", "train", "-S", "depth=6", "--exp-name", "c")
    assert quiet.stdout == ""                     # -q after the subcommand, as after `git ml`
    rows = _show(repo)
    assert [r["name"] for r in rows] == ["b", "c"] and rows[1]["params"]["depth"] == 6
    left = json.loads(cache.read_text())["summaries"]
    assert commits["a"] not in left and commits["b"] in left and rows[1]["commit"] in left
