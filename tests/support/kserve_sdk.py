"""KServe's InferenceService checked with KServe's own Python SDK models.

The SDK (``pip install kserve``) holds one generated class per type of KServe's OpenAPI
spec, the spec its CRD is generated from: each lists its fields (``attribute_map``) and
their types (``openapi_types``), and its setters refuse a missing required field or a
value outside an enum. ``scripts/test.sh`` installs the wheel alone (``--no-deps``) into
``.cache/kserve-sdk``: its package ``__init__`` would import a model server's worth of
dependencies, so the models are loaded without it.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import Any

SDK = Path(__file__).resolve().parents[2] / ".cache" / "kserve-sdk"
SCALARS: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "bool": (bool,),
                                        "float": (int, float), "object": (object,), "datetime": (str,)}


class SchemaError(AssertionError):
    pass


def models() -> types.ModuleType | None:
    """``kserve.models``, or None when the SDK is not installed in ``.cache``."""
    root = SDK / "kserve"
    if not (root / "models" / "__init__.py").is_file():
        return None
    if "kserve" not in sys.modules:
        pkg = types.ModuleType("kserve")
        pkg.__path__ = [str(root)]
        sys.modules["kserve"] = pkg
    return importlib.import_module("kserve.models")


def deserialise(mod: types.ModuleType, data: Any, type_name: str, where: str = "$") -> Any:
    """Build ``type_name`` from ``data`` as the SDK's client would: unknown fields, wrong
    types, missing required fields and values outside an enum are :class:`SchemaError`.
    Kubernetes core types (``V1Container`` ...) are only required to be mappings here:
    kubernetes-validate checks them in the Deployment."""
    if type_name.startswith("list[") and type_name.endswith("]"):
        if not isinstance(data, list):
            raise SchemaError(f"{where}: expected a list, got {data!r}")
        return [deserialise(mod, x, type_name[5:-1], f"{where}[{i}]") for i, x in enumerate(data)]
    if type_name.startswith("dict(") and type_name.endswith(")"):
        if not isinstance(data, dict):
            raise SchemaError(f"{where}: expected a mapping, got {data!r}")
        value_type = type_name[5:-1].split(",", 1)[1].strip()
        return {k: deserialise(mod, v, value_type, f"{where}.{k}") for k, v in data.items()}
    if type_name in SCALARS:
        ok = isinstance(data, SCALARS[type_name]) and not (type_name == "int" and isinstance(data, bool))
        if not ok:
            raise SchemaError(f"{where}: expected {type_name}, got {data!r}")
        return data
    cls = getattr(mod, type_name, None)
    if not isinstance(data, dict):
        raise SchemaError(f"{where}: expected a {type_name} mapping, got {data!r}")
    if cls is None:
        return data
    fields = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SchemaError(f"{where}: {type_name} has no field(s) {unknown}")
    kwargs = {fields[k]: deserialise(mod, v, cls.openapi_types[fields[k]], f"{where}.{k}")
              for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ValueError as e:
        raise SchemaError(f"{where}: {e}") from e
