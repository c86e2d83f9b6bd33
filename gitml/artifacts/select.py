"""Choosing artifacts by the paths a user names: one rule for status, checkout, push,
fetch and pull.

A path selects the artifacts it names, the artifacts below it (a folder holding several)
and the artifact that contains it (``data/images/cat.png`` selects ``data/images``).
``""`` or ``"."`` selects every artifact. A path that selects nothing is an error, so a
typo is never reported as "all clean".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gitml.errors import UsageError
from gitml.store import pointer as ptr


def _normal(path: str) -> str:
    return path.removesuffix(ptr.SUFFIX).strip("/") if path not in ("", ".") else ""


def matches(artifact: str, path: str) -> bool:
    """True when the user's ``path`` (work-tree relative) selects ``artifact``."""
    p = _normal(path)
    return (p in ("", ".") or artifact == p or artifact.startswith(p + "/")
            or p.startswith(artifact + "/"))


def select(artifacts: Iterable[str], paths: Sequence[str] | None, *,
           where: str = "in the index") -> list[str]:
    """The artifacts ``paths`` select, in the order of ``artifacts`` (all when no paths).
    Raises :class:`UsageError` naming the first path that selects nothing."""
    arts = list(artifacts)
    if not paths:
        return arts
    chosen: dict[str, None] = {}
    for path in paths:
        hit = [a for a in arts if matches(a, path)]
        if not hit:
            raise UsageError(f"{path or '.'}: no gitml artifact {where} is or contains this path",
                             "see `git ml status` for the artifacts")
        chosen.update(dict.fromkeys(hit))
    return [a for a in arts if a in chosen]
