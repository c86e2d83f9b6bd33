from __future__ import annotations

import argparse
import time

from gitml.cli.output import console, human_size, print_json


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("rev", nargs="?", default="HEAD", help="the commit (default HEAD)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--packages", action="store_true", help="list every installed package of the environment")


def run(args: argparse.Namespace) -> int:
    from gitml.repo import MLRepo
    from gitml.runs.manifest import checks_summary, load

    repo = MLRepo.discover()
    m = load(repo, args.rev)
    if args.json:
        print_json(m.to_dict())
        return 0
    if args.quiet:
        return 0
    from rich.markup import escape
    from rich.table import Table

    c = console()
    verified = {True: "[green]matches the tree[/]", False: "[red]does not match the tree[/]",
                None: "no Gitml-Manifest trailer"}[m.verified]
    c.print(f"[bold]commit[/] {m.commit}  {escape(m.summary)}")
    c.print(f"author {escape(m.author)}  date {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(m.time))} UTC")
    c.print(f"manifest {m.manifest_id} ({verified})")
    if m.changed_artifacts:
        c.print("\n[bold]artifacts changed in this commit[/]")
        for a in m.changed_artifacts:
            old, new = a.get("old") or {}, a.get("new") or {}
            c.print(f"  {a['status']} {escape(a['path'])}  {str(old.get('oid', ''))[:12]} -> "
                    f"{str(new.get('oid', ''))[:12]}  {human_size(new['size']) if new else ''}")
    if m.artifacts:
        t = Table(title="artifacts at this commit", show_edge=False, title_justify="left")
        for col in ("path", "kind", "oid", "size"):
            t.add_column(col)
        for path, p in sorted(m.artifacts.items()):
            t.add_row(escape(path), str(p["kind"]), str(p["oid"])[:12], human_size(int(p["size"])))
        c.print(t)
    for stage, rec in sorted(m.runs.items()):
        mark = " [yellow](changed in this commit)[/]" if stage in m.changed_runs else ""
        c.print(f"\n[bold]stage {escape(stage)}[/]{mark}: `{escape(' '.join(rec.cmd))}` exit {rec.exit_code}, "
                f"{rec.duration_s:.1f}s, started {rec.started} from {(rec.git_commit or 'no commit')[:12]}"
                f"{' (dirty)' if rec.git_dirty else ''}, traced by {rec.tracer or 'nothing'}")
        for r in rec.inputs:
            c.print(f"  in   {escape(r.path)}  {(r.oid or '-')[:12]}  {escape('[' + r.source + ']')}")
        for r in rec.outputs:
            c.print(f"  out  {escape(r.path)}  {(r.oid or '-')[:12]}  {escape('[' + r.source + ']')}")
        if rec.params:
            c.print("  params  " + escape(", ".join(f"{k}={v}" for k, v in sorted(rec.params.items()))))
        if rec.metrics:
            c.print("  metrics " + ", ".join(f"{k}={v:.6g}" for k, v in sorted(rec.metrics.items())))
        env = m.environments.get(rec.env or "")
        if env:
            py = env.get("python", {}).get("version")
            plat = env.get("platform", {})
            cpu = env.get("cpu", {})
            mem = env.get("memory_bytes")
            gpus = ", ".join(g.get("name", "?") for g in env.get("gpus", [])) or "none"
            c.print(f"  env {str(rec.env)[:12]}: Python {py}, {len(env.get('packages', {}))} packages, "
                    f"{plat.get('system')} {plat.get('machine')}, {cpu.get('model')} x{cpu.get('count')}, "
                    f"{human_size(mem) if mem else '?'} RAM, GPU {escape(gpus)}")
            if args.packages:
                for name, ver in sorted(env.get("packages", {}).items()):
                    c.print(f"    {escape(name)}=={escape(str(ver))}")
        elif rec.env:
            c.print(f"  env {rec.env[:12]} (environment file missing from this commit)")
    if m.checks:
        c.print("\n[bold]checks[/]")
        for name, state in checks_summary(m.checks).items():
            mark = " (changed in this commit)" if name in m.changed_checks else ""
            c.print(f"  {escape(name)}: {state}{mark}")
            for r in m.checks[name].get("results", []):
                if not isinstance(r, dict):
                    continue
                ok = "skipped" if r.get("skipped") else ("ok" if r.get("passed") else "FAILED")
                msg = f" — {r['message']}" if r.get("message") else ""
                c.print(f"    {escape(str(r.get('gate', '?')))}: {ok}{escape(msg)}")
    return 0
