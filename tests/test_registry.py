"""The registry: GTO's tag grammar, register/promote/unassign/deprecate in real repositories
whose commits passed real gates, and agreement with the real `gto` package both ways."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import git, gitml
from tests.support.registry import commit_model, copy_repo, logreg, template_repo

GTO = str(Path(sys.executable).parent / "gto")

TAG_NAMES = [
    "credit@v1.3.0", "credit@v1.3.0!", "credit#prod", "credit#prod#4", "credit#prod!",
    "credit#prod!#5", "credit@deprecated", "credit@deprecated#6", "credit@created",
    "models=credit@v0.1.0", "a/b=c-d_e@v2.0.0-rc.1+build.5", "dir.x=name#stage-1#12",
    "credit@1.3.0", "credit@v1.3", "credit#", "-credit@v1.0.0", "credit_@v1.0.0",
    "credit.v2@v1.0.0", "credit@v01.0.0", "credit#prod#x", "credit#pr od", "c@v1.0.0",
    "credit@v1.0.0#3", "credit@v1.0.0!#3", "credit@v1.0.0-alpha.01", "x=y=z@v1.0.0",
]


def test_tag_grammar_agrees_with_gto() -> None:
    from gto.tag import parse_name

    from gitml.git.tags import Action, format_tag, parse

    for name in TAG_NAMES:
        ours = parse(name)
        theirs = parse_name(name, raise_on_fail=False)
        if not theirs:
            assert ours is None, name
            continue
        assert ours is not None, name
        assert ours.name == theirs["name"], name
        if "action" not in theirs:  # name@created: GTO parses it but gives it no action
            assert name.endswith("@created") and ours.action is Action.CREATE
            continue
        assert ours.action.value == theirs["action"].value, name
        assert ours.version == theirs.get("version"), name
        assert ours.stage == theirs.get("stage"), name
        assert ours.counter == theirs.get("counter"), name
    # what we write parses back, and GTO reads it the same way
    for tag in (format_tag(Action.REGISTER, "dir:credit", version="1.2.0"),
                format_tag(Action.ASSIGN, "credit", stage="prod", counter=7),
                format_tag(Action.UNASSIGN, "credit", stage="prod", counter=8),
                format_tag(Action.DEREGISTER, "credit", version="v1.2.0"),
                format_tag(Action.DEPRECATE, "credit", counter=9)):
        assert parse_name(tag)["name"] == parse(tag).name  # type: ignore[union-attr]
    assert format_tag(Action.REGISTER, "dir:credit", version="1.2.0") == "dir=credit@v1.2.0"


def test_semver_order_agrees_with_gto() -> None:
    from gto.versions import SemVer

    from gitml.git.tags import semver_key

    versions = ["v1.0.0", "v1.0.0-alpha", "v1.0.0-alpha.1", "v1.0.0-alpha.beta", "v1.0.0-beta",
                "v1.0.0-beta.2", "v1.0.0-beta.11", "v1.0.0-rc.1", "v0.9.9", "v1.10.0", "v1.2.0",
                "v2.0.0", "v1.0.1"]
    assert sorted(versions, key=semver_key) == sorted(versions, key=SemVer)


@pytest.fixture
def reg(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # registry order is tagger time: use the real clock, not the suite's pinned date
    monkeypatch.delenv("GIT_COMMITTER_DATE", raising=False)
    monkeypatch.delenv("GIT_AUTHOR_DATE", raising=False)
    return copy_repo(template_repo(tmp_path_factory), tmp_path / "repo")


def _gto(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([GTO, *args], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _gto_events(repo: Path) -> set[tuple[object, ...]]:
    events = json.loads(_gto(repo, "history", "--json").stdout)
    return {(e["artifact"], e["event"], e["version"], e["stage"], e["commit"], e["ref"]) for e in events}


def _our_events(repo: Path) -> set[tuple[object, ...]]:
    rows = json.loads(gitml(repo, "history", "--json").stdout)
    return {(r["artifact"], r["event"], r["version"], r["stage"], r["commit"], r["tag"])
            for r in rows if r["kind"] == "registry"}


def _models_as_gto(repo: Path) -> dict[str, object]:
    rows = json.loads(gitml(repo, "models", "--json").stdout)
    return {r["name"]: {"version": r["version"], "stage": r["stage"], "registered": r["registered"],
                        "active": r["active"]} for r in rows}


def test_gitml_registry_reads_the_same_in_gto(reg: Path) -> None:
    head = git(reg, "rev-parse", "HEAD").stdout.strip()
    prev = git(reg, "rev-parse", "HEAD~1").stdout.strip()
    out = gitml(reg, "register", "credit", "HEAD~1", "--version", "1.2.0").stdout
    assert "credit@v1.2.0" in out
    assert "credit@v1.3.0" in gitml(reg, "register", "credit", "--bump", "minor").stdout
    assert "credit#prod#1" in gitml(reg, "promote", "credit", "1.2.0", "prod").stdout
    gitml(reg, "promote", "credit", "1.2.0", "staging")
    assert "credit#prod#3" in gitml(reg, "promote", "credit", "1.3.0", "prod").stdout
    again = gitml(reg, "promote", "credit", "1.3.0", "prod", check=False)
    assert again.returncode == 1 and "already in stage prod" in again.stderr
    assert "credit#staging!#4" in gitml(reg, "unassign", "credit", "staging").stdout
    gitml(reg, "deprecate", "credit", "1.2.0")
    # every registry tag is annotated and points at the right commit
    assert git(reg, "cat-file", "-t", "credit@v1.2.0").stdout.strip() == "tag"
    assert git(reg, "rev-parse", "credit@v1.2.0^{commit}").stdout.strip() == prev
    assert git(reg, "rev-parse", "credit#prod#3^{commit}").stdout.strip() == head

    ours = _models_as_gto(reg)
    theirs = json.loads(_gto(reg, "show", "--json").stdout)
    assert ours == theirs
    assert ours["credit"] == {"version": "v1.3.0", "stage": {"prod": "v1.3.0"},
                              "registered": True, "active": True}
    assert _our_events(reg) == _gto_events(reg)
    assert len(_our_events(reg)) == 7
    # the resolvers other layers use read the same state
    from gitml.git.registry import stage_commit, version_commit
    from gitml.git.repo import GitRepo

    g = GitRepo.discover(reg)
    assert stage_commit(g, "credit", "prod") == head and stage_commit(g, "credit", "staging") is None
    assert version_commit(g, "credit", "1.3.0") == head and version_commit(g, "credit", "1.2.0") is None
    # the hooks saw every tag, but no deploy target is declared: nothing was deployed
    assert not (reg / ".git" / "ml" / "deploy").exists()
    assert json.loads(gitml(reg, "deployments", "--json").stdout) == []

    # history carries the metrics each commit recorded
    hist = json.loads(gitml(reg, "history", "credit", "--json").stdout)
    reg_ev = next(r for r in hist if r["event"] == "registration" and r["version"] == "v1.3.0")
    recorded = json.loads(git(reg, "show", "HEAD:.gitml/checks/credit.json").stdout)
    acc = next(r for r in recorded["results"] if r["gate"] == "eval.threshold")["metrics"]["metrics"]["accuracy"]
    assert reg_ev["metrics"]["accuracy"] == acc and reg_ev["metrics"]["gates"] == "passed"

    # deprecating the whole model hides it, as in gto
    gitml(reg, "deprecate", "credit")
    assert json.loads(gitml(reg, "models", "--json").stdout) == []
    assert json.loads(_gto(reg, "show", "--json").stdout) == {}
    assert _our_events(reg) == _gto_events(reg)


def test_gitml_reads_tags_gto_wrote(reg: Path) -> None:
    _gto(reg, "register", "credit", "HEAD~1", "--version", "v0.5.0")
    _gto(reg, "register", "credit", "HEAD", "--bump-major")
    _gto(reg, "assign", "credit", "--version", "v0.5.0", "--stage", "prod")
    # GTO orders events by tagger time in whole seconds and breaks ties arbitrarily
    # (gitml waits out the second when it tags); keep these in distinct seconds
    time.sleep(1.05)
    _gto(reg, "assign", "credit", "--version", "v1.0.0", "--stage", "prod")
    _gto(reg, "register", "models:churn", "HEAD~1")
    _gto(reg, "assign", "models:churn", "HEAD~1", "--stage", "dev")
    _gto(reg, "deprecate", "credit", "v0.5.0")
    git(reg, "tag", "credit@v9.0.0")  # lightweight: not a registry event, for gto or us
    tags = git(reg, "tag").stdout.split()
    assert "models=churn@v0.0.1" in tags
    ours = _models_as_gto(reg)
    assert ours == json.loads(_gto(reg, "show", "--json").stdout)
    assert ours["credit"]["version"] == "v1.0.0" and ours["credit"]["stage"]["prod"] == "v1.0.0"
    assert ours["models:churn"]["stage"]["dev"] == "v0.0.1"
    assert _our_events(reg) == _gto_events(reg)
    # and gitml builds on them: the next version bumps gto's latest
    assert "credit@v1.0.1" in gitml(reg, "register", "credit", "HEAD~2", "--force").stdout


def test_register_needs_passed_gates_of_that_very_model(reg: Path) -> None:
    # a new model committed without running the gates: the results at HEAD are stale
    import numpy as np

    from tests.support.checks import arrests_split

    train, _ = arrests_split()
    shuffled = np.random.default_rng(0).permutation(train["released"].to_numpy())
    commit_model(reg, logreg(1.0, shuffled), "shuffled labels, gates skipped", check=False)
    proc = gitml(reg, "register", "credit", check=False)
    assert proc.returncode == 1
    assert "cannot be registered" in proc.stderr and "stale" in proc.stderr
    assert git(reg, "tag").stdout.strip() == ""
    # no results at all (the first commit) is refused too
    proc = gitml(reg, "register", "credit", "HEAD~3", check=False)
    assert proc.returncode == 1 and "no gate results recorded" in proc.stderr
    # --force registers and the tag says so
    out = gitml(reg, "register", "credit", "--force").stdout
    assert "FORCED" in out
    msg = git(reg, "tag", "-l", "--format=%(contents)", "credit@v0.0.1").stdout
    assert "FORCED: registered with --force" in msg and "stale" in msg


def test_bad_input_is_one_line_errors(reg: Path) -> None:
    for args, words in ((["register", "nope"], "unknown model"),
                        (["promote", "credit", "1.0.0", "prod"], "no registry tags"),
                        (["register", "credit", "--version", "1.x"], "invalid version"),
                        (["history", "credit"], "no registry tags")):
        proc = gitml(reg, *args, check=False)
        assert proc.returncode == 1, (args, proc.stderr)
        assert words in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    gitml(reg, "register", "credit", "--version", "1.0.0")
    proc = gitml(reg, "promote", "credit", "1.0.0", "pr od", check=False)
    assert proc.returncode == 1 and "invalid stage name" in proc.stderr
    proc = gitml(reg, "register", "credit", "HEAD~1", "--version", "1.0.0", check=False)
    assert proc.returncode == 1 and "already registered" in proc.stderr


def test_card_from_git_attached_at_registration(reg: Path) -> None:
    gitml(reg, "register", "credit", "--version", "1.3.0")
    gitml(reg, "promote", "credit", "1.3.0", "prod")
    card = gitml(reg, "card", "credit@v1.3.0").stdout
    pointer = git(reg, "show", "HEAD:models/model.skops.gitml").stdout
    oid = next(ln.split()[1] for ln in pointer.splitlines() if ln.startswith("oid "))
    assert "# Model card: credit v1.3.0" in card
    assert "Owner: Risk team <risk@example.com>" in card
    assert "Intended use: Decide whether" in card
    assert oid in card                                  # the model's id
    assert "| colour |" in card                         # the bias table
    assert "## Top features" in card and "| checks |" in card
    assert "| eval.threshold | pass |" in card
    assert "| assignment | v1.3.0 | prod | Test User" in card
    # the registration tag carries the card
    attached = git(reg, "tag", "-l", "--format=%(contents)", "credit@v1.3.0").stdout
    assert "# Model card: credit v1.3.0" in attached and oid in attached
    html = gitml(reg, "card", "credit", "--html").stdout
    assert html.startswith('<section class="model-card">') and "<table>" in html and oid in html
    # and the HTML report carries it under the model's heading
    gitml(reg, "report", "-o", "report.html")
    page = (reg / "report.html").read_text()
    assert '<section class="model-card"><h3>Model card: credit v1.3.0</h3>' in page and oid in page
