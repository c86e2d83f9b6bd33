"""The quick fingerprint a no-op status uses equals the full walk's, forked or not, and
steps aside (None) for anything the full walk must judge."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gitml.artifacts import folder_scan


def make_tree(root: Path, n: int = 300) -> None:
    for i in range(n):
        p = root / f"a{i % 7}/b{i % 3}/f{i}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(str(i) * (i % 50))
    (root / "top.txt").write_text("top")


@pytest.mark.parametrize("expected", [0, 10**6])  # in this process / with a forked helper
def test_quick_fingerprint_equals_the_full_walk(tmp_path: Path, expected: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(folder_scan, "FORK_FILES", 10)
    monkeypatch.setattr(folder_scan, "may_fork", lambda: True)  # the suite's workers hold threads
    forks: list[int] = []
    real_fork_walk = folder_scan._fork_walk

    def counted(tops: list[tuple[str, str]]) -> tuple[int, int]:
        forks.append(len(tops))
        return real_fork_walk(tops)

    monkeypatch.setattr(folder_scan, "_fork_walk", counted)
    make_tree(tmp_path / "d")
    full = folder_scan.fingerprint(folder_scan.walk(tmp_path / "d", tmp_path))
    assert folder_scan.quick_fingerprint(tmp_path / "d", expected) == full
    assert bool(forks) == (expected > 0)  # the forked walk really ran (or really did not)
    # any change shows: content rewritten in place with the same size, a rename, a chmod
    target = tmp_path / "d/a3/b1/f10.txt"
    before = folder_scan.quick_fingerprint(tmp_path / "d", expected)
    target.write_text(target.read_text()[::-1] + "")
    os.utime(target, ns=(1, 1))
    assert folder_scan.quick_fingerprint(tmp_path / "d", expected) != before
    after = folder_scan.quick_fingerprint(tmp_path / "d", expected)
    target.chmod(0o600)
    assert folder_scan.quick_fingerprint(tmp_path / "d", expected) != after
    assert folder_scan.quick_fingerprint(tmp_path / "d", expected) == \
        folder_scan.fingerprint(folder_scan.walk(tmp_path / "d", tmp_path))


@pytest.mark.parametrize("expected", [0, 10**6])
def test_links_fifos_and_temp_files_leave_it_to_the_full_walk(tmp_path: Path, expected: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(folder_scan, "FORK_FILES", 10)
    make_tree(tmp_path / "d")
    (tmp_path / "d/a1/link").symlink_to(tmp_path / "d/top.txt")
    assert folder_scan.quick_fingerprint(tmp_path / "d", expected) is None
    (tmp_path / "d/a1/link").unlink()
    os.mkfifo(tmp_path / "d/a2/pipe")
    assert folder_scan.quick_fingerprint(tmp_path / "d", expected) is None
    with pytest.raises(Exception, match="named pipe"):
        folder_scan.walk(tmp_path / "d", tmp_path)
    (tmp_path / "d/a2/pipe").unlink()
    (tmp_path / "d/a0/.tmp-gitml-x.1.2.incomplete").write_text("partial")
    assert folder_scan.quick_fingerprint(tmp_path / "d", expected) is None


def test_no_fork_beside_other_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    monkeypatch.setattr(folder_scan, "FORK_FILES", 10)
    make_tree(tmp_path / "d")
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not folder_scan.may_fork()
        monkeypatch.setattr(folder_scan, "_fork_walk", lambda tops: pytest.fail("forked"))
        full = folder_scan.fingerprint(folder_scan.walk(tmp_path / "d", tmp_path))
        assert folder_scan.quick_fingerprint(tmp_path / "d", 10**6) == full
    finally:
        stop.set()
        other.join()
