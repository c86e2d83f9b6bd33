"""``python -m gitml.registry.watch WORKDIR TARGET MODEL VERSION SECONDS``: the detached
grace-window watch a tag hook leaves behind (the hook itself returns at the switch)."""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from gitml.errors import GitMLError
    from gitml.registry.deploy import watch
    from gitml.repo import MLRepo

    workdir, target, name, version, seconds = argv
    try:
        repo = MLRepo.discover(Path(workdir))
        res = watch(repo, target, name, version, float(seconds), log=lambda m: print(f"gitml: {m}", flush=True))
    except GitMLError as e:
        print(f"gitml: error: {e}", flush=True)
        return 1
    return 0 if res is None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
