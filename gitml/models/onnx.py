"""Serving a compiled (ONNX) model with onnxruntime, behind the same calls as scikit-learn.

``OnnxModel(data)`` takes the bytes of a model written by ``git ml compile`` (already
verified against their id by the caller). The model describes itself: the graph has one
input per column, named after the column, and ``metadata_props`` hold the columns'
dtypes, the class labels and the id of the scikit-learn model it was compiled from.

``predict`` / ``predict_proba`` accept a pandas DataFrame or, on the fast path, any
mapping of column name to a sequence or 1-d array (no DataFrame needed).
"""

from __future__ import annotations

import json
from typing import Any

from gitml.errors import ConfigError

META_INPUTS = "gitml.inputs"        # [{"name", "dtype"}] in graph input order
META_CLASSES = "gitml.classes"      # class labels in probability column order, or null
META_TASK = "gitml.task"            # classification | regression
META_SOURCE = "gitml.source_id"     # id of the scikit-learn model compiled
ONNX_MAGIC_HINT = "compile a scikit-learn model with `git ml compile NAME --onnx`"

_NUMPY_OF_ONNX = {"tensor(float)": "float32", "tensor(double)": "float64",
                  "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(bool)": "bool"}


class OnnxModel:
    """A classifier or regressor compiled to ONNX; thread-safe (one onnxruntime session)."""

    def __init__(self, data: bytes, *, threads: int = 1) -> None:
        import numpy as np
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # One worker process per core is how the server scales; a thread pool per session
        # would only fight the other workers for the same cores.
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(data, sess_options=opts,
                                                providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ConfigError(f"not a loadable ONNX model: {type(e).__name__}: {str(e)[:200]}",
                              ONNX_MAGIC_HINT) from e
        meta = self.session.get_modelmeta().custom_metadata_map
        self.task = meta.get(META_TASK, "classification")
        self.source_id = meta.get(META_SOURCE)
        self.inputs: list[dict[str, Any]] = json.loads(meta.get(META_INPUTS, "[]"))
        classes = json.loads(meta.get(META_CLASSES, "null"))
        self.classes_ = None if classes is None else np.asarray(classes, dtype=object)
        self.feature_names_in_ = np.asarray([i.name for i in self.session.get_inputs()], dtype=object)
        self._casts = [(i.name, _NUMPY_OF_ONNX.get(i.type)) for i in self.session.get_inputs()]
        outs = [o.name for o in self.session.get_outputs()]
        self._label = outs[0]
        self._proba = outs[1] if len(outs) > 1 else None

    def feeds(self, X: Any) -> dict[str, Any]:
        """The onnxruntime feed for ``X`` (a DataFrame or a column mapping)."""
        import numpy as np

        feed: dict[str, Any] = {}
        n = None
        for name, np_type in self._casts:
            try:
                col = X[name]
            except (KeyError, IndexError):
                raise ConfigError(f"input column {name!r} is missing",
                                  f"send the columns {', '.join(str(c) for c in self.feature_names_in_)}") from None
            arr = np.asarray(col)
            if arr.ndim != 1:
                arr = arr.reshape(-1)
            if np_type is None:  # strings
                arr = arr.astype(str).astype(object) if arr.dtype != object else arr
            else:
                arr = arr.astype(np_type, copy=False)
            if n is None:
                n = arr.shape[0]
            elif arr.shape[0] != n:
                raise ConfigError(f"input column {name!r} has {arr.shape[0]} rows, others {n}")
            feed[name] = arr.reshape(-1, 1)
        return feed

    def run(self, X: Any) -> tuple[Any, Any | None]:
        """(labels or values, class probabilities or None) in one pass."""
        import numpy as np

        wanted = [self._label] + ([self._proba] if self._proba else [])
        outs = self.session.run(wanted, self.feeds(X))
        pred = np.asarray(outs[0]).reshape(-1)
        if self.task == "regression":
            return pred.astype(np.float64), None
        proba = np.asarray(outs[1], dtype=np.float64) if self._proba else None
        if self.classes_ is not None and pred.dtype != self.classes_.dtype:
            # labels come back as int64 or strings; hand back the classes' own values
            lookup = {str(c): c for c in self.classes_}
            pred = np.asarray([lookup.get(str(p), p) for p in pred], dtype=object)
        return pred, proba

    def predict(self, X: Any) -> Any:
        return self.run(X)[0]

    def predict_proba(self, X: Any) -> Any:
        _, proba = self.run(X)
        if proba is None:
            raise ConfigError("this ONNX model has no probability output (a regressor)")
        return proba


def load_onnx_bytes(data: bytes) -> OnnxModel:
    if data[:1] == b"\x80" or data[:2] == b"PK":
        raise ConfigError("not an ONNX model (a pickle or skops file)", ONNX_MAGIC_HINT)
    return OnnxModel(data)
