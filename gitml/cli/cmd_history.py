from __future__ import annotations

import argparse
import time

from gitml.cli.output import print_json


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
    for r in rows:
        m = r.get("metrics") or {}
        shown = " ".join(f"{k}={m[k]:.3f}" for k in ("accuracy", "roc_auc", "rmse", "r2")
                         if isinstance(m.get(k), int | float))
        where = r.get("stage") or r.get("target") or ""
        why = (r.get("message") or "").split("\n")[0]
        if r["kind"] == "deploy":
            why = (f"from v{r['from']}: " if r.get("from") else "") + why
        else:
            why = r.get("tag") or ""
        who = str(r.get("author") or "").split(" <")[0]
        name = "" if args.name else f"{r['artifact']}  "
        print(f"{_when(r['timestamp'])}  {name}{r['event']:<14} {r.get('version') or '':<9} "
              f"{where:<8} {(r.get('commit') or '')[:8]:<8}  {who}  "
              f"{'signed' if r.get('signed') else 'unsigned'}  {shown}  {why}".rstrip())
    return 0
