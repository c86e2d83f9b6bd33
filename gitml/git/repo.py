"""Access to the Git repository: discovery, index, trees at revisions, config, hooks.

Reads go through pygit2. Index writes go through the ``git`` executable because Git hooks
run with ``GIT_DIR``/``GIT_INDEX_FILE`` pointing at the index being committed, and only Git
itself honours every form of those (temporary indexes of ``git commit -a``, worktrees).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from gitml.errors import GitMLError, NotARepositoryError

if TYPE_CHECKING:
    import pygit2

_TREE = 2  # pygit2.enums.ObjectType.TREE (libgit2's GIT_OBJECT_TREE)
_BLOB = 3  # pygit2.enums.ObjectType.BLOB


#: in the per-worktree git dir: paths to stage into the real index after the commit
RESTAGE_MARKER = "gitml-restage-after-commit"


class GitRepo:
    """A Git work tree. Discovery and index listings use the git executable (a few ms, and
    exact hook semantics); pygit2 is opened lazily for object reads and history walks, so
    commands like ``status`` never pay for importing it."""

    def __init__(self, workdir: Path, git_dir: Path, common_dir: Path,
                 index_file: Path | None = None) -> None:
        self.workdir = workdir
        self.git_dir = git_dir
        self.common_dir = common_dir
        self.index_file = index_file

    @property
    def committing_from_temporary_index(self) -> bool:
        """True inside a hook of `git commit -- PATHS` (or `-o`/`-i`): Git commits from a
        temporary index, so what a hook stages reaches the commit but not the real index."""
        return self.index_file is not None and self.index_file != (self.git_dir / "index").resolve()

    @cached_property
    def raw(self) -> pygit2.Repository:
        import pygit2

        try:
            raw = pygit2.Repository(str(self.git_dir))
        except pygit2.GitError as e:
            raise NotARepositoryError(f"cannot open the Git repository: {e}") from e
        if raw.workdir is None or Path(raw.workdir).resolve() != self.workdir:
            raw.workdir = str(self.workdir)
        return raw

    @classmethod
    def discover(cls, start: Path | None = None) -> GitRepo:
        start = (start or Path.cwd()).resolve()
        proc = subprocess.run(
            ["git", "rev-parse", "--is-bare-repository", "--show-toplevel", "--absolute-git-dir",
             "--git-common-dir"],
            cwd=start, capture_output=True, text=True)
        if proc.returncode != 0:
            if "not a git repository" in proc.stderr.lower():
                raise NotARepositoryError(f"not a Git repository: {start}",
                                          "run `git init` first, or cd into a repository")
            msg = proc.stderr.strip().splitlines()
            raise NotARepositoryError(f"cannot open the Git repository: {msg[-1] if msg else '?'}")
        lines = proc.stdout.splitlines()
        if lines[0] == "true" or len(lines) < 4:
            raise NotARepositoryError("this is a bare Git repository; gitml needs a work tree")
        workdir = Path(lines[1]).resolve()
        git_dir = Path(lines[2]).resolve()
        common = Path(lines[3])
        common = (common if common.is_absolute() else start / common).resolve()
        index_env = os.environ.get("GIT_INDEX_FILE")
        index_file = None
        if index_env:
            index_file = Path(index_env)
            if not index_file.is_absolute():
                # Git exports it relative to the work tree's top (where hooks run).
                index_file = (workdir / index_file).resolve()
        return cls(workdir, git_dir, common, index_file)

    # plumbing via the git executable ------------------------------------------
    def run_git(self, *args: str, input: str | None = None, check: bool = True) -> str:
        proc = subprocess.run(["git", *args], cwd=self.workdir, capture_output=True, text=True,
                              input=input)
        if check and proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            raise GitMLError(f"git {args[0]} failed: {msg[-1] if msg else proc.returncode}")
        return proc.stdout

    def stage(self, paths: Iterable[str]) -> None:
        """`git add` the paths; waits out another process's index.lock for a few seconds."""
        import time

        paths = list(paths)
        if not paths:
            return
        for attempt in range(40):
            proc = subprocess.run(["git", "add", "--", *paths], cwd=self.workdir,
                                  capture_output=True, text=True)
            if proc.returncode == 0:
                if self.committing_from_temporary_index:
                    # Git holds the real index locked until the commit ends: post-commit
                    # stages these there too (restage_after_commit)
                    with open(self.git_dir / RESTAGE_MARKER, "a") as f:
                        f.write("".join(p + "\n" for p in paths))
                return
            if "index.lock" not in proc.stderr or attempt == 39:
                msg = proc.stderr.strip().splitlines()
                raise GitMLError(f"git add failed: {msg[-1] if msg else proc.returncode}",
                                 "the files are stored; run `git add` on their pointers")
            time.sleep(0.15)

    def restage_after_commit(self) -> None:
        """After `git commit -- PATHS`: stage into the real index what hooks staged into the
        commit's temporary index, where the work tree still holds the committed version."""
        marker = self.git_dir / RESTAGE_MARKER
        try:
            paths = sorted(set(marker.read_text().split("\n")) - {""})
        except FileNotFoundError:
            return
        head = self.head()
        same = [p for p in paths if head is not None and (self.workdir / p).is_file()
                and self.read_blob(head, p) == (self.workdir / p).read_bytes()]
        self.stage(same)
        marker.unlink(missing_ok=True)

    def tags(self, pattern: str = "*") -> list[str]:
        """Tag names matching a glob, newest first (by creation date)."""
        out = self.run_git("tag", "--list", pattern, "--sort=-creatordate", check=False)
        return [t for t in out.splitlines() if t]

    def hooks_dir(self) -> Path:
        out = self.run_git("rev-parse", "--git-path", "hooks").strip()
        p = Path(out)
        return p if p.is_absolute() else (self.workdir / p).resolve()

    def set_config(self, key: str, value: str) -> None:
        self.raw.config[key] = value

    def get_config(self, key: str) -> str | None:
        try:
            return str(self.raw.config[key])
        except KeyError:
            return None

    # revisions -----------------------------------------------------------------
    def resolve(self, rev: str) -> str:
        import pygit2

        try:
            obj = self.raw.revparse_single(rev)
            commit = obj.peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError) as e:
            raise GitMLError(f"unknown revision '{rev}'", "see `git log` or `git tag` for valid names") from e
        return str(commit.id)

    def head(self) -> str | None:
        """HEAD's commit, None before the first commit. Until pygit2 is open, one git call
        (~2 ms) is cheaper than importing it (~60 ms)."""
        if "raw" not in self.__dict__:
            return self.run_git("rev-parse", "-q", "--verify", "HEAD^{commit}", check=False).strip() or None
        import pygit2

        try:
            return str(self.raw.head.target)
        except (pygit2.GitError, KeyError):
            return None

    def head_and_dirty(self) -> tuple[str | None, bool]:
        """HEAD's commit (None before the first commit) and whether tracked files differ
        from it, staged or not (untracked files do not count); one git call, no pygit2."""
        out = self.run_git("--no-optional-locks", "status", "--porcelain=v2", "--branch",
                           "--untracked-files=no", "-z")
        head: str | None = None
        dirty = False
        for rec in out.split("\0"):
            if rec.startswith("# branch.oid "):
                oid = rec[len("# branch.oid "):]
                head = None if oid == "(initial)" else oid
            elif rec[:2] in ("1 ", "2 ", "u "):
                dirty = True
        return head, dirty

    def _tree(self, rev: str) -> pygit2.Tree:
        import pygit2

        return self.raw[self.resolve(rev)].peel(pygit2.Tree)  # type: ignore[no-any-return]

    def read_blob(self, rev: str | None, path: str) -> bytes | None:
        """The bytes of ``path`` at ``rev`` (None: the index), or None when absent."""
        if rev is None:
            index = self.index()
            entry = index[path] if path in index else None  # noqa: SIM401 (Index has no .get)
            return None if entry is None else self._blob(entry.id)
        try:
            obj = self._tree(rev)[path]
        except KeyError:
            return None
        return obj.read_raw() if obj.type == _BLOB else None

    def _blob(self, oid: object) -> bytes:
        return self.raw[oid].read_raw()  # type: ignore[index]

    # index ---------------------------------------------------------------------
    def index(self) -> pygit2.Index:
        import pygit2

        self._refuse_split_index()
        if self.index_file is not None:
            return pygit2.Index(str(self.index_file))
        idx: pygit2.Index = self.raw.index
        idx.read(False)
        return idx

    def _refuse_split_index(self) -> None:
        """libgit2 cannot read a split index (``core.splitIndex``): say so in one line, with
        the fix, before pygit2 fails with a traceback. Git keeps the shared part as
        ``sharedindex.*`` in the git dir, so the common case costs one listing."""
        try:
            names = os.listdir(self.git_dir)
        except OSError:
            return
        if not any(n.startswith("sharedindex.") for n in names):
            return
        if self.run_git("rev-parse", "--shared-index-path", check=False).strip():
            raise GitMLError("this repository's index is split (core.splitIndex), which gitml cannot "
                             "read", "run `git config core.splitIndex false && git update-index "
                             "--no-split-index`")

    def index_paths(self, pattern: str | None = None) -> list[str]:
        """Paths in the index (``git ls-files``), optionally matching a pathspec glob."""
        args = ["ls-files", "-z", "--full-name"]
        if pattern:
            args += ["--", f":(top,glob){pattern}"]
        else:
            args += ["--", ":/"]
        out = self.run_git(*args)
        return [p for p in out.split("\0") if p]

    def index_blob_id(self, path: str) -> str | None:
        """The id of the blob staged at ``path`` (what ``git ls-files -s`` shows), or None."""
        idx = self.index()
        return str(idx[path].id) if path in idx else None

    def index_blobs(self, suffix: str) -> dict[str, bytes]:
        """Staged content of every index path ending with ``suffix``."""
        out: dict[str, bytes] = {}
        for e in self.index():
            if e.path.endswith(suffix):
                out[e.path] = self._blob(e.id)
        return out


    # trees -----------------------------------------------------------------------
    def tree_blobs(self, rev: str, suffix: str) -> dict[str, bytes]:
        """Content of every path ending with ``suffix`` in the tree of ``rev``."""
        out: dict[str, bytes] = {}
        for path, blob_id in self._walk_tree(self._tree(rev), "", {}):
            if path.endswith(suffix):
                out[path] = self._blob(blob_id)
        return out

    def _walk_tree(self, tree: pygit2.Tree, prefix: str,
                   memo: dict[str, list[tuple[str, pygit2.Oid]]]) -> Iterator[tuple[str, pygit2.Oid]]:
        for entry in tree:
            path = prefix + str(entry.name)
            if entry.type == _TREE:
                yield from self._walk_tree(self.raw[entry.id], path + "/", memo)  # type: ignore[arg-type]
            elif entry.type == _BLOB:
                yield path, entry.id

    def reachable_blobs(self, suffix: str) -> set[bytes]:
        """Content of every ``suffix`` blob in any commit reachable from any ref, the stash
        reflog, every worktree's HEAD and index. Subtrees seen once are not walked again."""
        import pygit2

        seen_trees: set[str] = set()
        seen_commits: set[str] = set()
        blobs: set[str] = set()
        stack: list[str] = []
        for tip in self._all_tips():
            stack.append(tip)
        while stack:
            cid = stack.pop()
            if cid in seen_commits:
                continue
            seen_commits.add(cid)
            try:
                commit = self.raw[cid].peel(pygit2.Commit)
            except (KeyError, ValueError, pygit2.GitError):
                continue
            self._collect_tree(commit.tree, suffix, seen_trees, blobs)
            stack.extend(str(p) for p in commit.parent_ids)
        out = {self._blob(b) for b in blobs}
        for index_path in self._all_index_files():
            try:
                idx = pygit2.Index(str(index_path))
            except pygit2.GitError:
                continue
            for e in idx:
                if e.path.endswith(suffix):
                    out.add(self._blob(e.id))
        return out

    def blobs_in_range(self, include: list[str], exclude: list[str], suffix: str) -> set[bytes]:
        """Content of ``suffix`` blobs in commits reachable from ``include`` but not ``exclude``
        (what a push sends)."""
        import pygit2

        walker = self.raw.walk(None)
        any_tip = False
        for tip in include:
            try:
                walker.push(self.raw[tip].peel(pygit2.Commit).id)
                any_tip = True
            except (KeyError, ValueError, pygit2.GitError):
                continue
        if not any_tip:
            return set()
        for ex in exclude:
            try:
                walker.hide(self.raw[ex].peel(pygit2.Commit).id)
            except (KeyError, ValueError, pygit2.GitError):
                continue  # unknown to us (not fetched): cannot exclude
        seen: set[str] = set()
        blobs: set[str] = set()
        for commit in walker:
            self._collect_tree(commit.tree, suffix, seen, blobs)
        return {self._blob(b) for b in blobs}

    def remote_tracking_tips(self, remote: str) -> list[str]:
        import pygit2

        prefix = f"refs/remotes/{remote}/"
        out = []
        for ref in self.raw.references:
            if ref.startswith(prefix):
                try:
                    out.append(str(self.raw.references[ref].peel(pygit2.Commit).id))
                except (pygit2.GitError, ValueError, KeyError):
                    continue
        return out

    def _collect_tree(self, tree: pygit2.Tree, suffix: str, seen: set[str], blobs: set[str]) -> None:
        tid = str(tree.id)
        if tid in seen:
            return
        seen.add(tid)
        for entry in tree:
            if entry.type == _TREE:
                self._collect_tree(self.raw[entry.id], suffix, seen, blobs)  # type: ignore[arg-type]
            elif entry.type == _BLOB and str(entry.name).endswith(suffix):
                blobs.add(str(entry.id))

    def _all_tips(self) -> Iterator[str]:
        import pygit2

        for ref in self.raw.references:
            try:
                yield str(self.raw.references[ref].peel(pygit2.Commit).id)
            except (pygit2.GitError, ValueError, KeyError):
                continue
        # every stash entry, not just the newest, lives in the stash reflog
        try:
            for entry in self.raw.references["refs/stash"].log():
                yield str(entry.oid_new)
        except (KeyError, pygit2.GitError):
            pass
        for wt_dir in self._worktree_git_dirs():
            try:
                text = (wt_dir / "HEAD").read_text().strip()
            except OSError:
                continue
            if text.startswith("ref: "):
                continue  # a branch: already among the refs
            yield text
        current = self.head()
        if current:
            yield current

    def _worktree_git_dirs(self) -> list[Path]:
        wt = self.common_dir / "worktrees"
        return [p for p in wt.iterdir() if p.is_dir()] if wt.is_dir() else []

    def _all_index_files(self) -> list[Path]:
        files = [self.common_dir / "index"] + [d / "index" for d in self._worktree_git_dirs()]
        if self.index_file is not None:
            files.append(self.index_file)
        return [f for f in files if f.is_file()]
