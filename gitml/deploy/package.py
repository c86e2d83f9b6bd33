"""``git ml package REF -o DIR``: a folder that serves one model version anywhere.

```
DIR/bundle/             the model bundle (gitml.models.bundle: model, manifest, smoke rows)
DIR/deploy-state.json   what the server serves: {"versions": {VERSION: "bundle"}}
DIR/requirements.txt    the bundle's pins (from the recorded training environment) plus
                        the server's own dependencies at the versions that built this
DIR/wheels/             gitml itself, as a wheel (installed with --no-deps)
DIR/MLmodel             MLflow pyfunc metadata: `mlflow models serve -m DIR` loads it too
DIR/code/gitml_pyfunc.py   the MLflow loader (the bundle through gitml's safe loader)
DIR/python_env.yaml     MLflow's virtualenv description
DIR/Dockerfile          slim Python base, non-root user, HEALTHCHECK, the gitml server
DIR/README.md           what it is, where it came from, how to run it
```
The bundle is built by :func:`gitml.models.bundle.build_bundle` (no second builder); with
``onnx=True`` its model is swapped for the ONNX artifact ``git ml compile`` made from the
very same model id, and its smoke predictions are re-recorded from the compiled model.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitml.errors import ConfigError, GitMLError, UsageError

if TYPE_CHECKING:
    from gitml.models.bundle import Bundle
    from gitml.registry.refs import ModelRef
    from gitml.repo import MLRepo

APP_DIR = "/app"
PORT = 8080
RUN_UID = 10001
STATE = "deploy-state.json"
BUNDLE_DIR = "bundle"
# What the gitml server imports beyond the bundle's pins (gitml is installed --no-deps).
SERVER_PACKAGES = ("uvicorn", "uvloop", "httptools", "orjson", "prometheus-client", "xxhash")
ONNX_PACKAGES = ("onnxruntime",)
PYFUNC = '''"""MLflow pyfunc loader for a gitml package: the bundle through gitml's safe loader."""

import os


class _GitmlModel:
    def __init__(self, model):
        self.model = model

    def predict(self, model_input, params=None):
        return self.model.predict(model_input)


def _load_pyfunc(path):
    from gitml.models.bundle import Bundle

    return _GitmlModel(Bundle.open(os.path.abspath(path)).load_model())
