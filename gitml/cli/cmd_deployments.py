from __future__ import annotations

import argparse
import time

from gitml.cli.output import print_json


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
    if not rows:
        print("nothing deployed" + ("" if at is None else f" at {args.at}"))
    for r in rows:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(r["since"] or 0)))
        how = r["action"] + (f" from v{r['from']}" if r.get("from") else "")
        who = str(r.get("by") or "")
        print(f"{r['model']}  {r['target']}  v{r['version']}  since {since} UTC  {how}  by {who}"
              f"  ({'signed' if r['signed'] else 'unsigned'} tag {r.get('tag') or '-'})")
        print(f"    {r.get('url') or ''}  {r.get('reason') or ''}".rstrip())
        if r["action"] == "rollback" and r.get("from"):
            auto = "automatically " if r.get("automatic") else ""
            if r.get("unassigned"):
                print(f"    v{r['from']} was rolled back {auto}and taken out of stage "
                      f"{r['unassigned']} ({r.get('unassign_tag')}): a new promotion deploys it again")
            elif r.get("unassign_error"):
                print(f"    v{r['from']} was rolled back {auto}but is still in stage "
                      f"{r['unassign_error']}")
        for stage, version in (r.get("stages") or {}).items():
            print(f"    note: stage {stage} names {version}, which does not serve here "
                  f"(v{r['version']} does)")
    return 0
