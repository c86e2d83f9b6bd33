from __future__ import annotations

import argparse

from gitml.cli.output import say
from gitml.repo import MLRepo


def register(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from gitml.hooks.install import install_hooks

    repo = MLRepo.discover(require_init=False)
    if not repo.is_initialised():
        repo.store.root.mkdir(parents=True, exist_ok=True)
    names = install_hooks(repo)
    say(f"installed hooks: {', '.join(names)} in {repo.git.hooks_dir()}", quiet=args.quiet)
    return 0
