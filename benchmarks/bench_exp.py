"""Benchmark: experiments and search.

    .venv/bin/python benchmarks/bench_exp.py [--parts overhead,show,versus,search] [--dvc PATH]

1. overhead: time a trial takes on top of its command. The same project (a params file,
   a script that writes a model folder and a metrics file) is run bare (`python train.py`),
   as `git ml exp run -S ...` (whole command, interpreter start-up included), as trials of
   one in-process loop (what `git ml sweep` pays per trial) and as `dvc exp run -S ...`.
   Medians of --repeats runs; overhead = median(tool) - median(bare), in wall and in CPU
   seconds (the command and everything it waited for).
2. show: `git ml exp show --json` (and the sorted table) over 1,000 trials (trial commits
   written by the same code that writes real ones, with varied params and metrics).
3. versus: --experiments real experiments made by each tool on the same project
   (`git ml exp run -S` and `dvc exp run -S`, interleaved so load drift hits both alike;
   DVC needs ~1 s per experiment, so 1,000 real ones would take most of an hour), then
   `exp show --json` of both at checkpoints (10, 25%, 50%, 100% of them): how show time
   grows with the number of experiments, and the per-run cost over many runs.
4. search: on scikit-learn's bundled breast-cancer data (RBF SVM on unscaled features, C
   and gamma on log scales, 3-fold ROC AUC; the good region is a narrow band of gamma),
   the number of trials
   TPE (and the GP sampler) needs to come within 0.005 AUC of the best of 200 random
   trials, against the trials random search itself needs; median over 5 seeds. Runs
   gitml's own sampler construction and space code in-process (no Git: it measures the
   sampler, not the bookkeeping).

DVC is installed into its own venv (--dvc-venv, default /tmp/sweep-dvcenv) if absent; if
that fails the DVC measurements are skipped (and the result says so). --gitml-src DIR runs
gitml from another source folder (e.g. a checkout of main, to measure before and after).
Prints a table and writes benchmarks/results/exp-<date>.json. Record the load average:
it is printed with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

TRAIN = '''\
import json, os
import yaml
with open("params.yaml") as f:
    p = yaml.safe_load(f)
lr, depth = float(p["train"]["lr"]), int(p["train"]["depth"])
score = 1.0 - (lr - 0.3) ** 2 - 0.01 * (depth - 4) ** 2
os.makedirs("model", exist_ok=True)
with open("model/weights.json", "w") as f:
    json.dump({"lr": lr, "depth": depth}, f)
with open("metrics.json", "w") as f:
    json.dump({"score": score}, f)
'''
PARAMS = "train:\n  lr: 0.1\n  depth: 2\n"
DVC_YAML = """stages:
  train:
    cmd: python train.py
    deps: [train.py]
    params: [train.lr, train.depth]
    outs: [model]
    metrics: [metrics.json: {cache: false}]
"""


def load() -> float:
    return os.getloadavg()[0]


CPU: dict[str, list[float]] = {}


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def sh(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, cpu_key: str | None = None) -> float:
    """Wall time; with ``cpu_key`` also records the CPU seconds of the command and everything
    it waited for (a figure load disturbs far less than wall time)."""
    c0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{proc.stdout}\n{proc.stderr}")
    if cpu_key:
        CPU.setdefault(cpu_key, []).append(_children_cpu() - c0)
    return dt


def git_env(home: Path) -> dict[str, str]:
    (home / ".gitconfig").write_text("[user]\n\tname = bench\n\temail = bench@example.com\n"
                                     "[init]\n\tdefaultBranch = main\n")
    env = {**os.environ, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1",
           "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]}
    # as users run them: byte-code caching on (a session may have turned it off, which
    # makes every command of every tool recompile its modules)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def make_project(path: Path, env: dict[str, str]) -> None:
    path.mkdir(parents=True)
    (path / "train.py").write_text(TRAIN)
    (path / "params.yaml").write_text(PARAMS)
    for c in (["git", "init", "-q"], ["git", "add", "."], ["git", "commit", "-qm", "project"]):
        sh(c, path, env)


def ensure_dvc(venv: Path) -> Path | None:
    """DVC's executable, installed into its own venv if needed; None if that fails."""
    dvc = venv / "bin" / "dvc"
    if not dvc.exists():
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True)
        if made.returncode == 0:
            made = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "dvc", "pyyaml"],
                                  capture_output=True)
        if made.returncode != 0 or not dvc.exists():
            print(f"DVC could not be installed into {venv}: DVC measurements skipped\n"
                  f"{made.stderr.decode(errors='replace')[-2000:]}", flush=True)
            return None
    return dvc


