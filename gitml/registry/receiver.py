"""The post-receive side of GitOps: a bare repository on the serving host deploys the
registry tags pushed to it."""

from __future__ import annotations

import os
import sys

from gitml.errors import GitMLError
from gitml.git.bare import _HOOK_VARS, deploy_worktree, hook_git_dir, peel
from gitml.git.tags import parse

ZERO = "0" * 40


def receive(text: str) -> int:
    """``<old> <new> <ref>`` lines from Git: deploy each new registry tag from a work tree
    of this repository at the tag's commit."""
    git_dir = hook_git_dir()
    new_tags = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] != ZERO and parts[2].startswith("refs/tags/") \
                and parse(parts[2].removeprefix("refs/tags/")) is not None:
            new_tags.append(parts[2])
    if not new_tags:
        return 0
    for var in _HOOK_VARS:  # from here on, git runs in the deploy work tree
        os.environ.pop(var, None)
    rc = 0
    from gitml.registry.ontag import deploy_tags
    from gitml.repo import MLRepo

    for ref in new_tags:
        try:
            wt = deploy_worktree(git_dir, peel(git_dir, ref))
            os.chdir(wt)  # paths are work-tree relative from here on
            repo = MLRepo.discover(wt)
            rc |= deploy_tags(repo, [ref])
        except GitMLError as e:
            print(f"gitml: {ref}: {e}", file=sys.stderr)
            rc = 1
    return rc
