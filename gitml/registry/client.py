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
             token: str | None = None) -> tuple[list[str], list[float | None]]:
    """(predictions as strings, positive-class scores or regression values) from the
    versioned V2 route."""
    from gitml.errors import GitMLError

    status, raw = _request(f"{url}/v2/models/{name}/versions/{version}/infer",
                           v2_body(rows, inputs), token)
    if status != 200:
        raise GitMLError(f"smoke request to {name} {version} failed: HTTP {status} "
                         f"{raw[:300].decode('utf-8', 'replace')}")
    outs = json.loads(raw).get("outputs", [])
    if not outs:
        raise GitMLError(f"smoke request to {name} {version}: no outputs in the answer")
    preds = [str(x) for x in outs[0].get("data", [])]
    values: list[float | None] = [None] * len(preds)
    for o in outs[1:]:
        data = o.get("data", [])
        if len(data) == len(preds) and all(isinstance(x, int | float) or x is None for x in data):
            values = [None if x is None else float(x) for x in data]
            break
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


def version_counts(url: str, name: str, *, token: str | None = None) -> dict[str, tuple[float, float]]:
    """version -> (requests, failed requests) from the server's Prometheus counters: every
    ``*requests_total`` sample with a ``version`` label; failures are 5xx statuses, or an
    ``*errors_total`` counter when the server has one."""
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
        metric = m["name"]
        if metric.endswith("requests_total"):
            slot[0] += value
            code = labels.get("status") or labels.get("code") or ""
            if code.startswith("5"):
                slot[1] += value
        elif metric.endswith("errors_total"):
            slot[1] += value
    return {k: (v[0], v[1]) for k, v in out.items()}
