from __future__ import annotations

import argparse
from typing import Any

from gitml.cli.output import console, human_size, print_json


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", nargs="?", default=None, help="old commit (default: the parent of B)")
    p.add_argument("b", nargs="?", default="HEAD", help="new commit (default HEAD)")
    p.add_argument("--no-data", dest="data", action="store_false",
                   help="do not summarise tabular artifacts (no store reads)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def run(args: argparse.Namespace) -> int:
    from gitml.errors import UsageError
    from gitml.repo import MLRepo
    from gitml.runs.diff import diff
    from gitml.runs.manifest import load

    repo = MLRepo.discover()
    b_rev = args.b
    a_rev = args.a
    if a_rev is None:
        mb = load(repo, b_rev)
        if not mb.parents:
            raise UsageError(f"{b_rev} has no parent to compare with", "name two commits: git ml diff A B")
        a_rev = mb.parents[0]
    d = diff(repo, load(repo, a_rev), load(repo, b_rev), data=args.data)
    from gitml.deploy.profile_diff import diff_profiles, format_profile_diff

    d["profiles"] = diff_profiles(repo, d["a"], d["b"])
    if args.json:
        print_json(d)
        return 0
    if args.quiet:
        return 0
    from rich.markup import escape
    from rich.table import Table

    c = console()
    c.print(f"[bold]{d['a'][:12]} -> {d['b'][:12]}[/]")
    for title, key in (("metrics", "metrics"), ("params", "params")):
        if d[key]:
            t = Table(title=title, show_edge=False, title_justify="left")
            for col in ("name", "old", "new", "delta"):
                t.add_column(col)
            for name, v in d[key].items():
                delta = v["delta"]
                ds = "" if delta is None else (f"[green]{delta:+.6g}[/]" if delta > 0 else
                                               f"[red]{delta:+.6g}[/]" if delta < 0 else "0")
                t.add_row(escape(name), escape(_fmt(v["old"])), escape(_fmt(v["new"])), ds)
            c.print(t)
    for stage, e in d["environment"].items():
        if e["same"]:
            c.print(f"environment of {escape(stage)}: unchanged ({str(e['ids'][1])[:12]})")
            continue
        if "only" in e:
            c.print(f"environment of {escape(stage)}: {'new' if e['only'] == 'new' else 'gone'} "
                    f"({str(e['ids'][1] or e['ids'][0])[:12]})")
            continue
        c.print(f"[bold]environment of {escape(stage)}[/]: {str(e['ids'][0])[:12]} -> {str(e['ids'][1])[:12]}")
        for key in ("python", "platform", "cpu", "memory_bytes", "gpus"):
            if key in e:
                c.print(f"  {key}: {escape(str(e[key][0]))} -> {escape(str(e[key][1]))}")
        pk = e.get("packages", {})
        for name, ver in pk.get("added", {}).items():
            c.print(f"  [green]+ {escape(name)}=={escape(ver)}[/]")
        for name, ver in pk.get("removed", {}).items():
            c.print(f"  [red]- {escape(name)}=={escape(ver)}[/]")
        for name, (x, y) in pk.get("upgraded", {}).items():
            c.print(f"  ↑ {escape(name)} {escape(x)} -> {escape(y)}")
        for name, (x, y) in pk.get("downgraded", {}).items():
            c.print(f"  ↓ {escape(name)} {escape(x)} -> {escape(y)}")
    from gitml.runs import tabular

    for art in d["artifacts"]:
        old, new = art["old"] or {}, art["new"] or {}
        sizes = f"{human_size(old['size']) if old else '-'} -> {human_size(new['size']) if new else '-'}"
        c.print(f"[bold]{art['status']}[/] {escape(art['path'])}  {str(old.get('oid', '-'))[:12]} -> "
                f"{str(new.get('oid', '-'))[:12]}  ({sizes})")
        data = art.get("data")
        if data and "error" in data:
            c.print(f"  data: {escape(data['error'])}")
        elif data:
            for line in tabular.format_diff(data):
                c.print("  " + escape(line))
    for name, (x, y) in d["checks"].items():
        c.print(f"check {escape(name)}: {x or '-'} -> {y or '-'}")
    if d["stages"]["added"] or d["stages"]["removed"]:
        c.print(f"stages added: {', '.join(d['stages']['added']) or '-'}; "
                f"removed: {', '.join(d['stages']['removed']) or '-'}")
    for line in format_profile_diff(d["profiles"]):
        c.print(escape(line))
    if not (d["metrics"] or d["params"] or d["artifacts"] or d["checks"] or d["profiles"]
            or any(not e["same"] for e in d["environment"].values())):
        c.print("no manifest differences")
    return 0
