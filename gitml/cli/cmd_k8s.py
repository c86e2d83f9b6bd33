"""`git ml k8s NAME#STAGE [--kserve] [--service-monitor] -o DIR`: manifests sized by `recommend`."""

from __future__ import annotations

import argparse
from pathlib import Path

from gitml.cli.cmd_recommend import add_target_args
from gitml.cli.output import print_json, say


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="NAME#STAGE, NAME@vX.Y.Z or NAME")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                   help="folder for the YAML files")
    p.add_argument("--image", default=None,
                   help="container image (default: gitml-NAME:VERSION, what the package's README builds)")
    p.add_argument("--namespace", default=None, help="namespace to put in the manifests")
    p.add_argument("--service-monitor", action="store_true",
                   help="also a Prometheus-operator ServiceMonitor")
    p.add_argument("--kserve", action="store_true",
                   help="also a KServe InferenceService (custom container, V2 protocol)")
    add_target_args(p, required=False)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from gitml.cli.cmd_recommend import recommendation
    from gitml.deploy import k8s
    from gitml.deploy.package import image_name, server_command

    _, ref, rec = recommendation(args)
    workload = k8s.Workload(
        model=ref.name, version=ref.label, stage=ref.stage,
        image=args.image or image_name(ref.name, ref.label + ('-onnx' if args.onnx else '')),
        command=server_command(rec.workers, port=k8s.PORT), namespace=args.namespace)
    docs = k8s.manifests(workload, rec, service_monitor=args.service_monitor, kserve=args.kserve)
    paths = k8s.write(args.output, docs)
    if args.json:
        print_json({"files": [str(p) for p in paths], "recommendation": rec.to_dict()})
        return 0
    say(f"wrote {len(paths)} manifest(s) to {args.output}: {', '.join(p.name for p in paths)}",
        quiet=args.quiet)
    say(f"  sized for {rec.target.rps:g} rps at p99 ≤ {rec.target.p99_ms:g} ms "
        "(--rps/--p99-ms to change):", quiet=args.quiet)
    for line in rec.explain:
        say(f"  - {line}", quiet=args.quiet)
    return 0
