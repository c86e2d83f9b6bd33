"""What push, fetch and pull (and the other artifact commands) share: choosing artifacts
and checking the common options."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from gitml.repo import MLRepo
from gitml.store.pointer import Pointer


def positive_int(text: str) -> int:
    """argparse type of ``-j``: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_jobs_arg(p: argparse.ArgumentParser, help_text: str = "parallel transfers",
                 default: int | None = None) -> None:
    p.add_argument("-j", "--jobs", type=positive_int, default=default, metavar="N", help=help_text)


def add_selection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", help="limit to these artifacts (or those containing them)")
    p.add_argument("-r", "--remote", default=None, help="remote name (default: core.remote)")
    add_jobs_arg(p)
    p.add_argument("--rev", action="append", default=[], metavar="REV",
                   help="artifacts of this revision instead of the index (repeatable)")
    p.add_argument("-a", "--all-commits", action="store_true",
                   help="artifacts of every commit reachable from any ref")
    p.add_argument("--json", action="store_true")


def repo_paths(repo: MLRepo, paths: Sequence[str] | None) -> list[str] | None:
    """The user's paths (relative to the current folder) as work-tree paths."""
    if not paths:
        return None
    return [repo.relpath(p) for p in paths]


def selected_artifacts(repo: MLRepo, args: argparse.Namespace) -> list[tuple[str, Pointer]]:
    from gitml.artifacts import select, worktree
    from gitml.store import pointer as ptr

    arts: dict[tuple[str, str], tuple[str, Pointer]] = {}
    if args.all_commits:
        for i, data in enumerate(sorted(repo.git.reachable_blobs(ptr.SUFFIX))):
            p = ptr.parse(data, "a reachable pointer")
            arts[(p.oid, p.kind)] = (f"<commit pointer {i}>", p)
    revs: Sequence[str | None] = args.rev or ([None] if not args.all_commits else [])
    paths = repo_paths(repo, args.paths)
    for rev in revs:
        found = worktree.pointers(repo, rev)
        where = "in the index" if rev is None else f"at {rev}"
        for path in select.select(sorted(found), paths, where=where):
            p = found[path]
            arts[(p.oid, p.kind)] = (path, p)
    return list(arts.values())
