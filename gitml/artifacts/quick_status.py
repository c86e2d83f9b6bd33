"""A no-op ``git ml status`` proved from stats recorded by the last full one.

After a full status finds every artifact clean it writes a snapshot: the stat of Git's
index (which pointers are tracked), of each pointer file and each file artifact, and for
each folder artifact the watcher's token (:mod:`gitml.artifacts.watch_client`), or the
stats of its subfolders with its files in a private Git index
(:mod:`gitml.git.stat_index`), or else its quick fingerprint. The next status re-stats
those few paths and asks the watcher or Git (or re-fingerprints the folder); when all
agree, every artifact is still clean and nothing else is imported, opened or hashed. Any
difference, a racy stat (changed in the clock tick the snapshot was taken), or no
snapshot means the full status runs instead.

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
from gitml.layout import STATUS_INDEX
from gitml.layout import STATUS_SNAPSHOT as SNAPSHOT_NAME

TYPE_CHECKING = False  # importing typing costs ~2 ms of each command's start-up
if TYPE_CHECKING:
    from typing import Any

    from gitml.repo import MLRepo

VERSION = 1
_GIT_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_CEILING_DIRECTORIES")


def _version() -> str:
    """The snapshot's format, and marshal's (which follows the Python version)."""
    return f"{VERSION}/{marshal.version}/{sys.version_info[0]}.{sys.version_info[1]}"


def _stat_row(st: os.stat_result) -> list[int]:
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode]


def _load(ml_dir: str, top: str) -> dict[str, Any] | None:
    """The snapshot written for the work tree ``top`` by this format, or None."""
    try:
        with open(os.path.join(ml_dir, SNAPSHOT_NAME), "rb") as f:
            snap = marshal.loads(f.read())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if not isinstance(snap, dict) or snap.get("v") != _version() or snap.get("workdir") != top:
        return None
    return snap


def _dirs_unchanged(path: str, dirs: list[list[Any]]) -> bool:
    """Whether the folder ``path`` and its subfolders still have the recorded stats: then
    no file was added, removed or renamed in it."""
    try:
        return all(_stat_row(os.lstat(os.path.join(path, rel))) == row for rel, row in dirs)
    except OSError:
        return False


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


def clean_line(count: int) -> str:
    """What status prints when every artifact is clean (the quick path and the full one)."""
    return f"{count} artifacts, all clean"


def clean_count() -> int | None:
    """How many artifacts there are when the snapshot proves every one still clean; None
    when it cannot (then run the full status)."""
    if any(k in os.environ for k in _GIT_ENV):
        return None
    top = _find_top(os.getcwd())
    if top is None or not os.path.isdir(os.path.join(top, ".gitml")):
        return None  # not set up (any more): the full status says so
    ml_dir = os.path.join(top, ".git", "ml")
    snap = _load(ml_dir, top)
    if snap is None:
        return None
    try:
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
        if not _dirs_unchanged(path, art["dirs"]):
            return False
        indexed.append(art["path"])
        return True
    return "quick" in art and _same_fingerprint(path, art)


def _same_fingerprint(path: str, art: dict[str, Any]) -> bool:
    from gitml.artifacts.folder_scan import quick_fingerprint

    quick = quick_fingerprint(path, int(art.get("files", 0)))
    return quick is not None and quick[0] == art["quick"]


# ------------------------------------------------------------------------- writing
def _index_folders(top: str, ml_dir: str, rows: list[dict[str, Any]], limit: int,
                   prev: dict[str, Any] | None) -> list[list[str]]:
    """Give each folder proven by its fingerprint the stats of its subfolders (``dirs``) and
    its files a place in the private Git index, unless a subfolder changed in the racy
    window. When the index already holds these folders at these fingerprints it is kept,
    and so are subfolder stats that still hold (no walk). Returns what the index holds:
    [folder, fingerprint] pairs."""
    wanted = [row for row in rows if row["kind"] == "dir" and "quick" in row and "watch" not in row]
    if not wanted:  # a watched folder needs no index (and a status that stopped it walks)
        return []
    index_path = os.path.join(ml_dir, STATUS_INDEX)
    held = [[row["path"], row["quick"]] for row in wanted]
    if prev is not None and held == prev.get("stat_index") and os.path.exists(index_path):
        # the index holds these folders at these fingerprints: keep it, and keep the
        # subfolder stats that still hold
        before = {r["path"]: r for r in prev["artifacts"]}
        fresh = []
        for row in wanted:
            old = before.get(row["path"], {})
            if "dirs" in old and _dirs_unchanged(os.path.join(top, row["path"]), old["dirs"]):
                row["dirs"] = old["dirs"]
            elif _take_dirs(top, row, limit) is not None:
                fresh.append(row)
    else:
        listed = [(row, _take_dirs(top, row, limit)) for row in wanted]
        fresh = [row for row, files in listed if files is not None]
        files = sorted(f for _, fs in listed if fs is not None for f in fs)  # Git's order: no moves
        if not fresh or not stat_index.write(top, index_path, files):
            for row in fresh:
                del row["dirs"]
            return []
    _confirm(top, fresh)
    return [[row["path"], row["quick"]] for row in wanted if "dirs" in row]


def _take_dirs(top: str, row: dict[str, Any], limit: int) -> list[str] | None:
    """List the folder: its subfolders' stats into ``row["dirs"]``, and its files (work-tree
    relative) returned; None, and no ``dirs``, when it changed meanwhile or in the racy window."""
    listed = _listing(os.path.join(top, row["path"]))
    if listed is None or any(r[2] >= limit for _, r in listed[0]):  # mtime: the racy rule
        return None
    row["dirs"] = listed[0]
    return [f"{row['path']}/{f}" for f in listed[1]]


def _confirm(top: str, rows: list[dict[str, Any]]) -> None:
    """Drop ``dirs`` from a folder listed after its proof whose fingerprint moved since
    (a file added or changed while it was being listed)."""
    for row in rows:
        if not _same_fingerprint(os.path.join(top, row["path"]), row):
            del row["dirs"]


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
    from gitml.store.stat_cache import RACY_MARGIN_NS  # one racy rule (not on the quick path)

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
    indexed = _index_folders(top, str(repo.ml_dir), rows, limit, _load(str(repo.ml_dir), top))
    data = marshal.dumps({"v": _version(), "workdir": top, "index": _stat_row(index), "artifacts": rows,
                          "stat_index": indexed})
    from pathlib import Path

    from gitml.store.fsutil import atomic_write_bytes

    try:
        atomic_write_bytes(Path(snapshot_path(repo)), data)
    except OSError:
        return False
    return True
