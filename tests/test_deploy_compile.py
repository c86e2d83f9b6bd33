"""`git ml compile`: ONNX conversion behind a parity gate, stored as an artifact with
lineage to the source model, served through the same calls as scikit-learn."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import git, gitml
from tests.support.checks import FEATURES, arrests_split, good_model
from tests.support.deploy import isolated_git, make_model_repo


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with isolated_git(tmp_path_factory.mktemp("home-compile")):
        yield make_model_repo(tmp_path_factory.mktemp("compile") / "repo")


@pytest.fixture
def repo(template: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "repo"
    shutil.copytree(template, dest, symlinks=True)
    return dest


def test_compile_stores_a_verified_onnx_artifact_with_lineage(repo: Path) -> None:
    proc = gitml(repo, "compile", "arrests@v1.0.0", "--onnx", "--json")
    res = json.loads(proc.stdout)
    assert res["parity"]["passed"] is True
    assert res["parity"]["agreement"] >= 0.999 and res["parity"]["max_abs_diff"] <= 1e-4
    assert res["parity"]["rows"] == len(arrests_split()[1])
    assert res["output_path"] == "models/model.onnx"
    # an artifact: a pointer is staged and the bytes are git-ignored and in the store
    staged = git(repo, "diff", "--cached", "--name-only").stdout.split()
    assert "models/model.onnx.gitml" in staged and ".gitml/runs/compile-arrests.json" in staged
    assert "models/model.onnx" not in staged
    # lineage: the run record's input is the source model at its recorded id
    rec = json.loads((repo / ".gitml/runs/compile-arrests.json").read_text())
    src = next(i for i in rec["inputs"] if i["path"] == "models/model.skops")
    assert src["oid"] == res["source_id"]
    assert rec["outputs"][0] == {**rec["outputs"][0], "path": "models/model.onnx",
                                 "oid": res["output_id"]}
    assert (repo / ".gitml/env" / f"{rec['env']}.json").exists()
    assert rec["metrics"]["parity_agreement"] == pytest.approx(res["parity"]["agreement"], abs=1e-6)
    git(repo, "commit", "-q", "--no-verify", "-m", "compiled")
    lineage = gitml(repo, "lineage", "models/model.onnx").stdout
    assert "models/model.skops" in lineage, lineage
    # the compiled model predicts what the source predicts, through the adapter
    from gitml.models.onnx import OnnxModel

    m = OnnxModel((repo / "models/model.onnx").read_bytes())
    assert m.source_id == res["source_id"]
    X = arrests_split()[1][FEATURES].head(50)
    assert list(m.predict(X)) == list(good_model().predict(X))
    cols = {c: X[c].tolist() for c in FEATURES}  # the no-DataFrame path
    assert m.predict_proba(cols) == pytest.approx(good_model().predict_proba(X), abs=1e-4)


def test_compile_text_shows_both_parity_numbers_and_latency(repo: Path) -> None:
    out = gitml(repo, "compile", "arrests#prod", "--onnx").stdout
    assert "same prediction on 100.0000% of" in out and "largest probability difference" in out
    assert "single-row latency in-process: p50" in out


def test_parity_gate_refuses_and_stores_nothing(repo: Path) -> None:
    # a tolerance no float32 graph meets: the gate must refuse, naming both numbers
    proc = gitml(repo, "compile", "arrests@v1.0.0", "--onnx", "--tolerance", "1e-12", check=False)
    assert proc.returncode == 1
    assert "refused" in proc.stderr and "largest probability difference" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (repo / "models/model.onnx").exists()
    assert not (repo / ".gitml/runs/compile-arrests.json").exists()
    assert git(repo, "diff", "--cached", "--name-only").stdout.strip() == ""


def test_quantize_says_what_it_did(repo: Path) -> None:
    proc = gitml(repo, "compile", "arrests@v1.0.0", "--onnx", "--quantize", "--json")
    res = json.loads(proc.stdout)
    assert res["quantized"] and res["output_path"] == "models/model.int8.onnx"
    assert res["parity"]["passed"]
    # a linear model has no MatMul/Gemm to quantize: it must say so rather than pretend
    assert any("no MatMul/Gemm" in n for n in res["notes"])


def test_bad_references_are_one_line_errors(repo: Path) -> None:
    # a version or model that does not exist: 1; a reference that does not parse: 2 (usage)
    for ref, code in (("arrests@v9.9.9", 1), ("nosuch", 1), ("arrests@1.0", 2)):
        proc = gitml(repo, "compile", ref, "--onnx", check=False)
        assert proc.returncode == code, (ref, proc.stderr)
        assert proc.stderr.startswith("gitml: error:") and "Traceback" not in proc.stderr
