"""`git ml eval [MODEL] [--against prod|REV]`: task metrics and the evaluation gates."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gitml.cli.cmd_check import add_place_args, fmt, report, run_models
from gitml.cli.output import print_table

if TYPE_CHECKING:
    from gitml.checks.results import ModelResult


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", metavar="MODEL", help="declared model (default: all)")
    add_place_args(p)


def run(args: argparse.Namespace) -> int:
    results = run_models(args, ("eval",), [args.model] if args.model else None)
    return report(args, results, _render)


def _render(res: ModelResult) -> None:
    thr = next((g for g in res.results if g.gate == "eval.threshold"), None)
    reg = next((g for g in res.results if g.gate == "eval.regression"), None)
    values = (thr.metrics.get("metrics") or {}) if thr else {}
    checked = (thr.metrics.get("checked") or {}) if thr else {}
    rows = []
    for name, v in values.items():
        limit = checked.get(name, {})
        bound = " ".join(f"{k} {limit[k]:g}" for k in ("min", "max") if k in limit)
        row = [name, fmt(v), bound or "-"]
        if reg is not None and not reg.skipped:
            d = reg.metrics.get(name)
            row.append("-" if not isinstance(d, dict) else
                       f"{d['difference']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]")
        rows.append(row)
    cols = ["metric", "value", "threshold"]
    if reg is not None and not reg.skipped:
        cols.append(f"change vs {reg.metrics.get('baseline')} (+ = better, CI)")
    print_table(f"{res.model}: metrics", cols, rows)
