"""`git ml drift --reference REV [--current PATH|REV] [DATA]`: per-feature two-sample tests
and the data-set drift verdict."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gitml.errors import UsageError
from gitml.models.tables import TABLE_SUFFIXES


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="?", metavar="DATA",
                   help="the data set's path in the repository (default: the file given by "
                        "--current, or the evaluation data of the only declared model)")
    p.add_argument("--reference", "-r", metavar="REV", default="HEAD",
                   help="revision holding the reference version (default: HEAD)")
    p.add_argument("--current", "-c", metavar="PATH|REV",
                   help="a table file, or a revision (default: the work-tree version of DATA)")
    p.add_argument("--alpha", type=float, help="significance level (default 0.05)")
    p.add_argument("--correction", choices=("holm", "bh", "none"),
                   help="multiple-testing correction across columns (default holm)")
    p.add_argument("--max-drift-share", type=float, metavar="SHARE",
                   help="fail only when more than this share of columns drift (default 0)")
    p.add_argument("--columns", metavar="COL,COL", help="only these columns")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _settings(repo: Any, data: str, args: argparse.Namespace) -> dict[str, Any]:
    entry = (repo.config.data.get("data") or {}).get(data) or {}
    cfg: dict[str, Any] = dict(entry.get("drift") or {}) if isinstance(entry, dict) else {}
    cfg.pop("reference", None)
    cfg.pop("enabled", None)
    if args.alpha is not None:
        cfg["alpha"] = args.alpha
    if args.correction:
        cfg["correction"] = args.correction
    if args.max_drift_share is not None:
        cfg["max_drift_share"] = args.max_drift_share
    if args.columns:
        cfg["columns"] = [c.strip() for c in args.columns.split(",") if c.strip()]
    return cfg


def _default_data(repo: Any, current: str | None) -> str:
    if current and Path(current).is_file():
        return str(repo.relpath(current))
    models = repo.config.data.get("models") or {}
    datas = sorted({str(m.get("data")) for m in models.values() if isinstance(m, dict) and m.get("data")})
    if len(datas) == 1:
        return datas[0]
    raise UsageError("which data set? give DATA",
                     "e.g. `git ml drift --reference v1 data/train.parquet`")


def run(args: argparse.Namespace) -> int:
    from gitml.checks.drift import DriftConfig, drift_between
    from gitml.cli.output import print_json, print_table, say
    from gitml.repo import MLRepo

    repo = MLRepo.discover()
    if args.current and args.current.lower().endswith(TABLE_SUFFIXES) and not Path(args.current).is_file():
        raise UsageError(f"--current {args.current}: no such file",
                         "give an existing table file or a revision")
    data = args.data or _default_data(repo, args.current)
    if Path(data).is_absolute() or Path(data).exists():
        data = repo.relpath(data)
    cfg = DriftConfig.from_mapping(_settings(repo, data, args), f'data."{data}".drift')
    current = args.current
    if current is not None and not Path(current).is_file():
        repo.git.resolve(current)  # a clear error for a typo
    res = drift_between(repo, data, args.reference, current, cfg)
    if args.json:
        print_json(res.to_dict() | {"data": data, "reference": args.reference,
                                    "current": current or "work tree"})
        return 0 if res.passed else 1
    if not args.quiet:
        rows = []
        for f in res.metrics["features"]:
            rows.append([f["column"], f["test"], _n(f["statistic"]), _p(f["p_adjusted"]),
                         _n(f["effect"]),
                         "[red]yes[/red]" if f["drifted"] else ("-" if f["p_value"] is None else "no"),
                         f["note"]])
        print_table(f"drift of {data}: {args.reference} -> {current or 'work tree'} "
                    f"(alpha {cfg.alpha:g}, {cfg.correction})",
                    ["feature", "test", "statistic", "p adj.", "effect", "drift", "note"], rows)
        m = res.metrics
        say(f"{'DRIFT' if not res.passed else 'no data-set drift'}: {m['n_drifted']} of "
            f"{m['n_tested']} columns drifted (share {m['drift_share']:.0%}); {res.message}",
            quiet=False)
    return 0 if res.passed else 1


def _n(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}"


def _p(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.2e}" if v < 1e-3 else f"{v:.4f}"
