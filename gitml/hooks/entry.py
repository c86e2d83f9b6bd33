"""`git-ml-hook NAME ARGS…`: the body of every Git hook gitml installs, and of the
pre-commit framework hooks in `.pre-commit-hooks.yaml`.

Exit codes follow Git's hook contract: non-zero from pre-commit, commit-msg or pre-push
stops the commit or push.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from importlib.util import find_spec
from pathlib import Path

from gitml.errors import GitMLError
from gitml.repo import MLRepo

ZERO = "0" * 40


def _err(msg: str) -> None:
    print(f"gitml: {msg}", file=sys.stderr)


def verify_pointers(repo: MLRepo) -> int:
    """Refuse a commit whose staged pointers point at content missing from the store, or
    whose artifacts changed in the work tree since they were added."""
    from gitml.artifacts import worktree
    from gitml.store import pointer as ptr

    head = repo.git.head()
    staged = repo.git.index_blobs(ptr.SUFFIX)
    before = repo.git.tree_blobs(head, ptr.SUFFIX) if head else {}
    problems: list[str] = []
    for pointer_rel, data in sorted(staged.items()):
        if before.get(pointer_rel) == data:
            continue  # not part of this commit
        art = ptr.artifact_path_for(pointer_rel)
        try:
            p = ptr.parse(data, f"{pointer_rel} (staged)")
        except GitMLError as e:
            problems.append(f"{e.message}; restore it or run `git ml add {art}`")
            continue
        if not worktree.content_in_store(repo, p):
            problems.append(f"{art}: its content {p.oid[:12]} is not in the gitml store; "
                            f"run `git ml add {art}` (or `git ml pull`)")
            continue
        if repo.abspath(art).exists():
            cur = worktree.current_oid(repo, art)
            if cur != p.oid:
                problems.append(f"{art} changed since it was added; run `git ml add {art}`")
    for line in problems:
        _err(line)
    return 1 if problems else 0


def _gates(repo: MLRepo) -> int:
    from gitml.hooks.gates import run_pre_commit

    return int(run_pre_commit(repo))


def pre_commit(repo: MLRepo, argv: Sequence[str]) -> int:
    rc = verify_pointers(repo)
    if rc:
        return rc
    rc = _gates(repo)
    if rc == 0:
        from gitml.hooks.watch import write_watch_list

        write_watch_list(repo)
    return rc


def pre_commit_gates(repo: MLRepo, argv: Sequence[str]) -> int:
    return _gates(repo)


def commit_msg(repo: MLRepo, argv: Sequence[str]) -> int:
    if not argv:
        _err("commit-msg: missing message file argument")
        return 1
    if find_spec("gitml.runs.trailers") is None:
        return 0
    from gitml.runs.trailers import run_commit_msg

    return int(run_commit_msg(repo, Path(argv[0])))


def pre_push(repo: MLRepo, argv: Sequence[str]) -> int:
    git_remote = argv[0] if argv else "origin"
    from_framework = bool(os.environ.get("PRE_COMMIT_TO_REF"))
    text = "" if from_framework or sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    include = [ln[1] for ln in lines if len(ln) == 4 and ln[1] != ZERO]
    exclude = [ln[3] for ln in lines if len(ln) == 4 and ln[3] != ZERO]
    if from_framework:
        # the pre-commit framework passes the pushed range in its environment, not on stdin
        include = [os.environ["PRE_COMMIT_TO_REF"]]
        exclude = [os.environ.get("PRE_COMMIT_FROM_REF", ZERO)]
        exclude = [e for e in exclude if e != ZERO]
    tags = [ln[0] for ln in lines if len(ln) == 4 and ln[1] != ZERO and ln[3] == ZERO
            and ln[2].startswith("refs/tags/")]
    if not include:
        return 0
    rc = _upload_pushed(repo, git_remote, include, exclude)
    if rc == 0 and tags:
        rc = _deploy_tags(repo, tags)
    return rc


def _deploy_tags(repo: MLRepo, refs: Sequence[str]) -> int:
    if find_spec("gitml.registry.ontag") is None:
        return 0
    from gitml.registry.ontag import deploy_tags

    return deploy_tags(repo, refs)


def _upload_pushed(repo: MLRepo, git_remote: str, include: list[str], exclude: list[str]) -> int:
    from gitml.artifacts.sync import open_named_remote, push_artifacts
    from gitml.store import pointer as ptr

    exclude += repo.git.remote_tracking_tips(git_remote)
    blobs = repo.git.blobs_in_range(include, exclude, ptr.SUFFIX)
    if not blobs:
        return 0
    if not repo.config.remotes():
        _err("no gitml remote is set, so artifacts were not uploaded; run "
             "`git ml remote add NAME URL --default` and `git ml push`")
        return 0
    arts = []
    for i, data in enumerate(sorted(blobs)):
        p = ptr.parse(data, "pushed pointer")
        arts.append((f"<pushed artifact {i}>", p))
    # Pointers to content we never had (pushed through from elsewhere) are skipped.
    from gitml.artifacts.worktree import content_in_store

    have = [(a, p) for a, p in arts if content_in_store(repo, p)]
    remote = open_named_remote(repo, None)
    try:
        stats = push_artifacts(repo, have, remote=remote, jobs=None)
    finally:
        remote.close()
    if stats.transferred:
        print(f"gitml: uploaded {stats.transferred} objects to {remote.name}", file=sys.stderr)
    return 0


def _materialise(repo: MLRepo) -> int:
    from gitml.artifacts import worktree

    res = worktree.checkout(repo, None, fetch=True)
    for path in res.kept:
        _err(f"kept {path}: modified and never added (`git ml add` it or `git ml checkout --force`)")
    if res.missing:
        _err(f"{len(res.missing)} artifact(s) not in the store: {', '.join(res.missing[:5])}; "
             "run `git ml pull`")
        return 1
    return 0


def post_checkout(repo: MLRepo, argv: Sequence[str]) -> int:
    if len(argv) >= 3 and argv[2] == "0":
        return 0  # a file checkout: the user restored a pointer; `git ml checkout` is explicit
    return _materialise(repo)


def post_merge(repo: MLRepo, argv: Sequence[str]) -> int:
    return _materialise(repo)


def post_commit(repo: MLRepo, argv: Sequence[str]) -> int:
    repo.git.restage_after_commit()
    return 0


def reference_transaction(repo: MLRepo, argv: Sequence[str]) -> int:
    """A committed transaction that created registry tags (the shell script filtered them
    and passes their refs on stdin): deploy them. Git ignores the exit code here."""
    if argv and argv[0] != "committed":
        return 0
    refs = [] if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read().split()
    return _deploy_tags(repo, refs) if refs else 0


def post_receive(argv: Sequence[str]) -> int:
    """In a bare deploy repository: pushed registry tags deploy on this host, from a
    work tree of the repository kept beside it (the store lives in the bare repo)."""
    if find_spec("gitml.registry.receiver") is None:
        return 0
    from gitml.registry.receiver import receive

    text = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    return receive(text)


def textconv(repo: MLRepo | None, argv: Sequence[str]) -> int:
    if find_spec("gitml.runs.textconv") is not None:
        from gitml.runs.textconv import main as textconv_main

        return int(textconv_main(argv[0]))
    sys.stdout.write(Path(argv[0]).read_text())
    return 0


HANDLERS: dict[str, Callable[[MLRepo, Sequence[str]], int]] = {
    "pre-commit": pre_commit,
    "verify-pointers": lambda repo, argv: verify_pointers(repo),
    "pre-commit-gates": pre_commit_gates,
    "commit-msg": commit_msg,
    "pre-push": pre_push,
    "post-checkout": post_checkout,
    "post-merge": post_merge,
    "post-commit": post_commit,
    "reference-transaction": reference_transaction,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        _err("usage: git-ml-hook HOOK [ARGS...]")
        return 2
    name, rest = argv[0], argv[1:]
    try:
        if name == "textconv":
            return textconv(None, rest)
        if name == "post-receive":
            return post_receive(rest)
        handler = HANDLERS.get(name)
        if handler is None:
            _err(f"unknown hook {name!r}")
            return 2
        repo = MLRepo.discover(require_init=False)
        if not repo.is_initialised():
            return 0  # not a gitml repository (e.g. a pre-commit run elsewhere)
        return handler(repo, rest)
    except GitMLError as e:
        _err(f"error: {e}")
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        if os.environ.get("GITML_DEBUG") == "1":
            raise
        _err(f"internal error in the {name} hook: {type(e).__name__}: {e} (GITML_DEBUG=1 for details)")
        return 3


if __name__ == "__main__":
    sys.exit(main())
