"""``git ml compile NAME@vX.Y.Z --onnx [--quantize]``: a faster, smaller artifact.

The scikit-learn model is converted with skl2onnx (one graph input per column, named
after it), optionally quantized (onnxruntime dynamic quantization: int8 weights of
MatMul/Gemm nodes), and refused unless a parity gate passes on the model's evaluation
data: the same predicted class on at least ``min_agreement`` of the rows and every class
probability within ``tolerance``. Only then is it added to the store as an artifact,
with a run record whose inputs are the source model and data (its lineage) and whose
metrics are the parity and the size and latency before and after.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitml.errors import ConfigError, GitMLError
from gitml.models.onnx import META_CLASSES, META_INPUTS, META_SOURCE, META_TASK

if TYPE_CHECKING:
    import pandas as pd

    from gitml.registry.refs import ModelRef
    from gitml.repo import MLRepo

TOLERANCE = 1e-4        # max |p_onnx - p_sklearn| over every row and class
MIN_AGREEMENT = 0.999   # share of rows with the same predicted class
QUANTIZED_TOLERANCE = 0.02
TARGET_OPSET = 17


class ParityError(GitMLError):
    """The compiled model does not predict what the source model predicts."""


@dataclass
class Parity:
    rows: int
    agreement: float
    max_abs_diff: float
    tolerance: float
    min_agreement: float

    @property
    def passed(self) -> bool:
        return self.agreement >= self.min_agreement and self.max_abs_diff <= self.tolerance

    def describe(self) -> str:
        return (f"same prediction on {self.agreement:.4%} of {self.rows} rows (need ≥ "
                f"{self.min_agreement:.1%}); largest probability difference {self.max_abs_diff:.2e} "
                f"(tolerance {self.tolerance:g})")


@dataclass
class Timing:
    p50_ms: float
    p99_ms: float
    n: int


@dataclass
class CompileResult:
    ref: str
    source_path: str
    source_id: str
    output_path: str
    output_id: str
    quantized: bool
    parity: Parity
    size_before: int
    size_after: int
    latency_before: Timing
    latency_after: Timing
    record_path: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        d = asdict(self)
        d["parity"]["passed"] = self.parity.passed
        return d


# ------------------------------------------------------------------------------ schema
def column_dtype(series: pd.Series) -> str:
    """The bundle dtype of a column: float64, int64, bool or string."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int64"
    if pd.api.types.is_numeric_dtype(series):
        return "float64"
    return "string"


def input_schema(X: pd.DataFrame) -> list[dict[str, Any]]:
    return [{"name": str(c), "dtype": column_dtype(X[c])} for c in X.columns]


