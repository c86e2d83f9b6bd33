"""End to end: a real two-stage pipeline on the arrests data shipped with scikit-lego.

`git ml run` must find, without being told, what each stage read and wrote — including
pyarrow's native readers/writers (`pyarrow.csv.read_csv`, `pq.read_table`,
`pq.write_table`, which Python's audit hook cannot see) and files read by a Python
subprocess — store the outputs, record params/metrics/environment, and the commit must
carry trailers; `log`, `show`, `diff`, `lineage` and `repro` read it back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN_DIR, git, gitml

PREPARE = '''
import json, sys
import pyarrow.csv as pacsv
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

params = yaml.safe_load(open("params.yaml"))["prepare"]
table = pacsv.read_csv("data/raw.csv")                      # native read: inotify only
table = table.filter(pc.greater_equal(table["age"], params["min_age"]))
pq.write_table(table, "data/arrests.parquet")               # native write: inotify only
print("prepared", table.num_rows)
'''

TRAIN = '''
import json, os, pickle, subprocess, sys
import pyarrow.parquet as pq
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
import gitml

params = yaml.safe_load(open("params.yaml"))["train"]
# a Python subprocess picks the feature columns from a file only it reads
cols = subprocess.run([sys.executable, "features.py"], capture_output=True, text=True,
                      check=True).stdout.split()
df = pq.read_table("data/arrests.parquet").to_pandas()    # native read: inotify only
X = df[cols].astype(float).values
y = (df["released"] == "Yes").astype(int).values
Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0)
model = LogisticRegression(C=params["C"], max_iter=500).fit(Xtr, ytr)
acc = float(model.score(Xte, yte))
gitml.log_param("features", cols)
gitml.log_metric("accuracy", acc)
os.makedirs("models", exist_ok=True)
with open("models/model.pkl", "wb") as f:
    pickle.dump(model, f)
with open("metrics.json", "w") as f:
    json.dump({"test": {"rows": int(len(yte))}, "train_rows": int(len(ytr))}, f)
'''

FEATURES = '''
print(open("config/features.txt").read())
'''


def write_raw_csv(path: Path, rows: int | None = None) -> None:
    from sklego.datasets import load_arrests

    df = load_arrests(as_frame=True)
    df["age"] = df["age"].fillna(0)
    df = df[["released", "age", "year", "checks"]]
    if rows is not None:
        df = df.head(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)


def make_pipeline_repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "README.md").write_text("pipeline\n")
    (repo / "prepare.py").write_text(PREPARE)
    (repo / "train.py").write_text(TRAIN)
    (repo / "features.py").write_text(FEATURES)
    (repo / "config").mkdir()
    (repo / "config" / "features.txt").write_text("age\nyear\nchecks\n")
    (repo / "params.yaml").write_text("prepare:\n  min_age: 16\ntrain:\n  C: 1.0\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "code")
    gitml(repo, "init")
    gitml(repo, "install")
    write_raw_csv(repo / "data" / "raw.csv")
    gitml(repo, "add", "data/raw.csv")
    git(repo, "commit", "-q", "-m", "raw data")
    return repo


def record(repo: Path, stage: str) -> dict[str, Any]:
    return json.loads((repo / ".gitml" / "runs" / f"{stage}.json").read_text())


def paths(refs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["path"]: r for r in refs}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Both stages run and committed once for the whole module (runs are the slow part)."""
    home = tmp_path_factory.mktemp("home")
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test User\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n"
        "[advice]\n\tdetachedHead = false\n[protocol \"file\"]\n\tallow = always\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        mp.setenv("PATH", BIN_DIR + os.pathsep + os.environ.get("PATH", ""))
        for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GITML_DEBUG"):
            mp.delenv(var, raising=False)
        repo = make_pipeline_repo(tmp_path_factory.mktemp("pipe"))
        gitml(repo, "run", "-n", "prepare", "-p", "params.yaml:prepare", "--", "python", "prepare.py")
        gitml(repo, "run", "-n", "train", "-p", "params.yaml:train", "-M", "metrics.json", "--",
              "python", "train.py")
        # a gate result as the checks area writes it
        checks = repo / ".gitml" / "checks"
        checks.mkdir(parents=True)
        (checks / "arrests.json").write_text(json.dumps({
            "model": "arrests", "results": [{"gate": "eval", "passed": True, "metrics": {"auc": 0.8}},
                                            {"gate": "bias", "passed": False, "metrics": {}}]}))
        git(repo, "add", ".gitml/checks/arrests.json")
        git(repo, "commit", "-q", "-m", "train v1")
        yield repo


