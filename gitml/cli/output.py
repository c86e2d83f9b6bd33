"""Terminal output: rich tables and progress for people, JSON for scripts.

rich is imported lazily so commands that print little start fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol


class Progress(Protocol):
    def advance(self, n: int = 1) -> None: ...


class _NullProgress:
    def advance(self, n: int = 1) -> None:
        pass


class _RichProgress:
    def __init__(self, progress: Any, task: Any) -> None:
        self._progress = progress
        self._task = task

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._task, n)


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.table import Table

    table = Table(title=title, show_edge=False, header_style="bold")
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*[str(x) for x in r])
    console().print(table)


@contextmanager
def progress(description: str, total: int | None, *, quiet: bool, unit: str = "") -> Iterator[Progress]:
    """A progress bar on stderr when it is a terminal and not ``quiet``; silent otherwise."""
    if quiet or not sys.stderr.isatty():
        yield _NullProgress()
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress import Progress as RichProgress

    counter = (DownloadColumn(), TransferSpeedColumn()) if unit == "bytes" else (MofNCompleteColumn(),)
    with RichProgress(TextColumn("{task.description}"), BarColumn(), *counter,
                      TimeRemainingColumn(), console=console(stderr=True), transient=True) as p:
        task = p.add_task(description, total=total)
        yield _RichProgress(p, task)


def say(message: str, *, quiet: bool) -> None:
    if not quiet:
        print(message)


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
