from __future__ import annotations

import argparse

from gitml.cli.output import print_json, say


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the model")
    p.add_argument("version", help="a registered version, e.g. 1.3.0")
    p.add_argument("stage", help="the stage, e.g. prod")
    p.add_argument("--force", action="store_true", help="tag again even if already in the stage")
    p.add_argument("-m", "--message", help="the tag message")
    p.add_argument("--sign", action="store_true", default=None, help="sign the tag (git tag -s)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from gitml.registry.ops import promote
    from gitml.repo import MLRepo

    repo = MLRepo.discover()
    res = promote(repo, args.name, args.version, args.stage, force=args.force,
                  message=args.message, sign=args.sign)
    if args.json:
        print_json(vars(res))
        return 0
    say(f"{res.name} {res.version} is in stage {res.stage}: tag {res.tag}", quiet=args.quiet)
    return 0
