"""A small HTTP client of the model server, for smoke tests and the grace-window watch
(standard library only: a deploy must not depend on the server's own packages)."""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.request
from typing import Any

V2_TYPES = {"float64": "FP64", "int64": "INT64", "bool": "BOOL", "string": "BYTES"}


def _request(url: str, body: Any = None, token: str | None = None,
             timeout: float = 30.0) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e).encode()


def _cell(v: Any, dtype: str) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if dtype == "float64":
        return float(v)
    if dtype == "int64":
        return int(v)
    if dtype == "bool":
        return bool(v)
    return str(v)


def v2_body(rows: Any, inputs: list[Any]) -> dict[str, Any]:
    """A V2 infer request with one input per column, as the model metadata lists them."""
    n = len(rows)
    return {"inputs": [{"name": i.name, "shape": [n], "datatype": V2_TYPES[i.dtype],
                        "data": [_cell(v, i.dtype) for v in rows[i.name].tolist()]}
                       for i in inputs]}


def infer_v2(url: str, name: str, version: str, rows: Any, inputs: list[Any], *,
             token: str | None = None, positive_index: int | None = None,
             task: str = "classification") -> tuple[list[str], list[float | None]]:
    """(predictions as strings, positive-class scores or regression values) from the
    versioned V2 route (``positive_index``: the positive class's column of predict_proba)."""
    from gitml.errors import GitMLError

    status, raw = _request(f"{url}/v2/models/{name}/versions/{version}/infer",
                           v2_body(rows, inputs), token)
    if status != 200:
        raise GitMLError(f"smoke request to {name} {version} failed: HTTP {status} "
                         f"{raw[:300].decode('utf-8', 'replace')}")
    outs = {o.get("name"): o for o in json.loads(raw).get("outputs", []) if isinstance(o, dict)}
    if "predict" not in outs:
        raise GitMLError(f"smoke request to {name} {version}: no 'predict' output in the answer")
    preds = [str(x) for x in outs["predict"].get("data", [])]
    values: list[float | None] = [None] * len(preds)
    proba = outs.get("predict_proba")
    if proba is not None and positive_index is not None:
        shape = proba.get("shape") or []
        data = proba.get("data", [])
        if len(shape) == 2 and shape[0] == len(preds):
            k = int(shape[1])
            values = [float(data[i * k + positive_index]) for i in range(len(preds))]
    elif task == "regression":
        values = [float(x) for x in outs["predict"].get("data", [])]
    return preds, values


def health(url: str, name: str, version: str, *, token: str | None = None) -> tuple[bool, str]:
    status, raw = _request(f"{url}/v2/health/ready", token=token, timeout=5)
    if status != 200:
        return False, f"/v2/health/ready answered {status or raw.decode('utf-8', 'replace')}"
    status, raw = _request(f"{url}/v2/models/{name}/versions/{version}/ready", token=token, timeout=5)
    if status not in (200, 404):  # 404: the server has no per-version readiness route
        return False, f"version {version} is not ready (HTTP {status})"
    return True, "ok"


_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


REQUESTS = "gitml_requests_total"
ERRORS = "gitml_request_errors_total"


def _model_failure(code: str) -> bool:
    """Answers that mean the model failed, not the client: 5xx, and 422 (the model refused
    an input the request was well-formed for)."""
    return code.startswith("5") or code == "422"


def version_counts(url: str, name: str, *, token: str | None = None) -> dict[str, tuple[float, float]]:
    """version -> (requests, model failures) from the server's Prometheus counters
    (``gitml_requests_total`` and ``gitml_request_errors_total`` by model and version)."""
    status, raw = _request(f"{url}/metrics", token=token, timeout=5)
    out: dict[str, list[float]] = {}
    if status != 200:
        return {}
    for line in raw.decode("utf-8", "replace").splitlines():
        if line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = dict(_LABEL.findall(m["labels"] or ""))
        if labels.get("model", name) != name or "version" not in labels:
            continue
        try:
            value = float(m["value"])
        except ValueError:
            continue
        slot = out.setdefault(labels["version"], [0.0, 0.0])
        if m["name"] == REQUESTS:
            slot[0] += value
        elif m["name"] == ERRORS and _model_failure(labels.get("code", "")):
            slot[1] += value
    return {k: (v[0], v[1]) for k, v in out.items()}
