"""Git plumbing for experiments: hidden refs, work-tree snapshots, throwaway worktrees.

Trials are commits on ``refs/gitml/exps/<name>``. They are made with plumbing
(``write-tree`` / ``commit-tree`` / ``update-ref``) from a temporary index, so neither the
user's branch, nor their index, nor their work tree changes, and no hook runs. Ordinary
refs keep the commits (and through them the artifacts) alive across ``git gc`` and
``git ml gc``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gitml.errors import GitMLError
from gitml.git.repo import GitRepo

EXPS_PREFIX = "refs/gitml/exps/"
QUEUE_PREFIX = "refs/gitml/exps-queue/"
#: every git call here runs without hooks: trials are plumbing, not user commits
_NO_HOOKS = ("-c", "core.hooksPath=/dev/null")
_SEP = "\x1f"  # unit separator between fields of a formatted listing
_END = "\x1e"  # record separator


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None,
         check: bool = True) -> str:
    proc = subprocess.run(["git", *_NO_HOOKS, *args], cwd=cwd, capture_output=True, text=True,
                          env=env, input=input)
    if check and proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise GitMLError(f"git {args[0]} failed: {msg[-1] if msg else proc.returncode}")
    return proc.stdout


@dataclass(frozen=True)
class Snapshot:
    commit: str         # the work tree as a commit (HEAD itself when they match)
    head: str | None    # the user's HEAD when it was taken (None before the first commit)


def snapshot_worktree(git: GitRepo, message: str) -> Snapshot:
    """A commit holding the work tree as it is now (tracked and untracked, not ignored),
    its parent HEAD; HEAD itself when the work tree matches it. The user's index is only
    copied (to keep its stat data), never written."""
    with tempfile.TemporaryDirectory(prefix="gitml-snap-") as tmp:
        index = Path(tmp) / "index"
        real = git.index_file or git.git_dir / "index"
        if real.exists():
            shutil.copyfile(real, index)
        env = {**os.environ, "GIT_INDEX_FILE": str(index)}
        _git(git.workdir, "add", "-A", "--", ":/", env=env)
        tree = _git(git.workdir, "write-tree", env=env).strip()
    head, head_tree = _head_and_tree(git)
    if head is not None and head_tree == tree:
        return Snapshot(head, head)
    return Snapshot(commit_tree(git, tree, [head] if head else [], message), head)


def _head_and_tree(git: GitRepo) -> tuple[str | None, str | None]:
    """HEAD's commit and tree in one call; (None, None) before the first commit."""
    proc = subprocess.run(["git", *_NO_HOOKS, "rev-parse", "HEAD^{commit}", "HEAD^{tree}"],
                          cwd=git.workdir, capture_output=True, text=True)
    ids = proc.stdout.split()
    if proc.returncode != 0 or len(ids) != 2:
        return None, None
    return ids[0], ids[1]


def commit_tree(git: GitRepo, tree: str, parents: list[str], message: str) -> str:
    args = ["commit-tree", tree]
    for p in parents:
        args += ["-p", p]
    return _git(git.workdir, *args, input=message).strip()


def commit_worktree(wt: Path, parent: str, message: str) -> str:
    """Commit everything in the throwaway worktree ``wt`` (its own index) on top of ``parent``."""
    _git(wt, "add", "-A", "--", ":/")
    tree = _git(wt, "write-tree").strip()
    return _git(wt, "commit-tree", tree, "-p", parent, input=message).strip()


def add_worktree(git: GitRepo, commit: str, parent_dir: Path | None = None) -> Path:
    """Check ``commit`` out, detached, into a new temporary worktree; returns its path."""
    path = Path(tempfile.mkdtemp(prefix="gitml-exp-", dir=parent_dir))
    try:
        _git(git.workdir, "worktree", "add", "--detach", "--force", str(path), commit)
    except GitMLError:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return path


def worktree_git(git: GitRepo, path: Path) -> GitRepo:
    """The Git context of a worktree made by :func:`add_worktree`, read from its ``.git``
    file instead of asking git (one process less per trial)."""
    try:
        text = (path / ".git").read_text(encoding="utf-8").strip()
    except OSError as e:
        raise GitMLError(f"worktree {path} has no .git file: {e.strerror}") from e
    if not text.startswith("gitdir: "):
        raise GitMLError(f"worktree {path}: unexpected .git file")
    git_dir = Path(text[len("gitdir: "):])
    return GitRepo(path.resolve(), (path / git_dir).resolve(), git.common_dir)