def _initial_types(schema: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    # Numbers go in as float32: the scikit-learn converters (scaler, linear models, trees)
    # compute in float32, and the parity gate measures what that costs.
    return [(c["name"], StringTensorType([None, 1]) if c["dtype"] == "string"
             else FloatTensorType([None, 1])) for c in schema]


def convert(model: Any, X: pd.DataFrame, *, source_id: str, task: str) -> bytes:
    """skl2onnx conversion with per-column inputs and plain probability tensors."""
    from skl2onnx import convert_sklearn

    schema = input_schema(X)
    try:
        onx = convert_sklearn(model, initial_types=_initial_types(schema),
                              options={"zipmap": False}, target_opset=TARGET_OPSET)
    except Exception as e:  # skl2onnx raises many kinds for unsupported estimators
        raise ConfigError(f"skl2onnx cannot convert this {type(model).__name__}: "
                          f"{type(e).__name__}: {str(e)[:300]}",
                          "only scikit-learn estimators with an skl2onnx converter compile") from e
    classes = getattr(model, "classes_", None)
    meta = {
        META_INPUTS: json.dumps(schema),
        META_CLASSES: json.dumps(None if classes is None else [_plain(c) for c in classes]),
        META_TASK: task,
        META_SOURCE: source_id,
    }
    for k, v in meta.items():
        entry = onx.metadata_props.add()
        entry.key, entry.value = k, v
    onx.producer_name = "gitml"
    return bytes(onx.SerializeToString())


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def quantize(data: bytes) -> tuple[bytes, list[str]]:
    """Dynamic int8 quantization of the weights of MatMul/Gemm nodes."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    notes = []
    ops = {n.op_type for n in onnx.load_from_string(data).graph.node}
    if not ops & {"MatMul", "Gemm"}:
        notes.append("quantize: the graph has no MatMul/Gemm node (ops: "
                     f"{', '.join(sorted(ops))}); the weights stay float32")
    with tempfile.TemporaryDirectory(prefix="gitml-quant-") as tmp:
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        src.write_bytes(data)
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
        return dst.read_bytes(), notes


# ------------------------------------------------------------------------------ checks
def parity(model: Any, compiled: Any, X: pd.DataFrame, task: str, *, tolerance: float,
           min_agreement: float) -> Parity:
    import numpy as np

    pred_o, proba_o = compiled.run(X)
    if task == "regression":
        ref = np.asarray(model.predict(X), dtype=np.float64)
        diff = np.abs(ref - pred_o.astype(np.float64))
        scale = np.maximum(1.0, np.abs(ref))
        ok = diff <= tolerance * scale
        return Parity(len(X), float(ok.mean()), float((diff / scale).max()), tolerance, min_agreement)
    ref_pred = np.asarray(model.predict(X))
    agree = float(np.mean([str(a) == str(b) for a, b in zip(ref_pred, pred_o, strict=True)]))
    max_diff = 0.0
    if hasattr(model, "predict_proba") and proba_o is not None:
        ref_proba = np.asarray(model.predict_proba(X), dtype=np.float64)
        if ref_proba.shape != proba_o.shape:
            raise ParityError(f"the compiled model gives {proba_o.shape[1]} probabilities per row, "
                              f"the source {ref_proba.shape[1]}")
        max_diff = float(np.max(np.abs(ref_proba - proba_o)))
    return Parity(len(X), agree, max_diff, tolerance, min_agreement)


def time_single_row(fn: Any, rows: list[Any], *, budget_s: float = 1.5, max_n: int = 400) -> Timing:
    """p50/p99 of ``fn(row)`` over rows taken in turn, within a time budget."""
    fn(rows[0])  # warm-up: first calls allocate
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    i = 0
    while len(times) < max_n and (len(times) < 20 or time.perf_counter() < deadline):
        row = rows[i % len(rows)]
        i += 1
        t0 = time.perf_counter()
        fn(row)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
    return Timing(round(statistics.median(times), 4), round(p99, 4), len(times))


# ------------------------------------------------------------------------------ command
def default_output(spec_path: str, quantized: bool) -> str:
    p = Path(spec_path)
    return str(p.with_name(p.stem + (".int8.onnx" if quantized else ".onnx")).as_posix())


def compile_onnx(repo: MLRepo, ref: ModelRef, *, quantized: bool = False, output: str | None = None,
                 tolerance: float | None = None, min_agreement: float = MIN_AGREEMENT,
                 argv: list[str] | None = None) -> CompileResult:
    from gitml.models.load import load_data, load_model, read_source
    from gitml.models.onnx import OnnxModel

    spec = ref.spec
    tol = tolerance if tolerance is not None else (QUANTIZED_TOLERANCE if quantized else TOLERANCE)
    if not 0 < min_agreement <= 1:
        raise ConfigError(f"min agreement must be in (0, 1], got {min_agreement}")
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t_start = time.perf_counter()
    model, src = load_model(repo, spec, rev=ref.commit)
    df, dsrc = load_data(repo, spec, rev=ref.commit)
    features = spec.feature_columns([str(c) for c in df.columns])
    missing = [c for c in features if c not in df.columns]
    if missing:
        raise ConfigError(f"{spec.key('features')}: {missing[0]!r} is not a column of {spec.data}")
    X = df[features].reset_index(drop=True)
    data = convert(model, X, source_id=src.oid, task=spec.task)
    notes: list[str] = []
    if quantized:
        data, notes = quantize(data)
    compiled = OnnxModel(data)
    par = parity(model, compiled, X, spec.task, tolerance=tol, min_agreement=min_agreement)
    if not par.passed:
        raise ParityError(f"{ref.text}: the compiled model is refused: {par.describe()}",
                          "nothing was stored; try without --quantize, or a looser --tolerance "
                          "if that difference is acceptable")
    sample = X.head(min(len(X), 200))
    df_rows = [sample.iloc[[i]] for i in range(len(sample))]
    col_rows = [{c: [r[c]] for c in features} for r in sample.to_dict("records")]
    before = time_single_row(model.predict, df_rows)
    after = time_single_row(compiled.predict, col_rows)

    out_rel = output or default_output(spec.path, quantized)
    out_abs = repo.workdir / out_rel
    from gitml.store.fsutil import atomic_write_bytes

    atomic_write_bytes(out_abs, data)
    from gitml.artifacts import worktree

    added = worktree.add(repo, [out_abs])
    out_rel = added[0].path
    result = CompileResult(
        ref=ref.text, source_path=spec.path, source_id=src.oid, output_path=out_rel,
        output_id=added[0].oid, quantized=quantized, parity=par, size_before=len(read_source(repo, src)),
        size_after=len(data), latency_before=before, latency_after=after, record_path="",
        notes=notes)
    result.record_path = _record(repo, ref, result, src, dsrc, started, time.perf_counter() - t_start,
                                 argv or ["git", "ml", "compile", ref.text, "--onnx"], tol,
                                 min_agreement)
    return result


def _record(repo: MLRepo, ref: ModelRef, r: CompileResult, src: Any, dsrc: Any, started: str,
            duration: float, argv: list[str], tol: float, min_agreement: float) -> str:
    from gitml.deploy.envrecord import record_environment
    from gitml.runs.records import FileRef, RunRecord, run_record_path
    from gitml.store.fsutil import atomic_write_text

    stage = f"compile-{ref.name}" + ("-int8" if r.quantized else "")
    env_id, env_rel = record_environment(repo)
    head = repo.git.head()
    record = RunRecord(
        stage=stage, cmd=list(argv), started=started,
        ended=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), duration_s=round(duration, 3),
        exit_code=0, git_commit=head, git_dirty=False,
        inputs=[FileRef(src.path, src.oid, r.size_before, "file",
                        "artifact" if src.kind == "artifact" else src.kind, True),
                FileRef(dsrc.path, dsrc.oid, None, "file",
                        "artifact" if dsrc.kind == "artifact" else dsrc.kind, True)],
        outputs=[FileRef(r.output_path, r.output_id, r.size_after, "file", "artifact", True)],
        params={"source": ref.text, "source_commit": ref.commit, "format": "onnx",
                "quantize": r.quantized, "opset": TARGET_OPSET, "tolerance": tol,
                "min_agreement": min_agreement},
        metrics={"parity_agreement": round(r.parity.agreement, 6),
                 "parity_max_abs_diff": float(f"{r.parity.max_abs_diff:.3e}"),
                 "size_bytes_before": r.size_before, "size_bytes_after": r.size_after,
                 "latency_p50_ms_before": r.latency_before.p50_ms,
                 "latency_p50_ms_after": r.latency_after.p50_ms},
        env=env_id, tracer="none", trace=False,
        deps=[src.path, dsrc.path], outs=[r.output_path],
    )
    rel = run_record_path(stage)
    atomic_write_text(repo.workdir / rel, record.dumps())
    repo.git.stage([rel, env_rel])
    return rel
