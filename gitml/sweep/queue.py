"""The trial queue: ``exp run --queue`` records a trial to run later, ``exp run --run-all`` runs them.

An entry is a JSON file in ``<ml dir>/exps/queue/``; the work tree it starts from is
snapshotted when it is queued (a commit kept alive by ``refs/gitml/exps-queue/<id>``), so
editing the work tree afterwards does not change what a queued trial runs. A runner claims
an entry by renaming it, so two runners never run the same one.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitml.errors import GitMLError
from gitml.git import exps as gx
from gitml.repo import MLRepo
from gitml.store.fsutil import atomic_write_text
from gitml.sweep.trials import Trial, TrialSpec, check_name, run_trial, snapshot


@dataclass
class Entry:
    id: str
    stage: str
    values: dict[str, Any]
    name: str | None
    base: str
    queued: str


def queue_dir(repo: MLRepo) -> Path:
    return repo.ml_dir / "exps" / "queue"


def enqueue(repo: MLRepo, spec: TrialSpec) -> Entry:
    if spec.name is not None:
        check_name(spec.name)
    base = snapshot(repo)
    entry = Entry(id=f"{int(time.time() * 1000):013d}-{secrets.token_hex(3)}", stage=spec.stage,
                  values=dict(spec.values), name=spec.name, base=base,
                  queued=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    gx.update_ref(repo.git, gx.QUEUE_PREFIX + entry.id, base)
    d = queue_dir(repo)
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_text(d / f"{entry.id}.json", json.dumps(entry.__dict__, sort_keys=True) + "\n")
    return entry


def pending(repo: MLRepo) -> list[Entry]:
    d = queue_dir(repo)
    if not d.is_dir():
        return []
    out = []
    for f in sorted(d.glob("*.json")):
        try:
            out.append(Entry(**json.loads(f.read_text(encoding="utf-8"))))
        except (ValueError, TypeError) as e:
            raise GitMLError(f"damaged queue entry {f}", "delete the file") from e
    return out


def _claim(repo: MLRepo, entry: Entry) -> Path | None:
    src = queue_dir(repo) / f"{entry.id}.json"
    dst = src.with_suffix(".running")
    try:
        os.rename(src, dst)
    except FileNotFoundError:
        return None  # another runner took it
    return dst


def run_all(repo: MLRepo, jobs: int = 1,
            report: Callable[[Entry, Trial | None, str | None], None] | None = None) -> list[Trial]:
    """Run every queued trial, ``jobs`` at a time; failures are reported and left queued."""
    entries = pending(repo)

    def one(entry: Entry) -> Trial | None:
        claimed = _claim(repo, entry)
        if claimed is None:
            return None
        try:
            trial = run_trial(repo, TrialSpec(entry.stage, entry.values, entry.name), base=entry.base)
        except GitMLError as e:
            os.rename(claimed, claimed.with_suffix(".json"))
            if report:
                report(entry, None, str(e))
            return None
        claimed.unlink()
        gx.delete_refs(repo.git, [gx.QUEUE_PREFIX + entry.id])
        if report:
            report(entry, trial, None)
        return trial

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(one, entries))
    return [t for t in results if t is not None]