def remove_worktree(git: GitRepo, path: Path) -> None:
    removed = subprocess.run(["git", *_NO_HOOKS, "worktree", "remove", "--force", str(path)],
                             cwd=git.workdir, capture_output=True).returncode == 0
    if not removed:  # half-made or damaged: delete the folder, let git forget it
        shutil.rmtree(path, ignore_errors=True)
        _git(git.workdir, "worktree", "prune", check=False)


def update_ref(git: GitRepo, ref: str, commit: str, old: str | None = None) -> None:
    """Point ``ref`` at ``commit``; with ``old`` ("" = must not exist) only if it is still that."""
    args = ["update-ref", ref, commit]
    if old is not None:
        args.append(old or "0" * 40)
    _git(git.workdir, *args)


def delete_refs(git: GitRepo, refs: list[str]) -> None:
    if refs:
        _git(git.workdir, "update-ref", "--stdin", input="".join(f"delete {r}\n" for r in refs))


def ref_commits(git: GitRepo, prefix: str) -> dict[str, str]:
    """ref -> commit of every ref under ``prefix``; reads no object."""
    return _ref_map(_git(git.workdir, "for-each-ref", "--format=%(objectname) %(refname)", prefix), " ")


def commit_bodies(git: GitRepo, commits: list[str]) -> dict[str, str]:
    """commit -> its message body (after the subject), for many commits in one git call."""
    if not commits:
        return {}
    out = _git(git.workdir, "-c", "log.showSignature=false", "log", "--no-walk=unsorted", "--stdin",
               f"--format=%H{_SEP}%b{_END}",
               input="".join(c + "\n" for c in commits))
    bodies: dict[str, str] = {}
    for rec in out.split(_END):
        rec = rec.lstrip("\n")
        if rec:
            commit, _, body = rec.partition(_SEP)
            bodies[commit] = body
    return bodies


def resolve_ref(git: GitRepo, ref: str) -> str | None:
    out = _git(git.workdir, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False).strip()
    return out or None


def changed_paths(git: GitRepo, a: str, b: str) -> list[str]:
    out = _git(git.workdir, "diff", "--name-only", "-z", "--no-renames", a, b)
    return [p for p in out.split("\0") if p]


def dirty_paths(git: GitRepo) -> list[str]:
    """Paths with staged or unstaged changes, or untracked (``git status``)."""
    out = _git(git.workdir, "status", "--porcelain", "-z", "--untracked-files=all")
    paths = []
    entries = out.split("\0")
    i = 0
    while i < len(entries):
        e = entries[i]
        if len(e) > 3:
            paths.append(e[3:])
            if e[0] in "RC":
                i += 1  # the rename's source follows
        i += 1
    return paths


def checkout_paths(git: GitRepo, commit: str, paths: list[str]) -> None:
    """Bring ``paths`` as they are in ``commit`` into the index and the work tree."""
    present = set(_git(git.workdir, "ls-tree", "-r", "--name-only", "-z", commit).split("\0"))
    keep = [p for p in paths if p in present]
    gone = [p for p in paths if p not in present]
    if keep:
        _git(git.workdir, "checkout", commit, "--", *keep)
    if gone:
        _git(git.workdir, "rm", "-q", "--ignore-unmatch", "-f", "--", *gone)


def create_branch(git: GitRepo, branch: str, commit: str) -> None:
    if resolve_ref(git, f"refs/heads/{branch}") is not None:
        raise GitMLError(f"branch '{branch}' already exists", "pick another name")
    _git(git.workdir, "check-ref-format", "--branch", branch)
    _git(git.workdir, "branch", branch, commit)


def push_refs(git: GitRepo, remote: str, refspecs: list[str]) -> None:
    if refspecs:
        _git(git.workdir, "push", "--no-verify", remote, *refspecs)


def fetch_refs(git: GitRepo, remote: str, refspecs: list[str]) -> None:
    _git(git.workdir, "fetch", "--no-tags", remote, *refspecs)


def remote_refs(git: GitRepo, remote: str, prefix: str) -> dict[str, str]:
    return _ref_map(_git(git.workdir, "ls-remote", remote, f"{prefix}*"), "\t")


def _ref_map(out: str, sep: str) -> dict[str, str]:
    """ref -> commit from lines of ``<commit><sep><ref>``."""
    refs: dict[str, str] = {}
    for line in out.splitlines():
        commit, _, ref = line.partition(sep)
        if ref:
            refs[ref] = commit
    return refs


def read_file(git: GitRepo, commit: str, path: str) -> bytes | None:
    proc = subprocess.run(["git", "cat-file", "blob", f"{commit}:{path}"], cwd=git.workdir,
                          capture_output=True)
    return proc.stdout if proc.returncode == 0 else None
