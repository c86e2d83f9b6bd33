"""Monitor settings: ``[monitor]`` (defaults for every model) and ``[monitor.<model>]``
(overrides) in the committed ``.gitml/config.toml``.

```toml
[monitor]
interval = 60          # seconds per window (one check a minute)
min_rows = 50          # a window with fewer rows is merged into the next
k = 1.0                # CUSUM allowance, in σ of the window statistic
h = 4.5                # CUSUM decision interval
baseline_windows = 120 # windows the learned levels are estimated from
heal_on = ["errors", "client_errors", "latency", "metric"]  # what `monitor --heal` rolls back for
[monitor.credit]
min_rows = 200
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from gitml.errors import ConfigError

if TYPE_CHECKING:
    from gitml.repo import MLRepo


@dataclass
class MonitorConfig:
    interval: float = 60.0  # seconds per window, windows aligned to multiples of it (UTC)
    min_rows: int = 50  # fewer rows: the window is merged into the next one
    k: float = 1.0  # CUSUM allowance (σ of the standardised window statistic)
    h: float = 4.5  # CUSUM decision interval
    baseline_windows: int = 120  # how many past windows the learned levels come from
    min_baseline: int = 10  # windows (latency) needed before a learned limit exists
    min_labels: int = 20  # labelled rows in a window before its metric is judged
    alpha: float = 0.05  # the drift tests' level and correction, as the drift gate's
    correction: str = "holm"
    error_status: int = 500  # status codes >= this are errors; 400 up to it: client errors
    max_drift_rows: int = 5000  # a window's rows tested for drift (seeded subsample above)
    seed: int = 0
    # figures whose alarm rolls a new version back with --heal (drift never does)
    # (client_errors only when the refusals began with the version: gitml.monitor.heal)
    heal_on: list[str] = field(default_factory=lambda: ["errors", "client_errors", "latency", "metric"])
    max_failures: int = 2  # rollbacks by the monitor before a version is deregistered

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, where: str = "monitor") -> MonitorConfig:
        cfg = cls()
        for key, value in (data or {}).items():
            if isinstance(value, dict):
                continue  # a per-model table
            if key not in {f.name for f in fields(cls)}:
                raise ConfigError(f"{where}.{key}: unknown monitor setting",
                                  f"use any of: {', '.join(f.name for f in fields(cls))}")
            expected = type(getattr(cfg, key))
            ok = (isinstance(value, int | float) and not isinstance(value, bool)
                  if expected is float else isinstance(value, expected) and not
                  (expected is int and isinstance(value, bool)))
            if not ok:
                raise ConfigError(f"{where}.{key} = {value!r} has the wrong type",
                                  f"expected a {expected.__name__}")
            setattr(cfg, key, expected(value))
        cfg.validate(where)
        return cfg

    def validate(self, where: str = "monitor") -> None:
        if self.interval <= 0 or self.min_rows < 1:
            raise ConfigError(f"{where}: interval must be > 0 and min_rows >= 1")
        if self.k < 0 or self.h <= 0:
            raise ConfigError(f"{where}: k must be >= 0 and h > 0", "the defaults are k = 1, h = 4.5")
        if not 0 < self.alpha < 1:
            raise ConfigError(f"{where}.alpha must be in (0, 1)")
        if self.correction not in ("holm", "bh", "none"):
            raise ConfigError(f"{where}.correction = {self.correction!r} is unknown",
                              "use 'holm', 'bh' or 'none'")
        if self.baseline_windows < 3 or self.min_baseline < 3:
            raise ConfigError(f"{where}: baseline_windows and min_baseline must be >= 3")
        bad = [f for f in self.heal_on if f not in ("errors", "client_errors", "latency", "metric")]
        if bad:
            raise ConfigError(f"{where}.heal_on: {bad[0]!r} cannot trigger a rollback",
                              'use any of "errors", "client_errors", "latency", "metric"')
        if not 400 <= self.error_status <= 599:
            raise ConfigError(f"{where}.error_status = {self.error_status} is not an HTTP error status",
                              "500 (the default) counts server errors; 400 counts every failed request")
        if self.max_failures < 1:
            raise ConfigError(f"{where}.max_failures must be >= 1")


def monitor_config(repo: MLRepo, model: str) -> MonitorConfig:
    section = repo.config.section("monitor")
    merged = {k: v for k, v in section.items() if not isinstance(v, dict)}
    own = section.get(model)
    if isinstance(own, dict):
        merged.update(own)
    return MonitorConfig.from_mapping(merged, f"monitor.{model}" if isinstance(own, dict) else "monitor")
