"""Replicas, CPU/memory requests and limits, and a machine type from a measured profile.

The inputs are numbers measured by ``git ml profile`` (the server's throughput and p99 per
worker count, its memory under load) and a target (requests per second, p99, optionally
a cost ceiling). Every number in the answer comes with the sentence that explains it, and
an infeasible target is refused with the reason, never rounded into a plan that misses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from gitml.deploy.catalog import Catalog, Machine
from gitml.errors import GitMLError

MIN_REPLICAS = 2          # one pod can be lost (node drain, rolling update) and still serve
MEMORY_HEADROOM = 0.25    # RSS grows with request size and allocator fragmentation
NODE_RESERVED_CPU = 0.2   # kubelet, OS and daemon sets; allocatable = vcpu - this
NODE_RESERVED_MEM_GIB = 0.5
NODE_RESERVED_MEM_FRACTION = 0.1
MIB = 1 << 20


class InfeasibleError(GitMLError):
    """The target cannot be met with what was measured and what the catalog offers."""


@dataclass(frozen=True)
class Target:
    rps: float
    p99_ms: float
    max_cost_hour: float | None = None
    headroom: float = 0.2
    rows: int = 1


@dataclass
class Recommendation:
    workers: int
    replicas: int
    cpu_request: float
    cpu_limit: float
    memory_request_mib: int
    memory_limit_mib: int
    machine: Machine
    nodes: int
    pods_per_node: int
    cost_hour: float
    replica_rps: float          # measured throughput of one replica
    replica_capacity: float     # what we plan to send it (after headroom)
    p99_ms: float               # measured p99 at the chosen worker count
    hpa_min: int
    hpa_max: int
    hpa_cpu_percent: int
    target: Target
    explain: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "workers": self.workers, "replicas": self.replicas,
            "cpu": {"request": self.cpu_request, "limit": self.cpu_limit},
            "memory_mib": {"request": self.memory_request_mib, "limit": self.memory_limit_mib},
            "machine": {"name": self.machine.name, "provider": self.machine.provider,
                        "vcpu": self.machine.vcpu, "memory_gib": self.machine.memory_gib,
                        "price_hour": self.machine.price_hour},
            "nodes": self.nodes, "pods_per_node": self.pods_per_node,
            "cost_hour": round(self.cost_hour, 4),
            "replica_rps": round(self.replica_rps, 1),
            "replica_capacity": round(self.replica_capacity, 1),
            "p99_ms": round(self.p99_ms, 2),
            "hpa": {"min": self.hpa_min, "max": self.hpa_max, "cpu_percent": self.hpa_cpu_percent},
            "target": {"rps": self.target.rps, "p99_ms": self.target.p99_ms,
                       "max_cost_hour": self.target.max_cost_hour,
                       "headroom": self.target.headroom, "rows": self.target.rows},
            "explain": list(self.explain),
        }


@dataclass(frozen=True)
class _Point:
    workers: int
    rps: float
    p99_ms: float
    rss_bytes: int
    concurrency: int


def _points(profile: dict[str, Any], rows: int) -> list[_Point]:
    out = []
    for s in profile.get("server", []):
        if int(s.get("rows", 1)) != rows or int(s.get("errors", 0)) > 0:
            continue
        out.append(_Point(int(s["workers"]), float(s["rps"]), float(s["p99_ms"]),
                          int(s.get("rss_bytes") or 0), int(s.get("concurrency", 0))))
    return sorted(out, key=lambda p: p.workers)


def allocatable(m: Machine) -> tuple[float, float]:
    """(vCPU, GiB) left for pods on one node of machine type ``m``."""
    mem = m.memory_gib - NODE_RESERVED_MEM_GIB - NODE_RESERVED_MEM_FRACTION * m.memory_gib
    return m.vcpu - NODE_RESERVED_CPU, mem


def _round_mib(n: float, step: int = 16) -> int:
    return int(math.ceil(n / step) * step)


def _fmt_cpu(c: float) -> str:
    return f"{c:g}"


def recommend(profile: dict[str, Any], target: Target, catalog: Catalog) -> Recommendation:
    if target.rps <= 0 or target.p99_ms <= 0:
        raise GitMLError("the target needs a positive --rps and --p99-ms")
    if not 0 <= target.headroom < 1:
        raise GitMLError(f"headroom must be in [0, 1), got {target.headroom}")
    pts = _points(profile, target.rows)
    who = f"{profile.get('model')} {profile.get('version') or profile.get('commit', '')[:12]}"
    cpu = profile.get("cpu", {})
    if not pts:
        raise InfeasibleError(
            f"the profile of {who} has no error-free server measurement with {target.rows}-row "
            "requests", f"run `git ml profile` (with --rows {target.rows})")
    conc = pts[0].concurrency
    explain = [
        f"profile of {who}: measured on {cpu.get('model', '?')} ({cpu.get('count', '?')} CPUs, "
        f"environment {str(profile.get('environment', '?'))[:12]}), load average "
        f"{profile.get('load_average', ['?'])[0]} at the time; {target.rows}-row requests at "
        f"concurrency {conc}, the load generator on the same cores (so these are conservative)",
        "measured: " + "; ".join(f"{p.workers} worker(s): {p.rps:.0f} rps, p99 {p.p99_ms:.1f} ms"
                                  for p in pts),
    ]
    fitting = [p for p in pts if p.p99_ms <= target.p99_ms]
    if not fitting:
        best = min(pts, key=lambda p: p.p99_ms)
        raise InfeasibleError(
            f"p99 {target.p99_ms:g} ms cannot be met: the lowest p99 measured is "
            f"{best.p99_ms:.1f} ms ({best.workers} worker(s) at concurrency {best.concurrency}); "
            "more replicas add throughput, not a lower latency per request",
            "compile the model (`git ml compile --onnx`), profile on faster CPUs, or relax --p99-ms")
    cores = int(cpu.get("count") or 0)
    plans: list[tuple[float, int, int, _Point, Machine, int, int, int]] = []
    rejected: list[str] = []
    for p in fitting:
        capacity = p.rps * (1 - target.headroom)
        replicas = max(MIN_REPLICAS, math.ceil(target.rps / capacity))
        cpu_req = float(p.workers)
        rss = p.rss_bytes or int(profile.get("load", {}).get("rss_bytes", 0))
        mem_req = _round_mib(rss * (1 + MEMORY_HEADROOM) / MIB)
        for m in catalog.machines:
            a_cpu, a_mem = allocatable(m)
            per_node = min(math.floor(a_cpu / cpu_req + 1e-9), math.floor(a_mem * 1024 / mem_req))
            if per_node < 1:
                continue
            nodes = max(math.ceil(replicas / per_node), min(replicas, 2))
            cost = nodes * m.price_hour
            plans.append((cost, nodes, replicas, p, m, per_node, mem_req, int(capacity)))
        if not any(pl[3] is p for pl in plans):
            rejected.append(f"{p.workers} worker(s) need {_fmt_cpu(cpu_req)} vCPU and {mem_req} MiB "
                            "per pod: no catalog machine has that much allocatable")
    if not plans:
        raise InfeasibleError("no machine in the catalog fits one replica: " + "; ".join(rejected),
                              "pass a catalog with larger machines (--catalog FILE)")
    plans.sort(key=lambda pl: (round(pl[0], 6), pl[1], pl[2], -pl[3].workers))
    cost, nodes, replicas, p, m, per_node, mem_req, _ = plans[0]
    if target.max_cost_hour is not None and cost > target.max_cost_hour:
        raise InfeasibleError(
            f"the cheapest plan that meets {target.rps:g} rps at p99 ≤ {target.p99_ms:g} ms costs "
            f"{cost:.3f} {catalog.currency}/h ({nodes} × {m.name} at {m.price_hour:g}/h), more than "
            f"the {target.max_cost_hour:g}/h allowed",
            "raise --max-cost, lower --rps, or compile the model for more throughput per core")
    capacity = p.rps * (1 - target.headroom)
    need = math.ceil(target.rps / capacity)
    explain.append(
        f"{p.workers} worker(s) per replica: measured p99 {p.p99_ms:.1f} ms ≤ target "
        f"{target.p99_ms:g} ms" + (f" (over the target: {', '.join(str(q.workers) for q in pts if q not in fitting)} "
                                   "worker(s))" if len(fitting) < len(pts) else ""))
    if cores and p.workers > cores:
        explain.append(f"note: {p.workers} workers were measured on {cores} cores; the per-worker "
                       "figure is what those cores gave, not one core each")
    explain.append(
        f"capacity per replica: {p.rps:.0f} rps measured × (1 − {target.headroom:.0%} headroom) = "
        f"{capacity:.0f} rps")
    explain.append(
        f"{target.rps:g} rps needs ceil({target.rps:g} / {capacity:.0f}) = {need} replica(s)"
        + (f"; raised to {replicas} so one pod can be lost during a drain or rolling update"
           if replicas > need else ""))
    explain.append(
        f"CPU: request = limit = {_fmt_cpu(float(p.workers))} (one core per worker, as profiled; "
        "equal request and limit give the pod Guaranteed QoS and no CFS throttling surprises)")
    rss = p.rss_bytes or int(profile.get("load", {}).get("rss_bytes", 0))
    explain.append(
        f"memory: {rss / MIB:.0f} MiB RSS under load × (1 + {MEMORY_HEADROOM:.0%}) → request = "
        f"limit = {mem_req} MiB (rounded up to 16 MiB)")
    a_cpu, a_mem = allocatable(m)
    explain.append(
        f"machine: {m.name} ({m.provider}, {m.vcpu:g} vCPU, {m.memory_gib:g} GiB, "
        f"{m.price_hour:g} {catalog.currency}/h): {a_cpu:g} vCPU and {a_mem:.1f} GiB allocatable "
        f"after the kubelet/OS reserve fit {per_node} pod(s); {replicas} replicas on {nodes} node(s)"
        f" (at least 2 so a node loss leaves one serving) = {cost:.3f} {catalog.currency}/h, the "
        f"cheapest of {len(plans)} fitting plans in the catalog (prices as of {catalog.as_of})")
    if m.note:
        explain.append(f"note on {m.name}: {m.note}")
    hpa_pct = round((1 - target.headroom) * 100)
    hpa_max = max(replicas + 1, 2 * replicas)
    explain.append(
        f"autoscaling: {replicas}–{hpa_max} replicas, adding one when CPU passes {hpa_pct}% of the "
        "request (the same line as the throughput headroom)")
    return Recommendation(
        workers=p.workers, replicas=replicas, cpu_request=float(p.workers),
        cpu_limit=float(p.workers), memory_request_mib=mem_req, memory_limit_mib=mem_req,
        machine=m, nodes=nodes, pods_per_node=per_node, cost_hour=cost, replica_rps=p.rps,
        replica_capacity=capacity, p99_ms=p.p99_ms, hpa_min=replicas, hpa_max=hpa_max,
        hpa_cpu_percent=hpa_pct, target=target, explain=explain)
