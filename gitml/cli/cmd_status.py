from __future__ import annotations

import argparse

from gitml.artifacts.quick_status import clean_line
from gitml.cli.output import print_json
from gitml.cli.transfer_common import repo_paths
from gitml.repo import MLRepo

_HINT = {
    "modified": "run `git ml add {path}` to save, or `git ml checkout --force {path}` to discard",
    "missing": "run `git ml checkout {path}`",
    "not-in-store": "run `git ml pull`",
    "invalid-pointer": "run `git checkout -- {path}.gitml`",
}


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", help="limit to these artifacts")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-r", "--remote", nargs="?", const="", default=None, metavar="NAME",
                   help="also show which artifacts are not yet on the remote")
    p.add_argument("--no-watch", action="store_true",
                   help="walk every folder even when a watcher (`git ml watch`) runs")
    p.add_argument("--exit-code", action="store_true",
                   help="exit with 1 when any artifact is not clean (for scripts)")


def run(args: argparse.Namespace) -> int:
    from gitml.artifacts import worktree

    repo = MLRepo.discover()
    entries = worktree.status(repo, repo_paths(repo, args.paths), watch=not args.no_watch)
    not_pushed: list[str] = []
    if args.remote is not None:
        from gitml.artifacts.sync import not_on_remote, open_named_remote

        remote = open_named_remote(repo, args.remote or None)
        try:
            not_pushed = not_on_remote(repo, list(worktree.pointers(repo).items()), remote)
        finally:
            remote.close()
    if args.json:
        out: dict[str, object] = {"artifacts": [e.to_dict() for e in entries]}
        if args.remote is not None:
            out["not_on_remote"] = not_pushed
        print_json(out)
    elif not args.quiet:
        dirty = [e for e in entries if e.state != "clean"]
        if not dirty:
            print(clean_line(len(entries)))
        for e in dirty:
            line = f"{e.state:>16}: {e.path}"
            if e.changes:
                line += " (" + ", ".join(f"{len(v)} {k}" for k, v in e.changes.items() if v) + ")"
            if e.detail:
                line += f" ({e.detail})"
            print(line)
            print(f"{'':>18}{_HINT[e.state].format(path=e.path)}")
        if args.remote is not None:
            if not_pushed:
                print(f"not on the remote ({len(not_pushed)}): " + ", ".join(not_pushed)
                      + "  (run `git ml push`)")
            else:
                print("everything is on the remote")
    if args.exit_code and (any(e.state != "clean" for e in entries) or not_pushed):
        return 1
    return 0
