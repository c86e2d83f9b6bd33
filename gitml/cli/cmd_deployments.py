from __future__ import annotations

import argparse
import time

from gitml.cli.output import print_json, print_table


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("--at", help="what served at this time (ISO 8601, UTC, or Unix seconds)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from gitml.registry.views import deployments, parse_when
    from gitml.repo import MLRepo

    at = parse_when(args.at) if args.at else None
    rows = deployments(MLRepo.discover(), at=at)
    if args.json:
        print_json(rows)
        return 0
    if args.quiet:
        return 0
    table = [[r["model"], r["target"], f"v{r['version']}", r.get("url") or "",
              time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(r["since"] or 0))) + " UTC",
              r["action"] + (f" from v{r['from']}" if r.get("from") else ""),
              str(r.get("by") or ""), "yes" if r["signed"] else "no", str(r.get("reason") or "")[:70]]
             for r in rows]
    title = "serving" if at is None else f"serving at {args.at}"
    print_table(title, ["model", "target", "version", "url", "since", "how", "by", "signed", "why"], table)
    return 0
