from __future__ import annotations

import argparse
import sys


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", help="NAME@vX.Y.Z, NAME#STAGE or NAME (its latest version)")
    p.add_argument("-o", "--output", help="write the Markdown here instead of stdout")
    p.add_argument("--html", action="store_true", help="HTML instead of Markdown")


def run(args: argparse.Namespace) -> int:
    from gitml.registry.card import card_html, card_markdown
    from gitml.registry.deploy import resolve
    from gitml.registry.state import load
    from gitml.repo import MLRepo
    from gitml.store.fsutil import atomic_write_text

    repo = MLRepo.discover()
    ref = args.ref
    if "@" not in ref and "#" not in ref:
        latest = load(repo.git, ref).artifact(ref).latest()
        if latest is None:
            from gitml.errors import GitMLError

            raise GitMLError(f"{ref} has no registered version", f"`git ml register {ref}`")
        ref = f"{ref}@{latest.version}"
    rel = resolve(repo, ref)
    text = (card_html(repo, rel.name, rel.version.version) if args.html
            else card_markdown(repo, rel.name, rel.version.version, rel.version.commit))
    if args.output:
        from pathlib import Path

        atomic_write_text(Path(args.output), text)
    else:
        sys.stdout.write(text)
    return 0
