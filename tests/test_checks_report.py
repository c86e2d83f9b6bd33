"""`git ml report`: a self-contained HTML page built from committed gate results and the
metric history, opened in headless Chromium; and the drift/validate commands end to end."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gitml.checks import drift, quality
from gitml.checks.results import GateResult, ModelResult
from tests.conftest import git, gitml

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium"),
                             shutil.which("chromium-browser"), shutil.which("google-chrome")) if p
                 and Path(p).exists()), None)


@pytest.fixture(scope="module")
def arrests() -> pd.DataFrame:
    from sklego.datasets import load_arrests

    return load_arrests(as_frame=True)


def _results(arrests: pd.DataFrame, accuracy: float, i: int) -> ModelResult:
    """Gate results shaped like the runner's, computed on real data where it is ours."""
    from sklearn.linear_model import LogisticRegression

    df = arrests.iloc[:3000]
    X = pd.get_dummies(df.drop(columns=["released"]), drop_first=True).astype(float)
    y = (df["released"] == "Yes").to_numpy()
    model = LogisticRegression(max_iter=300).fit(X, y)
    pred = model.predict(X)
    groups = {}
    for g, m in df.groupby("colour").groups.items():
        idx = df.index.get_indexer(m)
        yt, yp = y[idx], pred[idx]
        groups[str(g)] = {"n": len(idx), "selection_rate": float(yp.mean()),
                          "tpr": float(yp[yt].mean()), "fpr": float(yp[~yt].mean()),
                          "accuracy": float((yp == yt).mean()), "gated": True}
    sel = [v["selection_rate"] for v in groups.values()]
    importance = dict(sorted(((c, float(abs(w) * X[c].std())) for c, w in zip(X.columns, model.coef_[0], strict=True)),
                             key=lambda kv: -kv[1]))
    shifted = arrests.iloc[2600:].assign(age=arrests["age"].iloc[2600:] + 2)
    res = [
        GateResult("eval.threshold", True, {"metrics": {"accuracy": accuracy, "roc_auc": accuracy + 0.05},
                                            "checked": {"accuracy": {"value": accuracy, "min": 0.6}}},
                   f"accuracy={accuracy:.4f}"),
        GateResult("bias.colour", True, {"attribute": "colour", "groups": groups,
                                         "dp_ratio": {"value": min(sel) / max(sel), "ci_low": 0.7,
                                                      "ci_high": 0.95, "limit": 0.8}},
                   "colour: selection ratio"),
        GateResult("explain", True, {"explainer": "linear", "rows": len(X), "importance": importance},
                   "linear explainer <ok> & fine"),
        drift.gate(arrests.iloc[:2600], shifted, None),
        quality.gate(shifted.assign(colour=shifted["colour"].where(shifted.index % 7 != 0)),
                     arrests.iloc[:2600], {"max_null_rate": 0.05}, name="data/eval.parquet"),
    ]
    return ModelResult("arrests", f"oid{i:02d}", "data", "cfg", res)


