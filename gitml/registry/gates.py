"""The gate results a commit recorded for a model, and whether they let it ship.

Registering and deploying read ``.gitml/checks/<model>.json`` *at the commit* (never the
work tree) and accept it only when it passed and was computed for the model and data
that commit points at: results for other bytes are stale, and stale is not passed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gitml.errors import GitMLError
from gitml.runs.records import CHECKS_DIR, check_passed, parse_check

if TYPE_CHECKING:
    from gitml.models.spec import ModelSpec
    from gitml.repo import MLRepo


@dataclass
class Verdict:
    passed: bool
    reasons: list[str] = field(default_factory=list)   # why not, one line each
    doc: dict[str, Any] | None = None                  # the recorded results, when any

    def summary(self) -> str:
        if self.passed:
            n = len((self.doc or {}).get("results", []))
            return f"gates passed ({n} recorded results)"
        return "; ".join(self.reasons)


def recorded(repo: MLRepo, spec: ModelSpec, commit: str) -> Verdict:
    from gitml.models.load import locate

    path = f"{CHECKS_DIR}/{spec.name}.json"
    raw = repo.git.read_blob(commit, path)
    if raw is None:
        return Verdict(False, [f"no gate results recorded at {commit[:12]} ({path} is absent)"])
    doc = parse_check(raw, f"{path} at {commit[:12]}")
    reasons: list[str] = []
    model = locate(repo, spec.path, rev=commit, key=spec.key("path"))
    if doc.get("model_oid") != model.oid:
        reasons.append(f"the recorded results are for model {str(doc.get('model_oid'))[:12]}, "
                       f"the commit's model is {model.oid[:12]} (stale: run `git ml check`)")
    try:
        data = locate(repo, spec.data, rev=commit, key=spec.key("data"))
        if doc.get("data_oid") and doc.get("data_oid") != data.oid:
            reasons.append(f"the recorded results are for data {str(doc.get('data_oid'))[:12]}, "
                           f"the commit's data is {data.oid[:12]} (stale)")
    except GitMLError as e:
        reasons.append(str(e))
    ok = check_passed(doc)
    if ok is None:
        reasons.append("the recorded results hold no gate")
    elif not ok:
        failed = [r for r in doc.get("results", []) if isinstance(r, dict)
                  and not r.get("passed") and r.get("blocking", True)]
        names = ", ".join(f"{r.get('gate')} ({r.get('message', '')})" for r in failed[:4])
        reasons.append(f"gates failed: {names or 'see the results'}")
    return Verdict(not reasons, reasons, doc)


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True)
