from __future__ import annotations

import argparse

from gitml.cli.output import print_json


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("stages", nargs="*", help="only these stages (and what they depend on)")
    p.add_argument("-f", "--force", action="store_true", help="re-run even if up to date")
    p.add_argument("-n", "--dry-run", action="store_true", help="only say what is stale and why")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from gitml.repo import MLRepo
    from gitml.runs.repro import repro

    repo = MLRepo.discover()
    result = repro(repo, args.stages or None, force=args.force, dry_run=args.dry_run,
                   quiet=args.quiet or args.json, stdout_to_stderr=args.json)
    if args.json:
        print_json([s.to_dict() for s in result])
    elif not args.quiet:
        for s in result:
            if not s.stale:
                print(f"{s.stage}: up to date")
            elif s.ran:
                state = "re-ran" if s.exit_code == 0 else f"FAILED (exit {s.exit_code})"
                print(f"{s.stage}: {state} ({'; '.join(s.reasons)})")
            else:
                print(f"{s.stage}: stale ({'; '.join(s.reasons)})")
    failed = [s for s in result if s.ran and s.exit_code]
    return int(failed[0].exit_code or 1) if failed else 0
