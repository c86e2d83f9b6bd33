"""Fault-injection campaign: kill -9 at random moments of add, push, pull and checkout,
concurrent adds / pushes / gc, damaged objects (flip, truncate, delete; loose, chunk,
tree, pack member), a full disk (small tmpfs; needs root) and unreadable paths.

    .venv/bin/python benchmarks/faults.py                 # full campaign (~15 min on 2 cores)
    .venv/bin/python benchmarks/faults.py --kills 12      # kill trials per command
    .venv/bin/python benchmarks/faults.py --seed 5 --keep # keep the scratch folder

Prints a table of trials and failures per kind. Target: 0 wrong bytes, 0 internal
errors, 0 hangs, 0 lost ignore lines, 0 temp files left after the next command.
The scenarios live in tests/support/faults.py (tests/test_faults_quick.py runs one of each).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import faults  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=13, help="kill trials per command (4 commands)")
    ap.add_argument("--concurrent", type=int, default=5, help="rounds of each concurrency case")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]
    rng = random.Random(args.seed)
    scratch = Path(tempfile.mkdtemp(prefix="gitml-faults-", dir=args.workdir))
    rows: dict[str, faults.Outcome] = {}
    started = time.monotonic()

    def record(out: faults.Outcome) -> None:
        rows.setdefault(out.kind, faults.Outcome(out.kind)).merge(out)
        mark = "ok" if out.failures == 0 else f"FAIL {out.notes[:2]}"
        print(f"  {out.kind:<28} {mark}", flush=True)

    try:
        for _ in range(args.kills):
            for op in faults.KILL_OPS:
                record(faults.kill_trial(op, scratch / "kill" / op, rng,
                                         max_delay=rng.choice([0.5, 1.5, 3.0])))
        for _ in range(args.concurrent):
            record(faults.concurrent_adds(scratch / "conc", rng))
            record(faults.concurrent_push_and_gc(scratch / "conc", rng))
        for how in faults.DAMAGES:
            for target in faults.TARGETS:
                record(faults.damage_trial(how, target, scratch / "damage", rng))
        for _ in range(2):
            record(faults.full_disk_trial(scratch / "disk", rng))
        for what in faults.UNREADABLE:
            record(faults.unreadable_trial(what, scratch / "unreadable", rng))
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.monotonic() - started
    cols = ("trials", "wrong_bytes", "internal_errors", "hangs", "lost_ignore_lines", "leftovers")
    print()
    print(f"{'kind':<28}" + "".join(f"{c:>18}" for c in cols))
    total = faults.Outcome("total")
    for out in rows.values():
        total.merge(out)
        print(f"{out.kind:<28}" + "".join(f"{getattr(out, c):>18}" for c in cols))
    print(f"{'total':<28}" + "".join(f"{getattr(total, c):>18}" for c in cols))
    notes = [n for out in rows.values() for n in out.notes]
    if notes:
        print("\nnotes:")
        for n in notes[:40]:
            print("  " + n)
    print(f"\n{elapsed:.0f} s, load average {os.getloadavg()[0]:.2f}")
    return 1 if total.failures else 0


if __name__ == "__main__":
    sys.exit(main())
