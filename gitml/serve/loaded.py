"""The model versions one worker serves, kept in step with the deploy-state file.

A thread polls the state file (off the request path). When it changes, every listed
version not loaded yet is opened (model id verified), loaded through the safe loader,
compiled and parity-checked; only then is a new immutable :class:`Served` published with
one assignment, so a request sees either the old set or the new one, never a mix. Versions
that fail to load keep their error (reported by the metadata routes) and never become
active; the previous active version keeps serving.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gitml.errors import GitMLError
from gitml.models.bundle import Bundle
from gitml.serve.predictor import Predictor
from gitml.serve.schema import Schema

POLL_SECONDS = 0.2


@dataclass
class Version:
    version: str
    bundle: Bundle
    predictor: Predictor
    schema: Schema
    state: dict[str, Any] = field(default_factory=dict)  # per-worker extras (batcher, ...)

    @property
    def name(self) -> str:
        return self.bundle.name


@dataclass(frozen=True)
class Served:
    model: str
    active: str | None
    versions: dict[str, Version]
    errors: dict[str, str]
    mtime_ns: int = 0

    def get(self, version: str | None) -> Version | None:
        v = self.active if version is None else version
        return None if v is None else self.versions.get(v)


def read_state(path: Path) -> dict[str, Any]:
    """The deploy state: ``{"model", "active", "versions": {version: bundle dir}}``."""
    from gitml.errors import ConfigError

    try:
        d = json.loads(path.read_bytes())
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: deploy state file not found", "write it with write_state") from e
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: unreadable deploy state: {e}", "rewrite it with write_state") from e
    if not isinstance(d, dict) or not isinstance(d.get("model"), str) \
            or not isinstance(d.get("versions"), dict) \
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in d["versions"].items()):
        raise ConfigError(f"{path}: deploy state must be {{\"model\": str, \"active\": str, "
                          "\"versions\": {version: bundle folder}}", "rewrite it with write_state")
    active = d.get("active")
    if active is not None and (not isinstance(active, str) or active not in d["versions"]):
        raise ConfigError(f"{path}: active version {active!r} is not among the listed versions",
                          "list it under versions")
    return d


def smoke_columns(bundle: Bundle, schema: Schema) -> tuple[dict[str, np.ndarray], int]:
    """The bundle's smoke rows as request columns (what the fast path is checked against)."""
    df, _, _ = bundle.smoke()
    cols: dict[str, np.ndarray] = {}
    for spec in bundle.inputs:
        s = df[spec.name]
        if spec.dtype == "string":
            cols[spec.name] = np.array([None if v is None or v != v else v for v in s.tolist()],
                                       dtype=object)
        else:
            cols[spec.name] = s.to_numpy(dtype=np.float64, na_value=np.nan)
    return cols, len(df)


def load_version(version: str, folder: str, *, allow_pickle: bool = False) -> Version:
    bundle = Bundle.open(folder)
    model = bundle.load_model(allow_pickle=allow_pickle)
    schema = Schema(bundle.inputs)
    pred = Predictor(model, bundle)
    cols, n = smoke_columns(bundle, schema)
    pred.prepare(cols, n)
    return Version(version, bundle, pred, schema)


class Watcher:
    """Keeps ``self.served`` in step with the deploy-state file."""

    def __init__(self, state_file: Path, *, allow_pickle: bool = False,
                 on_change: Callable[[Served], None] | None = None,
                 on_load: Callable[[str, str, str | None], None] | None = None) -> None:
        self.state_file = state_file
        self.allow_pickle = allow_pickle
        self.on_change = on_change
        self.on_load = on_load
        self.served = Served(model="", active=None, versions={}, errors={})
        self._seen: tuple[int, int, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def adopt(self, other: Watcher) -> None:
        """Start from what ``other`` already loaded (a supervisor, before forking us)."""
        self.served = other.served
        self._seen = other._seen
        if self.on_change is not None and self._seen is not None:
            self.on_change(self.served)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.state_file)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def refresh(self) -> bool:
        """Apply the state file if it changed; True when something changed."""
        st = self._stat()
        if st is None or st == self._seen:
            return False
        self._seen = st
        try:
            state = read_state(self.state_file)
        except GitMLError as e:  # a bad state file: keep serving what is loaded, say why
            print(f"gitml serve: {e}", flush=True)
            return False
        cur = self.served
        versions: dict[str, Version] = {}
        errors: dict[str, str] = {}
        for v, folder in state["versions"].items():
            old = cur.versions.get(v)
            if old is not None and str(old.bundle.path) == str(Path(folder)):
                versions[v] = old
                continue
            try:
                versions[v] = load_version(v, folder, allow_pickle=self.allow_pickle)
                if self.on_load:
                    self.on_load(state["model"], v, None)
            except Exception as e:  # a bad bundle never takes the server down
                msg = str(e) or type(e).__name__
                errors[v] = msg
                if self.on_load:
                    self.on_load(state["model"], v, msg)
                print(f"gitml serve: version {v} not loaded: {msg}", flush=True)
        active = state.get("active")
        if active not in versions:
            # the active version failed to load here: keep serving what served before
            active = cur.active if cur.active in versions else None
        self.served = Served(model=state["model"], active=active, versions=versions,
                             errors=errors, mtime_ns=st[0])
        if self.on_change:
            self.on_change(self.served)
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="gitml-state-watch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self.refresh()
            except Exception as e:  # pragma: no cover - keep watching whatever happens
                print(f"gitml serve: state watch: {type(e).__name__}: {e}", flush=True)

    def stop(self) -> None:
        self._stop.set()


def wait_until(cond: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()
