"""Model bundles: the folder one model version serves from.

```
<bundle>/gitml-bundle.json   manifest (see docs/internal-api.md, "Model bundle")
<bundle>/<model_file>        the model bytes; their xxh3-128 must equal model_id
<bundle>/requirements.txt    pinned from the recorded training environment
<bundle>/smoke.parquet       evaluation rows (the model's inputs) + the predictions made
                             when the bundle was built (columns ``__pred``, ``__pred_value``)
```

A bundle is built from a declared model (``[models.NAME]``) at a revision, through the
same safe reading the gates use (:mod:`gitml.models.load`): the model's bytes are checked
against the pointer's id before anything parses them, and only audited skops types load.
Pickle is refused unless the caller opts in explicitly (``allow_pickle=True``), both when
building and when loading.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitml.errors import ConfigError, CorruptObjectError, GitMLError

if TYPE_CHECKING:
    import pandas as pd

    from gitml.models.spec import ModelSpec
    from gitml.repo import MLRepo

FORMAT = 1
MANIFEST = "gitml-bundle.json"
REQUIREMENTS = "requirements.txt"
SMOKE = "smoke.parquet"
SMOKE_PRED = "__pred"
SMOKE_VALUE = "__pred_value"
SMOKE_ROWS = 200
MAX_CATEGORIES = 1000
DTYPES = ("float64", "int64", "bool", "string")
# What a served model needs at the very least; pinned first, from the recorded environment.
CORE_PACKAGES = ("scikit-learn", "numpy", "scipy", "skops", "pandas", "pyarrow")


@dataclass(frozen=True)
class InputSpec:
    """One model input column."""

    name: str
    dtype: str  # float64 | int64 | bool | string
    categories: list[Any] | None = None
    nullable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "categories": self.categories,
                "nullable": self.nullable}


@dataclass
class Bundle:
    """An opened (verified) bundle folder."""

    path: Path
    name: str
    version: str | None
    commit: str
    model_file: str
    model_id: str
    flavor: str
    task: str
    target: str
    positive: Any
    classes: list[Any] | None
    inputs: list[InputSpec]
    trusted: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    gates: dict[str, Any] = field(default_factory=dict)

    # reading ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path | str) -> Bundle:
        """Read the manifest and check the model bytes against ``model_id``."""
        folder = Path(path)
        meta = _read_manifest(folder)
        b = cls._from_manifest(folder, meta)
        b.model_bytes()  # verifies the id
        return b

    @classmethod
    def _from_manifest(cls, folder: Path, d: dict[str, Any]) -> Bundle:
        where = str(folder / MANIFEST)
        try:
            inputs = [InputSpec(str(i["name"]), str(i["dtype"]), i.get("categories"),
                                bool(i.get("nullable", False))) for i in d["inputs"]]
            b = cls(path=folder, name=str(d["name"]), version=d.get("version"),
                    commit=str(d["commit"]), model_file=str(d["model_file"]),
                    model_id=str(d["model_id"]), flavor=str(d["flavor"]), task=str(d["task"]),
                    target=str(d["target"]), positive=d.get("positive"),
                    classes=d.get("classes"), inputs=inputs,
                    trusted=list(d.get("trusted") or []),
                    environment=dict(d.get("environment") or {}),
                    gates=dict(d.get("gates") or {}))
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptObjectError(f"{where}: malformed bundle manifest ({type(e).__name__}: {e})",
                                     "rebuild the bundle") from e
        bad = [i.name for i in b.inputs if i.dtype not in DTYPES]
        if bad:
            raise CorruptObjectError(f"{where}: input {bad[0]!r} has an unknown dtype",
                                     f"dtypes are {', '.join(DTYPES)}")
        if b.flavor not in ("skops", "onnx", "pickle"):
            raise CorruptObjectError(f"{where}: unknown flavor {b.flavor!r}", "rebuild the bundle")
        if "/" in b.model_file or b.model_file.startswith("."):
            raise CorruptObjectError(f"{where}: model_file must be a plain file name",
                                     "rebuild the bundle")
        return b

    def to_manifest(self) -> dict[str, Any]:
        return {"format": FORMAT, "name": self.name, "version": self.version,
                "commit": self.commit, "model_file": self.model_file, "model_id": self.model_id,
                "flavor": self.flavor, "task": self.task, "target": self.target,
                "positive": self.positive, "classes": self.classes,
                "inputs": [i.to_dict() for i in self.inputs], "trusted": self.trusted,
                "environment": self.environment, "gates": self.gates}

    def model_bytes(self) -> bytes:
        """The model file's bytes, verified against ``model_id``."""
        from gitml.store.ids import hash_bytes

        p = self.path / self.model_file
        try:
            data = p.read_bytes()
        except OSError as e:
            raise CorruptObjectError(f"{p}: cannot read the model file ({e.strerror})",
                                     "rebuild the bundle") from e
        got = hash_bytes(data)
        if got != self.model_id:
            raise CorruptObjectError(f"{p}: bytes hash to {got}, the bundle records {self.model_id}",
                                     "the model file was changed or damaged: rebuild the bundle")
        return data

    def load_model(self, *, allow_pickle: bool = False) -> Any:
        """The fitted model, through the safe loader (bytes verified first)."""
        from gitml.models.load import load_model_bytes

        data = self.model_bytes()
        key = f"bundle {self.name}"
        if self.flavor == "pickle":
            if not allow_pickle:
                raise ConfigError(f"{key}: the model is a pickle file; gitml loads pickle only "
                                  "when told to (it can run arbitrary code)",
                                  "re-save it with skops, or pass --allow-pickle if you trust it")
            import pickle

            model = pickle.loads(data)
        elif self.flavor == "onnx":
            from gitml.models.onnx import load_onnx_bytes

            model = load_onnx_bytes(data)
        else:
            model = load_model_bytes(data, self.model_file, key, self.trusted)
        if not hasattr(model, "predict"):
            raise ConfigError(f"{key}: {self.model_file} holds a {type(model).__name__}, not a model",
                              "save a fitted estimator or pipeline")
        return model

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    def smoke(self) -> tuple[pd.DataFrame, list[str], list[float | None]]:
        """(input rows, recorded predictions as strings, recorded pred values)."""
        import pandas as pd

        df = pd.read_parquet(self.path / SMOKE)
        preds = [str(x) for x in df[SMOKE_PRED].tolist()]
        values = [None if v is None or v != v else float(v) for v in df[SMOKE_VALUE].tolist()]
        return df[self.input_names], preds, values


