"""A private Git index of artifact folders' files, so Git's own multithreaded stat loop
(``git diff-files``) can say whether any of them changed: what one ``lstat`` per file in
Python costs 0.5 s for at 100,000 files takes Git 0.1 s.

The index lives in gitml's folder (never Git's real index), lists files Git otherwise
ignores, and is written with ``--info-only``: Git hashes each file to fill the entry but
stores no object. Settings that would change what the index records or where it goes
(split index, fsmonitor, untracked cache, stat checks a user relaxed) are pinned on every
call. Only ``os`` on the checking path: a no-op status imports this and little else.
"""

from __future__ import annotations

import os

#: every call pins these: what an entry records, how it is compared, where the index goes
PINNED = ("-c", "core.splitIndex=false", "-c", "index.version=2", "-c", "core.fsmonitor=false",
          "-c", "core.untrackedCache=false", "-c", "core.trustctime=true",
          "-c", "core.checkStat=default", "-c", "core.ignoreStat=false",
          "-c", "core.preloadIndex=true", "-c", "index.skipHash=false")


def write(top: str, index_path: str, files: list[str]) -> bool:
    """Write the index of ``files`` (paths relative to the work tree ``top``) to
    ``index_path`` (temp file, then rename). False when Git failed; nothing is left then."""
    import subprocess

    from gitml.layout import temp_name

    tmp = os.path.join(os.path.dirname(index_path), temp_name(os.path.basename(index_path)))
    env = dict(os.environ, GIT_INDEX_FILE=tmp)
    data = b"".join(os.fsencode(f) + b"\0" for f in files)
    try:
        proc = subprocess.run(["git", *PINNED, "update-index", "--add", "--info-only", "-z", "--stdin"],
                              cwd=top, env=env, input=data, capture_output=True)
        if proc.returncode != 0:
            raise OSError(proc.stderr.decode(errors="replace").strip())
        os.replace(tmp, index_path)
        return True
    except OSError:
        try:  # noqa: SIM105  (contextlib costs the checking path imports)
            os.unlink(tmp)
        except OSError:
            pass
        return False


def unchanged(top: str, index_path: str, folders: list[str]) -> bool:
    """Whether every file the index lists under ``folders`` still has the recorded stat
    (or, where Git cannot tell by the stat, the recorded content). Files added to the
    folders are not its business: the caller watches the folders' own mtimes for that."""
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return False
    env = dict(os.environ, GIT_INDEX_FILE=index_path, GIT_LITERAL_PATHSPECS="1")
    try:
        pid = os.posix_spawnp(
            "git", ["git", "-C", top, *PINNED, "diff-files", "--quiet", "--", *folders], env,
            file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
                          (os.POSIX_SPAWN_DUP2, devnull, 2)])
        _, status = os.waitpid(pid, 0)
    except OSError:
        return False
    finally:
        os.close(devnull)
    return os.waitstatus_to_exitcode(status) == 0
