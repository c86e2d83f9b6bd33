"""Installing the thin Git hook scripts, chaining any hook the user already had."""

from __future__ import annotations

import os
import shutil
import sys
from importlib import resources
from importlib.util import find_spec
from pathlib import Path

from gitml.errors import GitMLError
from gitml.repo import MLRepo

HOOKS = ("pre-commit", "commit-msg", "post-commit", "pre-push", "post-checkout", "post-merge",
         "reference-transaction")
#: installed by `git ml ci receiver` into a bare deploy repository, not by `git ml install`
RECEIVER_HOOKS = ("post-receive",)
MARKER = "# gitml hook:"
CHAINED_SUFFIX = ".gitml-chained"


def _template(name: str) -> str:
    return resources.files("gitml.hook_scripts").joinpath(name).read_text()


def _is_ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(errors="replace")[:300]
    except OSError:
        return False


def _fallback_hook_path() -> str:
    exe = shutil.which("git-ml-hook")
    if exe:
        return exe
    return str(Path(sys.executable).parent / "git-ml-hook")


def install_hooks(repo: MLRepo) -> list[str]:
    installed = _write_hooks(repo.git.hooks_dir(), HOOKS)
    if find_spec("gitml.hooks.configure") is not None:
        from gitml.hooks.configure import configure

        configure(repo)
    return installed


def install_receiver(git_dir: Path) -> list[str]:
    """Make a bare repository a GitOps deploy receiver: its post-receive deploys pushed
    registry tags on this host."""
    return _write_hooks(git_dir / "hooks", RECEIVER_HOOKS)


def _write_hooks(hooks_dir: Path, names: tuple[str, ...]) -> list[str]:
    hooks_dir.mkdir(parents=True, exist_ok=True)
    installed = []
    for name in names:
        target = hooks_dir / name
        if target.exists() and not _is_ours(target):
            chained = hooks_dir / (name + CHAINED_SUFFIX)
            if chained.exists():
                raise GitMLError(f"{target} exists and so does {chained}",
                                 "merge them by hand, then run `git ml install` again")
            os.replace(target, chained)
        text = _template(name).replace("@GITML_HOOK_FALLBACK@", _fallback_hook_path())
        tmp = target.with_name(f".{name}.gitml-tmp")
        tmp.write_text(text)
        tmp.chmod(0o755)
        os.replace(tmp, target)
        installed.append(name)
    return installed


def uninstall_hooks(repo: MLRepo) -> list[str]:
    hooks_dir = repo.git.hooks_dir()
    removed = []
    for name in HOOKS:
        target = hooks_dir / name
        if target.exists() and _is_ours(target):
            target.unlink()
            removed.append(name)
            chained = hooks_dir / (name + CHAINED_SUFFIX)
            if chained.exists():
                os.replace(chained, target)
    return removed
