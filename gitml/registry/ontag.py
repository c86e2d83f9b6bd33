"""Which deploys a new registry tag starts (the tag hooks call this)."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from gitml.errors import GitMLError
from gitml.git.tags import Action, format_tag, parse
from gitml.registry.settings import load_settings
from gitml.repo import MLRepo


def _say(msg: str) -> None:
    print(f"gitml: {msg}", file=sys.stderr, flush=True)


def deploy_tags(repo: MLRepo, refs: Iterable[str], *, detach_watch: bool = True) -> int:
    """Deploy what the new tags ``refs`` (``refs/tags/...`` or tag names) ask for: a stage
    assignment to every target serving that stage, a registration to targets that take
    every version. Returns 1 if a deploy was refused or failed, else 0."""
    from gitml.registry.deploy import deploy

    settings = load_settings(repo)
    rc = 0
    for ref in refs:
        tag = ref.removeprefix("refs/tags/").strip()
        parsed = parse(tag)
        if parsed is None:
            continue
        if parsed.action is Action.ASSIGN and parsed.stage:
            want = format_tag(Action.ASSIGN, parsed.name, stage=parsed.stage)
            targets = settings.targets_for_stage(parsed.stage)
        elif parsed.action is Action.REGISTER:
            want = format_tag(Action.REGISTER, parsed.name, version=parsed.version)
            targets = settings.targets_for_versions()
        else:
            continue
        for target in targets:
            _say(f"{tag}: deploying {want} to {target.name} ({target.url})")
            try:
                res = deploy(repo, want, target.name, detach_watch=detach_watch, log=_say)
            except GitMLError as e:
                _say(f"deploy of {want} refused: {e}")
                rc = 1
                continue
            if res.action == "noop":
                _say(f"{res.name} {res.version} already serves on {target.name}")
            else:
                _say(f"{res.name} {res.version} serves on {res.url} (was {res.previous or 'nothing'})")
    return rc
