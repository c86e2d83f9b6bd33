from __future__ import annotations

import argparse
import sys

from gitml.cli.output import print_json, progress
from gitml.cli.transfer_common import add_jobs_arg
from gitml.repo import MLRepo


def register(p: argparse.ArgumentParser) -> None:
    add_jobs_arg(p, "parallel checks", default=4)
    p.add_argument("--remote", nargs="?", const="", default=None, metavar="NAME",
                   help="read back every object on the remote instead and report damaged ones "
                        "(`git ml push --verify-remote` replaces them)")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from gitml.artifacts.gc import fsck

    repo = MLRepo.discover()
    if args.remote is not None:
        return _run_remote(repo, args)
    with progress("Verifying", None, quiet=args.quiet or args.json) as bar:
        res = fsck(repo, jobs=args.jobs, advance=bar.advance)
    if args.json:
        print_json(res.to_dict())
    else:
        for key, problem in sorted(res.damaged.items()):
            print(f"damaged: {key}: {problem}", file=sys.stderr)
        for key, detail in sorted(res.incomplete.items()):
            print(f"incomplete: {key}: {detail}", file=sys.stderr)
        for path in res.missing:
            print(f"missing: {path} (run `git ml pull`)", file=sys.stderr)
        for msg in res.broken_pointers:
            print(f"broken pointer: {msg}", file=sys.stderr)
        if res.incomplete:
            print("incomplete objects: an interrupted download; run `git ml pull` to finish it",
                  file=sys.stderr)
        if res.damaged:
            print("damaged objects: run `git ml fetch --repair` to replace them with verified "
                  "copies from the remote", file=sys.stderr)
        if not args.quiet and res.ok:
            print(f"checked {res.checked} objects: all intact")
    return 0 if res.ok else 1


def _run_remote(repo: MLRepo, args: argparse.Namespace) -> int:
    from gitml.artifacts.gc import fsck_remote
    from gitml.artifacts.sync import open_named_remote

    remote = open_named_remote(repo, args.remote or None)
    try:
        damaged = fsck_remote(repo, remote, jobs=args.jobs)
    finally:
        remote.close()
    if args.json:
        print_json({"remote": remote.name, "damaged": damaged, "ok": not damaged})
    else:
        for key, problem in sorted(damaged.items()):
            print(f"damaged on {remote.name}: {key}: {problem}", file=sys.stderr)
        if damaged:
            print(f"run `git ml push --verify-remote -a -r {remote.name}` from a clone with good "
                  "copies to replace them", file=sys.stderr)
        elif not args.quiet:
            print(f"remote {remote.name}: every object intact")
    return 1 if damaged else 0
