"""The trial table: sorting, columns, and the plain layout used past 100 rows."""

from __future__ import annotations

import pytest

from gitml.cli.cmd_exp import RICH_ROWS, _plain_table
from gitml.errors import UsageError
from gitml.sweep.exps import table, to_csv
from gitml.sweep.trials import Trial


def _trial(i: int, score: float | None) -> Trial:
    return Trial(name=f"t{i}", stage="train", state="complete", params={"lr": i / 10},
                 metrics={} if score is None else {"score": score}, overrides={"lr": i / 10},
                 base="b", head="h", created=f"2026-01-01T00:00:{i:02d}Z", duration_s=1.0)


def test_sort_puts_missing_values_last_and_rejects_unknown_keys() -> None:
    trials = [_trial(0, 0.5), _trial(1, None), _trial(2, 0.9), _trial(3, 0.1)]
    cols, rows = table(trials, "score")
    assert cols == ["name", "stage", "state", "created", "lr", "score"]
    assert [r[0] for r in rows] == ["t2", "t0", "t3", "t1"]
    _, asc = table(trials, "score", descending=False)
    assert [r[0] for r in asc] == ["t3", "t0", "t2", "t1"]
    with pytest.raises(UsageError, match="no metric or param named 'auc'"):
        table(trials, "auc")
    assert to_csv(cols, rows).splitlines()[2] == "t0,train,complete,2026-01-01T00:00:00Z,0.0,0.5"


def test_plain_table_is_aligned(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [[f"trial-{i}", "x" * (i % 7), str(i)] for i in range(RICH_ROWS + 5)]
    _plain_table(["name", "pad", "n"], rows)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(rows) + 2
    col2 = lines[0].index("pad")
    assert all(line[col2 - 2:col2] == "  " for line in lines[2:])
    assert lines[-1].split()[0] == f"trial-{RICH_ROWS + 4}"
