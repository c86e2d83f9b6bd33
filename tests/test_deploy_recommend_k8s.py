"""`recommend` arithmetic and explanations, and the manifests `k8s` writes from it,
validated against the Kubernetes schemas (kubernetes-validate) and KServe's CRD."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gitml.deploy import catalog, k8s
from gitml.deploy.recommend import InfeasibleError, Target, allocatable, recommend
from gitml.errors import ConfigError

MIB = 1 << 20
KSERVE_CRD = "config/crd/full/serving.kserve.io_inferenceservices.yaml"
KSERVE_MIRROR = Path("/work/.mirror/kserve+kserve/repo")


def a_profile(points: list[tuple[int, float, float]], rss_mib: int = 300) -> dict[str, Any]:
    """A profile as `git ml profile` writes it, with the given (workers, rps, p99) points."""
    return {
        "format": 1, "model": "arrests", "version": "1.0.0", "commit": "c" * 40,
        "environment": "e" * 32, "cpu": {"model": "Test CPU", "count": 2},
        "load_average": [1.0, 1.0, 1.0],
        "load": {"seconds": 0.5, "rss_bytes": 200 * MIB, "model_bytes": 10_000},
        "latency": {},
        "server": [{"workers": w, "rows": 1, "concurrency": 16, "rps": rps, "p50_ms": p99 / 3,
                    "p99_ms": p99, "errors": 0, "rss_bytes": rss_mib * MIB * w}
                   for w, rps, p99 in points],
    }


PROFILE = a_profile([(1, 180.0, 31.0), (2, 330.0, 42.0)])


def test_replicas_resources_and_the_cheapest_fitting_machine() -> None:
    cat = catalog.load()
    rec = recommend(PROFILE, Target(rps=500, p99_ms=50), cat)
    per_replica = {1: 180.0, 2: 330.0}[rec.workers] * 0.8
    assert rec.replicas == max(2, math.ceil(500 / per_replica))
    assert rec.cpu_request == rec.cpu_limit == rec.workers
    assert rec.memory_request_mib >= 300 * rec.workers * 1.25
    # no other plan in the catalog is cheaper (checked independently of the chooser)
    for m in cat.machines:
        for w, rps in ((1, 180.0), (2, 330.0)):
            replicas = max(2, math.ceil(500 / (rps * 0.8)))
            mem = math.ceil(300 * w * 1.25 / 16) * 16
            a_cpu, a_mem = allocatable(m)
            per_node = min(math.floor(a_cpu / w + 1e-9), math.floor(a_mem * 1024 / mem))
            if per_node >= 1:
                nodes = max(math.ceil(replicas / per_node), min(replicas, 2))
                assert rec.cost_hour <= nodes * m.price_hour + 1e-9, (m.name, w)
    text = "\n".join(rec.explain)
    assert f"{per_replica:.0f} rps" in text and "20% headroom" in text
    assert "Test CPU" in text and cat.as_of in text and rec.machine.name in text


def test_latency_target_decides_the_worker_count() -> None:
    rec = recommend(PROFILE, Target(rps=100, p99_ms=35), catalog.load())
    assert rec.workers == 1 and rec.p99_ms == 31.0
    assert any("over the target: 2" in line for line in rec.explain)


def test_infeasible_targets_say_why() -> None:
    with pytest.raises(InfeasibleError, match=r"lowest p99 measured is 31.0 ms"):
        recommend(PROFILE, Target(rps=100, p99_ms=10), catalog.load())
    with pytest.raises(InfeasibleError, match=r"costs .* more than the 0.01/h allowed"):
        recommend(PROFILE, Target(rps=5000, p99_ms=50, max_cost_hour=0.01), catalog.load())
    huge = a_profile([(1, 100.0, 20.0)], rss_mib=200_000)
    with pytest.raises(InfeasibleError, match="no machine in the catalog fits"):
        recommend(huge, Target(rps=10, p99_ms=50), catalog.load())


def test_a_user_catalog_replaces_the_shipped_one(tmp_path: Path) -> None:
    f = tmp_path / "mine.toml"
    f.write_text('prices_as_of = "2026-01"\n[[machines]]\nname = "big-box"\nprovider = "onprem"\n'
                 "vcpu = 16\nmemory_gib = 64\nprice_hour = 0.5\n")
    rec = recommend(PROFILE, Target(rps=500, p99_ms=50), catalog.load(f))
    assert rec.machine.name == "big-box" and rec.nodes == 2
    f.write_text('prices_as_of = "2026-01"\n[[machines]]\nname = "x"\nvcpu = "two"\n'
                 "memory_gib = 1\nprice_hour = 1\n")
    with pytest.raises(ConfigError, match=r"machines\[0\]: vcpu must be a positive number"):
        catalog.load(f)


def test_shipped_catalog_is_dated_and_cited() -> None:
    cat = catalog.load()
    assert cat.as_of and len(cat.urls) >= 3 and all(u.startswith("https://") for u in cat.urls)
    assert len(cat.machines) >= 10


# --------------------------------------------------------------------------- manifests
def _workload(stage: str | None = "prod") -> k8s.Workload:
    return k8s.Workload(model="arrests", version="1.0.0", stage=stage,
                        image="gitml-arrests:1.0.0",
                        command=["git-ml", "serve", "--port", "8080"])


def _docs(**kw: bool) -> tuple[dict[str, dict[str, Any]], Any]:
    rec = recommend(PROFILE, Target(rps=500, p99_ms=50), catalog.load())
    return k8s.manifests(_workload(), rec, **kw), rec


@pytest.mark.parametrize("version", ["1.33.0", "latest"])
def test_core_manifests_validate_against_kubernetes_schemas(version: str) -> None:
    import kubernetes_validate

    v = kubernetes_validate.latest_version() if version == "latest" else version
    docs, _ = _docs(service_monitor=True, kserve=True)
    core = {k: d for k, d in docs.items() if d["apiVersion"] in ("v1", "apps/v1", "autoscaling/v2",
                                                                 "policy/v1")}
    assert set(core) == {"deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml"}
    for doc in core.values():
        kubernetes_validate.validate(doc, v, strict=True)
    broken = dict(docs["deployment.yaml"], spec={**docs["deployment.yaml"]["spec"], "replicas": "2"})
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, v, strict=True)


def test_deployment_is_sized_probed_and_rolls_without_unavailability() -> None:
    docs, rec = _docs()
    dep = docs["deployment.yaml"]
    assert dep["spec"]["replicas"] == rec.replicas
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert c["resources"]["requests"] == {"cpu": f"{rec.workers * 1000}m",
                                          "memory": f"{rec.memory_request_mib}Mi"}
    ann = dep["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/path"] == "/metrics"
    assert docs["hpa.yaml"]["spec"]["minReplicas"] == rec.replicas
    assert docs["pdb.yaml"]["spec"]["maxUnavailable"] == 1
    # the selector leaves the version out, so a new version rolls under the same one
    sel = dep["spec"]["selector"]["matchLabels"]
    assert "app.kubernetes.io/version" not in sel
    assert docs["service.yaml"]["spec"]["selector"] == sel
    assert "servicemonitor.yaml" not in docs and "inferenceservice.yaml" not in docs


def _kserve_schema() -> dict[str, Any]:
    """KServe's InferenceService CRD (v1beta1 openAPIV3Schema): from $GITML_KSERVE_CRD,
    else from a local snapshot of github:kserve/kserve. Not vendored in this repository."""
    import yaml

    path = os.environ.get("GITML_KSERVE_CRD")
    if path:
        crd = yaml.safe_load(Path(path).read_text())
    elif KSERVE_MIRROR.exists():
        text = subprocess.run(["git", f"--git-dir={KSERVE_MIRROR}", "show", f"HEAD:{KSERVE_CRD}"],
                              capture_output=True, text=True, check=True).stdout
        crd = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    else:
        pytest.skip("KServe's CRD is not available: set GITML_KSERVE_CRD to "
                    f"{KSERVE_CRD} from github.com/kserve/kserve")
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def test_inference_service_validates_against_kserve_crd() -> None:
    import jsonschema

    schema = _kserve_schema()
    docs, rec = _docs(kserve=True)
    isvc = docs["inferenceservice.yaml"]
    validator = jsonschema.Draft7Validator(schema)
    errors = [e.message for e in validator.iter_errors(isvc)]
    assert errors == []
    pred = isvc["spec"]["predictor"]
    c = pred["containers"][0]
    assert c["name"] == "kserve-container" and {"name": "PROTOCOL", "value": "v2"} in c["env"]
    assert pred["minReplicas"] == rec.replicas
    bad = {**isvc, "spec": {"predictor": {**pred, "minReplicas": "two"}}}
    assert list(validator.iter_errors(bad))


def test_inference_service_deserialises_with_kserve_sdk() -> None:
    from tests.support import kserve_sdk

    mod = kserve_sdk.models()
    if mod is None:
        pytest.skip("KServe's SDK is not in .cache/kserve-sdk (scripts/test.sh installs it)")
    docs, rec = _docs(kserve=True)
    isvc = kserve_sdk.deserialise(mod, docs["inferenceservice.yaml"], "V1beta1InferenceService")
    assert isvc.spec.predictor.min_replicas == rec.replicas
    assert isvc.kind == "InferenceService" and isvc.api_version == "serving.kserve.io/v1beta1"
    good = docs["inferenceservice.yaml"]
    pred = good["spec"]["predictor"]
    for bad, why in (({**good, "spec": {"predictor": {**pred, "minReplicas": "two"}}}, "expected int"),
                     ({**good, "spec": {"predictor": {**pred, "replicas": 2}}}, "no field"),
                     ({**good, "spec": {}}, "predictor")):
        with pytest.raises(kserve_sdk.SchemaError, match=why):
            kserve_sdk.deserialise(mod, bad, "V1beta1InferenceService")


def test_service_monitor_on_request() -> None:
    docs, _ = _docs(service_monitor=True)
    sm = docs["servicemonitor.yaml"]
    assert sm["kind"] == "ServiceMonitor"
    assert sm["spec"]["endpoints"][0] == {"port": "http", "path": "/metrics", "interval": "15s"}
    assert sm["spec"]["selector"]["matchLabels"] == docs["service.yaml"]["spec"]["selector"]


def test_names_are_dns_labels() -> None:
    assert k8s.dns_name("Credit_Model", "prod") == "credit-model-prod"
    assert len(k8s.dns_name("x" * 100)) <= 63