def _read_manifest(folder: Path) -> dict[str, Any]:
    p = folder / MANIFEST
    try:
        d = json.loads(p.read_bytes())
    except FileNotFoundError as e:
        raise GitMLError(f"{folder}: not a model bundle (no {MANIFEST})",
                         "build one with `git ml serve` or the deploy") from e
    except (OSError, ValueError) as e:
        raise CorruptObjectError(f"{p}: unreadable bundle manifest: {e}", "rebuild the bundle") from e
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise CorruptObjectError(f"{p}: unsupported bundle format {d.get('format') if isinstance(d, dict) else d!r}",
                                 "rebuild the bundle with this gitml")
    return d


# building -------------------------------------------------------------------------------

def infer_inputs(df: pd.DataFrame, columns: list[str]) -> list[InputSpec]:
    """Input schema from evaluation data: dtype, categories of string columns, nullability."""
    import pandas as pd

    out = []
    for c in columns:
        s = df[c]
        nullable = bool(s.isna().any())
        cats: list[Any] | None = None
        if pd.api.types.is_bool_dtype(s):
            dtype = "bool"
        elif pd.api.types.is_integer_dtype(s):
            dtype = "int64"
        elif pd.api.types.is_numeric_dtype(s):
            dtype = "float64"
        else:
            dtype = "string"
            values = s.dropna()
            if not all(isinstance(v, str) for v in values.tolist()):
                raise ConfigError(f"column {c!r} mixes strings and other values",
                                  "give every column one type in the evaluation data")
            uniq = sorted(set(values.tolist()))
            cats = uniq if len(uniq) <= MAX_CATEGORIES else None
        out.append(InputSpec(str(c), dtype, cats, nullable))
    return out


def _flavor(path: str, data: bytes, allow_pickle: bool) -> str:
    from gitml.models.load import PICKLE_SUFFIXES

    suffix = Path(path).suffix.lower()
    if suffix in PICKLE_SUFFIXES or data[:1] == b"\x80":
        if not allow_pickle:
            raise ConfigError(f"{path} is a pickle/joblib file; gitml never unpickles unless told to",
                              "save the model with skops.io.dump (or opt in with allow_pickle)")
        return "pickle"
    if suffix == ".onnx":
        return "onnx"
    return "skops"


