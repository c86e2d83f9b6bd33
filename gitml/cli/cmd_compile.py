"""`git ml compile NAME[@vX.Y.Z|#STAGE] --onnx [--quantize]`: a faster, smaller artifact."""

from __future__ import annotations

import argparse
import sys

from gitml.cli.output import human_size, print_json, say


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="NAME, NAME@vX.Y.Z or NAME#STAGE")
    p.add_argument("--onnx", action="store_true", required=True,
                   help="compile to ONNX with skl2onnx (the only target so far)")
    p.add_argument("--quantize", action="store_true",
                   help="dynamic int8 quantization of MatMul/Gemm weights (onnxruntime)")
    p.add_argument("-o", "--output", metavar="PATH",
                   help="where to write it (default: next to the model, .onnx / .int8.onnx)")
    p.add_argument("--tolerance", type=float, default=None,
                   help="max probability difference allowed by the parity gate "
                        "(default 1e-4, 0.02 with --quantize)")
    p.add_argument("--min-agreement", type=float, default=0.999,
                   help="share of evaluation rows that must get the same class (default 0.999)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from gitml.deploy.compile import compile_onnx
    from gitml.registry import refs
    from gitml.repo import MLRepo

    repo = MLRepo.discover()
    ref = refs.resolve(repo, args.model)
    res = compile_onnx(repo, ref, quantized=args.quantize, output=args.output,
                       tolerance=args.tolerance, min_agreement=args.min_agreement,
                       argv=["git", "ml", *sys.argv[1:]])
    if args.json:
        print_json(res.to_dict())
        return 0
    q = args.quiet
    say(f"compiled {res.source_path} ({res.source_id[:12]}) at {ref.text} -> {res.output_path} "
        f"({res.output_id[:12]}){' int8' if res.quantized else ''}", quiet=q)
    say(f"  parity: {res.parity.describe()}: passed", quiet=q)
    say(f"  size: {human_size(res.size_before)} -> {human_size(res.size_after)}", quiet=q)
    b, a = res.latency_before, res.latency_after
    say(f"  single-row latency in-process: p50 {b.p50_ms:.3f} ms -> {a.p50_ms:.3f} ms "
        f"({b.p50_ms / a.p50_ms:.1f}x), p99 {b.p99_ms:.3f} -> {a.p99_ms:.3f} ms "
        "(pipe.predict(DataFrame) vs onnxruntime on column arrays)", quiet=q)
    for note in res.notes:
        say(f"  {note}", quiet=q)
    say(f"  lineage: {res.record_path}; staged, commit to record it", quiet=q)
    return 0
