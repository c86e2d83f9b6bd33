from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gitml.cli.output import human_size, print_json, progress
from gitml.cli.transfer_common import add_selection_args, selected_artifacts
from gitml.repo import MLRepo

if TYPE_CHECKING:
    from gitml.store.transfer import TransferStats


def register(p: argparse.ArgumentParser) -> None:
    add_selection_args(p)
    p.add_argument("--repair", action="store_true",
                   help="first check every local object of the artifacts and replace the "
                        "damaged ones with verified copies from the remote")


def fetch(repo: MLRepo, args: argparse.Namespace) -> TransferStats:
    from gitml.artifacts.sync import fetch_artifacts, open_named_remote
    from gitml.store.transfer import cap_malloc_arenas

    cap_malloc_arenas()
    arts = selected_artifacts(repo, args)
    remote = open_named_remote(repo, args.remote)
    try:
        with progress(f"Fetching from {remote.name}", None, quiet=args.quiet or args.json,
                      unit="bytes") as bar:
            return fetch_artifacts(repo, arts, remote=remote, jobs=args.jobs, advance=bar.advance,
                                   repair=getattr(args, "repair", False))
    finally:
        remote.close()


def run(args: argparse.Namespace) -> int:
    repo = MLRepo.discover()
    stats = fetch(repo, args)
    if args.json:
        print_json(stats.to_dict())
    elif not args.quiet:
        print(f"fetched {stats.transferred} objects ({human_size(stats.bytes)}) from {stats.remote}")
        if args.repair:
            print(f"replaced {stats.repaired} damaged local objects" if stats.repaired
                  else "no damaged local objects")
    return 0