# ----------------------------------------------------------------------------- part 1
def part_overhead(work: Path, env: dict[str, str], repeats: int, dvc: Path | None) -> dict[str, Any]:
    out: dict[str, Any] = {"load_before": load()}
    g = work / "gitml-proj"
    make_project(g, env)
    sh(["git", "ml", "init"], g, env)
    sh(["git", "ml", "run", "-n", "train", "-p", "params.yaml", "--", sys.executable, "train.py"], g, env)
    sh(["git", "add", "-A"], g, env)
    sh(["git", "commit", "-qm", "baseline"], g, env)
    bare = [sh([sys.executable, "train.py"], g, env, "bare") for _ in range(repeats)]
    run = [sh(["git", "ml", "run", "-n", "train", "-p", "params.yaml", "--", sys.executable, "train.py"],
              g, env) for _ in range(repeats)]
    sh(["git", "checkout", "-q", "--", "."], g, env)
    exp = [sh(["git", "ml", "exp", "run", "-n", "train", "-S", f"train.lr={0.1 + i / 100}"], g, env,
              "exp_run") for i in range(repeats)]
    inproc = _inprocess_trials(g, env, repeats)
    out.update({"bare_s": statistics.median(bare), "git_ml_run_s": statistics.median(run),
                "exp_run_s": statistics.median(exp), "trial_in_sweep_s": statistics.median(inproc)})
    out["exp_run_overhead_s"] = out["exp_run_s"] - out["bare_s"]
    out["trial_in_sweep_overhead_s"] = out["trial_in_sweep_s"] - out["bare_s"]
    out["git_ml_run_overhead_s"] = out["git_ml_run_s"] - out["bare_s"]
    if dvc is not None:
        d = work / "dvc-proj"
        make_project(d, env)
        denv = {**env, "PATH": f"{dvc.parent}{os.pathsep}{env['PATH']}"}
        (d / "dvc.yaml").write_text(DVC_YAML)
        for c in (["dvc", "init", "-q"], ["dvc", "repro", "-q"], ["git", "add", "-A"],
                  ["git", "commit", "-qm", "dvc baseline"]):
            sh(c, d, denv)
        dexp = [sh(["dvc", "exp", "run", "-q", "-S", f"train.lr={0.1 + i / 100}"], d, denv,
                   "dvc_exp_run") for i in range(repeats)]
        out["dvc_exp_run_s"] = statistics.median(dexp)
        out["dvc_exp_run_overhead_s"] = out["dvc_exp_run_s"] - out["bare_s"]
        out["dvc_version"] = subprocess.run([str(dvc), "--version"], capture_output=True,
                                            text=True).stdout.strip()
    for k, v in CPU.items():
        out[f"cpu_{k}_s"] = statistics.median(v)
    if "cpu_bare_s" in out:
        for k in ("exp_run", "dvc_exp_run", "trial_in_sweep"):
            if f"cpu_{k}_s" in out:
                out[f"cpu_{k}_overhead_s"] = out[f"cpu_{k}_s"] - out["cpu_bare_s"]
    out["load_after"] = load()
    return out


