"""`git ml package NAME[@vX.Y.Z|#STAGE] -o DIR [--onnx]`: a folder that serves anywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

from gitml.cli.output import print_json, say


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="NAME, NAME@vX.Y.Z or NAME#STAGE")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                   help="the folder to write (must be empty or absent)")
    p.add_argument("--onnx", action="store_true",
                   help="serve the ONNX model `git ml compile` made from this version")
    p.add_argument("--workers", type=int, default=2,
                   help="server worker processes in the image's command (default 2)")
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from gitml.deploy.package import package
    from gitml.registry import refs
    from gitml.repo import MLRepo

    repo = MLRepo.discover()
    ref = refs.resolve(repo, args.model)
    res = package(repo, ref, args.output, onnx=args.onnx, workers=args.workers, force=args.force)
    b = res.bundle
    if args.json:
        print_json({"path": str(res.path), "image": res.image, "files": res.files,
                    "model": b.name, "version": b.version, "commit": b.commit,
                    "model_id": b.model_id, "flavor": b.flavor, "requirements": res.requirements,
                    "notes": res.notes})
        return 0
    say(f"packaged {b.name} {b.version or b.commit[:12]} ({b.flavor}, model id {b.model_id[:12]}) "
        f"in {res.path}: {len(res.files)} files", quiet=args.quiet)
    say(f"  docker build -t {res.image} {res.path}   (or see {res.path / 'README.md'})",
        quiet=args.quiet)
    for n in res.notes:
        say(f"  note: {n}", quiet=args.quiet)
    return 0
