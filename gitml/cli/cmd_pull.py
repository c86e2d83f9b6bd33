from __future__ import annotations

import argparse

from gitml.cli.cmd_checkout import report
from gitml.cli.cmd_fetch import fetch
from gitml.cli.output import human_size, print_json
from gitml.cli.transfer_common import add_selection_args, repo_paths
from gitml.repo import MLRepo


def register(p: argparse.ArgumentParser) -> None:
    add_selection_args(p)
    p.add_argument("-f", "--force", action="store_true",
                   help="overwrite modified files that were never added")


def run(args: argparse.Namespace) -> int:
    repo = MLRepo.discover()
    stats = fetch(repo, args)
    from gitml.artifacts import worktree

    res = worktree.checkout(repo, repo_paths(repo, args.paths), force=args.force, fetch=False,
                            jobs=args.jobs)
    if args.json:
        print_json({"fetch": stats.to_dict(), "checkout": res.to_dict()})
    else:
        if not args.quiet:
            print(f"fetched {stats.transferred} objects ({human_size(stats.bytes)}) from {stats.remote}")
        report(res, quiet=args.quiet)
    return 1 if res.missing or res.damaged else 0
