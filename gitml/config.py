"""gitml settings: a committed ``.gitml/config.toml`` and a local, uncommitted overlay.

The committed file holds what the team shares (remote URLs, the default remote, model
and gate declarations). The local file lives in the store folder under Git's common
dir and holds secrets and machine-specific overrides; it is never committed and its
secret values are never printed.

Remotes move with Git: checking out a commit older than ``git ml remote add`` would lose
the remote. So every remote this clone has seen (in the committed file of any checkout,
at the tip of any branch or tag, or added locally) is remembered in ``<ml dir>/remotes.toml``
and stays usable whatever is checked out; the committed and local files win over it.
"""

from __future__ import annotations

import contextlib
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import tomli_w

from gitml.errors import ConfigError
from gitml.layout import STORE_DIR, STORE_TMP
from gitml.store.fsutil import atomic_write_bytes, file_lock
from gitml.store.remote import SECRET_OPTIONS


def _parse(data: bytes, where: Path | str) -> dict[str, Any]:
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{where}: not UTF-8 text (byte {e.start})",
                          "fix the file's encoding or restore it with `git checkout`") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: malformed TOML: {e}", "fix or remove the file") from e


def _load(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except IsADirectoryError:
        raise ConfigError(f"{path}: a folder where the config file should be") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}", "check its permissions") from e
    return _parse(data, path)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _remotes_of(data: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The well-formed remotes of one config document (others are reported elsewhere)."""
    section = data.get("remote", {})
    if not isinstance(section, dict):
        return {}
    return {n: {k: str(v) for k, v in o.items() if k not in SECRET_OPTIONS}
            for n, o in section.items() if isinstance(o, dict) and "url" in o}


def _default_of(data: dict[str, Any]) -> str | None:
    core = data.get("core", {})
    name = core.get("remote") if isinstance(core, dict) else None
    return str(name) if name else None


class Config:
    def __init__(self, committed_path: Path, local_path: Path, *, known_path: Path | None = None,
                 lock_path: Path | None = None,
                 history: Callable[[], list[bytes]] | None = None) -> None:
        self.committed_path = committed_path
        self.local_path = local_path
        self.known_path = known_path
        self.lock_path = lock_path or local_path.with_name("config.lock")
        self._history = history
        self._history_read = False
        self._load_all()

    def _load_all(self) -> None:
        self.committed = _load(self.committed_path)
        self.local = _load(self.local_path)
        self.known = self._load_known()
        self.data = _merge(_merge(self.known, self.committed), self.local)

    def _load_known(self) -> dict[str, Any]:
        if self.known_path is None:
            return {}
        try:
            return _load(self.known_path)
        except ConfigError:
            return {}  # only a memory of remotes: rebuilt from the configs it came from

    def section(self, name: str) -> dict[str, Any]:
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self.committed_path}: [{name}] must be a table")
        return value

    # remotes ---------------------------------------------------------------
    def remotes(self) -> dict[str, dict[str, str]]:
        remotes = self.section("remote")
        for name, opts in remotes.items():
            if not isinstance(opts, dict) or "url" not in opts:
                raise ConfigError(
                    f"{self.committed_path}: remote '{name}' has no url",
                    f"run `git ml remote add {name} URL`",
                )
        self._remember()
        if (not remotes or _default_of(self.data) is None) and self._recall_history():
            remotes = self.section("remote")
        return {n: {k: str(v) for k, v in o.items()} for n, o in remotes.items()}

    def default_remote(self) -> str | None:
        name = _default_of(self.data)
        if name is None and self._recall_history():
            name = _default_of(self.data)
        return name

    def _remember(self) -> None:
        """Record the remotes of the committed and local files in the known-remotes file
        when they add or change something there (so a later checkout keeps them)."""
        if self.known_path is None:
            return
        seen = _merge(self.known, {"remote": {**_remotes_of(self.committed), **_remotes_of(self.local)}})
        default = _default_of(_merge(self.committed, self.local))
        if default:
            seen = _merge(seen, {"core": {"remote": default}})
        if seen != self.known:
            self._save_known(seen)

    def _recall_history(self) -> bool:
        """Learn remotes from the committed config at the tip of every branch and tag; True
        when that added a remote or a default."""
        if self._history is None or self._history_read or self.known_path is None:
            return False
        self._history_read = True
        found: dict[str, Any] = {}
        removed = set(self.known.get("removed", []))  # `git ml remote remove`d here
        for blob in self._history():
            with contextlib.suppress(ConfigError):
                doc = _parse(blob, "a committed config")
                for name, opts in _remotes_of(doc).items():
                    if name not in removed:
                        found.setdefault("remote", {}).setdefault(name, opts)
                default = _default_of(doc)
                if default and default not in removed and "core" not in found:
                    found["core"] = {"remote": default}
        learnt = _merge(found, self.known)  # what was known already wins
        if learnt == self.known:
            return False
        self._save_known(learnt)
        self.data = _merge(_merge(self.known, self.committed), self.local)
        return True

    def _save_known(self, known: dict[str, Any]) -> None:
        assert self.known_path is not None
        self.known = known
        with contextlib.suppress(OSError):  # a memory only: never fail a command over it
            atomic_write_bytes(self.known_path, tomli_w.dumps(known).encode())

    @contextlib.contextmanager
    def _editing(self) -> Iterator[None]:
        """Re-read the files under the config lock, let the caller change them, save: two
        processes editing the config at once both keep their change."""
        with file_lock(self.lock_path):
            self._load_all()
            yield
            self.save()

    def add_remote(self, name: str, url: str, *, default: bool, local: bool) -> None:
        with self._editing():
            if name in _remotes_of(_merge(self.committed, self.local)):
                raise ConfigError(f"remote '{name}' already exists", f"`git ml remote remove {name}` first")
            target = self.local if local else self.committed
            target.setdefault("remote", {})[name] = {"url": url}
            if default:
                target.setdefault("core", {})["remote"] = name
            self.known.get("remote", {}).pop(name, None)  # a new remote of that name
            if name in self.known.get("removed", []):
                self.known["removed"].remove(name)

    def remove_remote(self, name: str) -> None:
        with self._editing():
            if name not in self.remotes():
                raise ConfigError(f"no remote named '{name}'", "see `git ml remote list`")
            for target in (self.committed, self.local, self.known):
                target.get("remote", {}).pop(name, None)
                if target.get("core", {}).get("remote") == name:
                    del target["core"]["remote"]
            self.known.setdefault("removed", []).append(name)

    def set_remote_option(self, name: str, key: str, value: str, *, local: bool = False) -> None:
        with self._editing():
            remotes = self.remotes()
            if name not in remotes:
                raise ConfigError(f"no remote named '{name}'", "see `git ml remote list`")
            if key == "url" and not value:
                raise ConfigError("url cannot be empty")
            target = self.local if (local or key in SECRET_OPTIONS) else self.committed
            if name not in _remotes_of(_merge(self.committed, self.local)):
                # only remembered: bring it back where the option goes
                target.setdefault("remote", {})[name] = dict(remotes[name])
            target.setdefault("remote", {}).setdefault(name, {})[key] = value

    def set_default_remote(self, name: str) -> None:
        with self._editing():
            remotes = self.remotes()
            if name not in remotes:
                raise ConfigError(f"no remote named '{name}'", "see `git ml remote list`")
            if name not in _remotes_of(_merge(self.committed, self.local)):
                self.committed.setdefault("remote", {})[name] = dict(remotes[name])
            self.committed.setdefault("core", {})["remote"] = name

    def save(self) -> None:
        tmp_dir = self.local_path.parent / STORE_DIR / STORE_TMP
        self.committed_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.committed_path, tomli_w.dumps(self.committed).encode(),
                           tmp_dir=tmp_dir if self.local_path.parent.is_dir() else None)
        if self.local:
            self.local_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.local_path, tomli_w.dumps(self.local).encode())
        if self.known_path is not None:
            self._save_known(self.known)
        self.data = _merge(_merge(self.known, self.committed), self.local)
