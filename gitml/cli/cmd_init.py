from __future__ import annotations

import argparse

from gitml.cli.output import say
from gitml.layout import COMMITTED_DIR, COMMITTED_NAME
from gitml.repo import MLRepo


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-hooks", action="store_true", help="do not install the Git hooks")


def run(args: argparse.Namespace) -> int:
    repo = MLRepo.discover(require_init=False)
    fresh = not repo.is_initialised()
    repo.store.root.mkdir(parents=True, exist_ok=True)
    cfg = repo.workdir / COMMITTED_DIR / COMMITTED_NAME
    if not cfg.exists():
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text("# gitml settings shared through Git (secrets go to the local config)\n")
    repo.git.stage([f"{COMMITTED_DIR}/{COMMITTED_NAME}"])
    if not args.no_hooks:
        from gitml.hooks.install import install_hooks

        install_hooks(repo)
    say(f"{'Initialised' if fresh else 'Reinitialised'} gitml in {repo.workdir}"
        f" (store: {repo.store.root})", quiet=args.quiet)
    return 0
