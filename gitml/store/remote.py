"""The remote interface every remote implementation (folder, S3, ...) provides.

A remote holds the same key space as the local store: ``objects/ab/<rest>`` for
content-addressed objects (chunks, small files, trees) and ``chunked/ab/<rest>`` for
the chunk lists of large files. Remotes move whole keys; verification of what comes
down happens in :mod:`gitml.store.transfer`, never inside a remote.
"""

from __future__ import annotations

import io
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

from gitml.errors import ConfigError, RemoteOptionError
from gitml.store.readable import Readable

# Options whose values are secrets: they are only ever written to the local,
# uncommitted config and never printed.
SECRET_OPTIONS = frozenset({"access_key_id", "secret_access_key", "session_token", "password"})
#: push packs small objects into packs of about this size (option ``pack_mib``; 0 = off)
DEFAULT_PACK_BYTES = 16 * 1024 * 1024

N = TypeVar("N", int, float)


def number_option(name: str, options: Mapping[str, str], key: str, default: N,
                  parse: Callable[[str], N], *, minimum: N, what: str, example: str) -> N:
    """A numeric remote option, or ``default`` when unset; a bad value is a ConfigError
    that names the option and the command to fix it."""
    raw = options.get(key)
    if raw is None or str(raw).strip() == "":
        return default
    try:
        value: N | None = parse(str(raw))
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < minimum:
        raise RemoteOptionError(f"remote '{name}': option {key} must be {what}, not {raw!r}",
                                remote=name, option=key, example=example)
    return value


class Remote(ABC):
    """A place that stores keys. Implementations must be safe to call from many threads."""

    #: how many transfers run at once unless the user says otherwise (``-j``)
    default_jobs: int = 8

    def __init__(self, name: str, url: str, options: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.url = url
        self.options = dict(options or {})
        self.pack_bytes = int(number_option(
            name, self.options, "pack_mib", DEFAULT_PACK_BYTES / 2**20, float, minimum=0.0,
            what="a number of MiB >= 0 (0 stores every object alone)", example="16") * 2**20)

    @abstractmethod
    def has_many(self, keys: Iterable[str]) -> set[str]:
        """Return the subset of ``keys`` the remote holds, in as few requests as possible."""

    @abstractmethod
    def put_file(self, key: str, src: Path) -> None:
        """Upload ``src`` under ``key``. A reader never sees a partial object."""

    @abstractmethod
    def get_file(self, key: str, dest: Path) -> None:
        """Download ``key`` into ``dest`` (a temporary path the caller owns).

        Raises :class:`gitml.errors.ObjectMissingError` when the key is absent.
        """

    def put_bytes(self, key: str, data: bytes | bytearray) -> None:
        """Upload ``data`` under ``key`` (a pack index, a rewritten pack)."""
        self.put_stream(key, io.BytesIO(data), len(data))

    @abstractmethod
    def put_stream(self, key: str, stream: Readable, size: int) -> None:
        """Upload ``size`` bytes read from a seekable ``stream`` (a pack read from the
        store's files); atomic like :meth:`put_file`."""

    @abstractmethod
    def get_range(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        """``length`` bytes of ``key`` from ``start`` (to the end when None), in memory.

        Raises :class:`gitml.errors.ObjectMissingError` when the key is absent.
        """

    def local_file(self, key: str) -> str | None:
        """A path on this machine holding ``key`` whole (a folder remote), so a fetch may
        link or copy it in the kernel; None where a key is only reachable by reading it."""
        return None

    @abstractmethod
    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """Every key under ``prefix`` (for gc and listings)."""

    @abstractmethod
    def delete_many(self, keys: Iterable[str]) -> None:
        """Delete keys; absent keys are not an error."""

    def iter_key_info(self, prefix: str = "") -> Iterator[tuple[str, int, float]]:
        """``(key, size, last-modified epoch seconds)`` for every key under ``prefix``.
        Implementations override this when a listing gives sizes and times for free."""
        for key in self.iter_keys(prefix):
            yield key, self.key_size(key) or 0, 0.0

    def key_size(self, key: str) -> int | None:
        """Size in bytes of a key, or None when unknown/absent (used to report gc savings)."""
        return None

    def warm_up(self) -> None:  # noqa: B027 - optional hook
        """Start costly set-up (imports, a client) in the background; the caller is about
        to use the remote after some local work."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def describe(self) -> str:
        return f"{self.name} ({self.url})"

    def identity(self) -> str:
        """What this remote is, whatever it is called: two names for one place share what
        this clone knows of it, and a re-pointed name starts afresh."""
        return self.url

    def sweep_temp(self, older_than: float) -> int:
        """Delete partial uploads left by killed processes, older than ``older_than``
        (epoch seconds); returns how many. Remotes whose writes are atomic have none."""
        return 0


def open_remote(name: str, url: str, options: Mapping[str, str] | None = None) -> Remote:
    """Pick the implementation from the URL scheme."""
    if url.startswith("s3://"):
        from gitml.store.s3_remote import S3Remote

        return S3Remote(name, url, options)
    if "://" in url and not url.startswith("file://"):
        scheme = url.split("://", 1)[0]
        raise ConfigError(
            f"remote '{name}': unsupported URL scheme '{scheme}://'",
            "use a folder path, file:// or s3://bucket/prefix",
        )
    from gitml.store.local_remote import LocalRemote

    return LocalRemote(name, url, options)
