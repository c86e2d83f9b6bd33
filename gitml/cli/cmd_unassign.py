from __future__ import annotations

import argparse

from gitml.cli.output import print_json, say


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the model")
    p.add_argument("stage", help="the stage to take away from the version in it")
    p.add_argument("-m", "--message", help="the tag message")
    p.add_argument("--sign", action="store_true", default=None, help="sign the tag (git tag -s)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from gitml.registry.ops import unassign
    from gitml.repo import MLRepo

    res = unassign(MLRepo.discover(), args.name, args.stage, message=args.message, sign=args.sign)
    if args.json:
        print_json(vars(res))
        return 0
    say(f"{res.name} {res.version} left stage {res.stage}: tag {res.tag}", quiet=args.quiet)
    return 0