def test_reads_and_writes_are_detected_without_declaration(pipeline: Path) -> None:
    prep = record(pipeline, "prepare")
    ins, outs = paths(prep["inputs"]), paths(prep["outputs"])
    # pyarrow.csv.read_csv / pq.write_table never raise a Python open event: inotify saw them
    assert ins["data/raw.csv"]["source"] == "artifact" and not ins["data/raw.csv"]["declared"]
    assert "prepare.py" in ins and ins["prepare.py"]["source"] == "git"
    assert "params.yaml" not in ins  # named with -p: tracked by its keys, not its bytes
    assert outs["data/arrests.parquet"]["source"] == "artifact"
    assert prep["params"] == {"prepare.min_age": 16}
    assert prep["exit_code"] == 0 and "inotify" in prep["tracer"] and "audit" in prep["tracer"]

    train = record(pipeline, "train")
    ins, outs = paths(train["inputs"]), paths(train["outputs"])
    assert ins["data/arrests.parquet"]["oid"] == paths(prep["outputs"])["data/arrests.parquet"]["oid"]
    assert "config/features.txt" in ins     # read only by the Python subprocess
    assert "features.py" in ins and "train.py" in ins
    assert "models" in outs and outs["models"]["kind"] == "dir"   # a new folder becomes one artifact
    assert outs["metrics.json"]["source"] == "file"                # named with -M: not stored
    # the subprocess is listed with what it read
    sub = [p for p in train["processes"] if p.get("argv", [])[-1:] == ["features.py"]]
    assert sub and "config/features.txt" in sub[0]["reads"]


def test_outputs_are_in_the_store_and_pointers_committed(pipeline: Path) -> None:
    tracked = git(pipeline, "ls-files").stdout.split()
    assert "data/arrests.parquet.gitml" in tracked and "models.gitml" in tracked
    assert "data/arrests.parquet" not in tracked
    assert ".gitml/runs/train.json" in tracked
    st = json.loads(gitml(pipeline, "status", "--json").stdout)
    states = {e["path"]: e["state"] for e in st["artifacts"]}
    assert states["data/arrests.parquet"] == "clean" and states["models"] == "clean"


def test_params_metrics_and_environment(pipeline: Path) -> None:
    train = record(pipeline, "train")
    assert train["params"]["train.C"] == 1.0
    assert train["params"]["features"] == ["age", "year", "checks"]
    assert 0.5 < train["metrics"]["accuracy"] <= 1.0
    assert train["metrics"]["test.rows"] > 0 and train["metrics"]["train_rows"] > 0
    env = json.loads((pipeline / ".gitml" / "env" / f"{train['env']}.json").read_text())
    assert env["id"] == train["env"]
    assert "scikit-learn" in env["packages"] and "pyarrow" in env["packages"]
    assert env["python"]["version"].count(".") == 2 and env["cpu"]["count"] >= 1
    assert env["memory_bytes"] > 0
    assert train["git"]["commit"] and train["started"] and train["ended"]


