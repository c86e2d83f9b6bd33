from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gitml.cli.output import print_json
from gitml.cli.transfer_common import add_jobs_arg, repo_paths
from gitml.errors import ObjectMissingError
from gitml.repo import MLRepo

if TYPE_CHECKING:
    from gitml.artifacts.worktree import CheckoutResult


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", help="limit to these artifacts")
    p.add_argument("-f", "--force", action="store_true",
                   help="overwrite modified files that were never added")
    p.add_argument("--link", choices=["copy", "reflink", "hardlink"], default=None,
                   help="copy (a reflink clone where the file system can: the default) or "
                        "hardlink to the read-only store copy (default: core.link)")
    p.add_argument("--no-fetch", action="store_true", help="do not download missing content")
    add_jobs_arg(p, "parallel copies")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from gitml.artifacts import worktree

    repo = MLRepo.discover()
    res = worktree.checkout(repo, repo_paths(repo, args.paths), force=args.force, link=args.link,
                             fetch=not args.no_fetch, jobs=args.jobs)
    if args.json:
        print_json(res.to_dict())
    else:
        report(res, quiet=args.quiet)
    return 1 if res.missing or res.damaged else 0


def report(res: CheckoutResult, *, quiet: bool) -> None:
    import sys

    if not quiet:
        for path in res.restored:
            print(f"restored: {path}")
        for path in res.removed:
            print(f"removed: {path}")
    for path in res.kept:
        print(f"gitml: kept {path}: modified and never added "
              f"(run `git ml add` to save it or `git ml checkout --force` to discard it)",
              file=sys.stderr)
    damage = res.damage_error()
    if damage is not None:
        print(f"gitml: error: {damage}", file=sys.stderr)
    if res.missing:
        err = ObjectMissingError(
            f"{len(res.missing)} artifact(s) not in the local store: {', '.join(res.missing[:5])}",
            "run `git ml pull` (set a remote with `git ml remote add NAME URL --default`)")
        print(f"gitml: error: {err}", file=sys.stderr)