'''


def image_name(model: str, label: str) -> str:
    repo = re.sub(r"[^a-z0-9._-]+", "-", f"gitml-{model}".lower()).strip("-._")
    tag = re.sub(r"[^A-Za-z0-9._-]+", "-", label)[:128]
    return f"{repo}:{tag}"


def server_command(workers: int, *, port: int = PORT, host: str = "0.0.0.0",
                   python: str = "python") -> list[str]:
    """The gitml server on the package's deploy state (the Dockerfile's CMD, run in DIR)."""
    return [python, "-m", "gitml.serve.supervisor", "--state", STATE, "--host", host,
            "--port", str(port), "--workers", str(workers)]


@dataclass
class PackageResult:
    path: Path
    bundle: Bundle
    image: str
    files: list[str]
    requirements: list[str]
    notes: list[str]


# ------------------------------------------------------------------------------- onnx
@dataclass(frozen=True)
class Compiled:
    """The ONNX artifact `git ml compile` made from one model, and the parity it passed."""

    path: str
    oid: str
    tolerance: float
    min_agreement: float


def compiled_artifact(repo: MLRepo, name: str, model_id: str) -> Compiled:
    """The ONNX artifact compiled from the model with id ``model_id``, from the compile run
    records in the work tree (the plain compile before a quantized one)."""
    from gitml.deploy.compile import MIN_AGREEMENT, TOLERANCE
    from gitml.runs.records import load_run_records

    for stage, rec in sorted(load_run_records(repo.workdir).items()):
        if not stage.startswith(f"compile-{name}"):
            continue
        if any(i.oid == model_id for i in rec.inputs) and rec.outputs and rec.outputs[0].oid:
            return Compiled(rec.outputs[0].path, str(rec.outputs[0].oid),
                            float(rec.params.get("tolerance", TOLERANCE)),
                            float(rec.params.get("min_agreement", MIN_AGREEMENT)))
    raise GitMLError(f"{name}: no ONNX model compiled from model id {model_id[:12]}",
                     f"compile it first: git ml compile {name}@vX.Y.Z --onnx, and commit")


def _smoke_parity(bundle: Bundle, labels: list[str], values: list[float | None],
                  compiled: Compiled) -> Any:
    """The compiled model's answers on the bundle's smoke rows against the scikit-learn
    model's recorded ones, judged as `git ml compile` judged them."""
    from gitml.deploy.compile import Parity

    _, preds, recorded = bundle.smoke()
    pairs = [(a, b) for a, b in zip(values, recorded, strict=True) if a is not None and b is not None]
    if bundle.task == "regression":
        scaled = [abs(a - b) / max(1.0, abs(b)) for a, b in pairs]
        agree = sum(d <= compiled.tolerance for d in scaled) / max(1, len(scaled))
        return Parity(len(scaled), agree, max(scaled, default=0.0), compiled.tolerance,
                      compiled.min_agreement)
    agree = sum(a == b for a, b in zip(labels, preds, strict=True)) / max(1, len(preds))
    diff = max((abs(a - b) for a, b in pairs), default=0.0)
    return Parity(len(preds), agree, diff, compiled.tolerance, compiled.min_agreement)


def swap_to_onnx(repo: MLRepo, bundle: Bundle) -> Bundle:
    """Put the compiled model in the bundle in place of the scikit-learn one, refused unless
    it answers the bundle's smoke rows as the scikit-learn model did (compile's parity)."""
    import numpy as np
    import pandas as pd

    from gitml.models.bundle import MANIFEST, SMOKE, SMOKE_PRED, SMOKE_VALUE
    from gitml.models.load import locate, read_source
    from gitml.models.onnx import load_onnx_bytes
    from gitml.store.fsutil import atomic_write_bytes, atomic_write_text

    compiled = compiled_artifact(repo, bundle.name, bundle.model_id)
    path, oid = compiled.path, compiled.oid
    src = locate(repo, path, None, True)
    if src.oid != oid:
        raise GitMLError(f"{path} in the index has id {src.oid[:12]}, the compile record says "
                         f"{oid[:12]}", f"re-run git ml compile {bundle.name} --onnx")
    data = read_source(repo, src)
    model = load_onnx_bytes(data)
    if model.source_id != bundle.model_id:
        raise GitMLError(f"{path} was compiled from {str(model.source_id)[:12]}, not from "
                         f"{bundle.model_id[:12]}", f"re-run git ml compile {bundle.name} --onnx")
    rows, _, _ = bundle.smoke()
    labels, proba = model.run(rows)
    values: list[float | None] = [None] * len(rows)
    if bundle.task == "regression":
        values = [float(v) for v in labels]
    elif proba is not None and bundle.classes:
        pos = bundle.positive if bundle.positive in bundle.classes else bundle.classes[-1]
        values = [float(v) for v in proba[:, bundle.classes.index(pos)]]
    preds = [str(p.item() if isinstance(p, np.generic) else p) for p in labels]
    parity = _smoke_parity(bundle, preds, values, compiled)
    if not parity.passed:
        from gitml.deploy.compile import ParityError

        raise ParityError(f"{path} does not answer as {bundle.name}'s scikit-learn model on the "
                          f"bundle's smoke rows: {parity.describe()}",
                          f"re-run git ml compile {bundle.name} --onnx")
    smoke = rows.copy()
    smoke[SMOKE_PRED] = preds
    smoke[SMOKE_VALUE] = pd.Series(values, dtype="float64")
    old = bundle.path / bundle.model_file
    bundle.model_file = Path(path).name
    bundle.model_id = oid
    bundle.flavor = "onnx"
    atomic_write_bytes(bundle.path / bundle.model_file, data)
    import io

    buf = io.BytesIO()
    smoke.to_parquet(buf, index=False)
    atomic_write_bytes(bundle.path / SMOKE, buf.getvalue())
    atomic_write_text(bundle.path / MANIFEST,
                      json.dumps(bundle.to_manifest(), indent=2, default=str) + "\n")
    if old.name != bundle.model_file:  # after the manifest: it never names a missing file
        old.unlink(missing_ok=True)
    from gitml.models.bundle import Bundle as _B

    return _B.open(bundle.path)


# ------------------------------------------------------------------------------ files
def _installed(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def requirements(bundle: Bundle) -> list[str]:
    """The bundle's pins, then the server's packages at the versions running here."""
    lines = [ln.strip() for ln in (bundle.path / "requirements.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    have = {re.split(r"[=<>!~ ]", ln, maxsplit=1)[0].lower() for ln in lines}
    extra = list(SERVER_PACKAGES) + (list(ONNX_PACKAGES) if bundle.flavor == "onnx" else [])
    for name in extra:
        if name in have:
            continue
        v = _installed(name)
        if v is None:
            raise ConfigError(f"{name} is not installed here, so it cannot be pinned",
                              f"pip install {name}")
        lines.append(f"{name}=={v}")
    return lines


def build_wheel(dest: Path) -> Path:
    """A pure-Python wheel of the gitml that is running (its files as installed), so the
    package installs exactly this server without a build step or an index."""
    import base64
    import hashlib
    import zipfile

    import gitml

    version = gitml.__version__
    root = Path(gitml.__file__).parent
    info = f"gitml-{version}.dist-info"
    entries: list[tuple[str, bytes]] = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo"):
            entries.append((f"gitml/{p.relative_to(root).as_posix()}", p.read_bytes()))
    entries += [
        (f"{info}/METADATA", f"Metadata-Version: 2.1\nName: gitml\nVersion: {version}\n"
                             "Requires-Python: >=3.11\n".encode()),
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: git-ml-package\n"
                          b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{info}/entry_points.txt", b"[console_scripts]\ngit-ml = gitml.cli.main:main\n"
                                     b"git-ml-hook = gitml.hooks.entry:main\n"),
    ]
    record = []
    for name, data in entries:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    entries.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode()))
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / f"gitml-{version}-py3-none-any.whl"
    tmp = out.with_suffix(".incomplete")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            zi = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            z.writestr(zi, data)
    tmp.replace(out)
    return out


def _python_version(bundle: Bundle) -> str:
    v = str((bundle.environment.get("python") or {}).get("version") or "")
    if re.match(r"^\d+\.\d+", v):
        return v
    return ".".join(str(x) for x in sys.version_info[:3])


def _signature(bundle: Bundle) -> dict[str, str]:
    mlflow_type = {"float64": "double", "int64": "long", "bool": "boolean", "string": "string"}
    inputs = [{"type": mlflow_type[i.dtype], "name": i.name, "required": not i.nullable}
              for i in bundle.inputs]
    out_type = "double" if bundle.task == "regression" else "string"
    return {"inputs": json.dumps(inputs), "outputs": json.dumps([{"type": out_type, "required": True}]),
            "params": "null"}


def mlmodel(bundle: Bundle, python_version: str) -> dict[str, Any]:
    import uuid

    return {
        "artifact_path": "model",
        "flavors": {"python_function": {
            "loader_module": "gitml_pyfunc", "code": "code", "data": BUNDLE_DIR,
            "env": {"virtualenv": "python_env.yaml"}, "python_version": python_version}},
        "model_uuid": uuid.uuid5(uuid.NAMESPACE_URL, f"gitml:{bundle.model_id}").hex,
        "utc_time_created": time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime()),
        "signature": _signature(bundle),
        "metadata": {"gitml_model": bundle.name, "gitml_version": bundle.version,
                     "gitml_commit": bundle.commit, "gitml_model_id": bundle.model_id,
                     "gitml_flavor": bundle.flavor},
    }


def dockerfile(bundle: Bundle, workers: int, wheel: str, python_version: str) -> str:
    mm = ".".join(python_version.split(".")[:2])
    health = ("import sys, urllib.request; "
              f"sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:{PORT}/v2/health/ready', "
              "timeout=2).status == 200 else 1)")
    return "\n".join([
        f"# {bundle.name} {bundle.version or ''} (commit {bundle.commit[:12]}, model id "
        f"{bundle.model_id}), written by `git ml package`",
        f"FROM python:{mm}-slim",
        "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 "
        "PIP_DISABLE_PIP_VERSION_CHECK=1",
        f"RUN useradd --create-home --uid {RUN_UID} --user-group gitml",
        f"WORKDIR {APP_DIR}",
        "COPY requirements.txt ./",
        "COPY wheels/ ./wheels/",
        f"RUN pip install -r requirements.txt && pip install --no-deps wheels/{wheel}",
        f"COPY --chown={RUN_UID}:{RUN_UID} . .",
        f"USER {RUN_UID}",
        f"EXPOSE {PORT}",
        "HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 "
        f"CMD {json.dumps(['python', '-c', health])}",
        f"CMD {json.dumps(server_command(workers))}",
        "",
    ])


def readme(bundle: Bundle, image: str, workers: int, reqs: list[str]) -> str:
    env_id = bundle.environment.get("id") or "not recorded"
    return f"""# {bundle.name} {bundle.version or bundle.commit[:12]}

A self-contained folder that serves this model version, written by `git ml package`.

| | |
|---|---|
| model | {bundle.name} |
| version | {bundle.version or "(no version tag)"} |
| commit | {bundle.commit} |
| model id (xxh3-128) | {bundle.model_id} |
| flavor | {bundle.flavor} |
| task | {bundle.task} (target `{bundle.target}`) |
| training environment | {env_id} |

The server verifies the model bytes against the id before loading them, and loads only
through gitml's safe loader (audited skops types, or onnxruntime for ONNX).

## Run it

With Docker:

```
docker build -t {image} .
docker run --rm -p 8080:8080 {image}
```

Without a container (the same command the image runs, in this folder):

```
python -m venv .venv && .venv/bin/pip install -r requirements.txt \\
    && .venv/bin/pip install --no-deps wheels/*.whl
.venv/bin/{" ".join(server_command(workers, host="127.0.0.1"))}
```

With MLflow (`MLmodel` is a pyfunc model that loads the bundle through gitml):

```
mlflow models serve -m . --env-manager local
```

## Endpoints (one port, 8080)

- `POST /invocations`: MLflow's protocol (`dataframe_split`, `dataframe_records`,
  `instances`, `inputs`, CSV)
- `POST /v2/models/{bundle.name}/infer`: KServe V2 / Open Inference Protocol, one input
  per column: {", ".join(f"`{i.name}` ({i.dtype})" for i in bundle.inputs)}
- `GET /v2/health/live`, `GET /v2/health/ready`: probes (the Dockerfile's HEALTHCHECK)
- `GET /metrics`: Prometheus

## Pinned requirements

{chr(10).join("- " + r for r in reqs)}
"""


def package(repo: MLRepo, ref: ModelRef, out: Path, *, onnx: bool = False, workers: int = 2,
            force: bool = False) -> PackageResult:
    from gitml.models.bundle import build_bundle
    from gitml.store.fsutil import atomic_write_text

    if workers < 1:
        raise UsageError("--workers must be at least 1")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise UsageError(f"{out} exists and is not empty", "choose another -o, or --force")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    bundle = build_bundle(repo, ref.name, ref.commit, out / BUNDLE_DIR, version=ref.version)
    if onnx:
        bundle = swap_to_onnx(repo, bundle)
    if not bundle.environment:
        notes.append("no training environment recorded for the model: requirements are pinned "
                     "to this interpreter's versions")
    reqs = requirements(bundle)
    wheel = build_wheel(out / "wheels")
    py = _python_version(bundle)
    label = ref.label
    atomic_write_text(out / STATE, json.dumps({"model": bundle.name, "active": label,
                                               "versions": {label: BUNDLE_DIR}}, indent=2) + "\n")
    atomic_write_text(out / "requirements.txt",
                      f"# {bundle.name} {label}: the model's pins from its training environment, "
                      "then the gitml server's\n" + "\n".join(reqs) + "\n")
    import yaml

    atomic_write_text(out / "MLmodel", yaml.safe_dump(mlmodel(bundle, py), sort_keys=False))
    atomic_write_text(out / "code" / "gitml_pyfunc.py", PYFUNC)
    atomic_write_text(out / "python_env.yaml", yaml.safe_dump(
        {"python": py, "build_dependencies": ["pip"],
         "dependencies": ["-r requirements.txt", f"wheels/{wheel.name}"]}, sort_keys=False))
    image = image_name(bundle.name, label + ("-onnx" if onnx else ""))
    atomic_write_text(out / "Dockerfile", dockerfile(bundle, workers, wheel.name, py))
    atomic_write_text(out / ".dockerignore", ".venv\n*.pid\n*.log\n*.server.json\n*.run\n")
    atomic_write_text(out / "README.md", readme(bundle, image, workers, reqs))
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    for f in files:  # temp-file writes are 0600; a package is meant to be read by others
        (out / f).chmod(0o644)
    return PackageResult(out, bundle, image, files, reqs, notes)


def dockerfile_cmd(text: str) -> list[str]:
    """The exec-form CMD of a Dockerfile (the last one, as Docker uses)."""
    cmds = [ln for ln in text.splitlines() if ln.startswith("CMD [")]
    if not cmds:
        raise GitMLError("the Dockerfile has no exec-form CMD")
    cmd = json.loads(cmds[-1][len("CMD "):])
    if not isinstance(cmd, list) or not all(isinstance(x, str) for x in cmd):
        raise GitMLError("the Dockerfile's CMD is not a list of strings")
    return cmd
