"""Kubernetes manifests for one served model version, sized by `recommend`.

Core objects (Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget) always;
custom resources only on request: a Prometheus-operator ServiceMonitor and a KServe
InferenceService (a custom predictor container speaking the V2 / Open Inference Protocol,
which KServe reads from the container's PROTOCOL variable).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitml.deploy.recommend import Recommendation

PORT = 8080
READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"
METRICS_PATH = "/metrics"
RUN_AS_USER = 10001  # the non-root user the package's Dockerfile creates


@dataclass(frozen=True)
class Workload:
    model: str
    version: str
    stage: str | None
    image: str
    command: list[str]     # the server command inside the image (from the package)
    namespace: str | None = None


def dns_name(*parts: str) -> str:
    """A DNS-1123 label from ``parts`` (lower case, '-' for anything else, ≤ 63 chars)."""
    raw = "-".join(p for p in parts if p)
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)[:63].strip("-")
    return name or "model"


def _labels(w: Workload, name: str) -> dict[str, str]:
    version = re.sub(r"[^A-Za-z0-9_.-]+", "-", w.version)[:63].strip("-_.") or "unversioned"
    return {
        "app.kubernetes.io/name": dns_name("gitml", w.model),
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/version": version,
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/managed-by": "gitml",
    }


def _selector(labels: dict[str, str]) -> dict[str, str]:
    # The version is left out so a rolling update replaces pods under the same selector.
    return {k: labels[k] for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance")}


def _meta(w: Workload, name: str, labels: dict[str, str], **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(labels)}
    if w.namespace:
        meta["namespace"] = w.namespace
    meta.update(extra)
    return meta


def _resources(r: Recommendation) -> dict[str, Any]:
    return {
        "requests": {"cpu": f"{int(r.cpu_request * 1000)}m", "memory": f"{r.memory_request_mib}Mi"},
        "limits": {"cpu": f"{int(r.cpu_limit * 1000)}m", "memory": f"{r.memory_limit_mib}Mi"},
    }


def _probes() -> dict[str, Any]:
    def get(path: str) -> dict[str, Any]:
        return {"path": path, "port": "http"}

    return {
        # Loading the model happens before the server answers; give it up to 60 s.
        "startupProbe": {"httpGet": get(LIVE_PATH), "periodSeconds": 2, "failureThreshold": 30},
        "readinessProbe": {"httpGet": get(READY_PATH), "periodSeconds": 5, "timeoutSeconds": 2,
                           "failureThreshold": 2},
        "livenessProbe": {"httpGet": get(LIVE_PATH), "periodSeconds": 10, "timeoutSeconds": 3,
                          "failureThreshold": 3},
    }


def _container(w: Workload, r: Recommendation, name: str = "server") -> dict[str, Any]:
    return {
        "name": name,
        "image": w.image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(w.command),
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "resources": _resources(r),
        **_probes(),
        "securityContext": {
            "runAsNonRoot": True, "runAsUser": RUN_AS_USER, "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def _annotations(w: Workload, r: Recommendation) -> dict[str, str]:
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(PORT),
        "prometheus.io/path": METRICS_PATH,
        "gitml.dev/model": w.model,
        "gitml.dev/version": w.version,
        "gitml.dev/target": f"{r.target.rps:g} rps at p99 <= {r.target.p99_ms:g} ms",
    }


def manifests(w: Workload, r: Recommendation, *, service_monitor: bool = False,
              kserve: bool = False) -> dict[str, dict[str, Any]]:
    """File name → manifest (a dict ready for YAML)."""
    name = dns_name(w.model, w.stage or "")
    labels = _labels(w, name)
    sel = _selector(labels)
    ann = _annotations(w, r)
    out: dict[str, dict[str, Any]] = {}
    out["deployment.yaml"] = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _meta(w, name, labels, annotations={k: v for k, v in ann.items()
                                                         if k.startswith("gitml.dev/")}),
        "spec": {
            "replicas": r.replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": sel},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": dict(labels), "annotations": ann},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS_USER,
                                        "fsGroup": RUN_AS_USER},
                    "terminationGracePeriodSeconds": 30,
                    "containers": [_container(w, r)],
                    "topologySpreadConstraints": [{
                        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": sel}}],
                },
            },
        },
    }
    out["service.yaml"] = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": _meta(w, name, labels),
        "spec": {"type": "ClusterIP", "selector": sel,
                 "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]},
    }
    out["hpa.yaml"] = {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(w, name, labels),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": r.hpa_min, "maxReplicas": r.hpa_max,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization",
                                          "averageUtilization": r.hpa_cpu_percent}}}],
        },
    }
    out["pdb.yaml"] = {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": _meta(w, name, labels),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": sel}},
    }
    if service_monitor:
        out["servicemonitor.yaml"] = {
            "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": _meta(w, name, labels),
            "spec": {"selector": {"matchLabels": sel},
                     "endpoints": [{"port": "http", "path": METRICS_PATH, "interval": "15s"}]},
        }
    if kserve:
        container = _container(w, r, name="kserve-container")
        container["env"] = [{"name": "PROTOCOL", "value": "v2"}]
        out["inferenceservice.yaml"] = {
            "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": _meta(w, name, labels, annotations={
                "serving.kserve.io/deploymentMode": "RawDeployment",
                "serving.kserve.io/autoscalerClass": "hpa",
                "serving.kserve.io/enable-prometheus-scraping": "true",
                **{k: v for k, v in ann.items() if k.startswith("gitml.dev/")}}),
            "spec": {"predictor": {
                "minReplicas": r.hpa_min, "maxReplicas": r.hpa_max,
                "scaleMetric": "cpu", "scaleTarget": r.hpa_cpu_percent,
                "containers": [container],
            }},
        }
    return out


def write(out_dir: Path, docs: dict[str, dict[str, Any]]) -> list[Path]:
    import yaml

    from gitml.store.fsutil import atomic_write_text

    paths = []
    for fname, doc in docs.items():
        p = out_dir / fname
        atomic_write_text(p, "# written by `git ml k8s`; regenerate rather than edit\n"
                          + yaml.safe_dump(doc, sort_keys=False))
        paths.append(p)
    return paths
