"""Where gitml keeps its files, and how its temporary files are named (no gitml imports).

Every path below Git's common dir and every temp-file name is built here, so a reader
finds the whole on-disk layout in one place and gc sweeps exactly what others write.
"""

from __future__ import annotations

import _thread
import os

TYPE_CHECKING = False  # importing typing costs ~2 ms of each command's start-up
if TYPE_CHECKING:
    from pathlib import Path

COMMITTED_DIR = ".gitml"  # committed: config.toml, runs/, checks/, env/
COMMITTED_NAME = "config.toml"
ML_DIR = "ml"  # under Git's common dir: the store and local state, shared by worktrees

# below <git common dir>/ml
STORE_DIR = "store"
STAT_CACHE = "stat-cache.sqlite"
#: what proved the last status all clean (gitml.artifacts.quick_status); beside the stat cache
STATUS_SNAPSHOT = "status-snapshot.bin"
#: a private Git index of the artifact folders' files, for Git's stat loop (gitml.git.stat_index)
STATUS_INDEX = "status-index"
STORE_LOCK = "store.lock"
WORKTREE_LOCK = "worktree.lock"  # read-modify-write of .gitignore, .gitattributes, pointers
CONFIG_LOCK = "config.lock"
LOCAL_CONFIG = "config.local.toml"
KNOWN_REMOTES = "remotes.toml"  # every remote this clone has seen, whatever is checked out
REMOTES_DIR = "remotes"  # per remote: <id>.known (keys it holds), <id>.packs/ (pack indexes)
MATERIALIZED_DIR = "cache/materialized"
EXP_SUMMARIES = "cache/exp-summaries.json"  # trial commit -> its summary (exp show)

# below the store root
STORE_OBJECTS = "objects"
STORE_CHUNKED = "chunked"
STORE_TMP = "tmp"

#: every temp file gitml creates ends so; a killed process leaves nothing else behind
TMP_SUFFIX = ".incomplete"
#: prefix of temp files gitml creates beside a destination (work tree, folder remotes)
TMP_PREFIX = ".tmp-gitml-"


def committed_config(workdir: Path) -> Path:
    return workdir / COMMITTED_DIR / COMMITTED_NAME


def ml_path(ml_dir: Path, name: str) -> Path:
    return ml_dir / name


def temp_name(name: str) -> str:
    """A temp-file name for ``name`` private to this process and thread, so two writers
    never share one, and a sweeper can tell whose it is (:func:`temp_owner`)."""
    return f"{TMP_PREFIX}{name[:80]}.{os.getpid()}.{_thread.get_ident()}{TMP_SUFFIX}"


def is_temp_name(name: str) -> bool:
    return name.endswith(TMP_SUFFIX) and (name.startswith(TMP_PREFIX) or name.startswith("."))


def temp_owner(name: str) -> int | None:
    """The pid that made the temp file ``name`` (None when the name does not say)."""
    if not is_temp_name(name):
        return None
    parts = name[: -len(TMP_SUFFIX)].rsplit(".", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return int(parts[1])


def owner_is_gone(name: str) -> bool:
    """True when the process that made temp file ``name`` has exited (on this machine)."""
    pid = temp_owner(name)
    if pid is None:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a killed process nobody has reaped yet is a zombie: gone all the same
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] == b"Z"
    except (OSError, IndexError):
        return False
TRAFFIC_DIR = "traffic"  # under ML_DIR: traffic/<model>/ holds the served model's traffic log
SERVE_DIR = "serve"  # under ML_DIR: serve/<model>/ holds `git ml serve`'s bundles and state