def _environment(repo: MLRepo, spec: ModelSpec, commit: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the environment of the run that wrote the model, the model's gate results)."""
    from gitml.runs import manifest

    m = manifest.load(repo, commit)
    env: dict[str, Any] = {}
    for rec in m.runs.values():
        outs = [o.path for o in rec.outputs]
        if any(spec.path == o or spec.path.startswith(o.rstrip("/") + "/") for o in outs):
            if rec.env and rec.env in m.environments:
                env = dict(m.environments[rec.env])
                env["stage"] = rec.stage
            break
    return env, dict(m.checks.get(spec.name, {}))


def requirements(env: dict[str, Any], trusted: list[str]) -> str:
    """Pinned requirements: core serving packages (and the roots of trusted types) at the
    recorded versions; the running interpreter's when nothing was recorded."""
    from importlib import metadata

    recorded = {k.lower(): str(v) for k, v in (env.get("packages") or {}).items()}
    wanted = list(CORE_PACKAGES)
    for t in trusted:
        root = t.split(".", 1)[0].replace("_", "-").lower()
        if root not in wanted:
            wanted.append(root)
    source = f"recorded environment {env.get('id')}" if recorded else "the building interpreter (no environment recorded)"
    lines = [f"# pinned from {source}"]
    for name in wanted:
        version = recorded.get(name)
        if version is None and not recorded:
            try:
                version = metadata.version(name)
            except metadata.PackageNotFoundError:
                version = None
        if version is not None:
            lines.append(f"{name}=={version}")
    return "\n".join(lines) + "\n"


def _registered_version(repo: MLRepo, name: str, commit: str) -> str | None:
    """``1.3.0`` when a registered version of ``name`` is at ``commit``."""
    from gitml.git.registry import version_at_commit

    registered = version_at_commit(repo.git, name, commit)
    return registered[1:] if registered else None


def build_bundle(repo: MLRepo, name: str, rev: str, out: Path | str, *,
                 version: str | None = None, allow_pickle: bool = False) -> Bundle:
    """Package the declared model ``name`` as it is at ``rev`` into the folder ``out``."""
    import numpy as np
    import pandas as pd

    from gitml.models.load import load_data, load_model_bytes, locate, read_source
    from gitml.models.spec import spec_at, validate_columns
    from gitml.store.fsutil import atomic_write_bytes, atomic_write_text

    commit = repo.git.resolve(rev)
    spec = spec_at(repo, name, commit)
    src = locate(repo, spec.path, commit, key=spec.key("path"))
    data = read_source(repo, src)  # verified against the pointer id
    flavor = _flavor(spec.path, data, allow_pickle)
    trusted = list(spec.raw.get("trusted") or [])
    if flavor == "skops":
        model = load_model_bytes(data, spec.path, spec.key("path"), trusted)
    elif flavor == "pickle":
        import pickle

        model = pickle.loads(data)
    else:
        raise ConfigError(f"{spec.key('path')}: ONNX models cannot be bundled yet",
                          "save the model with skops.io.dump")
    df, _ = load_data(repo, spec, commit)
    validate_columns(spec, df)
    features = spec.feature_columns([str(c) for c in df.columns])
    clash = [c for c in features if c in (SMOKE_PRED, SMOKE_VALUE)]
    if clash:
        raise ConfigError(f"{spec.key('features')}: column name {clash[0]!r} is reserved")
    inputs = infer_inputs(df, features)
    classes = None
    if spec.task == "classification" and hasattr(model, "classes_"):
        classes = [c.item() if isinstance(c, np.generic) else c for c in model.classes_]
    smoke = df[features].head(SMOKE_ROWS).reset_index(drop=True)
    try:
        preds = model.predict(smoke)
    except Exception as e:
        raise ConfigError(f"{spec.key('path')}: the model cannot predict its evaluation data: "
                          f"{type(e).__name__}: {str(e)[:200]}", "check features and data") from e
    values: list[float | None] = [None] * len(smoke)
    if spec.task == "regression":
        values = [float(v) for v in preds]
    elif classes is not None and hasattr(model, "predict_proba"):
        pos = spec.positive if spec.positive in classes else classes[-1]
        proba = model.predict_proba(smoke)
        values = [float(v) for v in proba[:, classes.index(pos)]]
    smoke = smoke.copy()
    smoke[SMOKE_PRED] = [str(p.item() if isinstance(p, np.generic) else p) for p in preds]
    smoke[SMOKE_VALUE] = pd.Series(values, dtype="float64")

    env, gates = _environment(repo, spec, commit)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    model_file = Path(spec.path).name
    bundle = Bundle(path=folder, name=spec.name, version=version or _registered_version(repo, name, commit),
                    commit=commit, model_file=model_file, model_id=src.oid, flavor=flavor,
                    task=spec.task, target=spec.target, positive=spec.positive, classes=classes,
                    inputs=inputs, trusted=trusted, environment=env, gates=gates)
    atomic_write_bytes(folder / model_file, data)
    atomic_write_text(folder / REQUIREMENTS, requirements(env, trusted))
    import io

    buf = io.BytesIO()
    smoke.to_parquet(buf, index=False)
    atomic_write_bytes(folder / SMOKE, buf.getvalue())
    # the manifest last: a folder with a manifest is a whole bundle
    atomic_write_text(folder / MANIFEST, json.dumps(bundle.to_manifest(), indent=2, default=str) + "\n")
    return bundle
