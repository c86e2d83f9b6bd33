"""What ``git ml install`` sets up for manifests: the pointer diff driver.

* ``diff.gitml.textconv`` runs ``git-ml-hook textconv`` so ``git diff`` and ``git log -p``
  on a pointer show a summary of the data (local Git config);
* ``.gitattributes`` gets ``*.gitml diff=gitml`` (committed, staged here).

Manifests travel as committed files (``.gitml/runs``, ``.gitml/env``, ``.gitml/checks``)
and commit trailers, so no notes refs need fetch/push refspecs.
"""

from __future__ import annotations

import shlex
import shutil
import sys

from gitml.repo import MLRepo
from gitml.store.fsutil import atomic_write_text, file_lock

ATTR_LINE = "*.gitml diff=gitml"


def textconv_command() -> str:
    exe = shutil.which("git-ml-hook")
    if exe:
        return f"{shlex.quote(exe)} textconv"
    return f"{shlex.quote(sys.executable)} -m gitml.hooks.entry textconv"


def configure(repo: MLRepo) -> None:
    repo.git.set_config("diff.gitml.textconv", textconv_command())
    attrs = repo.workdir / ".gitattributes"
    with file_lock(repo.worktree_lock_path()):  # a read-modify-write of a shared file
        try:
            text = attrs.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        if ATTR_LINE in (ln.strip() for ln in text.splitlines()):
            return
        if text and not text.endswith("\n"):
            text += "\n"
        atomic_write_text(attrs, text + ATTR_LINE + "\n", tmp_dir=repo.store.tmp_dir)
    repo.git.stage([".gitattributes"])
