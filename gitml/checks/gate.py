"""The gate protocol: every gate takes one :class:`GateContext` and returns
:class:`~gitml.checks.results.GateResult` s. The gates themselves are listed in
:mod:`gitml.checks.registry`; the runner builds the context once per model and place.

The context holds what the gates share (the loaded model, the evaluation rows, the
predictions, the baseline) and computes lazily what only some of them need (task
metrics, the reference version of the data), so a gate that is not declared costs
nothing, not even an import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd

    from gitml.artifacts.api import Located
    from gitml.checks.evaluate import Predictions
    from gitml.checks.results import GateResult
    from gitml.models.spec import ModelSpec
    from gitml.repo import MLRepo


@dataclass
class Baseline:
    """What the model is compared with: a registry stage/version or a revision."""

    label: str | None          # what the user asked for, e.g. "prod" / "HEAD~1"
    commit: str | None         # the resolved commit, None when there is no baseline
    model_src: Located | None = None
    model: Any = None
    preds: Predictions | None = None
    note: str = ""             # why there is none (e.g. "no arrests#prod tag yet")


@dataclass
class Reference:
    """The data set's reference version for drift and quality (None: nothing to compare)."""

    frame: pd.DataFrame | None
    why_none: str = ""


@dataclass
class GateContext:
    """Everything a gate may read. Built once per model; shared by all its gates."""

    repo: MLRepo
    spec: ModelSpec
    model: Any
    frame: pd.DataFrame            # evaluation rows (target present)
    data_src: Located
    preds: Predictions
    baseline: Baseline
    place: str                     # "index", "worktree" or a revision
    only: tuple[str, ...] = ()     # the gate groups asked for (a command may ask for one)
    reference_commit: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def metrics(self) -> dict[str, float | None]:
        """Task metrics (scikit-learn), computed once for the gates that read them."""
        from gitml.checks.evaluate import metrics

        return metrics(self.preds)

    @cached_property
    def reference(self) -> Reference:
        """The evaluation data at the reference revision, when it differs from the current."""
        from gitml.artifacts import api
        from gitml.models.tables import read_frame_bytes

        if self.reference_commit is None:
            return Reference(None, "no reference version")
        src = api.find(self.spec.data, self.reference_commit, self.repo)
        if src is None:
            return Reference(None, f"{self.spec.data} does not exist at the reference")
        if src.oid == self.data_src.oid:
            return Reference(None, "evaluation data unchanged")
        data = api.read_located(src, self.repo)
        return Reference(read_frame_bytes(data, self.spec.data, key=self.spec.key("data")))


class Gate(Protocol):
    """A gate: a name, the group a command selects it by, when it applies, and its run."""

    @property
    def name(self) -> str: ...

    @property
    def group(self) -> str: ...

    def applies(self, spec: ModelSpec, only: tuple[str, ...]) -> bool:
        """Whether the gate runs for this model (declared, or asked for by a command)."""
        ...

    def run(self, ctx: GateContext) -> list[GateResult]: ...
