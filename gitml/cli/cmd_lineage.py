from __future__ import annotations

import argparse

from gitml.cli.output import print_json


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", nargs="?", default=None, help="artifact (default: the whole graph)")
    p.add_argument("--rev", default=None,
                   help="read the run records of this commit (default: the work tree's)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--dot", action="store_true", help="print Graphviz DOT")
    fmt.add_argument("--mermaid", action="store_true", help="print a Mermaid flowchart")
    fmt.add_argument("--json", action="store_true", help="print nodes and edges as JSON")
    p.add_argument("--no-code", dest="code", action="store_false",
                   help="hide inputs tracked by Git (scripts, configs)")
    p.add_argument("-o", "--output", metavar="FILE", help="write DOT/Mermaid/JSON to FILE")


def run(args: argparse.Namespace) -> int:
    import json

    from gitml.git import history
    from gitml.repo import MLRepo
    from gitml.runs.lineage import (
        build_graph,
        render_dot,
        render_mermaid,
        render_text,
        upstream,
    )
    from gitml.runs.manifest import load
    from gitml.runs.records import load_run_records, run_record_path

    repo = MLRepo.discover()
    head = repo.git.head()
    commits: dict[str, str | None] = {}
    if args.rev is not None:
        m = load(repo, args.rev)
        runs, where = m.runs, m.commit[:12]
        commits = {s: history.last_change(repo.git.raw, m.commit, run_record_path(s)) for s in runs}
    else:
        runs, where = load_run_records(repo.workdir), "the work tree"
        for s in runs:
            rel = run_record_path(s)
            committed = repo.git.read_blob(head, rel) if head else None
            same = committed is not None and committed == (repo.workdir / rel).read_bytes()
            commits[s] = history.last_change(repo.git.raw, head, rel) if same and head else None
    g = build_graph(runs, commits, include_code=args.code)
    roots: list[str]
    if args.path:
        rel = repo.relpath(args.path)
        if rel.endswith(".gitml"):
            rel = rel[: -len(".gitml")]
        g, root = upstream(g, rel)
        roots = [root]
    else:
        roots = sorted(n for n in g.nodes if not any(a == n for a, _ in g.edges))  # sinks
    if args.dot or args.mermaid or args.json:
        text = (render_dot(g) if args.dot else render_mermaid(g) if args.mermaid
                else json.dumps(g.to_dict(), indent=2, sort_keys=True) + "\n")
        if args.output:
            from pathlib import Path

            from gitml.store.fsutil import atomic_write_text

            atomic_write_text(Path(args.output), text)
        elif args.json:
            print_json(g.to_dict())
        else:
            print(text, end="")
        return 0
    if args.quiet:
        return 0
    if not g.nodes:
        print(f"no run records in {where}; record one with `git ml run`")
        return 0
    for root in roots:
        for line in render_text(g, root):
            print(line)
    if args.path and len(g.nodes) == 1:
        print("(no recorded stage wrote it)")
    return 0
