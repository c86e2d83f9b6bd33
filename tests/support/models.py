"""Builders for the model-loading tests: a model whose type no policy trusts, and a
script that loads a model in a fresh interpreter and reports what it imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np


class NotTrusted:
    """A model of a type skops does not know: must be refused, never instantiated."""

    def fit(self, X: Any, y: Any) -> NotTrusted:
        return self

    def predict(self, X: Any) -> Any:
        return np.zeros(len(X))


FRESH_LOAD = """
import json, sys
from gitml.errors import GitMLError
from gitml.models.load import audit_types, load_model_bytes, skops_io

data = open(sys.argv[1], "rb").read()
drop = sys.argv[2]
out = {}
try:
    out["audited"] = audit_types(data, "m.skops", "models.m.path")
    model = load_model_bytes(data, "m.skops", "models.m.path")
    out["model"] = type(model).__name__
except GitMLError as e:
    out["error"] = str(e)
sio = skops_io()
try:  # skops itself, given the audited list without one type it would trust by default
    sio.loads(data, trusted=[t for t in out.get("audited", []) if t != drop])
    out["skops_refused"] = None
except Exception as e:
    out["skops_refused"] = str(e)
out["modules"] = sorted(sys.modules)
print(json.dumps(out))
"""


def load_fresh(model_file: Path, drop: str = "") -> dict[str, Any]:
    """Load ``model_file`` through gitml's loader in a new interpreter (skops not imported
    yet, as in a server or a hook); also try skops with the audited list minus ``drop``."""
    proc = subprocess.run([sys.executable, "-c", FRESH_LOAD, str(model_file), drop],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result
