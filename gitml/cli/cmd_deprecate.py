from __future__ import annotations

import argparse

from gitml.cli.output import print_json, say


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the model")
    p.add_argument("version", nargs="?", help="deregister this version (NAME@vX.Y.Z!); "
                   "without it the whole model is deprecated (NAME@deprecated)")
    p.add_argument("-m", "--message", help="the tag message")
    p.add_argument("--sign", action="store_true", default=None, help="sign the tag (git tag -s)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from gitml.registry.ops import deprecate
    from gitml.repo import MLRepo

    res = deprecate(MLRepo.discover(), args.name, args.version, message=args.message, sign=args.sign)
    if args.json:
        print_json(vars(res))
        return 0
    what = f"{res.name} {res.version} deregistered" if args.version else f"{res.name} deprecated"
    say(f"{what}: tag {res.tag}", quiet=args.quiet)
    return 0
