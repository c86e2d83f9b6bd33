"""`git ml retrain NAME [--data PATH | --from-traffic] [--auto-promote]`: re-run the
deployed model's recorded training on new data on a new branch, commit through the gates,
register the next version, and promote it only when it beats the deployed one."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="the model (as declared in [models.NAME])")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", type=Path, metavar="PATH",
                     help="a table of new labelled rows with the training table's columns")
    src.add_argument("--from-traffic", action="store_true",
                     help="use the labelled traffic of the --since span")
    p.add_argument("--since", default="1d", metavar="DURATION",
                   help="with --from-traffic: the span of traffic to learn from (default 1d)")
    p.add_argument("--labels", type=Path, metavar="FILE",
                   help="with --from-traffic: labels (request_id, row, label) besides the server's feedback")
    p.add_argument("--mode", choices=("append", "replace"),
                   help="append the new rows to the training table or replace it (default: "
                        "[monitor] retrain_mode, else append)")
    p.add_argument("--auto-promote", action="store_true",
                   help="promote the new version when it beats the deployed one on the new data")
    p.add_argument("--stage", default="prod", help="the stage to promote to (default prod)")
    p.add_argument("--target", metavar="TARGET", help="the deploy target (default: the default target)")
    p.add_argument("--reason", default="on demand", help="why (recorded in the commit and tags)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    import sys

    from gitml.cli.output import console, print_json
    from gitml.monitor.check import parse_duration
    from gitml.monitor.retrain import retrain
    from gitml.repo import MLRepo

    repo = MLRepo.discover()

    def log(msg: str) -> None:
        if not args.quiet and not args.json:
            print(f"gitml: {msg}", file=sys.stderr, flush=True)

    res = retrain(repo, args.name, data=args.data, from_traffic=args.from_traffic,
                  since=parse_duration(args.since), labels_file=args.labels,
                  auto_promote=args.auto_promote, stage=args.stage, target=args.target,
                  mode=args.mode, reason=args.reason, log=log)
    if args.json:
        print_json(res.to_dict())
        return 0
    if not args.quiet:
        c = console()
        c.print(f"[bold]{res.model}[/bold]: {res.version} ({(res.commit or '')[:10]}) on branch "
                f"{res.branch}, retrained from {res.base_version} with {res.rows_added} new rows "
                f"({res.mode} to {res.train_data})")
        for metric, d in (res.comparison.get("metrics") or {}).items():
            c.print(f"  {metric}: {d['difference']:+.4f}, {int(100 * res.comparison['confidence'])}% CI "
                    f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] vs {res.base_version} on the new data")
        colour = "green" if res.promoted else "yellow"
        c.print(f"[{colour}]{res.message}[/{colour}]")
    return 0
