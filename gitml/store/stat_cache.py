"""Stat cache: (inode, size, mtime_ns, ctime_ns) → content id, so unchanged files are never
re-hashed. Backed by SQLite in WAL mode (safe for concurrent gitml processes).

An entry is trusted only if the file's mtime is older than the moment the entry was
recorded ("racy" entries, whose file may have changed in the same clock tick, are
re-hashed once — the same rule Git uses for its index).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from gitml.errors import GitMLError
from gitml.layout import STATUS_SNAPSHOT

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    ino INTEGER NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
    oid TEXT NOT NULL, recorded_ns INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS complete (oid TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS watched (
    path TEXT PRIMARY KEY, token TEXT NOT NULL, oid TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dirs (
    path TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, oid TEXT NOT NULL,
    recorded_ns INTEGER NOT NULL
) WITHOUT ROWID;
"""

StatKey = tuple[int, int, int, int]
# mtime is taken from a coarse kernel clock; entries for files modified this close to the
# moment they were hashed are re-hashed once and then trusted.
RACY_MARGIN_NS = 1_000_000_000


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class StatCache:
    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self._conn = self._open()
            except (sqlite3.OperationalError, OSError) as e:
                if _disk_full(self.db_path.parent):
                    raise GitMLError(f"no space left on device for the stat cache {self.db_path}",
                                     "free some space and run the command again") from e
                raise GitMLError(f"cannot open the stat cache {self.db_path}: {e}",
                                 "check free space and the permissions of that file and its "
                                 "folder; it is only a cache: deleting it is safe") from e
        return self._conn

    def _open(self) -> sqlite3.Connection:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.db_path, timeout=60, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
        except sqlite3.OperationalError:
            conn.close()
            raise  # cannot open or write it: the user must fix permissions
        except sqlite3.DatabaseError:
            # A damaged cache is only a cache: start again rather than fail.
            conn.close()
            for suffix in ("", "-wal", "-shm"):
                Path(str(self.db_path) + suffix).unlink(missing_ok=True)
            conn = sqlite3.connect(self.db_path, timeout=60, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
        return conn

    def lookup(self, path: str, st: os.stat_result) -> str | None:
        row = self._db().execute(
            "SELECT ino, size, mtime_ns, ctime_ns, oid, recorded_ns FROM files WHERE path=?",
            (path,)).fetchone()
        if row is None:
            return None
        return _trusted(row, stat_key(st))

    def load_prefix(self, prefix: str) -> dict[str, tuple[int, int, int, int, str, int]]:
        """All entries under a folder in one query (for directory artifacts)."""
        rows = self._db().execute(
            "SELECT path, ino, size, mtime_ns, ctime_ns, oid, recorded_ns FROM files "
            "WHERE path >= ? AND path < ?", (prefix, prefix + "\U0010ffff")).fetchall()
        return {r[0]: r[1:] for r in rows}

    def record_many(self, entries: Iterable[tuple[str, os.stat_result, str]], *,
                    written_by_us: bool = False) -> None:
        """Remember hashed files. ``written_by_us``: gitml just wrote these bytes itself
        (checkout), so the entry is trusted at once instead of waiting out the racy window."""
        now = time.time_ns()
        rows = [(p, *stat_key(st), oid,
                 max(now, st.st_mtime_ns + RACY_MARGIN_NS + 1) if written_by_us else now)
                for p, st, oid in entries]
        if not rows:
            return
        db = self._db()
        for attempt in range(5):
            try:
                db.execute("BEGIN IMMEDIATE")
                db.executemany("INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?)", rows)
                db.execute("COMMIT")
                return
            except sqlite3.OperationalError:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                if attempt == 4:
                    return  # a cache that cannot be written only costs a re-hash later
                time.sleep(0.1 * (attempt + 1))

    # A folder's fingerprint hashes every member's path and stat: when it is unchanged the
    # folder's tree id is known without building the tree (one row instead of one per file).
    def lookup_dir(self, path: str, fingerprint: str, newest_mtime_ns: int) -> str | None:
        row = self._db().execute("SELECT fingerprint, oid, recorded_ns FROM dirs WHERE path=?",
                                 (path,)).fetchone()
        if row is None or row[0] != fingerprint or newest_mtime_ns >= row[2] - RACY_MARGIN_NS:
            return None
        return str(row[1])

    def record_dir(self, path: str, fingerprint: str, oid: str) -> None:
        with contextlib.suppress(sqlite3.OperationalError):
            self._db().execute("INSERT OR REPLACE INTO dirs VALUES (?,?,?,?)",
                               (path, fingerprint, oid, time.time_ns()))

    # A folder's tree id as of a watcher's token: while the watcher says nothing touched
    # the folder since that token, the id holds without a single stat.
    def watched_dirs(self, paths: list[str]) -> dict[str, tuple[str, str]]:
        """path -> (token, tree id) for those of ``paths`` with a record."""
        marks = ",".join("?" * len(paths))
        rows = self._db().execute(f"SELECT path, token, oid FROM watched WHERE path IN ({marks})",
                                  paths).fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    def record_watched(self, path: str, token: str, oid: str) -> None:
        with contextlib.suppress(sqlite3.OperationalError):
            self._db().execute("INSERT OR REPLACE INTO watched VALUES (?,?,?)", (path, token, oid))

    # Directory artifacts whose every member object was seen in the store: saves one
    # stat per member on each status. gc clears it.
    def is_complete(self, oid: str) -> bool:
        return self._db().execute("SELECT 1 FROM complete WHERE oid=?", (oid,)).fetchone() is not None

    def mark_complete(self, oid: str) -> None:
        with contextlib.suppress(sqlite3.OperationalError):
            self._db().execute("INSERT OR IGNORE INTO complete VALUES (?)", (oid,))

    def clear_complete(self) -> None:
        """Forget every completeness mark, and the status snapshot that relied on them."""
        self._db().execute("DELETE FROM complete")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.db_path.parent / STATUS_SNAPSHOT)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _disk_full(folder: Path) -> bool:
    try:
        return os.statvfs(folder).f_bavail == 0
    except OSError:
        return False


def _trusted(row: tuple[int, int, int, int, str, int] | tuple[object, ...], key: StatKey) -> str | None:
    ino, size, mtime_ns, ctime_ns, oid, recorded_ns = row
    if (ino, size, mtime_ns, ctime_ns) != key:
        return None
    if mtime_ns >= recorded_ns - RACY_MARGIN_NS:  # type: ignore[operator]
        return None  # racy: a change in the same clock tick would not show in mtime
    return str(oid)


def trusted(row: tuple[object, ...], st: os.stat_result) -> str | None:
    return _trusted(row, stat_key(st))
