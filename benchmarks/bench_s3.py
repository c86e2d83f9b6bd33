"""Benchmark: gitml vs DVC (dvc-s3) against the same local S3 server (moto), in one run.

    .venv/bin/python benchmarks/bench_s3.py [--small 20000] [--big-mib 1024] [-j 16]
        [--dvc /tmp/dvcenv/bin/dvc]

DVC lives in its own venv (``python -m venv /tmp/dvcenv && /tmp/dvcenv/bin/pip install
dvc dvc-s3``), never in gitml's. One moto server (``python -m moto.server`` on
127.0.0.1) serves both tools, each in its own bucket. The phases are interleaved (DVC
then gitml for each) so both see the same server state:

1. push the small-file set (N files of 1-8 KiB)
2. push the large file
3. no-op push of everything
4. fresh ``git clone`` + pull of the small-file set
5. pull of the large file

Adding to the local store (``git ml add`` / ``dvc add``) is not part of the timings.
Every pulled byte is compared with the original before the table is printed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.s3_server import FAKE_ENV, start_moto, stop_moto  # noqa: E402

GITML_BIN = str(Path(sys.executable).parent)


GNU_TIME = "/usr/bin/time"
LAST_RSS_MIB: list[float] = [0.0]  # max RSS of the last command run by sh(), when GNU time exists


def sh(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Run a command, fail loudly, return its wall time in seconds (max RSS in LAST_RSS_MIB)."""
    timed = os.path.exists(GNU_TIME)
    full = [GNU_TIME, "-f", "gitml-bench-rss %M", *cmd] if timed else cmd
    t0 = time.perf_counter()
    proc = subprocess.run(full, cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}) in {cwd}:\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    rss = [ln for ln in proc.stderr.splitlines() if ln.startswith("gitml-bench-rss ")]
    LAST_RSS_MIB[0] = int(rss[-1].split()[1]) / 1024 if rss else 0.0
    return dt


def make_data(src: Path, n_small: int, big_mib: int) -> None:
    import random

    rnd = random.Random(42)
    small = src / "small"
    for i in range(n_small):
        d = small / f"d{i // 1000:02d}"
        if i % 1000 == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.bin").write_bytes(rnd.randbytes(rnd.randint(1024, 8192)))
    block = 64 * 1024 * 1024
    with open(src / "big.bin", "wb") as f:
        left = big_mib * 1024 * 1024
        while left > 0:
            n = min(block, left)
            f.write(os.urandom(n))
            left -= n


