"""Prometheus metrics shared by every worker process of one server.

prometheus_client's multiprocess mode: each worker writes its values to memory-mapped files
in ``PROMETHEUS_MULTIPROC_DIR`` (set by the supervisor before any worker starts), and
``/metrics`` on any worker sums them, so a scrape sees the whole server whichever worker
answers, including the counts of workers that were killed and restarted.
"""

from __future__ import annotations

import os
from typing import Any

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
ROW_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        labels = ("model", "version", "protocol")
        self.requests = Counter("gitml_requests", "Prediction requests answered", labels)
        self.errors = Counter("gitml_request_errors", "Requests answered with an error",
                              (*labels, "code"))
        self.latency = Histogram("gitml_request_latency_seconds", "Time from request to answer",
                                 labels, buckets=LATENCY_BUCKETS)
        self.rows = Counter("gitml_rows", "Rows predicted", ("model", "version"))
        self.batch = Histogram("gitml_batch_rows", "Rows per model call (micro-batches)",
                               ("model", "version"), buckets=ROW_BUCKETS)
        self.traffic = Counter("gitml_traffic_rows", "Rows of the traffic log by outcome",
                               ("model", "version", "outcome"))
        self.feedback = Counter("gitml_feedback_labels", "Labels received on /feedback", ("model",))
        self.loads = Counter("gitml_model_loads", "Model versions loaded (or refused)",
                             ("model", "version", "result"))
        self._children: dict[tuple[Any, ...], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """Cached labelled child (``labels()`` costs a dict lookup and a lock each call)."""
        key = (id(metric), *labels)
        c = self._children.get(key)
        if c is None:
            c = metric.labels(*labels)
            self._children[key] = c
        return c

    def observe(self, model: str, version: str, protocol: str, seconds: float, rows: int) -> None:
        self.child(self.requests, model, version, protocol).inc()
        self.child(self.latency, model, version, protocol).observe(seconds)
        if rows:
            self.child(self.rows, model, version).inc(rows)

    def error(self, model: str, version: str, protocol: str, code: int, seconds: float) -> None:
        self.child(self.requests, model, version, protocol).inc()
        self.child(self.errors, model, version, protocol, str(code)).inc()
        self.child(self.latency, model, version, protocol).observe(seconds)


def render() -> tuple[bytes, str]:
    """The text exposition of every worker's metrics."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
