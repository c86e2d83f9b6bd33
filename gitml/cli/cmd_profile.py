"""`git ml profile NAME[@vX.Y.Z|#STAGE] [--rows 1,100] [--workers 1,2]`: measured, recorded in Git."""

from __future__ import annotations

import argparse

from gitml.cli.output import human_size, print_json, say


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="NAME, NAME@vX.Y.Z or NAME#STAGE")
    p.add_argument("--rows", type=_ints, default=[1, 100], help="rows per request (default 1,100)")
    p.add_argument("--workers", type=_ints, default=[1, 2],
                   help="server worker counts to measure (default 1,2)")
    p.add_argument("--duration", type=float, default=3.0,
                   help="seconds of load per measurement (default 3)")
    p.add_argument("--onnx", action="store_true", help="profile the compiled ONNX model")
    p.add_argument("--no-commit", action="store_true", help="stage the profile, do not commit")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from gitml.deploy.profile import profile
    from gitml.registry import refs
    from gitml.repo import MLRepo

    repo = MLRepo.discover()
    ref = refs.resolve(repo, args.model)
    prof, rel = profile(repo, ref, rows=args.rows, workers=args.workers, duration_s=args.duration,
                        onnx=args.onnx, commit=not args.no_commit)
    if args.json:
        print_json({**prof, "path": rel})
        return 0
    q = args.quiet
    cpu = prof.get("cpu") or {}
    say(f"{ref.text} ({prof['flavor']}, {prof.get('path')} path) on {cpu.get('model')} "
        f"({cpu.get('count')} CPUs), load average {prof['load_average'][0]}: {prof['duration_s']} s",
        quiet=q)
    ld = prof["load"]
    say(f"  load {ld['seconds']:.2f} s, RSS after load {human_size(ld['rss_bytes'])}, model "
        f"{human_size(ld['model_bytes'])}", quiet=q)
    for r, e in prof["latency"].items():
        sp = e["server_path"]
        extra = (f"; pipe.predict(DataFrame) p50 {e['dataframe']['p50_ms']:.3f} ms"
                 if "dataframe" in e else "")
        say(f"  {r} row(s) in-process: p50 {sp['p50_ms']:.3f} ms, p99 {sp['p99_ms']:.3f} ms{extra}",
            quiet=q)
    for s in prof["server"]:
        say(f"  server {s['workers']} worker(s), {s['rows']} row(s), concurrency {s['concurrency']}: "
            f"{s['rps']:.0f} req/s, p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, "
            f"{s['errors']} errors, RSS {human_size(s['rss_bytes'])} ({s['tool']})", quiet=q)
    if prof.get("_note"):
        say(f"  note: {prof['_note']}", quiet=q)
    say(f"  recorded in {rel}" + ("" if args.no_commit else " (committed)"), quiet=q)
    return 0
