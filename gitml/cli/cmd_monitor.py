"""`git ml monitor NAME [--since 1h] [--labels FILE] [--json] [--watch [--interval 60]]
[--serve-metrics PORT] [--rules FILE] [--heal]`: judge a served model's traffic.

Exit codes: 0 all within learned limits, 1 action needed (an alarm in the span) or an
error, 2 usage."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="the served model (as declared in [models.NAME])")
    p.add_argument("--since", default="1h", metavar="DURATION",
                   help="the span to report and judge alarms in (90s, 15m, 1h, 2d; default 1h)")
    p.add_argument("--labels", metavar="FILE", type=Path,
                   help="delayed ground truth: a Parquet/CSV file with request_id, row, label")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--watch", action="store_true", help="keep checking")
    p.add_argument("--interval", type=float, default=60.0, metavar="SECONDS",
                   help="seconds between checks with --watch (default 60)")
    p.add_argument("--count", type=int, default=0, metavar="N",
                   help="with --watch: stop after N checks (default: never)")
    p.add_argument("--serve-metrics", type=int, metavar="PORT",
                   help="serve the figures for Prometheus on 127.0.0.1:PORT/metrics (0: any free port)")
    p.add_argument("--rules", metavar="FILE", type=Path,
                   help="write Prometheus alerting rules for these figures to FILE and exit")
    p.add_argument("--heal", action="store_true",
                   help="roll back a new version whose errors, latency or metric broke its "
                        "learned limits (and mark a version that keeps failing)")
    p.add_argument("--html", metavar="FILE", type=Path,
                   help="also write the monitoring view (plots) as a self-contained HTML page")
    p.add_argument("--traffic", metavar="DIR", type=Path,
                   help="the traffic log folder (default: <gitml dir>/traffic/NAME)")
    p.add_argument("--now", type=float, metavar="UNIX_TIME", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from gitml.errors import UsageError
    from gitml.monitor.check import parse_duration
    from gitml.repo import MLRepo

    repo = MLRepo.discover()
    if args.rules is not None:
        from gitml.monitor.config import monitor_config
        from gitml.monitor.prom import alert_rules
        from gitml.store.fsutil import atomic_write_text

        atomic_write_text(args.rules, alert_rules(monitor_config(repo, args.name).interval))
        if not args.quiet:
            print(f"wrote Prometheus alerting rules to {args.rules} (check: promtool check rules {args.rules})")
        return 0
    since = parse_duration(args.since)
    if args.interval <= 0:
        raise UsageError("--interval must be positive", "e.g. --interval 60")
    if args.serve_metrics is not None and not args.watch:
        raise UsageError("--serve-metrics needs --watch", "git ml monitor NAME --watch --serve-metrics 9109")
    if not args.watch:
        result = _check(repo, args, since)
        if args.html is not None:
            from gitml.monitor.html import section, write_page

            write_page(args.html, [section(repo, args.name, result=result)],
                       f"git ml monitor {args.name}")
        return _show(result, args)
    return _watch(repo, args, since)


def _check(repo: Any, args: argparse.Namespace, since: float) -> Any:
    from gitml.monitor.check import run_check

    result = run_check(repo, args.name, since=since, labels_file=args.labels, now=args.now,
                       traffic_folder=args.traffic)
    if args.heal:
        from gitml.monitor.heal import heal

        result.healing = heal(repo, result)
    return result


def _watch(repo: Any, args: argparse.Namespace, since: float) -> int:
    import threading

    from gitml.errors import GitMLError
    from gitml.monitor.prom import MetricsServer, exposition

    latest: dict[str, Any] = {"text": "", "processed": 0}
    lock = threading.Lock()
    server = None
    if args.serve_metrics is not None:
        server = MetricsServer("127.0.0.1", args.serve_metrics,
                               lambda: latest["text"]).start()
        print(f"serving the monitor's metrics on http://127.0.0.1:{server.port}/metrics", flush=True)
    code = 0
    n = 0
    try:
        while True:
            try:
                result = _check(repo, args, since)
                with lock:
                    latest["processed"] += result.rows_processed
                    result.rows_processed = latest["processed"]
                    latest["text"] = exposition([result])
                code = _show(result, args)
            except GitMLError as e:
                print(f"gitml: {e}", flush=True)
                code = 1
            n += 1
            if args.count and n >= args.count:
                return code
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return code
    finally:
        if server is not None:
            server.stop()


def _show(result: Any, args: argparse.Namespace) -> int:
    from rich.markup import escape

    from gitml.cli.output import console, print_json, print_table

    healing = getattr(result, "healing", None)
    if args.json:
        d = result.to_dict()
        if healing is not None:
            d["healing"] = healing
        print_json(d)
        return 1 if result.action_needed else 0
    if args.quiet:
        return 1 if result.action_needed else 0
    c = console()
    span = _dur(result.since)
    c.print(f"[bold]{result.model}[/bold] version {result.version or '?'} "
            f"({(result.commit or '')[:10]}): {result.n_rows} rows in the last {span}, "
            f"{result.n_windows} windows judged ({result.rows_processed} new rows, "
            f"{result.seconds:.2f} s)")
    rows = []
    for figure, series in result.series.items():
        p = series.points[-1] if series.points else None
        n_alarms = sum(1 for a in result.open_alarms if a.figure == figure)
        if p is None:
            continue
        limit = p.upper if p.upper is not None else p.lower
        rows.append([NAMES.get(figure, figure), _f(p.value), _f(p.level), _f(limit),
                     f"{p.cusum:.2f} / {result.config.get('h', 0):g}",
                     f"[red]{n_alarms} ALARM{'S' if n_alarms > 1 else ''}[/red]" if n_alarms else "[green]ok[/green]"])
    print_table(f"latest window vs limits learned from history (alarms in the last {span})",
                ["figure", "now", "learned level", "alarm limit", "CUSUM / h", "status"], rows)
    feats = result.snapshot.get("features") or {}
    if feats:
        frows = sorted(feats.items(), key=lambda kv: kv[1].get("p") if kv[1].get("p") is not None else 1.0)
        print_table(f"drift over the last {span} vs the reference of {result.version} "
                    f"({result.snapshot.get('rows', 0)} rows, Holm-adjusted)",
                    ["column", "test", "p adj.", "effect", "drift"],
                    [[k, v.get("test", ""), _p(v.get("p")), _f(v.get("effect")),
                      "[red]yes[/red]" if v.get("drifted") else "no"] for k, v in frows])
    errs = result.snapshot.get("errors") or {}
    if errs.get("failed"):
        print_table(f"failed requests in the last {span}: {errs['failed']} of {errs['requests']} "
                    f"({errs['server_errors']} server errors, {errs['client_errors']} refused with a 4xx)",
                    ["status", "class", "message", "requests"],
                    [[str(e["status"]), escape(e["error_class"]), escape(e["error_message"][:100]),
                      str(e["count"])]
                     for e in errs.get("top", [])])
    if result.alarms:
        print_table("alarms", ["figure", "window", "version", "value", "level", "limit", "detail"],
                    [[a.figure, a.window, a.version, _f(a.value), _f(a.level), _f(a.limit), a.detail]
                     for a in result.alarms[-12:]])
    if healing:
        for h in healing.get("events", []):
            c.print(f"[yellow]self-healing:[/yellow] {h.get('message', '')}")
    if result.action_needed:
        figures = sorted({NAMES.get(a.figure, a.figure) for a in result.open_alarms})
        c.print(f"[red]ACTION NEEDED[/red]: {', '.join(result.actions)} ({'; '.join(figures)} "
                f"beyond the learned limit; "
                f"{'; '.join(NEXT[a].format(name=result.model) for a in result.actions)})")
    else:
        c.print("[green]all figures within their learned limits[/green]")
    return 1 if result.action_needed else 0


NAMES = {"drift": "drift", "errors": "error rate (5xx)", "client_errors": "client error rate (4xx)",
         "latency": "latency", "metric": "live metric"}
NEXT = {"retrain": "git ml retrain {name}", "rollback": "git ml rollback {name}",
        "inspect-errors": "see the failed requests above; git ml rollback {name} if they began "
                          "with this version"}


def _dur(s: float) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n and s % n == 0:
            return f"{int(s // n)}{unit}"
    return f"{s:g}s"


def _f(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _p(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.2e}" if v < 1e-3 else f"{v:.4f}"
