from __future__ import annotations

import argparse
import time

from gitml.cli.output import print_json, print_table


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("rev", nargs="?", default="HEAD", help="start from this revision (default HEAD)")
    p.add_argument("-n", "--max-count", type=int, default=None, metavar="N", help="show at most N commits")
    p.add_argument("--first-parent", action="store_true", help="follow only the first parent of merges")
    p.add_argument("-a", "--all-commits", action="store_true",
                   help="also list commits that changed no artifact, run or check")
    p.add_argument("-m", "--metric", action="append", default=[], metavar="NAME",
                   help="metric columns to show (default: the most common three)")
    p.add_argument("--path", default=None, help="only commits that changed this artifact")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from gitml.repo import MLRepo
    from gitml.runs.log import key_metrics, log_rows

    repo = MLRepo.discover()
    if repo.git.head() is None:
        if args.json:
            print_json([])
        return 0
    path = repo.relpath(args.path) if args.path else None
    rows = log_rows(repo, args.rev, args.max_count, first_parent=args.first_parent,
                    only_manifest=not args.all_commits, path=path)
    if args.json:
        if len(rows) > 200:  # json's C encoder only works without indent: 3x faster on long logs
            import json
            import sys

            sys.stdout.write(json.dumps([r.to_dict() for r in rows], sort_keys=True) + "\n")
        else:
            print_json([r.to_dict() for r in rows])
        return 0
    if args.quiet:
        return 0
    metrics = args.metric or key_metrics(rows)
    table = []
    for r in rows:
        arts = ", ".join(r.artifacts[:3]) + (f" (+{len(r.artifacts) - 3})" if len(r.artifacts) > 3 else "")
        checks = " ".join(f"{k}:{'ok' if v else ('FAIL' if v is False else '?')}" for k, v in r.checks.items())
        table.append([r.commit[:10], time.strftime("%Y-%m-%d", time.gmtime(r.time)),
                      r.summary[:50], arts or "-", ",".join(r.stages) or "-",
                      *[_num(r.metrics.get(m)) for m in metrics], checks or "-"])
    header = ["commit", "date", "message", "artifacts", "runs", *metrics, "checks"]
    import sys

    if sys.stdout.isatty() and len(table) <= 200:
        print_table(None, header, table)
    else:  # pipes get untruncated columns; rich lays out big tables slowly
        _plain_table(header, table)
    return 0


def _plain_table(header: list[str], rows: list[list[str]]) -> None:
    import sys

    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    out = sys.stdout
    bold = out.isatty()
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)).rstrip()
    out.write(("\033[1m" + line + "\033[0m" if bold else line) + "\n")
    for r in rows:
        out.write("  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=False)).rstrip() + "\n")


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.4g}"
