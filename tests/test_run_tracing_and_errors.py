"""The snapshot fallback; any-language tracing; failed commands; malformed records and
params files give clear one-line errors and lose nothing."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import git, gitml

SCRIPT = '''
import json, os, sys
import pyarrow as pa
import pyarrow.parquet as pq
import gitml

rows = int(json.load(open("params.json"))["rows"])
src = open("data/input.csv").read().splitlines()[1:rows + 1]          # Python open: audit + inotify
os.makedirs("out", exist_ok=True)
pq.write_table(pa.table({"v": [int(x) for x in src]}), "out/table.parquet")
gitml.log_metric("total", sum(int(x) for x in src))
'''


def setup_repo(repo: Path, *, hooks: bool = False) -> None:
    (repo / "data").mkdir()
    (repo / "data" / "input.csv").write_text("v\n" + "\n".join(str(i) for i in range(100)) + "\n")
    (repo / "make.py").write_text(SCRIPT)
    (repo / "params.json").write_text('{"rows": 10}')
    if hooks:
        gitml(repo, "install")
    git(repo, "add", "make.py", "params.json", "data/input.csv")
    git(repo, "commit", "-q", "-m", "inputs")


def test_snapshot_fallback_and_declared_inputs(repo: Path) -> None:
    setup_repo(repo)
    pq_in = repo / "in.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": [1, 2]}), pq_in)
    (repo / "native.py").write_text(
        "import pyarrow.parquet as pq\n"
        "t = pq.read_table('in.parquet')\n"
        "pq.write_table(t, 'copy.parquet')\n"
        "print(open('data/input.csv').read()[:1])\n")
    env = {"GITML_NO_INOTIFY": "1"}
    gitml(repo, "run", "-n", "native", "--", "python", "native.py", env=env)
    r = json.loads((repo / ".gitml/runs/native.json").read_text())
    ins = {i["path"] for i in r["inputs"]}
    outs = {o["path"] for o in r["outputs"]}
    assert r["tracer"] == "snapshot+audit"
    assert "copy.parquet" in outs                      # the snapshot sees new files
    assert "data/input.csv" in ins                     # the audit hook sees Python opens
    assert "in.parquet" not in ins                     # ...but not pyarrow's native read
    gitml(repo, "run", "-n", "native", "-d", "in.parquet", "--", "python", "native.py", env=env)
    r = json.loads((repo / ".gitml/runs/native.json").read_text())
    declared = {i["path"]: i["declared"] for i in r["inputs"]}
    assert declared["in.parquet"] is True and declared["data/input.csv"] is False


def test_non_python_commands_are_traced(repo: Path) -> None:
    setup_repo(repo)
    gitml(repo, "run", "-n", "shell", "--", "sh", "-c",
          "mkdir -p build && sort -r data/input.csv > build/sorted.txt && cp build/sorted.txt build/b.txt")
    r = json.loads((repo / ".gitml/runs/shell.json").read_text())
    assert {i["path"] for i in r["inputs"]} == {"data/input.csv"}
    assert [(o["path"], o["kind"]) for o in r["outputs"]] == [("build", "dir")]
    assert r["env"]  # no Python ran: gitml's own environment is recorded instead
    assert (repo / "build.gitml").exists()


def test_failed_command_exit_code_and_record(repo: Path) -> None:
    setup_repo(repo)
    p = gitml(repo, "run", "-n", "boom", "--", "python", "-c",
              "open('partial.txt', 'w').write('x'); raise SystemExit(3)", check=False)
    assert p.returncode == 3
    r = json.loads((repo / ".gitml/runs/boom.json").read_text())
    assert r["exit_code"] == 3 and not (repo / "partial.txt.gitml").exists()
    dry = json.loads(gitml(repo, "repro", "-n", "--json").stdout)
    assert dry == [{"stage": "boom", "stale": True, "reasons": ["last run failed (exit 3)"],
                    "ran": False, "exit_code": None}]


def test_malformed_inputs_give_one_line_errors(repo: Path) -> None:
    setup_repo(repo, hooks=True)
    (repo / "params.yaml").write_text("train:\n  depth: [1, 2\n")
    p = gitml(repo, "run", "-n", "t", "-p", "params.yaml", "--", "python", "-c",
              "open('ran.txt', 'w').write('x')", check=False)
    assert p.returncode == 1 and not (repo / "ran.txt").exists()     # never started
    assert p.stderr.startswith("gitml: error: params.yaml: malformed YAML at line")
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr

    p = gitml(repo, "run", "--", "no-such-command-xyz", check=False)
    assert p.returncode == 1 and "command not found: no-such-command-xyz" in p.stderr

    runs = repo / ".gitml" / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    (runs / "bad.json").write_text('{"format": 1, "stage": "bad", "cmd": "python x.py"}')
    for args in (["repro"], ["repro", "-n"]):
        p = gitml(repo, *args, check=False)
        assert p.returncode == 1 and "Traceback" not in p.stderr
        assert p.stderr.strip() == ("gitml: error: .gitml/runs/bad.json: field 'cmd' must be a list, got a "
                                    "string (re-run the stage with `git ml run` or restore the file with "
                                    "`git checkout`)")
    # the commit-msg hook refuses to commit it
    git(repo, "add", ".gitml/runs/bad.json")
    c = git(repo, "commit", "-m", "bad record", check=False)
    assert c.returncode != 0 and "bad.json (staged): field 'cmd' must be a list" in c.stderr
    # committed anyway (hooks skipped): show names the file and commit, in one line
    git(repo, "commit", "-q", "--no-verify", "-m", "bad record")
    p = gitml(repo, "show", "--json", check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert ".gitml/runs/bad.json (at " in p.stderr
    # log reads only the fields it shows, so it keeps working
    rows = json.loads(gitml(repo, "log", "--json").stdout)
    assert rows[0]["stages"] == ["bad"] and rows[0]["summary"] == "bad record"


def test_run_from_a_subfolder_and_repro_there(repo: Path) -> None:
    sub = repo / "exp"
    sub.mkdir()
    (sub / "p.json").write_text('{"k": 1}')
    gitml(sub, "run", "-n", "exp", "-p", "p.json", "--", "python", "-c",
          "open('o.txt', 'w').write(open('p.json').read())")
    r = json.loads((repo / ".gitml/runs/exp.json").read_text())
    assert r["cwd"] == "exp" and r["params"] == {"k": 1}
    assert [(o["path"], o["source"]) for o in r["outputs"]] == [("exp/o.txt", "artifact")]
    assert (sub / "o.txt.gitml").exists()
    (sub / "p.json").write_text('{"k": 2}')
    res = json.loads(gitml(sub, "repro", "--json").stdout)
    assert res[0]["ran"] is True and (sub / "o.txt").read_text() == '{"k": 2}'
    assert "stage exp" in gitml(sub, "lineage", "o.txt").stdout   # uncommitted records too


def test_trailers_when_amending(repo: Path) -> None:
    gitml(repo, "install")
    gitml(repo, "run", "-n", "mk", "--", "python", "-c",
          "open('a.bin', 'w').write('a'); import gitml; gitml.log_metric('acc', 0.5)")
    git(repo, "commit", "-q", "-m", "run mk")
    first = git(repo, "log", "-1", "--format=%B").stdout
    assert "Gitml-Run: mk exit=0" in first and "Gitml-Metric: acc=0.5" in first
    assert "Gitml-Artifact: a.bin " in first
    # amend in another artifact: the summary covers the whole amended commit
    (repo / "b.bin").write_text("b")
    gitml(repo, "add", "b.bin")
    git(repo, "commit", "-q", "--amend", "--no-edit")
    msg = git(repo, "log", "-1", "--format=%B").stdout
    assert msg.count("Gitml-Manifest:") == 1 and "Gitml-Run: mk exit=0" in msg
    assert "Gitml-Artifact: a.bin " in msg and "Gitml-Artifact: b.bin " in msg
    assert json.loads(gitml(repo, "show", "--json").stdout)["verified"] is True
    # a commit that changes no pointer, record or check gets no trailers
    (repo / "notes.txt").write_text("x")
    git(repo, "add", "notes.txt")
    git(repo, "commit", "-q", "-m", "notes")
    assert "Gitml-" not in git(repo, "log", "-1", "--format=%B").stdout
