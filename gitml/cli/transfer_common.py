"""What push, fetch and pull share: choosing artifacts and showing transfer progress."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from gitml.repo import MLRepo
from gitml.store.pointer import Pointer


def add_selection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", help="limit to these artifacts")
    p.add_argument("-r", "--remote", default=None, help="remote name (default: core.remote)")
    p.add_argument("-j", "--jobs", type=int, default=None, help="parallel transfers")
    p.add_argument("--rev", action="append", default=[], metavar="REV",
                   help="artifacts of this revision instead of the index (repeatable)")
    p.add_argument("-a", "--all-commits", action="store_true",
                   help="artifacts of every commit reachable from any ref")
    p.add_argument("--json", action="store_true")


def selected_artifacts(repo: MLRepo, args: argparse.Namespace) -> list[tuple[str, Pointer]]:
    from gitml.artifacts import worktree
    from gitml.store import pointer as ptr

    arts: dict[tuple[str, str], tuple[str, Pointer]] = {}
    if args.all_commits:
        for i, data in enumerate(sorted(repo.git.reachable_blobs(ptr.SUFFIX))):
            p = ptr.parse(data, "a reachable pointer")
            arts[(p.oid, p.kind)] = (f"<commit pointer {i}>", p)
    revs: Sequence[str | None] = args.rev or ([None] if not args.all_commits else [])
    for rev in revs:
        for path, p in worktree.pointers(repo, rev).items():
            if args.paths and not _matches(path, args.paths):
                continue
            arts[(p.oid, p.kind)] = (path, p)
    return list(arts.values())


def _matches(path: str, wanted: list[str]) -> bool:
    for w in wanted:
        w = w.removesuffix(".gitml").rstrip("/")
        if path == w or path.startswith(w + "/") or w in ("", "."):
            return True
    return False
