from __future__ import annotations

import argparse

from gitml.cli.output import human_size, print_json, progress
from gitml.cli.transfer_common import add_selection_args, selected_artifacts
from gitml.repo import MLRepo


def register(p: argparse.ArgumentParser) -> None:
    add_selection_args(p)
    p.add_argument("--verify-remote", action="store_true",
                   help="ask the remote about every object instead of trusting what it is "
                        "known to hold (after another clone's gc or a lost bucket), read back "
                        "what it holds and replace damaged copies")


def run(args: argparse.Namespace) -> int:
    from gitml.artifacts.sync import open_named_remote, push_artifacts

    repo = MLRepo.discover()
    arts = selected_artifacts(repo, args)
    remote = open_named_remote(repo, args.remote)
    try:
        with progress(f"Pushing to {remote.name}", None, quiet=args.quiet or args.json,
                      unit="bytes") as bar:
            stats = push_artifacts(repo, arts, remote=remote, jobs=args.jobs, advance=bar.advance,
                                   verify=args.verify_remote)
    finally:
        remote.close()
    if args.json:
        print_json(stats.to_dict())
    elif not args.quiet:
        print(f"pushed {stats.transferred} objects ({human_size(stats.bytes)}) to {remote.name}; "
              f"{stats.skipped} already there")
        if stats.repaired:
            print(f"replaced {stats.repaired} damaged objects on {remote.name}")
    return 0
