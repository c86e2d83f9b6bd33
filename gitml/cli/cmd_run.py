from __future__ import annotations

import argparse
import sys

from gitml.cli.output import print_json


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--name", dest="stage", help="stage name (default: the script's name)")
    p.add_argument("-d", "--dep", dest="deps", action="append", default=[], metavar="PATH",
                   help="an input to record even if it is not seen being read (repeatable)")
    p.add_argument("-o", "--out", dest="outs", action="append", default=[], metavar="PATH",
                   help="an output to store even if it is not seen being written (repeatable)")
    p.add_argument("-p", "--params", dest="params_files", action="append", default=[],
                   metavar="FILE[:KEY,...]", help="params file (JSON/TOML/YAML), optionally some keys only")
    p.add_argument("-M", "--metrics", dest="metrics_files", action="append", default=[], metavar="FILE",
                   help="metrics file written by the command (JSON/TOML/YAML)")
    p.add_argument("-x", "--exclude", action="append", default=[], metavar="GLOB",
                   help="ignore written/read paths matching GLOB (repeatable)")
    p.add_argument("--no-trace", dest="trace", action="store_false",
                   help="do not trace file access; record only -d/-o")
    p.add_argument("--no-add", dest="add_outputs", action="store_false",
                   help="record outputs but do not put them in the store")
    p.add_argument("--json", action="store_true", help="print the run record as JSON")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- the command and its arguments")


def run(args: argparse.Namespace) -> int:
    from gitml.repo import MLRepo
    from gitml.runs.runner import RunOptions, run_stage

    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    repo = MLRepo.discover()
    import os

    cwd = repo.relpath(os.getcwd()) or "."
    outcome = run_stage(repo, RunOptions(
        cmd=cmd, stage=args.stage, cwd=cwd, deps=args.deps, outs=args.outs,
        params_files=args.params_files, metrics_files=args.metrics_files, exclude=args.exclude,
        trace=args.trace, add_outputs=args.add_outputs, stdout_to_stderr=args.json), quiet=args.quiet)
    rec = outcome.record
    for w in outcome.warnings:
        print(f"gitml: warning: {w}", file=sys.stderr)
    if args.json:
        print_json(rec.to_dict())
    elif not args.quiet:
        _summary(outcome)
    return rec.exit_code


def _summary(outcome: object) -> None:
    from gitml.runs.runner import RunOutcome

    assert isinstance(outcome, RunOutcome)
    rec = outcome.record
    err = sys.stderr
    state = "ok" if rec.exit_code == 0 else f"failed (exit {rec.exit_code})"
    print(f"gitml: stage '{rec.stage}' {state} in {rec.duration_s:.1f}s; recorded {outcome.record_path}",
          file=err)
    for r in rec.inputs:
        print(f"  in   {r.path}  {(r.oid or '-')[:12]}  [{r.source}{', declared' if r.declared else ''}]", file=err)
    for r in rec.outputs:
        print(f"  out  {r.path}  {(r.oid or '-')[:12]}  [{r.source}{', declared' if r.declared else ''}]", file=err)
    if rec.params:
        print("  params  " + ", ".join(f"{k}={v}" for k, v in sorted(rec.params.items())), file=err)
    if rec.metrics:
        print("  metrics " + ", ".join(f"{k}={v:g}" for k, v in sorted(rec.metrics.items())), file=err)
    if rec.env:
        print(f"  env     {rec.env[:12]}", file=err)
