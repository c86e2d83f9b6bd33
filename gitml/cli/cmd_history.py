from __future__ import annotations

import argparse
import time

from gitml.cli.output import print_json, print_table


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="the model (default: every model)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _when(ts: object) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(ts or 0)))  # type: ignore[arg-type]


def run(args: argparse.Namespace) -> int:
    from gitml.registry.views import history
    from gitml.repo import MLRepo

    rows = history(MLRepo.discover(), args.name)
    if args.json:
        print_json(rows)
        return 0
    if args.quiet:
        return 0
    table = []
    for r in rows:
        m = r.get("metrics") or {}
        shown = ", ".join(f"{k}={m[k]:.3f}" for k in ("accuracy", "roc_auc", "rmse", "r2")
                          if isinstance(m.get(k), int | float))
        where = r.get("stage") or r.get("target") or ""
        frm = f" (from {r['from']})" if r.get("from") else ""
        row = [_when(r["timestamp"]), r["event"], r.get("version") or "", where,
               (r.get("commit") or "")[:8], str(r.get("author") or "").split(" <")[0],
               "yes" if r.get("signed") else "no", shown,
               (r.get("message") or "").split("\n")[0][:48] + frm]
        table.append(row if args.name else [r["artifact"], *row])
    cols = ["when (UTC)", "event", "version", "stage/target", "commit", "by", "signed", "metrics", "why"]
    print_table(f"history of {args.name}" if args.name else "history",
                cols if args.name else ["model", *cols], table)
    return 0
