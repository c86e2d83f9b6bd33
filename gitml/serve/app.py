"""The HTTP application one worker runs: a bare ASGI callable (no framework on the hot path).

Routes (all on one port): MLflow scoring (``POST /invocations``, ``/ping``, ``/health``),
KServe V2 (``/v2/...``), ``POST /feedback``, ``/metrics`` and ``/openapi.json``.
Concurrent requests for one version are predicted together (adaptive micro-batching: the
rows that arrive while the model is busy make the next call), and every client mistake
is a 4xx whose message names the problem.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gitml.serve import v2
from gitml.serve.loaded import Served, Version, Watcher
from gitml.serve.metrics import Metrics, render
from gitml.serve.predictor import BadInput, Prediction
from gitml.serve.schema import Columns, RequestError, bad
from gitml.serve.traffic import Record, TrafficLog, error_record

try:
    import orjson

    def dumps(obj: Any) -> bytes:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)

    def loads(data: bytes | memoryview) -> Any:
        return orjson.loads(data)

    JSONError: type[Exception] = orjson.JSONDecodeError
except ImportError:  # pragma: no cover - orjson is a dependency; keep working without it
    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    def loads(data: bytes | memoryview) -> Any:
        return json.loads(bytes(data))

    JSONError = ValueError

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

MAX_BODY = 16 * 1024 * 1024
MAX_BATCH_ROWS = 8192
JSON_CT = b"application/json"
PUBLIC = frozenset({"/ping", "/health", "/v2/health/live", "/v2/health/ready"})


class Batcher:
    """Micro-batching for one version inside one event loop."""

    def __init__(self, version: Version, metrics: Metrics) -> None:
        self.version = version
        self.queue: list[tuple[Columns, int, asyncio.Future[Prediction]]] = []
        self.scheduled = False
        self.batch_hist = metrics.child(metrics.batch, version.name, version.version)

    def submit(self, cols: Columns, n: int) -> asyncio.Future[Prediction]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Prediction] = loop.create_future()
        self.queue.append((cols, n, fut))
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self._run)
        return fut

    def _run(self) -> None:
        batch: list[tuple[Columns, int, asyncio.Future[Prediction]]] = []
        rows = 0
        while self.queue and (not batch or rows + self.queue[0][1] <= MAX_BATCH_ROWS):
            item = self.queue.pop(0)
            batch.append(item)
            rows += item[1]
        try:
            self._predict(batch, rows)
        finally:
            if self.queue:
                asyncio.get_running_loop().call_soon(self._run)
            else:
                self.scheduled = False

    def _predict(self, batch: list[tuple[Columns, int, asyncio.Future[Prediction]]], rows: int) -> None:
        pred = self.version.predictor
        if len(batch) == 1:
            cols, n, fut = batch[0]
            try:
                res = pred.predict(cols, n)
            except Exception as e:
                if not fut.done():
                    fut.set_exception(e)
                return
            self.batch_hist.observe(n)
            if not fut.done():
                fut.set_result(res)
            return
        names = pred.names
        try:
            joined = {c: np.concatenate([b[0][c] for b in batch]) for c in names}
            res = pred.predict(joined, rows)
        except Exception:
            # one bad request must not fail its neighbours: answer each on its own
            for cols, n, fut in batch:
                try:
                    r = pred.predict(cols, n)
                    if not fut.done():
                        fut.set_result(r)
                except Exception as e:
                    if not fut.done():
                        fut.set_exception(e)
            return
        self.batch_hist.observe(rows)
        at = 0
        for _, n, fut in batch:
            s = slice(at, at + n)
            at += n
            if not fut.done():
                fut.set_result(Prediction(res.labels[s], None if res.values is None else res.values[s],
                                          None if res.proba is None else res.proba[s]))


class App:
    def __init__(self, state_file: Path, *, run_dir: Path | None = None, token: str | None = None,
                 traffic_dir: Path | None = None, sample: float = 1.0,
                 allow_pickle: bool = False, max_body: int = MAX_BODY,
                 flush_seconds: float = 1.0) -> None:
        self.metrics = Metrics()
        self.token = token.encode() if token else None
        self.run_dir = run_dir
        self.max_body = max_body
        self.pid = os.getpid()
        self._rid_prefix = os.urandom(4).hex()
        self._rid = 0
        self.traffic: TrafficLog | None = None
        if traffic_dir is not None:
            self.traffic = TrafficLog(traffic_dir, sample=sample, max_age=flush_seconds,
                                      on_written=self._logged, on_dropped=self._dropped)
        self.watcher = Watcher(state_file, allow_pickle=allow_pickle, on_change=self._changed,
                               on_load=self._on_load)
        self.openapi_doc: bytes | None = None

    # lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self.watcher.refresh()
        self.watcher.start()

    def close(self) -> None:
        self.watcher.stop()
        if self.traffic is not None:
            self.traffic.close()

    def _on_load(self, model: str, version: str, error: str | None) -> None:
        self.metrics.child(self.metrics.loads, model, version, "ok" if error is None else "error").inc()

    def _changed(self, served: Served) -> None:
        self.openapi_doc = None
        if self.run_dir is None:
            return
        from gitml.store.fsutil import atomic_write_text

        status = {"pid": self.pid, "model": served.model, "active": served.active,
                  "loaded": sorted(served.versions), "errors": served.errors,
                  "modes": {v: x.predictor.mode for v, x in served.versions.items()},
                  "state_mtime_ns": served.mtime_ns}
        atomic_write_text(self.run_dir / "workers" / f"{self.pid}.json", json.dumps(status))

    def _logged(self, counts: dict[tuple[str, str], int]) -> None:
        m = self.metrics
        for (model, version), n in counts.items():
            m.child(m.traffic, model, version, "written").inc(n)

    def _dropped(self, counts: dict[tuple[str, str], int]) -> None:
        m = self.metrics
        for (model, version), n in counts.items():
            m.child(m.traffic, model, version, "dropped").inc(n)

    def request_id(self) -> str:
        self._rid += 1
        return f"{self._rid_prefix}{self.pid:x}-{self._rid:x}"

    # ASGI ----------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        t0 = time.perf_counter()
        path: str = scope["path"]
        method: str = scope["method"]
        headers = scope["headers"]
        if self.token is not None and path not in PUBLIC and not self._authorized(headers):
            await _send(send, 401, dumps({"error": "missing or wrong bearer token (send "
                                                    "'Authorization: Bearer <token>')"}),
                        extra=[(b"www-authenticate", b"Bearer")])
            return
        try:
            if path == "/invocations":
                await self._invocations(scope, receive, send, t0)
            elif path.startswith("/v2"):
                await self._v2(scope, receive, send, path, method, t0)
            elif path in ("/ping", "/health"):
                await self._ping(send, method)
            elif path == "/metrics":
                if method != "GET":
                    raise bad("use GET", 405)
                body, ct = render()
                await _send(send, 200, body, ct.encode())
            elif path == "/feedback":
                await self._feedback(scope, receive, send)
            elif path in ("/openapi.json", "/docs/openapi.json"):
                if method != "GET":
                    raise bad("use GET", 405)
                await _send(send, 200, self._openapi())
            else:
                raise bad(f"no route {path}", 404)
        except RequestError as e:
            await _send(send, e.status, dumps({"error": e.message}))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        assert self.token is not None
        for k, v in headers:
            if k == b"authorization":
                scheme, _, cred = v.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(cred.strip(), self.token)
        return False

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        length = None
        for k, v in scope["headers"]:
            if k == b"content-length":
                try:
                    length = int(v)
                except ValueError:
                    raise bad("malformed Content-Length header") from None
                break
        if length is not None and length > self.max_body:
            raise bad(f"request body of {length} bytes is over the limit of {self.max_body}", 413)
        chunks = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise bad("client disconnected", 400)
            chunk = msg.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_body:
                    raise bad(f"request body is over the limit of {self.max_body} bytes", 413)
                chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @staticmethod
    def _header(scope: Scope, name: bytes) -> bytes | None:
        for k, v in scope["headers"]:
            if k == name:
                return bytes(v)
        return None

    async def _ping(self, send: Send, method: str) -> None:
        if method not in ("GET", "HEAD"):
            raise bad("use GET", 405)
        served = self.watcher.served
        if served.get(None) is None:
            await _send(send, 503, dumps({"error": "no model version is loaded yet"}))
        else:
            await _send(send, 200, b"\n", b"text/plain")

    # prediction ------------------------------------------------------------------------
    def _batcher(self, v: Version) -> Batcher:
        b = v.state.get("batcher")
        if b is None:
            b = v.state["batcher"] = Batcher(v, self.metrics)
        return b

    async def _predict(self, v: Version, cols: Columns, n: int) -> Prediction:
        try:
            return await self._batcher(v).submit(cols, n)
        except BadInput as e:
            raise bad(f"the model refused the input: {e}", 422) from e

    def _log(self, v: Version, rid: str, t0: float, cols: Columns, n: int, pred: Prediction) -> None:
        log = self.traffic
        if log is None or not log.sampled():
            return
        score = None
        if pred.proba is not None:
            score = pred.proba.max(axis=1)
        log.log(Record(request_id=rid, ts_us=int(time.time() * 1e6), model=v.name,
                       version=v.version, latency_ms=(time.perf_counter() - t0) * 1000.0,
                       status=200, inputs=v.bundle.inputs, cols=cols, n=n, pred=pred.labels,
                       pred_value=pred.values, score=score))

    def _failed(self, f: Failure, protocol: str, status: int, e: BaseException) -> None:
        """Count and log a request a model route answered with an error (any status)."""
        seconds = time.perf_counter() - f.t0
        self.metrics.error(f.model, f.version, protocol, status, seconds)
        log = self.traffic
        if log is None or not log.sampled():
            return
        inputs = f.v.bundle.inputs if f.v is not None else None
        log.log(error_record(f.rid, int(time.time() * 1e6), f.model, f.version, seconds * 1000.0,
                             status, _error_class(e), str(e), inputs, f.cols, f.n))

    def _internal(self, f: Failure, protocol: str, e: Exception) -> str:
        """A 500: the details go to the server's log and the traffic log, not to the client."""
        self._failed(f, protocol, 500, e)
        print(f"gitml serve: request {f.rid} ({f.model} {f.version or '-'}) failed: "
              f"{type(e).__name__}: {e}", flush=True)
        return f"internal error while predicting (request id {f.rid}; see the server's log)"

    async def _invocations(self, scope: Scope, receive: Receive, send: Send, t0: float) -> None:
        served = self.watcher.served
        v = served.get(None)
        f = Failure(served.model, v.version if v is not None else "", v, self.request_id(), t0)
        rid_header = [(b"x-request-id", f.rid.encode())]
        try:
            if scope["method"] != "POST":
                raise bad("use POST", 405)
            if v is None:
                raise bad("no model version is loaded yet", 503)
            ct = (self._header(scope, b"content-type") or b"").split(b";")[0].strip().lower()
            body = await self._body(scope, receive)
            if ct == JSON_CT:
                try:
                    obj = loads(body)
                except JSONError as e:
                    raise bad(f"malformed JSON: {e}") from None
                cols, n = v.schema.from_body(obj)
            elif ct in (b"text/csv", b"application/csv"):
                cols, n = v.schema.from_csv(body)
            else:
                raise bad(f"unsupported content type {ct.decode('latin-1') or '(none)'}: send "
                          "application/json or text/csv", 415)
            f.cols, f.n = cols, n
            pred = await self._predict(v, cols, n)
            out = dumps({"predictions": _jsonable(pred.labels)})
        except RequestError as e:
            self._failed(f, "mlflow", e.status, e)
            await _send(send, e.status, dumps({"error_code": _mlflow_code(e.status),
                                               "message": e.message}), extra=rid_header)
            return
        except Exception as e:  # the model (or a bug) raised: a counted, logged 500
            msg = self._internal(f, "mlflow", e)
            await _send(send, 500, dumps({"error_code": "INTERNAL_ERROR", "message": msg}),
                        extra=rid_header)
            return
        await _send(send, 200, out, extra=rid_header)
        assert v is not None
        self.metrics.observe(f.model, v.version, "mlflow", time.perf_counter() - t0, n)
        self._log(v, f.rid, t0, cols, n, pred)

    async def _feedback(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            raise bad("use POST", 405)
        if self.traffic is None:
            raise bad("the traffic log is off on this server (started with --no-log)", 409)
        ct = (self._header(scope, b"content-type") or b"").split(b";")[0].strip().lower()
        if ct != JSON_CT:
            raise bad("send feedback as application/json", 415)
        body = await self._body(scope, receive)
        try:
            obj = loads(body)
        except JSONError as e:
            raise bad(f"malformed JSON: {e}") from None
        items = obj.get("labels") if isinstance(obj, dict) and "labels" in obj else [obj]
        if not isinstance(items, list) or not items:
            raise bad("send {\"request_id\", \"row\", \"label\"} or {\"labels\": [...]}")
        checked = []
        for i, it in enumerate(items):
            if not isinstance(it, dict):
                raise bad(f"labels[{i}] must be an object")
            rid, row, label = it.get("request_id"), it.get("row", 0), it.get("label")
            if not isinstance(rid, str) or not rid:
                raise bad(f"labels[{i}].request_id must be a non-empty string")
            if not isinstance(row, int) or isinstance(row, bool) or not 0 <= row < 2**31:
                raise bad(f"labels[{i}].row must be a non-negative integer")
            if label is None or isinstance(label, (dict, list)):
                raise bad(f"labels[{i}].label must be a string or a number")
            checked.append((rid, row, str(label)))
        for rid, row, label in checked:
            self.traffic.feedback(rid, row, label)
        m = self.metrics
        m.child(m.feedback, self.watcher.served.model).inc(len(checked))
        await _send(send, 200, dumps({"accepted": len(checked)}))

    # V2 ------------------------------------------------------------------------------
    async def _v2(self, scope: Scope, receive: Receive, send: Send, path: str, method: str,
                  t0: float) -> None:
        parts = path.rstrip("/").split("/")[2:]  # after "", "v2"
        served = self.watcher.served
        if not parts:
            _want(method, "GET")
            await _send(send, 200, dumps({"name": "gitml", "version": _gitml_version(),
                                          "extensions": ["binary_tensor_data"],
                                          "models": [served.model] if served.model else []}))
            return
        if parts[0] == "health" and len(parts) == 2 and parts[1] in ("live", "ready"):
            _want(method, "GET")
            ok = parts[1] == "live" or served.get(None) is not None
            await _send(send, 200 if ok else 503, dumps({"live" if parts[1] == "live" else "ready": ok}))
            return
        if parts[0] != "models" or len(parts) < 2:
            raise bad(f"no route {path}", 404)
        name = parts[1]
        rest = parts[2:]
        version: str | None = None
        if len(rest) >= 2 and rest[0] == "versions":
            version = rest[1]
            rest = rest[2:]
        if name != served.model:
            raise bad(f"unknown model {name!r} (this server serves {served.model!r})", 404)
        if rest == ["infer"]:  # the model's prediction route: every answer is logged
            await self._infer(scope, receive, send, served, version, t0)
            return
        v = _resolve(served, version)
        if not rest:
            _want(method, "GET")
            await _send(send, 200, dumps(self._metadata(served, v)))
        elif rest == ["ready"]:
            _want(method, "GET")
            loaded_all, active_all = self.cluster_status(v.version)
            ok = loaded_all if version is not None else True
            await _send(send, 200 if ok else 503, dumps({
                "name": name, "version": v.version, "ready": ok, "active": served.active,
                "active_on_all_workers": active_all}))
        else:
            raise bad(f"no route {path}", 404)

    def _metadata(self, served: Served, v: Version) -> dict[str, Any]:
        p = v.predictor
        meta = v2.metadata(served.model, v.version, sorted(served.versions), v.schema, p.task,
                           p.classes, p.classes is not None and hasattr(p.model, "predict_proba"))
        meta["parameters"].update({"active": served.active, "commit": v.bundle.commit,
                                   "model_id": v.bundle.model_id, "path": p.mode})
        return meta

    def _outputs(self, v: Version) -> list[str]:
        p = v.predictor
        outs = ["predict"]
        if p.classes is not None and hasattr(p.model, "predict_proba"):
            outs.append("predict_proba")
        return outs

    async def _infer(self, scope: Scope, receive: Receive, send: Send, served: Served,
                     version: str | None, t0: float) -> None:
        v = served.get(version)
        # the version a failure is logged under: the one that answered, or the one asked for
        # when it failed to load; "" when no served version is named (unknown, none loaded)
        logged = v.version if v is not None else (version if version in served.errors else "")
        f = Failure(served.model, logged or "", v, "", t0)
        try:
            v = _resolve(served, version)
            _want(scope["method"], "POST")
            ct = (self._header(scope, b"content-type") or b"application/json").split(b";")[0].strip().lower()
            if ct not in (JSON_CT, b"application/octet-stream"):
                raise bad(f"unsupported content type {ct.decode('latin-1')}: send application/json "
                          "(or application/octet-stream with Inference-Header-Content-Length)", 415)
            body = await self._body(scope, receive)
            binary, obj = _v2_header(body, self._header(scope, b"inference-header-content-length"))
            given = obj.get("id") if isinstance(obj, dict) else None
            echo = given if isinstance(given, str) and given else None
            if echo is not None and _header_safe(echo):  # else the log and header get ours
                f.rid = echo
            cols, n, req = v2.decode_request(obj, binary, v.schema)
            f.cols, f.n = cols, n
            outputs = v2.wanted_outputs(req, self._outputs(v))
            pred = await self._predict(v, cols, n)
            f.rid = f.rid or self.request_id()
            p = v.predictor
            head_obj, tail = v2.encode_response(v.name, v.version, echo or f.rid, pred, outputs,
                                                v2._label_datatype(p.task, p.classes))
        except RequestError as e:
            f.rid = f.rid or self.request_id()
            self._failed(f, "v2", e.status, e)
            await _send(send, e.status, dumps({"error": e.message}),
                        extra=[(b"x-request-id", f.rid.encode())])
            return
        except Exception as e:  # the model (or a bug) raised: a counted, logged 500
            f.rid = f.rid or self.request_id()
            msg = self._internal(f, "v2", e)
            await _send(send, 500, dumps({"error": msg}), extra=[(b"x-request-id", f.rid.encode())])
            return
        head_bytes = dumps(head_obj)
        extra = [(b"x-request-id", f.rid.encode())]
        if tail:
            extra.append((b"inference-header-content-length", str(len(head_bytes)).encode()))
            await _send(send, 200, head_bytes + tail, b"application/octet-stream", extra)
        else:
            await _send(send, 200, head_bytes, extra=extra)
        self.metrics.observe(v.name, v.version, "v2", time.perf_counter() - t0, n)
        self._log(v, f.rid, t0, cols, n, pred)

    # cluster readiness -----------------------------------------------------------------
    def cluster_status(self, version: str) -> tuple[bool, bool]:
        """(every live worker has ``version`` loaded, every live worker serves it as active)."""
        served = self.watcher.served
        if version not in served.versions:
            return False, False
        if self.run_dir is None:
            return True, served.active == version
        try:
            pids = json.loads((self.run_dir / "workers.json").read_bytes())["pids"]
        except (OSError, ValueError, KeyError):
            return False, False
        loaded = active = True
        for pid in pids:
            try:
                st = json.loads((self.run_dir / "workers" / f"{pid}.json").read_bytes())
            except (OSError, ValueError):
                return False, False
            loaded = loaded and version in st.get("loaded", [])
            active = active and st.get("active") == version
        return loaded, active

    def _openapi(self) -> bytes:
        if self.openapi_doc is None:
            from gitml.serve.openapi import document

            served = self.watcher.served
            v = served.get(None)
            self.openapi_doc = dumps(document(served.model, v.schema if v else None,
                                              sorted(served.versions)))
        return self.openapi_doc


@dataclass
class Failure:
    """What a model route knows about a request when it fails (for the metrics and the log)."""

    model: str
    version: str
    v: Version | None
    rid: str
    t0: float
    cols: Columns | None = None
    n: int = 0


def _header_safe(rid: str) -> bool:
    """A client's request id that can go into a response header and the log as it is."""
    return len(rid) <= 128 and rid.isascii() and rid.isprintable() and " " not in rid


def _error_class(e: BaseException) -> str:
    """``BadInput`` (the model refused the rows), ``RequestError`` (the request is wrong) or
    the class of whatever raised (a 500)."""
    if isinstance(e, RequestError):
        return "BadInput" if isinstance(e.__cause__, BadInput) else "RequestError"
    return type(e).__name__


def _resolve(served: Served, version: str | None) -> Version:
    v = served.get(version)
    if v is not None:
        return v
    if version is None:
        raise bad("no model version is loaded yet", 503)
    if version in served.errors:
        raise bad(f"version {version} failed to load: {served.errors[version]}", 404)
    raise bad(f"unknown version {version!r} (loaded: {', '.join(sorted(served.versions)) or 'none'})", 404)


def _v2_header(body: bytes, hlen: bytes | None) -> tuple[memoryview | None, Any]:
    """(binary tail or None, the parsed JSON header) of a V2 infer body."""
    binary: memoryview | None = None
    head: bytes | memoryview = body
    if hlen is not None:
        try:
            k = int(hlen)
        except ValueError:
            raise bad("Inference-Header-Content-Length must be an integer") from None
        if not 0 < k <= len(body):
            raise bad("Inference-Header-Content-Length is outside the body")
        mv = memoryview(body)
        head, binary = mv[:k], mv[k:]
    try:
        return binary, loads(head)
    except JSONError as e:
        raise bad(f"malformed JSON: {e}") from None


def _want(method: str, allowed: str) -> None:
    if method != allowed and not (allowed == "GET" and method == "HEAD"):
        raise bad(f"use {allowed}", 405)


def _mlflow_code(status: int) -> str:
    return {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 404: "RESOURCE_DOES_NOT_EXIST",
            413: "REQUEST_LIMIT_EXCEEDED", 415: "INVALID_PARAMETER_VALUE",
            422: "INVALID_PARAMETER_VALUE", 503: "TEMPORARILY_UNAVAILABLE"}.get(status, "BAD_REQUEST")


def _jsonable(a: np.ndarray) -> Any:
    return a.tolist()


_VERSION: str | None = None


def _gitml_version() -> str:
    global _VERSION
    if _VERSION is None:
        from importlib import metadata

        try:
            _VERSION = metadata.version("gitml")
        except metadata.PackageNotFoundError:
            _VERSION = "0"
    return _VERSION


async def _send(send: Send, status: int, body: bytes, content_type: bytes = JSON_CT,
                extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
