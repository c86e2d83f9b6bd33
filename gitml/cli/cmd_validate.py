"""`git ml validate [DATA...]`: data quality against the declared rules and the previous
version (schema, rows, nulls, duplicates, ranges, categories, outliers)."""

from __future__ import annotations

import argparse
from typing import Any

from gitml.models.tables import TABLE_SUFFIXES


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="*", metavar="DATA",
                   help='data sets to check (default: every [data."PATH"] in the config, else '
                        "every tabular artifact)")
    p.add_argument("--against", metavar="REV", default="HEAD",
                   help="the previous version to compare with (default: HEAD)")
    p.add_argument("--rev", metavar="REV", help="check the version at REV instead of the work tree")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _targets(repo: Any, given: list[str]) -> list[str]:
    from gitml.errors import UsageError

    if given:
        return [repo.relpath(d) for d in given]
    declared = repo.config.data.get("data") or {}
    if isinstance(declared, dict) and declared:
        return sorted(str(k) for k in declared)
    from gitml.artifacts import worktree

    found = sorted(a for a in worktree.pointers(repo) if a.lower().endswith(TABLE_SUFFIXES))
    if not found:
        raise UsageError("no data set to validate",
                         'give DATA, or declare [data."path".rules] in .gitml/config.toml')
    return found


def run(args: argparse.Namespace) -> int:
    from gitml.checks.quality import rules_for, validate_path
    from gitml.cli.output import console, print_json, print_table
    from gitml.repo import MLRepo

    repo = MLRepo.discover()
    against: str | None = args.against
    if repo.git.head() is None:
        against = None
    elif against is not None:
        repo.git.resolve(against)
    results = []
    for data in _targets(repo, args.data):
        rules = rules_for(repo.config.data, data)
        results.append(validate_path(repo, data, against, rules, current_rev=args.rev))
    failed = any(r.blocks for r in results)
    if args.json:
        print_json({"passed": not failed, "results": [r.to_dict() for r in results]})
        return 1 if failed else 0
    if args.quiet:
        return 1 if failed else 0
    colour = {"error": "red", "warning": "yellow", "info": "dim"}
    for r in results:
        m = r.metrics
        rows = [[f"[{colour[f['severity']]}]{f['severity']}[/{colour[f['severity']]}]", f["check"],
                 f["column"] or "", f["message"], f["fix"]] for f in m["findings"]]
        prev = m.get("previous_rows")
        title = (f"{m['data']}: {m['rows']} rows"
                 + (f" (was {prev} at {against})" if prev is not None else " (no previous version)"))
        if rows:
            print_table(title, ["severity", "check", "column", "finding", "suggested fix"], rows)
        else:
            console().print(f"[bold]{title}[/bold]")
        verdict = ("[red]BLOCKED[/red]" if r.blocks else
                   "[yellow]failed (not blocking)[/yellow]" if not r.passed else "[green]ok[/green]")
        console().print(f"{verdict}: {r.message}\n")
    return 1 if failed else 0
