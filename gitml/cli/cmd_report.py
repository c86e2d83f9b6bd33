"""`git ml report [REV] -o report.html`: one self-contained HTML page with plots."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gitml.repo import MLRepo


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("rev", nargs="?", default="HEAD", metavar="REV",
                   help="the revision whose committed gate results to show (default: HEAD)")
    p.add_argument("-o", "--output", metavar="FILE", default="report.html",
                   help="where to write the page (default: report.html)")
    p.add_argument("--model", action="append", metavar="MODEL", help="only this model (repeatable)")
    p.add_argument("--json", action="store_true", help="print the collected data as JSON")
    p.add_argument("--experiments", action="store_true",
                   help="add the experiment view (params vs objective, history, step curves)")
    p.add_argument("--study", default=None, help="with --experiments: only this sweep's trials")
    p.add_argument("--objective", default=None, metavar="METRIC[:min]",
                   help="with --experiments: the metric to plot (default: the most recorded)")
    p.add_argument("--monitor", action="store_true",
                   help="add the monitoring view of the served model(s): drift per feature, "
                        "live metrics with learned limits, alarms, rollbacks, retrains "
                        "(`git ml report NAME --monitor`: only that model)")
    p.add_argument("--since", default="24h", metavar="DURATION",
                   help="with --monitor: how much traffic to show (default: 24h)")


def run(args: argparse.Namespace) -> int:
    from gitml.checks.report import write_report
    from gitml.cli.output import print_json
    from gitml.repo import MLRepo

    repo = MLRepo.discover()
    out = Path(args.output)
    watched = args.model
    if args.monitor and args.rev in repo.config.section("models"):
        watched, args.rev = [args.rev], "HEAD"  # `report NAME --monitor`
    extra = []
    if args.experiments:
        extra.append(_experiments(repo, args))
    if args.monitor:
        extra += _monitoring(repo, watched, args.since)
    data = write_report(repo, args.rev, out, args.model, extra)
    if args.json:
        print_json({"output": str(out), "commit": data["commit"],
                    "models": [{k: v for k, v in d.items() if not k.startswith("_")}
                               for d in data["models"]]})
        return 0
    if not args.quiet:
        _print_summary(args, data, out)
    return 0


def _print_summary(args: argparse.Namespace, data: dict[str, Any], out: Path) -> None:
    from gitml.cli.output import print_table, say

    rows = []
    for doc in data["models"]:
        for r in doc.get("results", []):
            status = ("skipped" if r.get("skipped") else "[green]pass[/green]" if r.get("passed")
                      else "[red]FAIL[/red]" if r.get("blocking", True) else "[yellow]warn[/yellow]")
            rows.append([doc["model"], r.get("gate", ""), status, r.get("message", "")])
    if rows:
        print_table(f"gate results at {args.rev} ({data['commit'][:10]})",
                    ["model", "gate", "status", "detail"], rows)
    elif not data.get("stages"):
        say(f"no committed gate results or run records at {args.rev}; the report says so",
            quiet=False)
    for st in data.get("stages", []):
        rows = []
        for chart in st["metrics"]:
            pts = chart["points"]
            last = pts[-1] if pts else {}
            rows.append([chart["metric"], str(len(pts)), _f(last.get("value")),
                         _f(last.get("level")),
                         str(sum(bool(p.get("alarm")) for p in pts)),
                         "[red]ALARM[/red]" if last.get("alarm") else ""])
        print_table(f"stage {st['stage']}: metric history (limits learned from it)",
                    ["metric", "runs", "last", "level", "alarms", "now"], rows)
    for doc in data["models"]:
        hist = doc.get("_history") or {}
        points = hist.get("points") or []
        if points:
            print_table(f"{doc['model']}: {hist.get('metric')} history (last 10 of "
                        f"{len(points)}; limits learned from the history)",
                        ["commit", "value", "level", "alarm limit", "alarm"],
                        [[str(p["commit"])[:10], _f(p.get("value")), _f(p.get("level")),
                          _f(p.get("lower") if p.get("lower") is not None else p.get("upper")),
                          "[red]ALARM[/red]" if p.get("alarm") else ""]
                         for p in points[-10:]])
    say(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)", quiet=False)


def _experiments(repo: MLRepo, args: argparse.Namespace) -> str:
    from gitml.sweep import report as exp_report

    metric, direction = args.objective, "maximize"
    if metric and metric.endswith((":min", ":max")):
        metric, _, d = metric.rpartition(":")
        direction = "minimize" if d == "min" else "maximize"
    data = exp_report.collect(repo, study=args.study, objective=metric, direction=direction)
    return exp_report.section(data)


def _monitoring(repo: MLRepo, names: list[str] | None, since_text: str) -> list[str]:
    from gitml.errors import UsageError
    from gitml.monitor import html
    from gitml.monitor.check import parse_duration

    names = names or sorted(repo.config.section("models"))
    if not names:
        raise UsageError("--monitor: no model is declared", "declare [models.NAME] first")
    since = parse_duration(since_text)
    return [html.section(repo, name, since=since) for name in names]


def _f(v: object) -> str:
    return f"{v:.4f}" if isinstance(v, float) else "-" if v is None else str(v)