def digest_tree(root: Path, names: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in names:
        p = root / name
        files = [p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file())
        for f in files:
            h = hashlib.blake2b(digest_size=16)
            with open(f, "rb") as fh:
                while chunk := fh.read(8 * 1024 * 1024):
                    h.update(chunk)
            out[f.relative_to(root).as_posix()] = h.hexdigest()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=20000, help="number of 1-8 KiB files")
    ap.add_argument("--big-mib", type=int, default=1024, help="size of the large file in MiB")
    ap.add_argument("-j", "--jobs", type=int, default=16, help="parallel transfers, both tools")
    ap.add_argument("--dvc", default="/tmp/dvcenv/bin/dvc", help="dvc executable (separate venv)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    ap.add_argument("--fetch-only", action="store_true",
                    help="time `fetch` (download + verify into the store/cache) instead of `pull` "
                         "for both tools; no work-tree checkout")
    args = ap.parse_args()
    if not Path(args.dvc).exists():
        raise SystemExit(f"{args.dvc} not found: python -m venv /tmp/dvcenv && "
                         "/tmp/dvcenv/bin/pip install dvc dvc-s3")

    work = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    home = work / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Bench\n\temail = bench@example.com\n"
                                     "[init]\n\tdefaultBranch = main\n")
    env = {**os.environ, **FAKE_ENV, "HOME": str(home), "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
           "GIT_CONFIG_NOSYSTEM": "1", "DVC_NO_ANALYTICS": "1",
           "PATH": GITML_BIN + os.pathsep + os.environ.get("PATH", "")}
    for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "GIT_DIR", "GIT_WORK_TREE"):
        env.pop(k, None)
    dvc = [args.dvc]
    j = str(args.jobs)
    server = start_moto(work / "moto.log")
    results: dict[str, dict[str, float]] = {"gitml": {}, "DVC": {}}
    rss: dict[str, dict[str, float]] = {"gitml": {}, "DVC": {}}
    try:
        client = server.client()
        for b in ("bench-gitml", "bench-dvc"):
            client.create_bucket(Bucket=b)
        t = time.perf_counter()
        src = work / "src"
        make_data(src, args.small, args.big_mib)
        print(f"data: {args.small} small files + {args.big_mib} MiB file "
              f"({time.perf_counter() - t:.1f}s to generate)", flush=True)
        expect = digest_tree(src, ["small", "big.bin"])

        # --- set up both repos (not timed)
        g = work / "gitml-repo"
        d = work / "dvc-repo"
        for r in (g, d):
            r.mkdir()
            sh(["git", "init", "-q"], r, env)
            sh(["cp", "-a", str(src / "small"), str(src / "big.bin"), str(r)], r, env)
        sh(["git", "ml", "init", "--no-hooks"], g, env)
        t_add_g = sh(["git", "ml", "add", "small", "big.bin"], g, env)
        sh(["git", "ml", "remote", "add", "origin", "s3://bench-gitml/store", "--default"], g, env)
        sh(["git", "ml", "remote", "modify", "origin", "endpoint_url", server.endpoint_url], g, env)
        sh(["git", "add", "-A"], g, env)
        sh(["git", "commit", "-q", "-m", "data"], g, env)

        sh([*dvc, "init", "-q"], d, env)
        sh([*dvc, "config", "core.autostage", "true"], d, env)
        t_add_d = sh([*dvc, "add", "-q", "small", "big.bin"], d, env)
        sh([*dvc, "remote", "add", "-d", "origin", "s3://bench-dvc/store"], d, env)
        sh([*dvc, "remote", "modify", "origin", "endpointurl", server.endpoint_url], d, env)
        sh(["git", "add", "-A"], d, env)
        sh(["git", "commit", "-q", "-m", "data"], d, env)
        print(f"add (not in the table): gitml {t_add_g:.1f}s, DVC {t_add_d:.1f}s", flush=True)

        def both(label: str, gcmd: list[str], dcmd: list[str], gdir: Path, ddir: Path) -> None:
            results["DVC"][label] = sh(dcmd, ddir, env)
            rss["DVC"][label] = LAST_RSS_MIB[0]
            results["gitml"][label] = sh(gcmd, gdir, env)
            rss["gitml"][label] = LAST_RSS_MIB[0]
            print(f"{label}: DVC {results['DVC'][label]:.2f}s, gitml {results['gitml'][label]:.2f}s",
                  flush=True)

        both(f"push {args.small:,} small files",
             ["git", "ml", "push", "-q", "-j", j, "small"], [*dvc, "push", "-q", "-j", j, "small.dvc"], g, d)
        both(f"push {args.big_mib} MiB file",
             ["git", "ml", "push", "-q", "-j", j, "big.bin"], [*dvc, "push", "-q", "-j", j, "big.bin.dvc"], g, d)
        both("no-op push (everything)",
             ["git", "ml", "push", "-q", "-j", j], [*dvc, "push", "-q", "-j", j], g, d)

        gc, dc = work / "gitml-clone", work / "dvc-clone"
        sh(["git", "clone", "-q", str(g), str(gc)], work, env)
        sh(["git", "clone", "-q", str(d), str(dc)], work, env)
        verb = "fetch" if args.fetch_only else "pull"
        both(f"clone + {verb} {args.small:,} small files",
             ["git", "ml", verb, "-q", "-j", j, "small"], [*dvc, verb, "-q", "-j", j, "small.dvc"], gc, dc)
        both(f"{verb} {args.big_mib} MiB file",
             ["git", "ml", verb, "-q", "-j", j, "big.bin"], [*dvc, verb, "-q", "-j", j, "big.bin.dvc"], gc, dc)

        if not args.fetch_only:
            for name, clone in (("gitml", gc), ("DVC", dc)):
                got = digest_tree(clone, ["small", "big.bin"])
                if got != expect:
                    bad = sorted(k for k in expect if got.get(k) != expect[k])
                    raise SystemExit(f"{name}: pulled bytes differ from the originals: {bad[:5]}")
            print("pulled bytes verified for both tools", flush=True)
        else:
            sh(["git", "ml", "fsck", "-q"], gc, env)
            print("gitml fsck of the fetched store: ok", flush=True)
    finally:
        stop_moto(server)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")

    print()
    print(f"| operation (moto S3 on 127.0.0.1, -j {args.jobs}) | DVC 3.x + dvc-s3 | gitml "
          "| gitml / DVC | max RSS DVC / gitml |")
    print("|---|---:|---:|---:|---:|")
    for label, dt in results["DVC"].items():
        gt = results["gitml"][label]
        print(f"| {label} | {dt:.2f} s | {gt:.2f} s | {gt / dt:.2f} | "
              f"{rss['DVC'][label]:.0f} / {rss['gitml'][label]:.0f} MiB |")
    if args.out:
        import json
        import platform

        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip()
        args.out.write_text(json.dumps({
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "gitml_commit": commit,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "load_at_end": os.getloadavg()},
            "sizes": {"n_small": args.small, "big_mib": args.big_mib, "jobs": args.jobs},
            "seconds": results, "max_rss_mib": rss}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
