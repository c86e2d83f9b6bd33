"""Benchmark: a `git commit` through the gates of a small model (300 evaluation rows).

    .venv/bin/python benchmarks/bench_gates.py [--gitml-src DIR] [--repeats N]

Builds a repository with hooks installed, a scikit-learn pipeline saved with skops, 300
evaluation rows of the arrests data set and evaluation-only gates (thresholds and a
regression gate against `prod`). Then measures, each ``--repeats`` times in a fresh copy:

* ``miss``: the commit of a new model (every gate computed);
* ``hit``: the same commit after `git ml check --staged` cached the results (no model load);
* the seconds the hook's Python spent importing the heavy modules (``-X importtime``).

``--gitml-src DIR`` runs gitml from another source tree (e.g. an export of the base commit)
to compare before/after. Prints a table and the load average.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("pandas", "pyarrow", "sklearn", "skops", "scipy", "shap", "numba")
CONFIG = """\
[models.small]
path = "models/model.skops"
data = "data/eval.parquet"
target = "released"
positive = "Yes"

[models.small.gates]
min = { accuracy = 0.7 }
max_regression = { accuracy = 0.05 }
baseline = "prod"
bootstrap = 500
"""


def run(cmd: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def import_seconds(stderr: str) -> dict[str, float]:
    """Seconds spent importing each heavy package at top level (imports made by the hook's
    own code, each counted once with everything it pulled in), from -X importtime lines."""
    out: dict[str, float] = {}
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S+)$", line)
        if m and m.group(2).split(".")[0] in HEAVY:
            root = m.group(2).split(".")[0]
            out[root] = out.get(root, 0.0) + int(m.group(1)) / 1e6
    return out


def build(root: Path, env: dict[str, str]) -> Path:
    import skops.io as sio
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklego.datasets import load_arrests

    repo = root / "repo"
    repo.mkdir()
    df = load_arrests(as_frame=True)
    cat, num = ["colour", "sex", "employed", "citizen"], ["year", "age", "checks"]
    for c in [*cat, "released"]:
        df[c] = df[c].astype(object)
    train, test = train_test_split(df, test_size=300, random_state=0, stratify=df["released"])
    model = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="ignore"), cat),
                                                  (StandardScaler(), num)),
                          LogisticRegression(max_iter=1000)).fit(train[cat + num], train["released"])
    run(["git", "init", "-q"], repo, env)
    (repo / "README.md").write_text("bench\n")
    run(["git", "add", "README.md"], repo, env)
    run(["git", "commit", "-q", "-m", "init"], repo, env)
    run(["git", "ml", "init"], repo, env)
    run(["git", "ml", "install"], repo, env)
    (repo / "data").mkdir()
    (repo / "models").mkdir()
    test.to_parquet(repo / "data" / "eval.parquet", index=False)
    sio.dump(model, repo / "models" / "model.skops")
    (repo / ".gitml" / "config.toml").write_text(
        (repo / ".gitml" / "config.toml").read_text() + "\n" + CONFIG)
    run(["git", "ml", "add", "models/model.skops", "data/eval.parquet"], repo, env)
    run(["git", "add", ".gitml/config.toml"], repo, env)
    run(["git", "commit", "-q", "-m", "model"], repo, env)
    run(["git", "tag", "-a", "small#prod#1", "-m", "promote"], repo, env)
    # the next model: retrained on another seed's split, staged, not committed
    train2, _ = train_test_split(train, test_size=0.2, random_state=1)
    model.fit(train2[cat + num], train2["released"])
    sio.dump(model, repo / "models" / "model.skops")
    run(["git", "ml", "add", "models/model.skops"], repo, env)
    return repo


def commit(repo: Path, env: dict[str, str]) -> tuple[float, dict[str, float], str]:
    t0 = time.perf_counter()
    proc = run(["git", "commit", "-m", "retrained"], repo, {**env, "PYTHONPROFILEIMPORTTIME": "1"})
    return time.perf_counter() - t0, import_seconds(proc.stderr), proc.stderr


def measure(template: Path, root: Path, env: dict[str, str], label: str, i: int,
            rows: list[tuple[str, str, float, dict[str, float]]]) -> None:
    for kind in ("miss", "hit"):
        work = root / f"{label}-{kind}{i}"
        shutil.copytree(template, work, symlinks=True)
        if kind == "hit":
            run(["git", "ml", "check", "--staged"], work, env, check=False)
        secs, imports, stderr = commit(work, env)
        rows.append((label, kind, secs, imports))
        load = os.getloadavg()[0]
        said = [ln for ln in stderr.splitlines() if ln.startswith("gitml gates:")]
        print(f"{label} {kind} #{i}: {secs:.2f} s (load {load:.1f}); imports "
              + (", ".join(f"{k} {v:.2f}" for k, v in sorted(imports.items())) or "none")
              + f"\n    {' | '.join(said)}", flush=True)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gitml-src", type=Path, help="run gitml from this source tree")
    ap.add_argument("--compare-src", type=Path,
                    help="also run gitml from this tree (e.g. the base commit), interleaved")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-gates-"))
    home = root / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = B\n\temail = b@example.com\n"
                                     "[init]\n\tdefaultBranch = main\n")
    env = {**os.environ, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1",
           "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    if args.gitml_src:
        env["PYTHONPATH"] = str(args.gitml_src.resolve())
    envs = {"this": env}
    if args.compare_src:
        envs["compare"] = {**env, "PYTHONPATH": str(args.compare_src.resolve())}
    try:
        templates = {}
        for label, e in envs.items():
            (root / f"t-{label}").mkdir()
            templates[label] = build(root / f"t-{label}", e)
        rows: list[tuple[str, str, float, dict[str, float]]] = []
        for i in range(args.repeats):
            for label, e in envs.items():
                measure(templates[label], root, e, label, i, rows)
        for label in envs:
            for kind in ("miss", "hit"):
                times = sorted(s for lb, k, s, _ in rows if (lb, k) == (label, kind))
                imp = sorted(sum(d.values()) for lb, k, _, d in rows if (lb, k) == (label, kind))
                print(f"{label} {kind}: median commit {times[len(times) // 2]:.2f} s, "
                      f"median heavy imports {imp[len(imp) // 2]:.2f} s")
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
