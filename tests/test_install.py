"""gitml as pip installs it from its wheel: the `git-ml` and `git-ml-hook` scripts are
there, run, and start lean (the no-op status pays for Python's start and little more)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import git, gitml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """gitml's wheel (built here, no index) installed without dependencies into a folder
    (``--target``: the gitml installed in this environment stays as it is)."""
    prefix = tmp_path_factory.mktemp("target")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(prefix), str(ROOT)],
        capture_output=True, text=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert proc.returncode == 0, proc.stderr
    return prefix


def site_packages(target: Path) -> str:
    return str(target)


def imports_of(script: Path, prefix: Path, cwd: Path, *args: str) -> tuple[str, set[str]]:
    """Run an installed script on this interpreter without site (so nothing but the script
    and gitml import anything); (stdout, the modules it imported)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([site_packages(prefix), *sys.path[1:]])}
    proc = subprocess.run([sys.executable, "-S", "-X", "importtime", str(script), *args], cwd=cwd,
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    mods = {ln.rsplit("|", 1)[-1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}
    return proc.stdout, mods


def test_wheel_ships_lean_scripts_that_run(installed: Path, repo: Path) -> None:
    scripts = installed / "bin"
    for name in ("git-ml", "git-ml-hook"):
        script = scripts / name
        assert script.is_file() and os.access(script, os.X_OK), name
        assert script.read_text().startswith("#!") and "#!python" not in script.read_text()

    (repo / "model.bin").write_bytes(b"m" * 5000)
    os.utime(repo / "model.bin", ns=(10**18, 10**18))  # out of the racy window
    gitml(repo, "add", "model.bin")
    git(repo, "commit", "-q", "-m", "m")
    os.utime(repo / ".git" / "index", ns=(10**18, 10**18))
    os.utime(repo / "model.bin.gitml", ns=(10**18, 10**18))
    assert gitml(repo, "status").stdout.strip() == "1 artifacts, all clean"  # writes the snapshot

    out, mods = imports_of(scripts / "git-ml", installed, repo, "status")
    assert out.strip() == "1 artifacts, all clean"
    assert "gitml.artifacts.quick_status" in mods
    # `re` alone costs 10 ms here: an entry-point wrapper imports it before gitml starts
    assert not mods & {"re", "gitml.repo", "pygit2", "sqlite3", "rich", "argparse"}, sorted(mods)

    out, mods = imports_of(scripts / "git-ml", installed, repo, "--help")
    assert "usage: git ml" in out and "argparse" in mods  # not the quick path: the full CLI
    proc = subprocess.run([sys.executable, str(scripts / "git-ml-hook")], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": site_packages(installed)})
    assert proc.returncode != 0 and "usage: git-ml-hook" in proc.stderr