@pytest.fixture(scope="module")
def history_repo(tmp_path_factory: pytest.TempPathFactory, arrests: pd.DataFrame) -> Path:
    """A repository with 12 committed versions of a model's results; the last one drops."""
    import os

    from tests.conftest import BIN_DIR

    home = tmp_path_factory.mktemp("home-report")
    (home / ".gitconfig").write_text("[user]\n\tname = T\n\temail = t@example.com\n"
                                     "[init]\n\tdefaultBranch = main\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        mp.setenv("PATH", BIN_DIR + os.pathsep + os.environ.get("PATH", ""))
        path = tmp_path_factory.mktemp("report") / "repo"
        path.mkdir()
        git(path, "init", "-q")
        (path / "README.md").write_text("x\n")
        git(path, "add", "README.md")
        git(path, "commit", "-q", "-m", "initial")
        gitml(path, "init")
        rng = np.random.default_rng(11)
        accs = [*(0.66 + rng.normal(0, 0.005, 11)), 0.60]
        base = _results(arrests, 0.0, 0)
        for i, acc in enumerate(accs):
            (path / ".gitml" / "checks").mkdir(parents=True, exist_ok=True)
            base.model_oid = f"oid{i:02d}"
            base.results[0].metrics["metrics"] = {"accuracy": float(acc), "roc_auc": float(acc) + 0.05}
            base.results[0].message = f"accuracy={acc:.4f}"
            (path / ".gitml" / "checks" / "arrests.json").write_text(base.dumps())
            git(path, "add", ".gitml")
            git(path, "-c", "core.hooksPath=/dev/null", "commit", "-q", "-m", f"model {i}")
    return path


def test_report_is_self_contained_and_complete(history_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    proc = gitml(history_repo, "report", "HEAD", "-o", str(out))
    assert "wrote" in proc.stdout and "arrests" in proc.stdout
    html = out.read_text()
    # self-contained: no script, no external resources, only the SVG namespace URL
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) <= {"http://www.w3.org/2000/svg"}
    for section in ("Metric history", "Fairness: colour", "SHAP importance", "Data drift",
                    "Data quality"):
        assert section in html, section
    assert html.count("<svg") >= 4
    # the last commit's drop is flagged on the history chart from the learned limits
    assert "ALARM" in html and "alarm limit" in html
    # user text is escaped
    assert "<ok>" not in html and "&lt;ok&gt; &amp; fine" in html
    # a report of an older revision shows that revision's results
    old = tmp_path / "old.html"
    gitml(history_repo, "report", "HEAD~3", "-o", str(old))
    assert "ALARM" not in old.read_text()


def test_report_opens_in_headless_chromium(history_repo: Path, tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    out = tmp_path / "report.html"
    gitml(history_repo, "report", "-o", str(out))
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'chrome'}",
         "--dump-dom", out.as_uri()],
        capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert "git ml report" in dom and dom.count("<svg") >= 4
    assert "Fairness: colour" in dom and "Data drift" in dom
    bad = [line for line in proc.stderr.splitlines()
           if re.search(r"Uncaught|Failed to load resource|net::ERR_|CONSOLE", line)]
    assert not bad, bad


def test_report_errors(history_repo: Path, tmp_path: Path) -> None:
    proc = gitml(history_repo, "report", "no-such-rev", "-o", str(tmp_path / "r.html"), check=False)
    assert proc.returncode == 1 and "unknown revision" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = gitml(history_repo, "report", "--model", "nope", "-o", str(tmp_path / "r.html"), check=False)
    assert proc.returncode == 1 and "no committed results for nope" in proc.stderr


def test_drift_and_validate_commands(repo: Path, arrests: pd.DataFrame) -> None:
    data = repo / "data"
    data.mkdir()
    arrests.to_parquet(data / "train.parquet")
    gitml(repo, "add", "data/train.parquet")
    cfg = repo / ".gitml" / "config.toml"
    cfg.write_text(cfg.read_text() + '\n[data."data/train.parquet".rules]\nmax_null_rate = 0.01\n'
                   "allow_new_columns = false\n")
    git(repo, "add", ".gitml/config.toml")
    git(repo, "-c", "core.hooksPath=/dev/null", "commit", "-q", "-m", "data v1")
    # unchanged: no drift, valid
    proc = gitml(repo, "drift", "--reference", "HEAD", "data/train.parquet", "--json")
    assert json.loads(proc.stdout)["passed"] is True
    gitml(repo, "validate")
    # shifted and damaged work-tree copy
    bad = arrests.assign(age=arrests["age"] + 3, extra=1)
    bad.loc[:200, "sex"] = None
    bad.to_parquet(data / "train.parquet")
    proc = gitml(repo, "drift", "--reference", "HEAD", "data/train.parquet", "--alpha", "0.01",
                 check=False)
    assert proc.returncode == 1 and "DRIFT" in proc.stdout and "age" in proc.stdout
    proc = gitml(repo, "validate", "--json", check=False)
    assert proc.returncode == 1
    findings = json.loads(proc.stdout)["results"][0]["metrics"]["findings"]
    assert {(f["check"], f["column"]) for f in findings if f["severity"] == "error"} >= {
        ("nulls", "sex"), ("schema", "extra")}
    # errors are one line, no traceback
    proc = gitml(repo, "drift", "--reference", "nope", "data/train.parquet", check=False)
    assert proc.returncode != 0 and "unknown revision" in proc.stderr and "Traceback" not in proc.stderr
    proc = gitml(repo, "drift", "--reference", "HEAD", "data/missing.parquet", check=False)
    assert proc.returncode != 0 and "missing.parquet" in proc.stderr and "Traceback" not in proc.stderr
