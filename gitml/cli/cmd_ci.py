from __future__ import annotations

import argparse

from gitml.cli.output import say


def register(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    gh = sub.add_parser("github", help="write a GitHub Actions workflow that deploys on tag pushes")
    gh.add_argument("--force", action="store_true", help="overwrite an existing workflow")
    gh.add_argument("--target", default="local", help="deploy target the workflow uses")
    rc = sub.add_parser("receiver", help="make a bare repository deploy the tags pushed to it (GitOps)")
    rc.add_argument("path", help="the bare repository on the serving host")


def run(args: argparse.Namespace) -> int:
    if args.what == "receiver":
        from pathlib import Path

        from gitml.errors import GitMLError
        from gitml.hooks.install import install_receiver

        path = Path(args.path).resolve()
        if not (path / "HEAD").is_file() or not (path / "objects").is_dir():
            raise GitMLError(f"{path} is not a bare Git repository", f"git init --bare {path}")
        names = install_receiver(path)
        say(f"installed {', '.join(names)} in {path / 'hooks'}: pushed registry tags deploy here",
            quiet=args.quiet)
        return 0
    from gitml.registry.ci import write_github_workflow
    from gitml.repo import MLRepo

    path = write_github_workflow(MLRepo.discover(), target=args.target, force=args.force)
    say(f"wrote {path}: a pushed version or stage tag deploys (commit it)", quiet=args.quiet)
    return 0
