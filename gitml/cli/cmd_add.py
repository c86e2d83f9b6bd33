from __future__ import annotations

import argparse

from gitml.cli.output import human_size, print_json, progress
from gitml.cli.transfer_common import add_jobs_arg
from gitml.repo import MLRepo


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", help="files or folders to version")
    add_jobs_arg(p, "parallel hashing threads")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from gitml.artifacts import worktree

    repo = MLRepo.discover()
    with progress("Adding", None, quiet=args.quiet or args.json, unit="bytes") as bar:
        results = worktree.add(repo, args.paths, jobs=args.jobs, progress=bar.advance)
    if args.json:
        print_json([r.to_dict() for r in results])
    elif not args.quiet:
        for r in results:
            what = f"{r.files} files, " if r.kind == "dir" else ""
            verb = "added" if r.changed else "unchanged"
            print(f"{verb}: {r.path} ({what}{human_size(r.size)}, {human_size(r.new_bytes)} new "
                  f"in store) -> {r.pointer_path}")
    return 0
