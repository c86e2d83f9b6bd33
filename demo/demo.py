"""The gitml demo: the main job end to end on a real, offline data set.

Run it with `bash demo/run.sh` (which installs gitml into .venv first). It works in a
throw-away folder (default: a temp dir, or --workdir) and prints every command it runs.

Data: the arrests data set shipped inside scikit-lego (5,226 people held by Toronto
police; target `released`; sensitive attributes colour, sex, age, citizen).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

BIN = str(Path(sys.executable).parent)
ENV = {
    **os.environ,
    "PATH": BIN + os.pathsep + os.environ.get("PATH", ""),
    "GIT_AUTHOR_NAME": "gitml demo", "GIT_AUTHOR_EMAIL": "demo@example.com",
    "GIT_COMMITTER_NAME": "gitml demo", "GIT_COMMITTER_EMAIL": "demo@example.com",
}

TRAIN_SCRIPT = textwrap.dedent('''\
    """Train a classifier on the arrests data; writes the model and its metrics."""
    import json, sys
    import pandas as pd
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    C = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    shuffle = "--shuffle-labels" in sys.argv  # a deliberately broken model for the demo
    # another broken one: an encoder that refuses any category it has not seen in training
    strict = "--strict-encoder" in sys.argv
    train = pd.read_parquet("data/train.parquet")
    if shuffle:
        train["released"] = train["released"].sample(frac=1.0, random_state=0).to_numpy()
    test = pd.read_parquet("data/eval.parquet")
    cat = ["colour", "sex", "employed", "citizen"]
    num = ["year", "age", "checks"]
    model = Pipeline([
        ("prep", ColumnTransformer([("cat", OneHotEncoder(handle_unknown="error" if strict else "ignore"), cat),
                                    ("num", StandardScaler(), num)])),
        ("clf", LogisticRegression(C=C, max_iter=1000)),
    ])
    model.fit(train[cat + num], train["released"])
    proba = model.predict_proba(test[cat + num])[:, 1]
    metrics = {"accuracy": accuracy_score(test["released"], model.predict(test[cat + num])),
               "roc_auc": roc_auc_score(test["released"] == "Yes", proba)}
    sio.dump(model, "models/model.skops")
    with open("metrics.json", "w") as f:
        json.dump(metrics, f, indent=2)
    try:
        import gitml
        gitml.log_param("C", C)
        gitml.log_param("shuffle_labels", shuffle)
        for k, v in metrics.items():
            gitml.log_metric(k, v)
    except Exception:
        pass
    print(json.dumps(metrics))
''')


MODEL_CONFIG = textwrap.dedent('''
    [models.arrests]
    path = "models/model.skops"
    data = "data/eval.parquet"
    target = "released"
    task = "classification"
    positive = "Yes"
    sensitive = ["colour", "sex", "citizen"]
    features = ["colour", "sex", "employed", "citizen", "year", "age", "checks"]

    [models.arrests.gates]
    min = { accuracy = 0.75, roc_auc = 0.65 }
    baseline = "prod"
    max_regression = { roc_auc = 0.03 }
    bias = { four_fifths = 0.8, max_counterfactual_flip = 0.15 }

    [card.arrests]
    owner = "gitml demo <demo@example.com>"
    intended_use = "Illustration only: predict release with a summons from the Toronto arrests data"
''')


def step(title: str) -> None:
    print(f"\n\033[1;34m== {title}\033[0m", flush=True)


def sh(cwd: Path, cmd: str, *, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    if not quiet:
        print(f"\033[2m{cwd.name}$\033[0m {cmd}", flush=True)
    proc = subprocess.run(cmd, shell=True, cwd=cwd, env=ENV, text=True, capture_output=True)
    out = (proc.stdout + proc.stderr).rstrip()
    if out and not quiet:
        print(textwrap.indent(out, "    "), flush=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"demo step failed ({proc.returncode}): {cmd}")
    return proc


def main() -> int:
    from demo_experiments import run_experiments  # beside this file (sys.path[0])
    from demo_monitor import monitor_demo

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None, help="keep the demo here")
    args = parser.parse_args()
    base = args.workdir or Path(tempfile.mkdtemp(prefix="gitml-demo-"))
    if base.exists() and any(base.iterdir()):
        shutil.rmtree(base)
    base.mkdir(parents=True, exist_ok=True)
    repo, remote_git, store = base / "project", base / "origin.git", base / "ml-store"
    repo.mkdir()

    step("1. A Git repository with gitml")
    sh(base, f"git init -q --bare -b main {remote_git.name}")
    sh(repo, "git init -q -b main && git remote add origin ../origin.git")
    sh(repo, "git ml init")
    sh(repo, f"git ml remote add storage {store} --default")

    step("2. Version the data: the arrests data set from scikit-lego")
    from sklego.datasets import load_arrests

    df = load_arrests(as_frame=True)
    (repo / "data").mkdir()
    (repo / "models").mkdir()
    train = df.sample(frac=0.7, random_state=0)
    evaluation = df.drop(train.index)
    train.to_parquet(repo / "data/train.parquet", index=False)
    evaluation.to_parquet(repo / "data/eval.parquet", index=False)
    print(f"    {len(train)} training rows, {len(evaluation)} evaluation rows")
    sh(repo, "git ml add data/train.parquet data/eval.parquet")
    sh(repo, "git commit -q -m 'data: arrests v1' && git log --oneline -1")

    step("3. Train a model and declare its gates")
    (repo / "train.py").write_text(TRAIN_SCRIPT)
    sh(repo, "git add train.py")
    sh(repo, "git ml run -n train -- python train.py 1.0")
    with open(repo / ".gitml/config.toml", "a") as f:
        f.write(MODEL_CONFIG)
    print(textwrap.indent(MODEL_CONFIG.strip(), "    "))
    sh(repo, "git add -A .")
    step("4. Commit: the pre-commit hook runs the gates on the staged model")
    sh(repo, "git commit -q -m 'model: logistic regression C=1.0' && git log -1 --format=%B")
    sh(repo, "git tag -a arrests@v1.0.0 -m 'arrests v1.0.0' && git tag -a 'arrests#prod#1' -m prod")

    step("5. A worse model (trained on shuffled labels) is blocked by the commit hook")
    sh(repo, "git ml run -n train -- python train.py 1.0 --shuffle-labels")
    sh(repo, "git add -A .")
    blocked = sh(repo, "git commit -q -m 'model: oops'", check=False)
    if blocked.returncode == 0:
        raise SystemExit("the gates let a model trained on shuffled labels through")
    print("    -> commit refused; restoring the production model")
    sh(repo, "git reset -q --hard HEAD && git ml checkout --force")

    step("6. Gates on demand: evaluation, bias, explanations, drift")
    sh(repo, "git ml eval arrests")
    sh(repo, "git ml bias arrests")
    sh(repo, "git ml explain arrests --row 0")

    step("7. Push code and artifacts; clone elsewhere and pull")
    sh(repo, "git push -q --follow-tags origin main")
    sh(repo, "git ml push")
    sh(repo, "git ml status --remote")
    # small objects travel in packs: a few files on the remote, not one per object
    sh(base, f"ls {store.name} {store.name}/packs")
    clone = base / "clone"
    sh(base, f"git clone -q {remote_git.name} clone")
    sh(clone, "git ml install && git ml pull")
    same = (clone / "models/model.skops").read_bytes() == (repo / "models/model.skops").read_bytes()
    print(f"    model bytes identical in the clone: {same}")
    if not same:
        raise SystemExit("the clone's model differs")

    step("8. Change the data: status (with the watcher on), drift, data quality")
    # the watcher tells status which artifact folders changed (inotify, like Git's fsmonitor)
    sh(clone, "git ml watch start")
    try:
        shifted = evaluation.copy()
        shifted["age"] = shifted["age"] + 5  # an upstream change: ages recorded five years later
        shifted.to_parquet(clone / "data/eval.parquet", index=False)
        sh(clone, "git ml status")
        sh(clone, "git ml drift data/eval.parquet --reference HEAD", check=False)
        sh(clone, "git ml validate data/eval.parquet", check=False)
        sh(clone, "git ml checkout --force data/eval.parquet && git ml status && git ml fsck")
    finally:
        sh(clone, "git ml watch stop", check=False)

    step("9. History, lineage and the report")
    sh(repo, "git ml log")
    sh(repo, "git ml lineage models/model.skops")
    sh(repo, "git ml diff HEAD~1 HEAD")
    sh(repo, "git ml report -o report.html")
    print(f"    open {repo / 'report.html'} in a browser (self-contained, works offline)")

    try:
        registry_and_deploy(repo)
        monitor_demo(repo, sh, step)
    finally:
        sh(repo, "git ml deploy arrests --stop", check=False)  # the demo stops what it started
    run_experiments(repo, sh)

    print(f"\n\033[1;32mdemo finished\033[0m: everything is in {base}")
    return 0


DEPLOY_CONFIG = textwrap.dedent('''
    [deploy]
    grace_seconds = 12        # watch a new version this long; roll back by itself on failure
    [deploy.targets.local]
    port = 0                  # any free port on 127.0.0.1 (the URL is in `git ml deployments`)
    workers = 2
    stages = ["prod"]         # a prod tag deploys here
''')


def _url(repo: Path) -> str:
    import json

    rows = json.loads(sh(repo, "git ml deployments --json", quiet=True).stdout)
    return str(rows[0]["url"])


def _traffic(url: str, rows: list[dict[str, object]], seconds: float) -> dict[int, int]:
    """Live traffic for a while: one request per row, in a loop; counts answers by status."""
    import json
    import time
    import urllib.error
    import urllib.request

    counts: dict[int, int] = {}
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        body = json.dumps({"dataframe_records": [rows[i % len(rows)]]}).encode()
        req = urllib.request.Request(f"{url}/invocations", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status = r.status
        except urllib.error.HTTPError as e:
            status = e.code
        counts[status] = counts.get(status, 0) + 1
        i += 1
        time.sleep(0.05)
    return counts


def registry_and_deploy(repo: Path) -> None:
    import json

    step("10. The registry: versions and stages are annotated Git tags in GTO's grammar")
    sh(repo, "git ml models")
    sh(repo, "git ml run -n train -- python train.py 0.3")
    sh(repo, "git add -A . && git commit -q -m 'model: logistic regression C=0.3'")
    sh(repo, "git ml register arrests --bump minor")
    sh(repo, "git tag -l 'arrests*' -n1")
    sh(repo, "git ml card arrests@v1.1.0 | head -40")

    step("11. Deploy on tag: a prod tag deploys (verify ids and gates, smoke test, switch)")
    local = repo / ".git" / "ml" / "config.local.toml"
    with open(local, "a") as f:
        f.write(DEPLOY_CONFIG)
    print(textwrap.indent(DEPLOY_CONFIG.strip(), "    "))
    sh(repo, "git ml deploy 'arrests#prod'")             # what serves prod today: v1.0.0
    sh(repo, "git ml promote arrests 1.1.0 prod")         # git tag -> the hook deploys v1.1.0
    url = _url(repo)
    row = {"colour": "White", "year": 2002, "age": 21, "sex": "Male", "employed": "Yes",
           "citizen": "Yes", "checks": 3}
    split = {"dataframe_split": {"columns": list(row), "data": [list(row.values())]}}
    sh(repo, f"curl -s {url}/invocations -H 'Content-Type: application/json' "
             f"-d '{json.dumps(split)}'")
    v2 = {"inputs": [{"name": k, "shape": [1], "datatype": "BYTES" if isinstance(v, str) else "INT64",
                      "data": [v]} for k, v in row.items()]}
    sh(repo, f"curl -s {url}/v2/models/arrests/infer -H 'Content-Type: application/json' "
             f"-d '{json.dumps(v2)}'")
    sh(repo, f"curl -s {url}/v2/models/arrests/versions/1.0.0/infer -H 'Content-Type: application/json' "
             f"-d '{json.dumps(v2)}'  # the old version stays warm")
    sh(repo, f"curl -s {url}/metrics | grep '^gitml_requests_total'")

    step("12. A broken version: it passes its gates, but refuses categories it never saw")
    sh(repo, "git ml run -n train -- python train.py 1.0 --strict-encoder")
    sh(repo, "git add -A . && git commit -q -m 'model: strict encoder'")
    sh(repo, "git ml register arrests --bump minor")
    sh(repo, "git ml promote arrests 1.2.0 prod")         # deploys; a watcher keeps an eye on it
    odd = {**row, "employed": "Unknown"}                  # live traffic the evaluation data lacks
    counts = _traffic(url, [row, row, row, odd], 16)
    print(f"    live traffic during the grace window, answers by HTTP status: {counts}")
    sh(repo, "cat .git/ml/deploy/local/arrests/watch.log")
    sh(repo, "git ml deployments")
    sh(repo, "git ml models")
    sh(repo, "git ml history arrests")
    served = json.loads(sh(repo, "git ml deployments --json", quiet=True).stdout)[0]
    if served["version"] != "1.1.0" or served["action"] != "rollback":
        raise SystemExit(f"the broken version was not rolled back: {served}")
    sh(repo, "git log --oneline refs/gitml/deployments/local  # deploy records are Git commits")


if __name__ == "__main__":
    sys.exit(main())
