"""``git ml lineage PATH``: where an artifact came from, as a tree, DOT or Mermaid.

The graph is built from the run records at one commit: each stage is a node with edges
from the files it read and to the files it wrote. Walking upstream from PATH gives the
artifact's history: data -> stage -> model, with content ids and the commit that
recorded each stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gitml.runs.records import RunRecord


@dataclass
class Node:
    id: str
    kind: str              # artifact | stage
    label: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)   # (from, to)

    def parents(self, nid: str) -> list[str]:
        return [a for a, b in self.edges if b == nid]

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": [{"id": n.id, "kind": n.kind, "label": n.label, **n.detail} for n in self.nodes.values()],
                "edges": [{"from": a, "to": b} for a, b in self.edges]}


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def build_graph(runs: dict[str, RunRecord], stage_commits: dict[str, str | None] | None = None,
                *, include_code: bool = True) -> Graph:
    g = Graph()
    stage_commits = stage_commits or {}
    for stage, rec in sorted(runs.items()):
        sid = f"stage:{stage}"
        g.nodes[sid] = Node(sid, "stage", stage, {
            "cmd": rec.cmd, "commit": stage_commits.get(stage), "exit_code": rec.exit_code,
            "started": rec.started, "metrics": rec.metrics, "params": rec.params, "env": rec.env})
        for ref in rec.inputs:
            if not include_code and ref.source == "git":
                continue
            aid = f"file:{ref.path}"
            g.nodes.setdefault(aid, Node(aid, "artifact", ref.path, {"oid": ref.oid, "source": ref.source}))
            g.edges.append((aid, sid))
        for ref in rec.outputs:
            aid = f"file:{ref.path}"
            g.nodes[aid] = Node(aid, "artifact", ref.path, {"oid": ref.oid, "source": ref.source})
            g.edges.append((sid, aid))
    # A file read from inside a folder another stage wrote comes from that folder.
    produced = {b for a, b in g.edges if a.startswith("stage:")}
    for nid, n in list(g.nodes.items()):
        if n.kind != "artifact" or nid in produced:
            continue
        for pid in produced:
            folder = g.nodes[pid].label
            if pid != nid and _within(n.label, folder):
                g.edges.append((pid, nid))
                break
    return g


def upstream(g: Graph, path: str) -> tuple[Graph, str]:
    """The subgraph of everything ``path`` was made from, and the id of its node."""
    target = f"file:{path}"
    if target not in g.nodes:
        # a file inside a folder artifact some stage wrote
        for nid, n in g.nodes.items():
            if n.kind == "artifact" and _within(path, n.label) and g.parents(nid):
                target = nid
                break
        else:
            g.nodes[target] = Node(target, "artifact", path, {"oid": None, "source": "unknown"})
    keep: set[str] = set()
    stack = [target]
    while stack:
        nid = stack.pop()
        if nid in keep:
            continue
        keep.add(nid)
        stack.extend(g.parents(nid))
    sub = Graph({k: v for k, v in g.nodes.items() if k in keep},
                [(a, b) for a, b in g.edges if a in keep and b in keep])
    return sub, target


def _label(n: Node) -> str:
    if n.kind == "stage":
        c = n.detail.get("commit")
        return f"stage {n.label}: {' '.join(n.detail.get('cmd', []))}" + (f" @ {c[:10]}" if c else " (uncommitted)")
    oid = n.detail.get("oid")
    src = n.detail.get("source")
    return f"{n.label}  {oid[:12] if oid else '-'}" + (f" [{src}]" if src and src != "artifact" else "")


def render_text(g: Graph, root: str) -> list[str]:
    """A terminal tree from ``root`` upstream (plain text lines)."""
    lines: list[str] = []
    seen: set[str] = set()

    def walk(nid: str, prefix: str, last: bool, top: bool) -> None:
        n = g.nodes[nid]
        connector = "" if top else ("└── " if last else "├── ")
        again = nid in seen and n.kind == "stage"
        lines.append(prefix + connector + _label(n) + (" (see above)" if again else ""))
        if again:
            return
        seen.add(nid)
        kids = sorted(g.parents(nid), key=lambda k: g.nodes[k].label)
        child_prefix = prefix if top else prefix + ("    " if last else "│   ")
        for i, k in enumerate(kids):
            walk(k, child_prefix, i == len(kids) - 1, False)

    walk(root, "", True, True)
    return lines


def _q(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def render_dot(g: Graph) -> str:
    ids = {nid: f"n{i}" for i, nid in enumerate(g.nodes)}
    out = ["digraph lineage {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
    for nid, n in g.nodes.items():
        shape = "box, style=filled, fillcolor=lightblue" if n.kind == "stage" else "ellipse"
        out.append(f'  {ids[nid]} [label="{_q(_label(n))}", shape={shape}];')
    for a, b in g.edges:
        out.append(f"  {ids[a]} -> {ids[b]};")
    out.append("}")
    return "\n".join(out) + "\n"


def render_mermaid(g: Graph) -> str:
    ids = {nid: f"n{i}" for i, nid in enumerate(g.nodes)}
    out = ["graph LR"]
    for nid, n in g.nodes.items():
        text = _label(n).replace('"', "#quot;")
        out.append(f'  {ids[nid]}["{text}"]' if n.kind == "stage" else f'  {ids[nid]}(["{text}"])')
    for a, b in g.edges:
        out.append(f"  {ids[a]} --> {ids[b]}")
    return "\n".join(out) + "\n"
