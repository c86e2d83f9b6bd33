"""Processes and file systems for fault tests: running gitml without root's permission
bypass, and a small tmpfs to fill."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

#: drop the capabilities that let root read and write any file, so chmod 000 bites
NO_DAC = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search,-fowner"]


def can_drop_caps() -> bool:
    if shutil.which("setpriv") is None:
        return False
    proc = subprocess.run([*NO_DAC, "true"], capture_output=True)
    return proc.returncode == 0


def gitml_unprivileged(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`git ml ARGS` with permissions enforced even for root (see :data:`NO_DAC`)."""
    cmd = ["git", "ml", *args]
    if os.geteuid() == 0:
        cmd = [*NO_DAC, *cmd]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where`` (skips the test without root or mount rights)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
