from __future__ import annotations

import argparse
import sys

from gitml.cli.output import print_json, progress
from gitml.repo import MLRepo


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("-j", "--jobs", type=int, default=4)
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from gitml.artifacts.gc import fsck

    repo = MLRepo.discover()
    with progress("Verifying", None, quiet=args.quiet or args.json) as bar:
        res = fsck(repo, jobs=args.jobs, advance=bar.advance)
    if args.json:
        print_json(res.to_dict())
    else:
        for key, problem in sorted(res.damaged.items()):
            print(f"damaged: {key}: {problem}", file=sys.stderr)
        for path in res.missing:
            print(f"missing: {path} (run `git ml pull`)", file=sys.stderr)
        for msg in res.broken_pointers:
            print(f"broken pointer: {msg}", file=sys.stderr)
        if res.damaged:
            print("damaged objects: delete them and run `git ml pull` to restore good copies",
                  file=sys.stderr)
        if not args.quiet and res.ok:
            print(f"checked {res.checked} objects: all intact")
    return 0 if res.ok else 1
