"""One quick case of each kind of the fault-injection campaign (benchmarks/faults.py runs
them all, many times): each must end with 0 wrong bytes, 0 internal errors, 0 hangs,
0 lost ignore lines and 0 temp files left."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.support import faults


def _clean(out: faults.Outcome) -> None:
    assert out.failures == 0, (out, out.notes)


@pytest.mark.parametrize("op", faults.KILL_OPS)
def test_kill_mid_command_then_rerun(tmp_path: Path, op: str) -> None:
    _clean(faults.kill_trial(op, tmp_path, random.Random(op), small_files=40, big_mib=9,
                             max_delay=0.8))


def test_concurrent_adds_in_one_folder(tmp_path: Path) -> None:
    _clean(faults.concurrent_adds(tmp_path, random.Random(1), n=4))


def test_concurrent_pushes_add_and_gc(tmp_path: Path) -> None:
    _clean(faults.concurrent_push_and_gc(tmp_path, random.Random(2)))


@pytest.mark.parametrize("how, target", [("flip", "loose"), ("truncate", "chunk"),
                                         ("delete", "tree"), ("flip", "pack member"),
                                         ("truncate", "local pack member")])
def test_damaged_object(tmp_path: Path, how: str, target: str) -> None:
    _clean(faults.damage_trial(how, target, tmp_path, random.Random(3)))


def test_full_disk(tmp_path: Path) -> None:
    _clean(faults.full_disk_trial(tmp_path, random.Random(4)))


@pytest.mark.parametrize("what", ["stat cache", "added file"])
def test_unreadable_path(tmp_path: Path, what: str) -> None:
    out = faults.unreadable_trial(what, tmp_path, random.Random(5))
    _clean(out)
    assert not [n for n in out.notes if "exited" in n or "without saying" in n], out.notes
