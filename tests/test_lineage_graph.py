"""Lineage graphs (tree, DOT, Mermaid), stage ordering for repro, and the CLI on a repo
without records."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitml.runs.errors import ManifestError
from gitml.runs.lineage import build_graph, render_dot, render_mermaid, render_text, upstream
from gitml.runs.records import FileRef, RunRecord
from gitml.runs.repro import dependencies, order
from tests.conftest import gitml


def rec(stage: str, ins: list[str], outs: list[str]) -> RunRecord:
    return RunRecord(stage=stage, cmd=["python", f"{stage}.py"],
                     inputs=[FileRef(p, "a" * 32) for p in ins],
                     outputs=[FileRef(p, "b" * 32, source="artifact") for p in outs])


def test_lineage_graph_rendering_and_stage_order() -> None:
    runs = {"train": rec("train", ["data/clean.parquet", "train.py"], ["models/m.pkl"]),
            "prep": rec("prep", ["data/raw.csv"], ["data/clean.parquet"]),
            "report": rec("report", ["models/m.pkl"], ["report.html"])}
    assert order(runs) == ["prep", "train", "report"]
    g = build_graph(runs, {"train": "c" * 40, "prep": None})
    sub, root = upstream(g, "models/m.pkl")
    assert {n.label for n in sub.nodes.values()} == {"models/m.pkl", "train", "data/clean.parquet",
                                                     "train.py", "prep", "data/raw.csv"}
    text = render_text(sub, root)
    assert text[0].startswith("models/m.pkl") and "stage train" in text[1] and "@ cccccccccc" in text[1]
    assert any("(uncommitted)" in ln for ln in text)
    dot = render_dot(sub)
    assert dot.count("->") == len(sub.edges) == 5
    mer = render_mermaid(sub)
    assert mer.startswith("graph LR") and mer.count("-->") == 5
    cyc = {"a": rec("a", ["x"], ["y"]), "b": rec("b", ["y"], ["x"])}
    with pytest.raises(ManifestError, match="cycle"):
        order(cyc)


def test_dependencies_through_folder_artifacts() -> None:
    runs = {"images": rec("images", ["raw.zip"], ["data/images"]),
            "train": rec("train", ["data/images/cat.png"], ["model.pt"])}
    assert dependencies(runs) == {"images": set(), "train": {"images"}}
    g = build_graph(runs)
    sub, root = upstream(g, "model.pt")
    assert "stage images" in "\n".join(render_text(sub, root))
    sub, root = upstream(g, "data/images/dog.png")       # a file inside a folder a stage wrote
    assert root == "file:data/images" and "stage images" in render_text(sub, root)[1]
    sub, root = upstream(g, "unknown.csv")
    assert render_text(sub, root) == ["unknown.csv  - [unknown]"]


def test_lineage_cli_without_records(repo: Path) -> None:
    out = gitml(repo, "lineage").stdout
    assert "no run records" in out
    p = gitml(repo, "repro", check=False)
    assert p.returncode == 1 and p.stderr.startswith("gitml: error: no run records in .gitml/runs")
