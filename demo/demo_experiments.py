"""Demo block: experiments and Bayesian search on the demo's `train` stage.

Wire it into demo/demo.py after the train stage has run and been committed:

    from demo_experiments import run_experiments
    run_experiments(repo, sh)

``sh(cwd, cmd, check=True)`` is the demo's command runner. The train stage takes its
regularisation strength C as its first argument and logs it with ``gitml.log_param``, so
``-S C=...`` rewrites that argument in each trial. Trials are commits on hidden refs: the
demo's branch, index and work tree stay as they are.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

SPACE = textwrap.dedent("""\
    # git ml sweep: one table per parameter
    [params.C]
    type = "float"
    low = 0.001
    high = 100.0
    log = true
""")


def run_experiments(repo: Path, sh: Callable[..., Any]) -> None:
    print("\n\033[1;34m== Experiments: one trial by hand, then an 8-trial Bayesian search\033[0m")
    sh(repo, "git ml exp run -n train -S C=0.01 --exp-name strong-regularisation")
    (repo / "sweep.toml").write_text(SPACE)
    sh(repo, "git ml sweep -n train --space sweep.toml --trials 8 -j 2 "
             "--objective roc_auc:max --study demo --seed 0")
    sh(repo, "git ml exp show --sort roc_auc")
    best = sh(repo, "git ml exp show --csv --sort roc_auc --study demo").stdout.splitlines()[1].split(",")[0]
    sh(repo, f"git ml exp diff strong-regularisation {best}")
    sh(repo, "git for-each-ref refs/gitml/exps/ --format='%(refname)' --count=3")
    sh(repo, "git ml report --experiments --study demo --objective roc_auc -o experiments.html")
    sh(repo, "git status --short")   # the work tree is as it was (only sweep.toml and the page are new)
