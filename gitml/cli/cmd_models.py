from __future__ import annotations

import argparse

from gitml.cli.output import print_json, print_table


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("--all", action="store_true", help="include deprecated models")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from gitml.registry.views import models
    from gitml.repo import MLRepo

    rows = models(MLRepo.discover(), deprecated=args.all)
    if args.json:
        print_json(rows)
        return 0
    if args.quiet:
        return 0
    stages = sorted({s for r in rows for s in r["stage"]})
    table = []
    for r in rows:
        serving = ", ".join(
            f"{t}: {s['version']}" + (" (rolled back)" if s["action"] == "rollback" else "")
            for t, s in r["serving"].items()) or "-"
        table.append([r["name"] + ("" if r["active"] else " (deprecated)"), r["version"] or "-",
                      *[r["stage"].get(s) or "-" for s in stages], serving])
    print_table("models", ["model", "latest", *[f"#{s}" for s in stages], "serving"], table)
    return 0
