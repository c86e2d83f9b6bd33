from __future__ import annotations

import argparse

from gitml.cli.output import human_size, print_json
from gitml.repo import MLRepo


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--dry-run", action="store_true", help="only report what would go")
    p.add_argument("--remote", nargs="?", const="", default=None, metavar="NAME",
                   help="collect garbage on a remote instead (needs --force to delete)")
    p.add_argument("-f", "--force", action="store_true", help="really delete on the remote")
    p.add_argument("--grace-days", type=_days, default=14.0,
                   help="on a remote, keep unreachable objects younger than this (default 14): "
                        "other clones may have pushed them for commits not fetched here")
    p.add_argument("--json", action="store_true")


def _days(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of days >= 0, not {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    from gitml.artifacts import gc

    repo = MLRepo.discover()
    if args.remote is not None:
        from gitml.artifacts.sync import open_named_remote

        remote = open_named_remote(repo, args.remote or None)
        dry = args.dry_run or not args.force
        res = gc.gc_remote(repo, remote, dry_run=dry, grace_seconds=args.grace_days * 86400)
    else:
        dry = args.dry_run
        res = gc.gc_local(repo, dry_run=dry)
    if args.json:
        print_json(res.to_dict())
    elif not args.quiet:
        verb = "would delete" if dry else "deleted"
        print(f"{res.where}: {verb} {len(res.unreachable)} unreachable objects "
              f"({human_size(res.bytes)}); kept {res.reachable} reachable")
        if res.repacked or res.deleted_packs:
            verb_p = "would rewrite" if dry else "rewrote"
            print(f"packs: {verb_p} {res.repacked} mostly unreachable pack(s) with only their live "
                  f"objects; {'would delete' if dry else 'deleted'} {res.deleted_packs} with none")
        if res.kept_in_packs:
            print(f"kept {res.kept_in_packs} unreachable objects inside packs that are mostly "
                  "reachable (rewritten once half of a pack is unreachable)")
        if res.recent:
            print(f"kept {res.recent} unreachable objects younger than {args.grace_days:g} days "
                  "(--grace-days 0 to include them)")
        if args.remote is not None and dry and not args.dry_run:
            print("nothing deleted: pass --force to delete on the remote")
    return 0