def test_commit_carries_trailers(pipeline: Path) -> None:
    msg = git(pipeline, "log", "-1", "--format=%B").stdout
    trailers = git(pipeline, "interpret-trailers", "--parse", input=msg).stdout
    assert "Gitml-Manifest: " in trailers
    assert "Gitml-Run: train exit=0" in trailers and "Gitml-Run: prepare exit=0" in trailers
    acc = record(pipeline, "train")["metrics"]["accuracy"]
    assert f"Gitml-Metric: train.accuracy={acc:.6g}" in trailers
    assert "Gitml-Check: arrests failed (1/2 gates)" in trailers
    assert "Gitml-Artifact: models " in trailers and "Gitml-Artifact: data/arrests.parquet " in trailers
    assert msg.count("Gitml-Manifest:") == 1
    shown = json.loads(gitml(pipeline, "show", "--json").stdout)
    assert shown["verified"] is True and shown["trailer_manifest_id"] == shown["manifest_id"]
    assert set(shown["changed_runs"]) == {"prepare", "train"}
    assert shown["changed_checks"] == ["arrests"] and shown["checks"]["arrests"]["model"] == "arrests"
    human = gitml(pipeline, "show").stdout
    assert "arrests: failed (1/2 gates)" in human and "stage train" in human and "scikit-learn" not in human
    # amending with nothing new keeps one set of trailers
    git(pipeline, "commit", "-q", "--amend", "--no-edit")
    msg = git(pipeline, "log", "-1", "--format=%B").stdout
    assert msg.count("Gitml-Manifest:") == 1 and msg.count("Gitml-Check:") == 1


def test_log_show_and_lineage(pipeline: Path) -> None:
    rows = json.loads(gitml(pipeline, "log", "--json").stdout)
    assert [r["summary"] for r in rows] == ["train v1", "raw data"]
    assert rows[0]["metrics"]["accuracy"] == record(pipeline, "train")["metrics"]["accuracy"]
    assert "+models" in rows[0]["artifacts"] and "+data/raw.csv" in rows[1]["artifacts"]
    assert rows[0]["checks"] == {"arrests": False} and set(rows[0]["stages"]) == {"prepare", "train"}
    table = gitml(pipeline, "log").stdout
    assert "train v1" in table and "accuracy" in table
    only = json.loads(gitml(pipeline, "log", "--path", "data/raw.csv", "--json").stdout)
    assert [r["summary"] for r in only] == ["raw data"]

    text = gitml(pipeline, "lineage", "models").stdout
    lines = text.splitlines()
    assert lines[0].startswith("models ")
    assert any("stage train" in ln for ln in lines) and any("stage prepare" in ln for ln in lines)
    assert any("data/raw.csv" in ln for ln in lines)
    # order: model <- train <- arrests.parquet <- prepare <- raw.csv
    idx = {k: next(i for i, ln in enumerate(lines) if k in ln)
           for k in ("stage train", "data/arrests.parquet", "stage prepare", "data/raw.csv")}
    assert idx["stage train"] < idx["data/arrests.parquet"] < idx["stage prepare"] < idx["data/raw.csv"]
    dot = gitml(pipeline, "lineage", "models/model.pkl", "--dot").stdout
    assert dot.startswith("digraph lineage {") and dot.count("->") >= 4
    mermaid = gitml(pipeline, "lineage", "models", "--mermaid", "--no-code").stdout
    assert mermaid.startswith("graph LR") and '(["prepare.py' not in mermaid and "-->" in mermaid


def test_git_diff_textconv_summarises_parquet(pipeline: Path) -> None:
    out = git(pipeline, "log", "-p", "-1", "--", "data/arrests.parquet.gitml").stdout
    assert "# parquet:" in out and "rows" in out and "age: int64" in out


