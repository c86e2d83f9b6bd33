"""KServe V2 / Open Inference Protocol: metadata, request decoding, response encoding.

A tabular model takes one input tensor per column, named after the column: BYTES for
string columns, BOOL for booleans, any numeric datatype for numeric ones (shape ``[n]`` or
``[n, 1]``). Tensors come as JSON ``data`` or with the binary tensor data extension (the
JSON header, then raw little-endian tensors; its length in ``Inference-Header-Content-Length``),
which is what ``tritonclient`` sends by default. Outputs: ``predict`` (labels or values)
and, for classifiers with probabilities, ``predict_proba`` ([n, classes]).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from gitml.serve.predictor import Prediction
from gitml.serve.schema import Columns, Schema, bad

NUMPY_OF = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}
NUMERIC = frozenset(NUMPY_OF) - {"BOOL"}
DATATYPE_OF = {"float64": "FP64", "int64": "INT64", "bool": "BOOL", "string": "BYTES"}
MAX_ELEMENTS = 10_000_000


def metadata(name: str, version: str, versions: list[str], schema: Schema, task: str,
             classes: list[Any] | None, has_proba: bool) -> dict[str, Any]:
    outputs = [{"name": "predict", "datatype": _label_datatype(task, classes), "shape": [-1]}]
    if has_proba and classes:
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes)]})
    return {
        "name": name, "versions": versions, "platform": "gitml-sklearn",
        "inputs": [{"name": i.name, "datatype": DATATYPE_OF[i.dtype], "shape": [-1],
                    "parameters": {"dtype": i.dtype, "nullable": i.nullable,
                                   **({"categories": i.categories} if i.categories else {})}}
                   for i in schema.inputs],
        "outputs": outputs,
        "parameters": {"version": version, "task": task,
                       **({"classes": classes} if classes is not None else {})},
    }


def _label_datatype(task: str, classes: list[Any] | None) -> str:
    if task == "regression":
        return "FP64"
    if classes and all(isinstance(c, bool) for c in classes):
        return "BOOL"
    if classes and all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return "INT64"
    return "BYTES"


def _shape_count(shape: Any, where: str) -> int:
    if not isinstance(shape, list) or not shape or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise bad(f"{where}: shape must be a list of non-negative integers")
    if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
        raise bad(f"{where}: a column input has shape [n] or [n, 1], got {shape}")
    n = int(shape[0])
    if n > MAX_ELEMENTS:
        raise bad(f"{where}: too many elements ({n})", 413)
    return n


def _flatten(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise bad(f"{where}: data must be a list")
    if data and isinstance(data[0], list):
        out: list[Any] = []
        for row in data:
            if not isinstance(row, list):
                raise bad(f"{where}: data mixes nested and flat values")
            out.extend(row)
        return out
    return data


def _bytes_elements(raw: memoryview, n: int, where: str) -> list[str]:
    out = []
    pos = 0
    end = len(raw)
    for _ in range(n):
        if pos + 4 > end:
            raise bad(f"{where}: binary BYTES data is shorter than its shape says")
        (size,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if pos + size > end:
            raise bad(f"{where}: binary BYTES element overruns the data")
        try:
            out.append(bytes(raw[pos:pos + size]).decode("utf-8"))
        except UnicodeDecodeError as e:
            raise bad(f"{where}: BYTES element is not UTF-8 text") from e
        pos += size
    if pos != end:
        raise bad(f"{where}: binary BYTES data is longer than its shape says")
    return out


def _inputs_by_name(obj: Any) -> list[dict[str, Any]]:
    if not isinstance(obj, dict):
        raise bad("infer request must be a JSON object with 'inputs'")
    inputs = obj.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise bad("infer request needs a non-empty 'inputs' list (one tensor per column)")
    seen: set[str] = set()
    for i, t in enumerate(inputs):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise bad(f"inputs[{i}] must be an object with a 'name'")
        if t["name"] in seen:
            raise bad(f"input {t['name']!r} appears twice")
        seen.add(t["name"])
    return inputs


def _datatype(t: dict[str, Any], dtype: str, where: str) -> str:
    """The tensor's datatype, refused unless it can hold the column's values."""
    dt = t.get("datatype")
    if not isinstance(dt, str):
        raise bad(f"{where}: missing datatype")
    if dtype == "string" and dt != "BYTES":
        raise bad(f"{where}: the column holds strings, send datatype BYTES (got {dt})")
    if dtype == "bool" and dt != "BOOL":
        raise bad(f"{where}: the column holds booleans, send datatype BOOL (got {dt})")
    if dtype in ("float64", "int64") and dt not in NUMERIC:
        raise bad(f"{where}: the column is numeric, send a numeric datatype (got {dt})")
    return dt


def _binary_values(raw: memoryview, dt: str, n: int, where: str) -> Any:
    if dt == "BYTES":
        return _bytes_elements(raw, n, where)
    np_type = np.dtype(NUMPY_OF[dt]).newbyteorder("<")
    if len(raw) != n * np_type.itemsize:
        raise bad(f"{where}: {len(raw)} bytes do not hold {n} {dt} values")
    return np.frombuffer(raw, dtype=np_type).tolist()


def _json_values(t: dict[str, Any], dt: str, n: int, where: str) -> list[Any]:
    if "data" not in t:
        raise bad(f"{where}: needs 'data' (or binary data)")
    values = _flatten(t["data"], where)
    if len(values) != n:
        raise bad(f"{where}: shape says {n} values, data has {len(values)}")
    if dt in NUMERIC and dt.startswith(("INT", "UINT")) and any(type(v) is float for v in values):
        raise bad(f"{where}: datatype {dt} holds integers, data has a fractional number")
    return values


def _binary_size(t: dict[str, Any], binary: memoryview | None, offset: int, where: str) -> int | None:
    """The tensor's ``binary_data_size`` (checked against what the request carries), or None."""
    params = t.get("parameters") or {}
    if not isinstance(params, dict):
        raise bad(f"{where}: parameters must be an object")
    size = params.get("binary_data_size")
    if size is None:
        return None
    if binary is None:
        raise bad(f"{where}: binary_data_size given but the request has no binary part "
                  "(set the Inference-Header-Content-Length header)")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(binary):
        raise bad(f"{where}: binary_data_size {size!r} overruns the binary data")
    return size


