from __future__ import annotations

import argparse
from pathlib import Path

from gitml.artifacts import sync
from gitml.cli.output import print_json
from gitml.repo import MLRepo
from gitml.store.remote import SECRET_OPTIONS


def register(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    a = sub.add_parser("add", help="add a remote (a folder or s3://bucket/prefix)")
    a.add_argument("name")
    a.add_argument("url")
    a.add_argument("-d", "--default", action="store_true", help="make it the default remote")
    a.add_argument("--local", action="store_true", help="keep it in the local, uncommitted config")
    sub.add_parser("list", help="list remotes").add_argument("--json", action="store_true")
    r = sub.add_parser("remove", help="remove a remote")
    r.add_argument("name")
    m = sub.add_parser("modify", help="set an option: url, endpoint_url, region, profile, jobs, ...")
    m.add_argument("name")
    m.add_argument("option")
    m.add_argument("value")
    m.add_argument("--local", action="store_true", help="write to the local, uncommitted config")
    d = sub.add_parser("default", help="set the default remote")
    d.add_argument("name")


def run(args: argparse.Namespace) -> int:
    repo = MLRepo.discover()
    cfg = repo.config
    action = args.action or "list"
    if action == "add":
        sync.add_remote(repo, args.name, args.url, base=Path.cwd(), default=args.default,
                        local=args.local)
    elif action == "remove":
        sync.remove_remote(repo, args.name)
    elif action == "modify":
        sync.modify_remote(repo, args.name, args.option, args.value, base=Path.cwd(),
                           local=args.local)
    elif action == "default":
        cfg.set_default_remote(args.name)
    elif action == "list":
        remotes = cfg.remotes()
        default = cfg.default_remote()
        shown = {n: {k: ("***" if k in SECRET_OPTIONS else v) for k, v in o.items()}
                 for n, o in remotes.items()}
        if getattr(args, "json", False):
            print_json({"default": default, "remotes": shown})
        else:
            for name, opts in shown.items():
                extra = " ".join(f"{k}={v}" for k, v in opts.items() if k != "url")
                mark = " (default)" if name == default else ""
                print(f"{name}\t{opts['url']}{mark}{'  ' + extra if extra else ''}")
        return 0
    if action in ("add", "remove", "modify", "default") and cfg.committed_path.exists():
        repo.git.stage([repo.relpath(cfg.committed_path)])
    return 0
