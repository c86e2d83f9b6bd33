"""`git ml sweep`: Optuna search whose trials are experiments in Git — conditional spaces,
parallel trials, pruning on step metrics, several objectives, confidence re-runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import git, gitml
from tests.support.exp import make_project, user_state

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

[params.family]
type = "categorical"
choices = ["tree", "mlp"]

[params.units]
type = "int"
low = 8
high = 256
log = true
condition = { family = "mlp" }
"""


def _trials(repo: Path, study: str | None = None) -> list[dict]:
    rows = json.loads(gitml(repo, "exp", "show", "--json").stdout)
    return [r for r in rows if study is None or r["meta"].get("study") == study]


def test_conditional_space_in_parallel_lands_in_git(repo: Path) -> None:
    make_project(repo)
    (repo / "sweep.toml").write_text(SPACE)
    before = user_state(repo)
    out = json.loads(gitml(repo, "sweep", "-n", "train", "--space", "sweep.toml", "--trials", "6",
                           "-j", "2", "--objective", "score:max", "--seed", "3", "--pruner", "none",
                           "--json").stdout)
    assert user_state(repo) == before
    study = out["study"]
    rows = _trials(repo, study)
    assert len(rows) == 6 and len(out["trials"]) == 6
    assert sorted(r["meta"]["number"] for r in rows) == list(range(6))
    assert {r["name"] for r in rows} == {f"{study}-{n}" for n in range(6)}
    for r in rows:
        o = r["overrides"]
        assert set(o) >= {"train.lr", "depth", "family"}
        # the conditional param is sampled exactly when its condition holds
        assert ("units" in o) == (o["family"] == "mlp")
        # and what the stage ran with is what was sampled
        assert r["params"]["train.lr"] == o["train.lr"] and r["params"]["depth"] == o["depth"]
        assert r["params"]["family"] == o["family"]
        assert r["state"] == "complete"
    best = out["best"][0]
    assert best["metrics"]["score"] == max(r["metrics"]["score"] for r in rows)
    # a second invocation resumes the same study (same stage and space) up to the new total
    again = json.loads(gitml(repo, "sweep", "-n", "train", "--space", "sweep.toml", "--trials", "8",
                             "--objective", "score:max", "--pruner", "none", "--json").stdout)
    assert again["study"] == study and len(again["trials"]) == 2
    assert len(_trials(repo, study)) == 8


def test_pruning_stops_trials_that_fall_behind(repo: Path) -> None:
    make_project(repo)
    (repo / "sweep.toml").write_text('[params."train.lr"]\ntype = "float"\nlow = 0.0\nhigh = 1.0\n')
    proc = gitml(repo, "sweep", "-n", "train", "--space", "sweep.toml", "--trials", "8",
                 "--objective", "score:max", "--sampler", "random", "--seed", "0",
                 "--prune-after", "2", "--json", env={"TRAIN_STEP_DELAY": "0.4"})
    rows = _trials(repo, json.loads(proc.stdout)["study"])
    pruned = [r for r in rows if r["state"] == "pruned"]
    assert pruned, [(r["state"], r["metrics"].get("score")) for r in rows]
    complete = [r for r in rows if r["state"] == "complete"]
    for r in pruned:
        rec = json.loads(git(repo, "show", f"{r['commit']}:.gitml/runs/train.json").stdout)
        steps = [s for s, _ in rec["history"]["score"]]
        assert steps and steps[-1] < 5               # stopped before its last step
        assert rec["exit_code"] != 0
        # it was behind: below the best complete trial at the step it was stopped
        best_at = max(json.loads(git(repo, "show", f"{c['commit']}:.gitml/runs/train.json").stdout)
                      ["history"]["score"][steps[-1] - 1][1] for c in complete)
        assert rec["history"]["score"][-1][1] < best_at


def test_multi_objective_front_and_confidence_reruns(repo: Path) -> None:
    make_project(repo)
    (repo / "sweep.toml").write_text(SPACE + '\n[sweep]\nobjectives = ["score:max", "latency_ms:min"]\n'
                                     'seed_param = "seed"\n')
    out = json.loads(gitml(repo, "sweep", "-n", "train", "--space", "sweep.toml", "--trials", "5",
                           "-j", "2", "--sampler", "random", "--seed", "1", "--confirm-top", "2",
                           "--confirm-seeds", "2", "--json").stdout)
    front = out["best"]
    assert front
    rows = [r for r in _trials(repo, out["study"]) if "confirms" not in r["meta"]]

    def dominated(a: dict) -> bool:
        return any(b["metrics"]["score"] >= a["metrics"]["score"]
                   and b["metrics"]["latency_ms"] <= a["metrics"]["latency_ms"]
                   and b["metrics"] != a["metrics"] for b in rows)

    assert not any(dominated(t) for t in front)
    conf = out["confidence"]
    assert conf["metric"] == "score" and len(conf["estimates"]) == min(2, len(front))
    reruns = [r for r in _trials(repo) if "confirms" in r["meta"]]
    assert len(reruns) == 2 * len(conf["estimates"])
    for e in conf["estimates"]:
        assert len(e["values"]) == 3 and e["ci95"] >= 0
        mine = [r for r in reruns if r["meta"]["confirms"] == e["trial"]]
        assert sorted(r["params"]["seed"] for r in mine) == [1, 2]
        assert abs(e["mean"] - sum(e["values"]) / 3) < 1e-12
    means = [e["mean"] for e in conf["estimates"]]
    assert means == sorted(means, reverse=True)


