"""`git ml recommend NAME@vX.Y.Z --rps N --p99-ms MS [--max-cost USD_PER_HOUR]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from gitml.cli.output import print_json, say


def add_target_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--rps", type=float, required=required, default=None if required else 50.0,
                   help="requests per second to serve" + ("" if required else " (default 50)"))
    p.add_argument("--p99-ms", type=float, required=required, default=None if required else 100.0,
                   help="p99 latency to stay under, ms" + ("" if required else " (default 100)"))
    p.add_argument("--max-cost", type=float, default=None, metavar="PER_HOUR",
                   help="refuse plans costing more per hour (catalog currency)")
    p.add_argument("--headroom", type=float, default=0.2,
                   help="share of measured throughput kept free (default 0.2)")
    p.add_argument("--rows", type=int, default=1, help="rows per request (default 1)")
    p.add_argument("--onnx", action="store_true",
                   help="size for the compiled ONNX model (its profile: git ml profile --onnx)")
    p.add_argument("--catalog", type=Path, default=None, metavar="FILE",
                   help="machine types and prices (default: gitml's shipped, dated catalog)")


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="NAME, NAME@vX.Y.Z or NAME#STAGE")
    add_target_args(p, required=True)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def recommendation(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from gitml.deploy import catalog, profiles
    from gitml.deploy.recommend import Target, recommend
    from gitml.registry import refs
    from gitml.repo import MLRepo

    repo = MLRepo.discover()
    ref = refs.resolve(repo, args.model)
    prof = profiles.load(repo, ref, onnx=args.onnx)
    target = Target(rps=args.rps, p99_ms=args.p99_ms, max_cost_hour=args.max_cost,
                    headroom=args.headroom, rows=args.rows)
    return repo, ref, recommend(prof, target, catalog.load(args.catalog))


def run(args: argparse.Namespace) -> int:
    _, ref, rec = recommendation(args)
    if args.json:
        print_json(rec.to_dict())
        return 0
    say(f"{ref.text}: {rec.replicas} replica(s) × {rec.workers} worker(s), CPU {rec.cpu_request:g} "
        f"(limit {rec.cpu_limit:g}), memory {rec.memory_request_mib}Mi, on {rec.nodes} × "
        f"{rec.machine.name} = {rec.cost_hour:.3f}/h", quiet=args.quiet)
    for line in rec.explain:
        say(f"  - {line}", quiet=args.quiet)
    return 0
