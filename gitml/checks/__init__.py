"""Quality gates: evaluation, bias, explanations (this package's own modules) plus data
drift, quality and anomaly gates. Every gate returns :class:`gitml.checks.results.GateResult`.

Nothing heavy is imported here.
"""

from __future__ import annotations
