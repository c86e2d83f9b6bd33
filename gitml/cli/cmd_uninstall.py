from __future__ import annotations

import argparse

from gitml.cli.output import say
from gitml.repo import MLRepo


def register(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from gitml.hooks.install import uninstall_hooks

    repo = MLRepo.discover(require_init=False)
    names = uninstall_hooks(repo)
    say(f"removed hooks: {', '.join(names) or 'none'}", quiet=args.quiet)
    return 0
