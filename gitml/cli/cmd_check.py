"""`git ml check [MODEL...]`: every gate of every declared model (what the hook runs).

Also holds the small helpers the eval / bias / explain commands share.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gitml.cli.output import print_json, print_table

if TYPE_CHECKING:
    from gitml.checks.results import GateResult, ModelResult


def add_place_args(p: argparse.ArgumentParser) -> None:
    """--rev / --staged: where the model and data are read (default: the work tree)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--rev", metavar="REV", help="use the model and data of this commit or tag")
    g.add_argument("--staged", action="store_true", help="use the staged (index) versions")
    p.add_argument("--against", metavar="REF",
                   help="baseline: a stage (prod), a version (v1.2.0), a tag or a revision "
                        "(default: the model's gates.baseline)")
    p.add_argument("--no-cache", action="store_true", help="recompute even if results are cached")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def status_word(g: GateResult) -> str:
    if g.skipped:
        return "skipped"
    if g.passed:
        return "[green]pass[/green]"
    return "[red]FAIL[/red]" if g.blocking else "[yellow]warn[/yellow]"


def print_gates(res: ModelResult) -> None:
    rows = [(g.gate, status_word(g), g.message) for g in res.results]
    state = "cached" if res.cached else f"{res.seconds:.1f}s"
    verdict = "passed" if res.passed else "BLOCKED"
    print_table(f"{res.model} @ {res.rev or 'worktree'}: {verdict} ({state})",
                ["gate", "status", "detail"], rows)


def fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def run_models(args: argparse.Namespace, gates: tuple[str, ...], names: list[str] | None) -> list[ModelResult]:
    from gitml.checks.runner import run_checks
    from gitml.repo import MLRepo

    repo = MLRepo.discover()
    results = run_checks(repo, names, rev=args.rev, staged=bool(args.staged), against=args.against,
                         gates=gates, use_cache=not args.no_cache)
    if not results and not names:
        from gitml.errors import ConfigError

        raise ConfigError("no models are declared in .gitml/config.toml",
                          "add a [models.NAME] table with path, data, target and task")
    return results


def report(args: argparse.Namespace, results: list[ModelResult],
           render: Callable[[ModelResult], None] | None = None) -> int:
    """Print the results: JSON with --json, nothing with -q, otherwise ``render`` (the
    command's own tables) then the gate lines, per model. Exit 1 when a gate blocks."""
    ok = all(r.passed for r in results)
    if args.json:
        print_json({"passed": ok, "models": [r.to_dict() | {"cached": r.cached} for r in results]})
    elif not args.quiet:
        for res in results:
            if render is not None:
                render(res)
            print_gates(res)
    return 0 if ok else 1


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="*", metavar="MODEL", help="models to check (default: all)")
    add_place_args(p)
    p.add_argument("--write", action="store_true",
                   help="write the results to .gitml/checks/<model>.json")


def run(args: argparse.Namespace) -> int:
    from gitml.checks.runner import ALL_GATES

    results = run_models(args, ALL_GATES, args.models or None)
    if args.write:
        from gitml.checks.results import write_results
        from gitml.repo import MLRepo

        repo = MLRepo.discover()
        for res in results:
            write_results(repo.workdir, res)
    return report(args, results)
