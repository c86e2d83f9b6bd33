"""`git ml serve NAME[@vX.Y.Z|#stage] [--rev REV] [--port] [--workers N] [--host] [--token] [--no-log] [--onnx]`:
serve a declared model over HTTP (MLflow's /invocations and KServe V2 on one port)."""

from __future__ import annotations

import argparse
import os

from gitml.cli.output import say


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", metavar="NAME[@vX.Y.Z|#stage]",
                   help="the declared model, optionally a registered version or a stage")
    p.add_argument("--rev", help="serve the model as committed at this revision (default HEAD)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks one)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="worker processes on the port (default: cores, at most 4)")
    p.add_argument("--token", help="require 'Authorization: Bearer TOKEN' "
                                   "(default: $GITML_SERVE_TOKEN when set)")
    p.add_argument("--no-log", action="store_true", help="do not write the traffic log")
    p.add_argument("--sample", type=float, default=1.0,
                   help="fraction of requests written to the traffic log (default 1)")
    p.add_argument("--onnx", action="store_true",
                   help="serve the ONNX model `git ml compile --onnx` made from it (onnxruntime)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="load a pickle/joblib model (it can run arbitrary code: only if you trust it)")


def run(args: argparse.Namespace) -> int:
    from gitml.errors import UsageError
    from gitml.repo import MLRepo
    from gitml.serve.local import default_traffic_dir, prepare, resolve
    from gitml.serve.supervisor import Supervisor
    from gitml.serve.worker import TOKEN_ENV

    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if not 0.0 <= args.sample <= 1.0:
        raise UsageError("--sample must be between 0 and 1")
    if not 0 <= args.port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    repo = MLRepo.discover()
    target = resolve(repo, args.ref, args.rev)
    state, bundle = prepare(repo, target, allow_pickle=args.allow_pickle, onnx=args.onnx)
    traffic = None if args.no_log else default_traffic_dir(repo, target.name)
    token = args.token or os.environ.get(TOKEN_ENV) or None
    say(f"serving {target.name} {target.version} (commit {target.commit[:12]}, "
        f"{'ONNX ' if bundle.flavor == 'onnx' else ''}model id {bundle.model_id[:12]}) "
        f"on {args.host}:{args.port}"
        + (f"; traffic log in {traffic}" if traffic else "; no traffic log")
        + ("; bearer token required" if token else ""), quiet=args.quiet)
    return Supervisor(state, host=args.host, port=args.port, workers=args.workers, token=token,
                      traffic_dir=traffic, sample=args.sample, allow_pickle=args.allow_pickle).run()
