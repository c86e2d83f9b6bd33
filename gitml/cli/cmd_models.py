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
    from gitml.registry.views import stage_notes

    # (a stage an automatic rollback emptied stays a column, to say so)
    stages = sorted({s for r in rows for s in r["stage"]} |
                    {rb["stage"] for r in rows for rb in r.get("rolled_back", []) if rb["stage"]})
    table = []
    for r in rows:
        serving = ", ".join(f"{t}: {s['version']}{_how(s)}" for t, s in r["serving"].items()) or "-"
        cells = []
        for s in stages:
            notes = stage_notes(r, s)
            cells.append((r["stage"].get(s) or "-") + (f" ({'; '.join(notes)})" if notes else ""))
        table.append([r["name"] + ("" if r["active"] else " (deprecated)"), r["version"] or "-",
                      *cells, serving])
    print_table("models", ["model", "latest", *[f"#{s}" for s in stages], "serving"], table)
    for r in rows:
        for rb in r.get("rolled_back", []):
            if rb.get("unassign_error"):
                print(f"warning: {r['name']} {rb['version']} was rolled back on {rb['target']} but is "
                      f"still in stage {rb['unassign_error']} (unassign it: git ml unassign "
                      f"{r['name']} STAGE)")
    return 0


def _how(s: dict[str, object]) -> str:
    if s["action"] != "rollback":
        return ""
    if s.get("from"):
        return f" (rolled back from {s['from']}{', automatic' if s.get('automatic') else ''})"
    return " (rolled back)"
