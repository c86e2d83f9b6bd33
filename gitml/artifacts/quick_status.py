"""A no-op ``git ml status`` proved from stats recorded by the last full one.

After a full status finds every artifact clean it writes a snapshot: the stat of Git's
index (which pointers are tracked), of each pointer file and each file artifact, and for
each folder artifact either the watcher's token (:mod:`gitml.artifacts.watch_client`) or
its quick fingerprint. The next status re-stats those few paths and asks the watcher
(or re-fingerprints the folder); when all agree, every artifact is still clean and
nothing else is imported, opened or hashed. Any difference, a racy stat (changed in the
clock tick the snapshot was taken), or no snapshot means the full status runs instead.

The snapshot says "clean" only as long as the store's completeness marks do, so clearing
those (gc) deletes it.
"""

from __future__ import annotations

import marshal  # built in: json would import re and enum, ~8 ms of this path's start-up
import os
import stat as stat_mod
import sys

from gitml.artifacts import watch_client
from gitml.git import stat_index
from gitml.layout import STATUS_INDEX, temp_name
from gitml.layout import STATUS_SNAPSHOT as SNAPSHOT_NAME

TYPE_CHECKING = False  # importing typing costs ~2 ms of each command's start-up
if TYPE_CHECKING:
    from typing import Any

    from gitml.repo import MLRepo

VERSION = 1
RACY_MARGIN_NS = 1_000_000_000  # as the stat cache's: mtime comes from a coarse clock
_GIT_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_CEILING_DIRECTORIES")


def _version() -> str:
    """The snapshot's format, and marshal's (which follows the Python version)."""
    return f"{VERSION}/{marshal.version}/{sys.version_info[0]}.{sys.version_info[1]}"


def _stat_row(st: os.stat_result) -> list[int]:
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode]


def _find_top(start: str) -> str | None:
    d = start
    while True:
        if os.path.isdir(os.path.join(d, ".git")):
            return d
        if os.path.exists(os.path.join(d, ".git")):
            return None  # a linked worktree or submodule: the full status handles those
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def clean_count() -> int | None:
    """How many artifacts there are when the snapshot proves every one still clean; None
    when it cannot (then run the full status)."""
    if any(k in os.environ for k in _GIT_ENV):
        return None
    top = _find_top(os.getcwd())
    if top is None or not os.path.isdir(os.path.join(top, ".gitml")):
        return None  # not set up (any more): the full status says so
    ml_dir = os.path.join(top, ".git", "ml")
    try:
        with open(os.path.join(ml_dir, SNAPSHOT_NAME), "rb") as f:
            snap = marshal.loads(f.read())
        if snap["v"] != _version() or snap["workdir"] != top:
            return None
        if _stat_row(os.stat(os.path.join(top, ".git", "index"))) != snap["index"]:
            return None
        tokens: dict[str, str] = {}
        indexed: list[str] = []
        watching = watch_client.running(ml_dir)
        if not all(_still_clean(top, art, tokens, indexed, watching) for art in snap["artifacts"]):
            return None
    except (OSError, ValueError, KeyError, TypeError, EOFError, IndexError):
        return None
    if indexed and not stat_index.unchanged(top, os.path.join(ml_dir, STATUS_INDEX), indexed):
        return None
    if tokens:
        answer = watch_client.ask(ml_dir, tokens)
        if answer is None or any(answer[1].get(p) != "unchanged" for p in tokens):
            return None
    return len(snap["artifacts"])


def _still_clean(top: str, art: dict[str, Any], tokens: dict[str, str], indexed: list[str],
                 watching: bool) -> bool:
    """Whether ``art``'s stats are those recorded. A folder goes into ``tokens`` (to ask the
    watcher) when one runs; else, when its subfolders' stats are recorded and unchanged (no
    file added, removed or renamed), into ``indexed`` (Git then stats its files against
    the private index); else it is fingerprinted here."""
    path = os.path.join(top, art["path"])
    if _stat_row(os.stat(path + ".gitml")) != art["pointer"]:
        return False
    st = os.stat(path)  # a link is followed, as the full status reads through it
    if art["kind"] == "file":
        return bool(_stat_row(st) == art["stat"])
    if not stat_mod.S_ISDIR(st.st_mode) or [st.st_dev, st.st_ino] != art["root"]:
        return False
    if watching:  # a token to ask about, or a full status to get one
        tokens[path] = art.get("watch") or ""
        return bool(art.get("watch"))
    if "dirs" in art:
        if not all(_stat_row(os.lstat(os.path.join(path, rel))) == row for rel, row in art["dirs"]):
            return False
        indexed.append(art["path"])
        return True
    return "quick" in art and _same_fingerprint(path, art)


def _same_fingerprint(path: str, art: dict[str, Any]) -> bool:
    from gitml.artifacts.folder_scan import quick_fingerprint

    quick = quick_fingerprint(path, int(art.get("files", 0)))
    return quick is not None and quick[0] == art["quick"]


