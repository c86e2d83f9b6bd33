"""gitml settings: a committed ``.gitml/config.toml`` and a local, uncommitted overlay.

The committed file holds what the team shares (remote URLs, the default remote, model
and gate declarations). The local file lives in the store folder under Git's common
dir and holds secrets and machine-specific overrides; it is never committed and its
secret values are never printed.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from gitml.errors import ConfigError
from gitml.store.fsutil import atomic_write_bytes
from gitml.store.remote import SECRET_OPTIONS


def _load(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: malformed TOML: {e}", "fix or remove the file") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from e


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


class Config:
    def __init__(self, committed_path: Path, local_path: Path) -> None:
        self.committed_path = committed_path
        self.local_path = local_path
        self.committed = _load(committed_path)
        self.local = _load(local_path)
        self.data = _merge(self.committed, self.local)

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
        return {n: {k: str(v) for k, v in o.items()} for n, o in remotes.items()}

    def default_remote(self) -> str | None:
        name = self.section("core").get("remote")
        return str(name) if name else None

    def add_remote(self, name: str, url: str, *, default: bool, local: bool) -> None:
        if name in self.remotes():
            raise ConfigError(f"remote '{name}' already exists", f"`git ml remote remove {name}` first")
        target = self.local if local else self.committed
        target.setdefault("remote", {})[name] = {"url": url}
        if default:
            target.setdefault("core", {})["remote"] = name
        self.save()

    def remove_remote(self, name: str) -> None:
        if name not in self.remotes():
            raise ConfigError(f"no remote named '{name}'", "see `git ml remote list`")
        for target in (self.committed, self.local):
            target.get("remote", {}).pop(name, None)
            if target.get("core", {}).get("remote") == name:
                del target["core"]["remote"]
        self.save()

    def set_remote_option(self, name: str, key: str, value: str, *, local: bool = False) -> None:
        if name not in self.remotes():
            raise ConfigError(f"no remote named '{name}'", "see `git ml remote list`")
        if key == "url" and not value:
            raise ConfigError("url cannot be empty")
        target = self.local if (local or key in SECRET_OPTIONS) else self.committed
        target.setdefault("remote", {}).setdefault(name, {})[key] = value
        self.save()

    def set_default_remote(self, name: str) -> None:
        if name not in self.remotes():
            raise ConfigError(f"no remote named '{name}'", "see `git ml remote list`")
        self.committed.setdefault("core", {})["remote"] = name
        self.save()

    def save(self) -> None:
        self.committed_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.committed_path, tomli_w.dumps(self.committed).encode())
        if self.local:
            self.local_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.local_path, tomli_w.dumps(self.local).encode())
        self.data = _merge(self.committed, self.local)
