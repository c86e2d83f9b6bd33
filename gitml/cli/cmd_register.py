from __future__ import annotations

import argparse

from gitml.cli.output import print_json, say


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the model (declared as [models.NAME])")
    p.add_argument("rev", nargs="?", default="HEAD", help="the commit to register (default HEAD)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--version", help="the version, e.g. 1.3.0 (default: bump the latest)")
    g.add_argument("--bump", choices=("major", "minor", "patch"), help="which part to bump (default patch)")
    p.add_argument("--force", action="store_true",
                   help="register even though the recorded gates did not pass (the tag says so)")
    p.add_argument("-m", "--message", help="the tag message's first line")
    p.add_argument("--sign", action="store_true", default=None, help="sign the tag (git tag -s)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from gitml.registry.ops import register as do_register
    from gitml.repo import MLRepo

    repo = MLRepo.discover()
    res = do_register(repo, args.name, args.rev, version=args.version, part=args.bump,
                      force=args.force, message=args.message, sign=args.sign)
    if args.json:
        print_json(vars(res))
        return 0
    note = " (FORCED past failing gates)" if res.forced else ""
    say(f"registered {res.name} {res.version} at {res.commit[:12]}: tag {res.tag}{note}", quiet=args.quiet)
    return 0