# ------------------------------------------------------------------------- writing
def _index_folders(top: str, ml_dir: str, rows: list[dict[str, Any]], limit: int) -> list[list[str]]:
    """Give each folder proven by its fingerprint the stats of its subfolders (``dirs``) and
    its files a place in the private Git index, unless a subfolder changed in the racy
    window. The index is written again only when a folder's fingerprint moved. Returns
    what the index holds: [folder, fingerprint] pairs."""
    from gitml.artifacts.folder_scan import quick_fingerprint

    candidates: list[tuple[dict[str, Any], list[str]]] = []
    for row in rows:
        if row["kind"] != "dir" or "quick" not in row or "watch" in row:
            continue  # a watched folder needs no index (and a status that stopped it walks)
        listed = _listing(os.path.join(top, row["path"]))
        if listed is None or any(r[2] >= limit for _, r in listed[0]):  # mtime: the racy rule
            continue
        row["dirs"] = listed[0]
        candidates.append((row, [f"{row['path']}/{f}" for f in listed[1]]))
    if not candidates:
        return []
    held = [[row["path"], row["quick"]] for row, _ in candidates]
    index_path = os.path.join(ml_dir, STATUS_INDEX)
    if held != _previous_index(ml_dir) or not os.path.exists(index_path):
        files = sorted(f for _, fs in candidates for f in fs)  # Git's order: no insertion moves
        if not stat_index.write(top, index_path, files):
            held = []
    for row, _ in candidates:  # a file added or changed while listing moved the fingerprint
        quick = quick_fingerprint(os.path.join(top, row["path"]), int(row.get("files", 0)))
        if not held or quick is None or quick[0] != row["quick"]:
            del row["dirs"]
    return held if any("dirs" in row for row, _ in candidates) else []


def _listing(root: str) -> tuple[list[list[Any]], list[str]] | None:
    """([subfolder relative to ``root``, its stat row] for ``root`` and each folder below
    it, [each file relative to ``root``]); None when it changed under us."""
    dirs: list[list[Any]] = []
    files: list[str] = []
    stack = [("", root)]
    try:
        while stack:
            rel, path = stack.pop()
            dirs.append([rel, _stat_row(os.lstat(os.path.join(root, rel)))])  # as the check does
            with os.scandir(path) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append((f"{rel}{e.name}/", e.path))
                    else:
                        files.append(rel + e.name)
    except OSError:
        return None
    return dirs, files


def _previous_index(ml_dir: str) -> list[list[str]] | None:
    try:
        with open(os.path.join(ml_dir, SNAPSHOT_NAME), "rb") as f:
            held = marshal.loads(f.read()).get("stat_index")
    except (OSError, ValueError, EOFError, TypeError, AttributeError):
        return None
    return held if isinstance(held, list) else None


def snapshot_path(repo: MLRepo) -> str:
    return os.path.join(repo.ml_dir, SNAPSHOT_NAME)


def drop(ml_dir: str) -> None:
    try:  # noqa: SIM105  (contextlib would cost the quick path ~2 ms of imports)
        os.unlink(os.path.join(ml_dir, SNAPSHOT_NAME))
    except FileNotFoundError:
        pass


def write(repo: MLRepo, started_ns: int, artifacts: list[dict[str, Any]]) -> bool:
    """Record the stats that prove ``artifacts`` (path, kind, files; folders with ``watch``
    or ``quick``) clean, as seen by a full status that started at ``started_ns``. Nothing
    is written (and an old snapshot is removed) when a stat is racy. True when written."""
    top = str(repo.workdir)
    if not os.path.isdir(os.path.join(top, ".git")) or os.path.realpath(repo.ml_dir) != os.path.realpath(
            os.path.join(top, ".git", "ml")):
        return False  # the quick path only serves a main work tree whose .git is a folder
    limit = started_ns - RACY_MARGIN_NS
    try:
        index = os.stat(os.path.join(top, ".git", "index"))
        rows = []
        racy = index.st_mtime_ns >= limit
        for art in artifacts:
            path = os.path.join(top, art["path"])
            pst, st = os.stat(path + ".gitml"), os.stat(path)
            racy = racy or pst.st_mtime_ns >= limit
            row = dict(art, pointer=_stat_row(pst))
            if art["kind"] == "file":
                racy = racy or st.st_mtime_ns >= limit
                row["stat"] = _stat_row(st)
            else:
                row["root"] = [st.st_dev, st.st_ino]
            rows.append(row)
    except OSError:
        racy = True
    if racy:
        drop(str(repo.ml_dir))
        return False
    indexed = _index_folders(top, str(repo.ml_dir), rows, limit)
    data = marshal.dumps({"v": _version(), "workdir": top, "index": _stat_row(index), "artifacts": rows,
                          "stat_index": indexed})
    dest = snapshot_path(repo)
    tmp = os.path.join(str(repo.ml_dir), temp_name(SNAPSHOT_NAME))
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    except OSError:
        try:  # noqa: SIM105
            os.unlink(tmp)
        except OSError:
            pass
        return False
    return True
