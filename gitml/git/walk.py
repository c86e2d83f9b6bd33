"""First-parent history of one committed file: the versions of a small JSON file (gate
results, run records) along ``git log --first-parent``, oldest first.

Consecutive commits that carry the same blob are one version (a commit that did not
touch the file does not repeat its value).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gitml.errors import GitMLError

if TYPE_CHECKING:
    from gitml.git.repo import GitRepo


@dataclass
class FileVersion:
    commit: str
    blob: str
    data: bytes
    time: int
    summary: str


def file_history(git: GitRepo, rev: str, path: str, max_count: int = 500) -> list[FileVersion]:
    """Versions of ``path`` along the first-parent history of ``rev``, oldest first."""
    import pygit2

    from gitml.git.history import blob_id_at

    raw = git.raw
    try:
        commit: pygit2.Commit | None = raw.revparse_single(rev).peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError) as e:
        raise GitMLError(f"unknown revision '{rev}'", "see `git log` for valid names") from e
    path = path.strip("/")
    newest_first: list[FileVersion] = []
    last_blob: str | None = None
    seen = 0
    while commit is not None and seen < max_count * 20:
        seen += 1
        blob_id = blob_id_at(commit.tree, path)
        if blob_id is not None:
            summary = commit.message.split("\n", 1)[0]
            if newest_first and last_blob == blob_id:
                # same content one commit further back: the version was introduced earlier
                v = newest_first[-1]
                newest_first[-1] = FileVersion(str(commit.id), v.blob, v.data,
                                               int(commit.commit_time), summary)
            else:
                if len(newest_first) >= max_count:
                    break
                newest_first.append(FileVersion(str(commit.id), blob_id, raw[blob_id].read_raw(),
                                                int(commit.commit_time), summary))
        last_blob = blob_id
        commit = commit.parents[0] if commit.parents else None
    return list(reversed(newest_first))




def dir_blobs(git: GitRepo, rev: str, folder: str, suffix: str = "") -> dict[str, bytes]:
    """The files directly in ``folder`` at ``rev`` whose names end with ``suffix``
    (without walking the rest of the tree)."""
    import pygit2

    try:
        tree = git.raw.revparse_single(rev).peel(pygit2.Tree)
    except (KeyError, ValueError, pygit2.GitError) as e:
        raise GitMLError(f"unknown revision '{rev}'", "see `git log` for valid names") from e
    try:
        sub = tree[folder.strip("/")]
    except KeyError:
        return {}
    if sub.type != pygit2.enums.ObjectType.TREE:
        return {}
    out: dict[str, bytes] = {}
    for entry in git.raw[sub.id].peel(pygit2.Tree):
        if entry.type == pygit2.enums.ObjectType.BLOB and str(entry.name).endswith(suffix):
            out[f"{folder.strip('/')}/{entry.name}"] = git.raw[entry.id].read_raw()
    return out
