from __future__ import annotations

import argparse

from gitml.cli.output import print_json, say


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", help="what to deploy: NAME#STAGE or NAME@vX.Y.Z")
    p.add_argument("--target", help="deploy target (default: local)")
    p.add_argument("--grace", type=float, help="seconds to watch the new version before it is "
                   "kept (default deploy.grace_seconds)")
    p.add_argument("--no-wait", action="store_true",
                   help="return at the switch; a background process watches the grace window")
    p.add_argument("--onnx", action="store_true",
                   help="serve the ONNX model `git ml compile --onnx` made from the version")
    p.add_argument("--stop", action="store_true", help="stop the server of this model on the target")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from gitml.registry.deploy import deploy, stop
    from gitml.repo import MLRepo

    repo = MLRepo.discover()
    if args.stop:
        name = args.ref.split("#")[0].split("@")[0]
        stopped = stop(repo, name, args.target)
        say(f"stopped the server of {name}" if stopped else f"no server of {name} runs", quiet=args.quiet)
        return 0
    res = deploy(repo, args.ref, args.target, grace=args.grace, detach_watch=args.no_wait,
                 onnx=args.onnx,
                 log=None if args.quiet or args.json else (lambda m: say(m, quiet=False)))
    if args.json:
        print_json({k: v for k, v in vars(res).items()})
        return 0 if res.action != "rollback" else 1
    if res.action == "rollback":
        say(f"{res.name} rolled back to {res.version}: {res.reason}", quiet=args.quiet)
        return 1
    if res.action == "noop":
        say(f"{res.name} {res.version} already serves on {res.target} ({res.url})", quiet=args.quiet)
    else:
        say(f"{res.name} {res.version} serves on {res.url}", quiet=args.quiet)
    return 0