def test_repro_reruns_only_stale_stages_then_diff(pipeline: Path) -> None:
    res = json.loads(gitml(pipeline, "repro", "--json").stdout)
    assert [(s["stage"], s["stale"]) for s in res] == [("prepare", False), ("train", False)]

    # a train-only param: prepare stays, train re-runs
    (pipeline / "params.yaml").write_text("prepare:\n  min_age: 16\ntrain:\n  C: 0.01\n")
    dry = json.loads(gitml(pipeline, "repro", "--dry-run", "--json").stdout)
    assert [(s["stage"], s["stale"]) for s in dry] == [("prepare", False), ("train", True)]
    assert "param train.C changed" in dry[1]["reasons"][0]
    before = record(pipeline, "prepare")["started"]
    res = json.loads(gitml(pipeline, "repro", "--json").stdout)
    assert [(s["stage"], s["ran"]) for s in res] == [("prepare", False), ("train", True)]
    assert record(pipeline, "prepare")["started"] == before
    assert record(pipeline, "train")["params"]["train.C"] == 0.01

    # a change upstream: both re-run, in order
    (pipeline / "params.yaml").write_text("prepare:\n  min_age: 30\ntrain:\n  C: 0.01\n")
    res = json.loads(gitml(pipeline, "repro", "--json").stdout)
    assert [(s["stage"], s["ran"]) for s in res] == [("prepare", True), ("train", True)]
    git(pipeline, "add", "params.yaml")
    git(pipeline, "commit", "-q", "-m", "train v2")

    d = json.loads(gitml(pipeline, "diff", "HEAD~1", "HEAD", "--json").stdout)
    assert d["params"]["train.train.C"]["old"] == 1.0 and d["params"]["train.train.C"]["new"] == 0.01
    assert d["params"]["prepare.prepare.min_age"]["delta"] == 14
    acc = d["metrics"]["train.accuracy"]
    assert acc["delta"] == pytest.approx(acc["new"] - acc["old"])
    data = {a["path"]: a for a in d["artifacts"]}["data/arrests.parquet"]
    assert data["status"] == "modified" and data["data"]["format"] == "parquet"
    assert data["data"]["rows_delta"] < 0                      # fewer rows with min_age 30
    assert data["data"]["columns_changed"]["age"]["min"] == [16, 30]
    assert d["environment"]["train"]["same"] is True
    human = gitml(pipeline, "diff", "HEAD~1", "HEAD").stdout
    assert "accuracy" in human and "rows:" in human and "min 16 -> 30" in human
    assert json.loads(gitml(pipeline, "repro", "--json").stdout)[1]["stale"] is False


def test_manifests_survive_push_and_fresh_clone(pipeline: Path, tmp_path: Path) -> None:
    """Runs last in this module: clones the pipeline repo with its two training commits."""
    gitml(pipeline, "remote", "add", "origin", str(tmp_path / "store-remote"), "--default")
    git(pipeline, "add", ".gitml/config.toml")
    git(pipeline, "commit", "-q", "--no-verify", "-m", "remote")
    gitml(pipeline, "push", "--all-commits")
    bare = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(pipeline), str(bare))
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    gitml(clone, "pull")
    gitml(clone, "install")
    for rev in ("HEAD~1", "HEAD~2"):
        original = json.loads(gitml(pipeline, "show", rev, "--json").stdout)
        cloned = json.loads(gitml(clone, "show", rev, "--json").stdout)
        assert cloned["manifest_id"] == original["manifest_id"] and cloned["verified"] is True
        assert cloned["runs"] == original["runs"] and cloned["environments"] == original["environments"]
        assert cloned["checks"] == original["checks"]
    assert json.loads(gitml(clone, "log", "--json").stdout) == json.loads(gitml(pipeline, "log", "--json").stdout)
    d = json.loads(gitml(clone, "diff", "HEAD~2", "HEAD~1", "--json").stdout)
    data = {a["path"]: a for a in d["artifacts"]}["data/arrests.parquet"]["data"]
    assert data["columns_changed"]["age"]["min"] == [16, 30]   # read from the pulled store
    assert "stage prepare" in gitml(clone, "lineage", "models").stdout
    assert (clone / "models" / "model.pkl").is_file()
    patch = git(clone, "log", "-p", "-1", "--", "data/raw.csv.gitml").stdout
    assert "# csv: " in patch and "released: string" in patch
