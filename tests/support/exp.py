"""A small real project for the experiment and sweep tests: a stage that reads a YAML
params file, takes one param through ``gitml.log_param``'s default, logs a step history
and writes a model folder (an artifact output)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.conftest import git, gitml

# Plain Python (no sklearn import): starts fast, so trials are cheap. The score peaks at
# lr = 0.3, depth = 4 and is deterministic given the seed.
TRAIN = textwrap.dedent('''\
    import json, os, random, sys, time
    import yaml
    import gitml

    with open("params.yaml") as f:
        p = yaml.safe_load(f)
    lr = float(p["train"]["lr"])
    depth = gitml.log_param("depth", 2)
    seed = gitml.log_param("seed", 0)
    family = gitml.log_param("family", "tree")
    units = gitml.log_param("units", 0) if family == "mlp" else None
    delay = float(os.environ.get("TRAIN_STEP_DELAY", "0"))
    rng = random.Random(seed)
    score = 0.0
    target = 1.0 - (lr - 0.3) ** 2 - 0.01 * (depth - 4) ** 2 - (0.02 if family == "mlp" else 0.0)
    for step in range(1, 6):
        score = target * step / 5 + rng.uniform(-0.002, 0.002)
        gitml.log_metric("score", score, step=step)
        time.sleep(delay)
    os.makedirs("model", exist_ok=True)
    with open("model/weights.json", "w") as f:
        json.dump({"lr": lr, "depth": depth, "family": family, "units": units}, f)
    with open("metrics.json", "w") as f:
        json.dump({"score": score}, f)
    gitml.log_metric("latency_ms", 10.0 + depth * 2 + (units or 0) / 10)
    print(json.dumps({"score": score}))
''')

PARAMS = "train:\n  lr: 0.1\n  epochs: 5\n"


def make_project(repo: Path) -> Path:
    (repo / "train.py").write_text(TRAIN)
    (repo / "params.yaml").write_text(PARAMS)
    git(repo, "add", "train.py", "params.yaml")
    git(repo, "commit", "-q", "-m", "train stage")
    gitml(repo, "run", "-n", "train", "-p", "params.yaml", "--", "python", "train.py")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "baseline run")
    return repo


def user_state(repo: Path) -> tuple[str, str, str, str]:
    """HEAD, the index (as a tree), the work tree status and the params file."""
    return (git(repo, "rev-parse", "HEAD").stdout, git(repo, "ls-files", "-s").stdout,
            git(repo, "status", "--porcelain", "--untracked-files=all").stdout,
            (repo / "params.yaml").read_text())
