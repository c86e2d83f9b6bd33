from __future__ import annotations

import argparse

from gitml.cli.output import print_json, say
from gitml.errors import GitMLError
from gitml.repo import MLRepo


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["start", "stop", "status"], nargs="?", default="status",
                   help="start the watcher (it keeps running until stopped), stop it, or show "
                        "what it watches (the default)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from gitml import inotify
    from gitml.artifacts import watch_client

    repo = MLRepo.discover()
    ml_dir = str(repo.ml_dir)
    if args.action == "start":
        if not inotify.available():
            raise GitMLError("the watcher needs Linux's inotify, which is not available here",
                             "status walks the folders instead; nothing else is needed")
        try:
            info = watch_client.start(ml_dir)
        except OSError as e:
            raise GitMLError(str(e), "see the log; `git ml status` works without the watcher") from e
        say(f"watcher running (pid {info.get('pid')}); `git ml status` now asks it which folders changed",
            quiet=args.quiet or args.json)
    elif args.action == "stop":
        stopped = watch_client.stop(ml_dir)
        say("watcher stopped" if stopped else "no watcher was running", quiet=args.quiet or args.json)
        info = {"stopped": stopped}
    else:
        info = watch_client.info(ml_dir) or {}
        if not args.json and not args.quiet:
            if not info:
                print("no watcher is running (start one with `git ml watch start`)")
            else:
                roots = info.get("roots", {})
                print(f"watcher running (pid {info.get('pid')}), {len(roots)} folders")
                for path, r in roots.items():
                    extra = f", not watched: {r['broken']}" if r.get("broken") else ""
                    print(f"  {path}: {r.get('watches', 0)} folders watched{extra}")
    if args.json:
        print_json(info)
    return 0
