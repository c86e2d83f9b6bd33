"""`git ml bias [MODEL]`: fairness per sensitive attribute (per-group rates, parity,
equalized odds, four-fifths on the bootstrap bound, counterfactual flips)."""

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
    results = run_models(args, ("bias",), [args.model] if args.model else None)
    return report(args, results, _render)


def _render(res: ModelResult) -> None:
    if not res.results:
        print(f"{res.model}: no sensitive attributes declared (sensitive = [...])")
    for g in res.results:
        m = g.metrics
        groups = m.get("groups") or {}
        rows = [[name, fmt(v.get("n"), 0), fmt(v.get("selection_rate"), 3), fmt(v.get("tpr"), 3),
                 fmt(v.get("fpr"), 3), fmt(v.get("accuracy"), 3),
                 fmt((m.get("counterfactual") or {}).get("by_group", {}).get(name), 3)]
                for name, v in groups.items()]
        print_table(f"{res.model}: {m.get('attribute', g.gate)}",
                    ["group", "n", "selection", "TPR", "FPR", "accuracy", "cf flips"], rows)
        summary = []
        for key, label in (("dp_diff", "demographic parity diff"), ("dp_ratio", "selection ratio (4/5)"),
                           ("eo_diff", "equalized odds diff"), ("eo_ratio", "equalized odds ratio")):
            d = m.get(key)
            if isinstance(d, dict):
                summary.append([label, fmt(d.get("value"), 3),
                                f"[{fmt(d.get('ci_low'), 3)}, {fmt(d.get('ci_high'), 3)}]",
                                _limit(m, key, d)])
        cf = m.get("counterfactual")
        if isinstance(cf, dict) and cf.get("applicable"):
            summary.append(["counterfactual flip rate", fmt(cf.get("flip_rate"), 3),
                            f"[{fmt(cf.get('ci_low'), 3)}, {fmt(cf.get('ci_high'), 3)}]",
                            fmt(cf.get("limit"), 3) if "limit" in cf else "-"])
        elif isinstance(cf, dict):
            summary.append(["counterfactual flip rate", "n/a", cf.get("reason", ""), "-"])
        if summary:
            print_table(None, ["measure", "value", f"{int(m.get('confidence', 0.95) * 100)}% CI", "limit"],
                        summary)


def _limit(m: dict[str, object], key: str, d: dict[str, object]) -> str:
    """The limit a measure is gated on; the selection ratio's is the four-fifths one."""
    if key == "dp_ratio":
        ff = m.get("four_fifths")
        return fmt(ff.get("limit"), 3) if isinstance(ff, dict) else "-"
    return fmt(d.get("limit"), 3) if "limit" in d else "-"