def _inprocess_trials(g: Path, env: dict[str, str], repeats: int) -> list[float]:
    code = f'''
import json, os, resource, sys, time
os.chdir({str(g)!r})
def cpu():
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime
from gitml.repo import MLRepo
from gitml.sweep.trials import TrialSpec, run_trial, snapshot
repo = MLRepo.discover()
base = snapshot(repo)
run_trial(repo, TrialSpec("train", {{"train.lr": 0.5}}), base=base)  # warm imports
times, cpus = [], []
for i in range({repeats}):
    t0, c0 = time.perf_counter(), cpu()
    run_trial(repo, TrialSpec("train", {{"train.lr": 0.2 + i / 100}}), base=base)
    times.append(time.perf_counter() - t0)
    cpus.append(cpu() - c0)
print(json.dumps([times, cpus]))
'''
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    times, cpus = json.loads(proc.stdout.strip().splitlines()[-1])
    CPU["trial_in_sweep"] = cpus
    return list(times)


# ----------------------------------------------------------------------------- part 2
def part_show(work: Path, env: dict[str, str], n: int, repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {"load_before": load(), "trials": n}
    g = work / "show-proj"
    make_project(g, env)
    sh(["git", "ml", "init"], g, env)
    sh(["git", "ml", "run", "-n", "train", "-p", "params.yaml", "--", sys.executable, "train.py"], g, env)
    sh(["git", "add", "-A"], g, env)
    sh(["git", "commit", "-qm", "baseline"], g, env)
    t0 = time.perf_counter()
    code = f'''
import os, random, time
os.chdir({str(g)!r})
from gitml.git import exps as gx
from gitml.repo import MLRepo
from gitml.sweep.trials import SUMMARY_MARK, Trial, trial_ref
repo = MLRepo.discover()
head = repo.git.head()
tree = repo.git.run_git("rev-parse", "HEAD^{{tree}}").strip()
rng = random.Random(0)
lines = []
for i in range({n}):
    lr, depth = rng.uniform(0.01, 1), rng.randint(1, 8)
    t = Trial(name=f"t{{i:04d}}", stage="train", state="complete",
              params={{"train.lr": lr, "train.depth": depth}},
              metrics={{"score": 1 - (lr - 0.3) ** 2 - 0.01 * (depth - 4) ** 2}},
              overrides={{"train.lr": lr, "train.depth": depth}}, base=head, head=head,
              created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), duration_s=0.5)
    msg = f"gitml exp {{t.name}} (train, complete)\\n\\n{{SUMMARY_MARK}}{{t.to_json()}}\\n"
    c = gx.commit_tree(repo.git, tree, [head], msg)
    lines.append(f"create {{trial_ref(t.name)}} {{c}}\\n")
repo.git.run_git("update-ref", "--stdin", input="".join(lines))
'''
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    out["build_s"] = time.perf_counter() - t0
    sh(["git", "ml", "exp", "show", "--json"], g, env)  # the first listing fills the summary cache
    show = [sh(["git", "ml", "exp", "show", "--json"], g, env, "exp_show_json") for _ in range(repeats)]
    table = [sh(["git", "ml", "exp", "show", "--sort", "score"], g, env, "exp_show_table")
             for _ in range(repeats)]
    out["exp_show_json_s"] = statistics.median(show)
    out["exp_show_table_sorted_s"] = statistics.median(table)
    out["cpu_exp_show_json_s"] = statistics.median(CPU["exp_show_json"])
    out["cpu_exp_show_table_sorted_s"] = statistics.median(CPU["exp_show_table"])
    out["load_after"] = load()
    return out


# ----------------------------------------------------------------------------- part 3
def _baseline(path: Path, env: dict[str, str], dvc_env: dict[str, str] | None) -> None:
    make_project(path, env)
    if dvc_env is None:
        sh(["git", "ml", "init"], path, env)
        sh(["git", "ml", "run", "-n", "train", "-p", "params.yaml", "--", sys.executable, "train.py"],
           path, env)
        cmds = [["git", "add", "-A"], ["git", "commit", "-qm", "baseline"]]
    else:
        (path / "dvc.yaml").write_text(DVC_YAML)
        cmds = [["dvc", "init", "-q"], ["dvc", "repro", "-q"], ["git", "add", "-A"],
                ["git", "commit", "-qm", "dvc baseline"]]
    for c in cmds:
        sh(c, path, dvc_env or env)


def _timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one command and everything it waited for."""
    c0 = _children_cpu()
    wall = sh(cmd, cwd, env)
    return wall, _children_cpu() - c0


def part_versus(work: Path, env: dict[str, str], n: int, repeats: int, dvc: Path) -> dict[str, Any]:
    """n real experiments with each tool, interleaved; show at checkpoints."""
    denv = {**env, "PATH": f"{dvc.parent}{os.pathsep}{env['PATH']}"}
    g, d = work / "versus-gitml", work / "versus-dvc"
    _baseline(g, env, None)
    _baseline(d, env, denv)
    checkpoints = sorted({c for c in (10, n // 4, n // 2, n) if 0 < c <= n})
    out: dict[str, Any] = {"load_before": load(), "experiments": n, "show": [],
                           "dvc_version": subprocess.run([str(dvc), "--version"], capture_output=True,
                                                         text=True).stdout.strip()}
    runs: dict[str, list[tuple[float, float]]] = {"gitml": [], "dvc": []}
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        lr = f"train.lr={round(0.01 + (i * 0.618034) % 0.98, 4)}"
        runs["gitml"].append(_timed(["git", "ml", "exp", "run", "-q", "-n", "train", "-S", lr], g, env))
        runs["dvc"].append(_timed(["dvc", "exp", "run", "-q", "-S", lr], d, denv))
        if i in checkpoints:
            row: dict[str, Any] = {"experiments": i, "load": load()}
            for tool, cmd, cwd, e in (("gitml", ["git", "ml", "exp", "show", "--json"], g, env),
                                      ("dvc", ["dvc", "exp", "show", "--json"], d, denv)):
                _timed(cmd, cwd, e)  # warm (gitml's summary cache, DVC's own caches)
                got = [_timed(cmd, cwd, e) for _ in range(repeats)]
                row[f"{tool}_show_s"] = statistics.median(w for w, _ in got)
                row[f"{tool}_show_cpu_s"] = statistics.median(c for _, c in got)
            out["show"].append(row)
            print(f"  {row}", flush=True)
    out["build_s"] = time.perf_counter() - t0
    for tool, got in runs.items():
        out[f"{tool}_exp_run_s"] = statistics.median(w for w, _ in got)
        out[f"{tool}_exp_run_cpu_s"] = statistics.median(c for _, c in got)
    out["dvc_refs"] = len(subprocess.run(["git", "for-each-ref", "refs/exps/"], cwd=d, env=denv,
                                         capture_output=True, text=True).stdout.splitlines())
    out["load_after"] = load()
    return out


# ----------------------------------------------------------------------------- part 4
# Unscaled features (areas in the thousands next to ratios below one): the RBF kernel's
# good gamma is a band of about two decades out of ten, and C matters inside it.
SPACE = {"params": {"C": {"type": "float", "low": 1e-2, "high": 1e4, "log": True},
                    "gamma": {"type": "float", "low": 1e-9, "high": 1.0, "log": True}}}


def part_search(seeds: int, random_trials: int, max_trials: int, samplers: list[str]) -> dict[str, Any]:
    import warnings

    import numpy as np
    import optuna
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.svm import SVC

    from gitml.sweep.search import make_sampler, suggest
    from gitml.sweep.space import parse

    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X, y = load_breast_cancer(return_X_y=True)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    space = parse(SPACE, "bench")
    cache: dict[tuple[float, float], float] = {}

    def auc(params: dict[str, Any]) -> float:
        key = (params["C"], params["gamma"])
        if key not in cache:
            model = SVC(C=params["C"], gamma=params["gamma"], max_iter=20000)
            cache[key] = float(np.mean(cross_val_score(model, X, y, cv=cv, scoring="roc_auc")))
        return cache[key]

    def run(sampler: str, seed: int, n: int, stop_at: float | None) -> list[float]:
        study = optuna.create_study(direction="maximize", sampler=make_sampler(sampler, seed, 1))
        values: list[float] = []
        for _ in range(n):
            t = study.ask()
            v = auc(suggest(t, space))
            study.tell(t, v)
            values.append(v)
            if stop_at is not None and v >= stop_at:
                break
        return values

    def needed(values: list[float], target: float) -> int | None:
        for i, v in enumerate(values, 1):
            if v >= target:
                return i
        return None

    out: dict[str, Any] = {"load_before": load(), "data": "sklearn breast_cancer (569 rows)",
                           "model": "SVC(rbf) on unscaled features, 3-fold ROC AUC",
                           "space": SPACE, "seeds": []}
    for seed in range(seeds):
        t0 = time.perf_counter()
        rnd = run("random", seed, random_trials, None)
        target = max(rnd) - 0.005
        row: dict[str, Any] = {"seed": seed, "best_random_200": max(rnd), "target": target,
                               "random": needed(rnd, target)}
        for s in samplers:
            vals = run(s, seed, max_trials, target)
            row[s] = needed(vals, target)
        row["seconds"] = time.perf_counter() - t0
        out["seeds"].append(row)
        print(f"  seed {seed}: {row}", flush=True)
    for s in ["random", *samplers]:
        got = [r[s] if r[s] is not None else max_trials + 1 for r in out["seeds"]]
        out[f"median_trials_{s}"] = statistics.median(got)
    out["load_after"] = load()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="overhead,show,versus,search")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--trials", type=int, default=1000, help="trials for the exp show measurement")
    ap.add_argument("--experiments", type=int, default=100,
                    help="real experiments per tool for the versus part")
    ap.add_argument("--gitml-src", type=Path, default=None,
                    help="run gitml from this source folder (e.g. a checkout of main)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--random-trials", type=int, default=200)
    ap.add_argument("--max-trials", type=int, default=200)
    ap.add_argument("--samplers", default="tpe,gp")
    ap.add_argument("--dvc", type=Path, default=None, help="dvc executable (default: install into --dvc-venv)")
    ap.add_argument("--dvc-venv", type=Path, default=Path("/tmp/sweep-dvcenv"))
    ap.add_argument("--no-dvc", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    dvc = None if args.no_dvc else (args.dvc or ensure_dvc(args.dvc_venv))
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                               "cpus": os.cpu_count(),
                               "dvc": str(dvc) if dvc else "not measured (--no-dvc or not installable)"}
    with tempfile.TemporaryDirectory(prefix="gitml-bench-exp-") as tmp:
        work = Path(tmp)
        home = work / "home"
        home.mkdir()
        env = git_env(home)
        if args.gitml_src:
            env["PYTHONPATH"] = str(args.gitml_src.resolve())
            results["gitml_src"] = str(args.gitml_src)
        if "overhead" in parts:
            print("overhead ...", flush=True)
            results["overhead"] = part_overhead(work, env, args.repeats, dvc)
            print(json.dumps(results["overhead"], indent=1), flush=True)
        if "show" in parts:
            print("exp show ...", flush=True)
            results["show"] = part_show(work, env, args.trials, args.repeats)
            print(json.dumps(results["show"], indent=1), flush=True)
        if "versus" in parts:
            if dvc is None:
                results["versus"] = {"skipped": "DVC not available"}
            else:
                print(f"versus DVC, {args.experiments} real experiments each ...", flush=True)
                results["versus"] = part_versus(work, env, args.experiments, args.repeats, dvc)
                print(json.dumps({k: v for k, v in results["versus"].items() if k != "show"},
                                 indent=1), flush=True)
    if "search" in parts:
        print("search quality ...", flush=True)
        results["search"] = part_search(args.seeds, args.random_trials, args.max_trials,
                                        [s for s in args.samplers.split(",") if s])
        print(json.dumps({k: v for k, v in results["search"].items() if k != "seeds"}, indent=1))
    dest = args.json or HERE / "results" / f"exp-{time.strftime('%Y-%m-%d')}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
