"""Cutting a traffic log into windows.

A window is the rows whose timestamp falls in a run of consecutive ``interval``-second
buckets aligned to the UTC epoch (one check a minute = 60 s buckets). A bucket with fewer
than ``min_rows`` rows is merged into the next one until the window has enough, so quiet
minutes do not make tiny, powerless tests; a bucket that has not ended yet (``now``) is
never closed. The cut depends only on the log, so a check that resumes from cached
windows cuts exactly what a check from scratch would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

US = 1_000_000


@dataclass(frozen=True)
class Window:
    start_us: int  # inclusive
    end_us: int  # exclusive
    lo: int  # row slice of the time-sorted frame
    hi: int

    @property
    def n_rows(self) -> int:
        return self.hi - self.lo

    @property
    def key(self) -> str:
        return f"{self.start_us}-{self.end_us}"


def ts_micros(ts: pd.Series) -> npt.NDArray[np.int64]:
    """Microseconds since the epoch (UTC) of a timestamp column (aware or naive UTC)."""
    import numpy as np
    import pandas as pd

    s = pd.to_datetime(ts, utc=True)
    out: npt.NDArray[np.int64] = (s.dt.tz_convert(None).to_numpy()
                                  .astype("datetime64[us]").astype(np.int64))
    return out


def split(ts_us: npt.NDArray[np.int64], interval: float, min_rows: int,
          now_us: int | None = None, after_us: int | None = None) -> list[Window]:
    """Closed windows of a sorted timestamp array (rows before ``after_us`` are skipped:
    they belong to windows already judged)."""
    import numpy as np

    step = max(1, round(interval * US))
    start = 0
    if after_us is not None:
        start = int(np.searchsorted(ts_us, after_us, side="left"))
    if start >= len(ts_us):
        return []
    buckets = ts_us[start:] // step
    uniq, first = np.unique(buckets, return_index=True)
    bounds = [*(int(i) + start for i in first), len(ts_us)]
    out: list[Window] = []
    open_lo: int | None = None
    open_start = 0
    for j, b in enumerate(uniq.tolist()):
        lo, hi = bounds[j], bounds[j + 1]
        end = (b + 1) * step
        if now_us is not None and end > now_us:
            break  # this bucket is still filling
        if open_lo is None:
            open_lo, open_start = lo, b * step
        if hi - open_lo >= min_rows:
            out.append(Window(open_start, end, open_lo, hi))
            open_lo = None
    return out
