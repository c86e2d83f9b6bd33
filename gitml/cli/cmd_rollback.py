from __future__ import annotations

import argparse

from gitml.cli.output import print_json, say


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the model")
    p.add_argument("--to", help="the version to return to (default: the one before)")
    p.add_argument("--target", help="deploy target (default: local)")
    p.add_argument("-m", "--message", help="why (recorded)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from gitml.registry.deploy import rollback
    from gitml.repo import MLRepo

    res = rollback(MLRepo.discover(), args.name, args.target, to=args.to,
                   reason=args.message or "manual rollback")
    if args.json:
        print_json(vars(res))
        return 0
    say(f"{res.name} {res.version} serves on {res.url} again (was {res.previous})", quiet=args.quiet)
    return 0