def decode_request(obj: Any, binary: memoryview | None, schema: Schema) -> tuple[Columns, int, dict[str, Any]]:
    """(columns, rows, request) from an infer request; ``binary`` is the data after the header."""
    inputs = _inputs_by_name(obj)
    schema.check_names(t["name"] for t in inputs)
    offset = 0
    cols: Columns = {}
    n_rows = -1
    for t in inputs:
        name = t["name"]
        where = f"input {name!r}"
        spec = schema.by_name[name]
        dt = _datatype(t, spec.dtype, where)
        n = _shape_count(t.get("shape"), where)
        size = _binary_size(t, binary, offset, where)
        if size is not None and binary is not None:
            values: Any = _binary_values(binary[offset:offset + size], dt, n, where)
            offset += size
        else:
            values = _json_values(t, dt, n, where)
        if n_rows == -1:
            n_rows = n
        elif n != n_rows:
            raise bad(f"{where}: {n} rows, other inputs have {n_rows}")
        cols[name] = schema.column(spec, values)
    if binary is not None and offset != len(binary):
        raise bad(f"binary data has {len(binary) - offset} bytes no input claims")
    if n_rows <= 0:
        raise bad("no rows to predict")
    return cols, n_rows, obj


def wanted_outputs(req: dict[str, Any], available: list[str]) -> list[tuple[str, bool]]:
    """[(output name, binary?)] as the request asks (all outputs when it names none)."""
    params = req.get("parameters") or {}
    all_binary = bool(isinstance(params, dict) and params.get("binary_data_output"))
    outs = req.get("outputs")
    if outs is None:
        return [(o, all_binary) for o in available]
    if not isinstance(outs, list):
        raise bad("'outputs' must be a list")
    chosen = []
    for i, o in enumerate(outs):
        if not isinstance(o, dict) or not isinstance(o.get("name"), str):
            raise bad(f"outputs[{i}] must be an object with a 'name'")
        if o["name"] not in available:
            raise bad(f"unknown output {o['name']!r} (available: {', '.join(available)})")
        p = o.get("parameters") or {}
        chosen.append((o["name"], bool(isinstance(p, dict) and p.get("binary_data", all_binary))))
    return chosen


def _labels_payload(labels: np.ndarray, datatype: str) -> tuple[list[Any], bytes]:
    if datatype == "BYTES":
        items = [str(x) for x in labels.tolist()]
        enc = [s.encode("utf-8") for s in items]
        return items, b"".join(struct.pack("<I", len(b)) + b for b in enc)
    if datatype == "FP64":
        arr = np.asarray(labels, dtype="<f8")
    elif datatype == "INT64":
        arr = np.asarray(labels, dtype="<i8")
    else:
        arr = np.asarray(labels, dtype=np.bool_)
    return arr.tolist(), arr.tobytes()


def encode_response(name: str, version: str, request_id: str, pred: Prediction,
                    outputs: list[tuple[str, bool]], label_datatype: str) -> tuple[dict[str, Any], bytes]:
    """(JSON header, binary tail) of an infer response."""
    out: list[dict[str, Any]] = []
    tail: list[bytes] = []
    n = len(pred.labels)
    for o, binary in outputs:
        if o == "predict":
            data, raw = _labels_payload(pred.labels, label_datatype)
            t: dict[str, Any] = {"name": o, "datatype": label_datatype, "shape": [n]}
        else:
            proba = np.asarray(pred.proba, dtype="<f8")
            data, raw = proba.ravel().tolist(), proba.tobytes()
            t = {"name": o, "datatype": "FP64", "shape": list(proba.shape)}
        if binary:
            t["parameters"] = {"binary_data_size": len(raw)}
            tail.append(raw)
        else:
            t["data"] = data
        out.append(t)
    return ({"model_name": name, "model_version": version, "id": request_id, "outputs": out},
            b"".join(tail))