@pytest.mark.parametrize("text, message", [
    ("[params.x]\ntype = 'float'\nlow = 1\nhigh = 0\n", "low (1) must be below high (0)"),
    ("[params.x]\ntype = 'float'\nlow = 0\nhigh = 1\nlog = true\n", "a log scale needs low > 0"),
    ("[params.x]\ntype = 'int'\nlow = 1\nhigh = 3\ncondition = { y = 1 }\n", "unknown parameter 'y'"),
    ("[params.a]\ntype = 'int'\nlow = 1\nhigh = 3\ncondition = { b = 1 }\n"
     "[params.b]\ntype = 'int'\nlow = 1\nhigh = 3\ncondition = { a = 1 }\n", "conditions form a cycle"),
    ("[params.x]\ntype = 'choice'\n", "type must be one of"),
    ("[params.x\n", "malformed TOML"),
])
def test_bad_space_files_are_one_line_errors(repo: Path, text: str, message: str) -> None:
    make_project(repo)
    (repo / "s.toml").write_text(text)
    proc = gitml(repo, "sweep", "-n", "train", "--space", "s.toml", "--objective", "score:max",
                 check=False)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert git(repo, "for-each-ref", "refs/gitml/").stdout == ""


def test_a_missing_objective_or_unread_param_stops_the_sweep(repo: Path) -> None:
    make_project(repo)
    (repo / "s.toml").write_text("[params.depth]\ntype = 'int'\nlow = 1\nhigh = 3\n")
    proc = gitml(repo, "sweep", "-n", "train", "--space", "s.toml", "--trials", "4",
                 "--objective", "auc:max", check=False)
    assert proc.returncode == 2 and "did not record metric 'auc'" in proc.stderr
    (repo / "s.toml").write_text("[params.nothing]\ntype = 'int'\nlow = 1\nhigh = 3\n")
    proc = gitml(repo, "sweep", "-n", "train", "--space", "s.toml", "--trials", "4",
                 "--objective", "score:max", check=False)
    assert proc.returncode == 2 and "does not read param(s) nothing" in proc.stderr


def test_gp_sampler_without_torch_beats_random_search() -> None:
    import math

    import optuna

    from gitml.sweep.gp import SklearnGPSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def f(t: optuna.Trial) -> float:
        return ((t.suggest_float("x", -5, 5) - 1.3) ** 2
                + (math.log10(t.suggest_float("y", 1e-3, 10, log=True)) - 0.3) ** 2)

    gp = optuna.create_study(sampler=SklearnGPSampler(seed=0, n_startup_trials=5))
    gp.optimize(f, n_trials=20)
    rnd = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    rnd.optimize(f, n_trials=20)
    assert gp.best_value < 0.01 < rnd.best_value


def test_report_experiment_view(repo: Path) -> None:
    make_project(repo)
    (repo / "sweep.toml").write_text(SPACE)
    out = json.loads(gitml(repo, "sweep", "-n", "train", "--space", "sweep.toml", "--trials", "4",
                           "-j", "2", "--objective", "score:max", "--sampler", "random",
                           "--seed", "2", "--json").stdout)
    gitml(repo, "report", "--experiments", "--study", out["study"], "--objective", "score", "-o", "r.html")
    page = (repo / "r.html").read_text()
    assert page.index('id="experiments"') < page.index("</main>")     # inside the report page
    assert "optimisation history of score" in page and "score by step" in page
    for p in ("train.lr", "depth", "family"):
        assert f"{p} against score" in page
    # one history marker per trial, one step curve per trial, the table lists the best first
    view = page[page.index('id="experiments"'):]
    assert view.count("<circle") >= 4 * 4
    assert view.count("<polyline") == 4 + 1
    best = max(out["trials"], key=lambda t: t["metrics"]["score"])
    table = page[page.index("<h3>Top trials</h3>"):]
    assert table.index(best["name"]) < min(table.index(t["name"]) for t in out["trials"]
                                           if t["name"] != best["name"])
