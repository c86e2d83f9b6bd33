"""A remote that is a plain folder (local disk, NFS, a mounted share)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from gitml.errors import ObjectMissingError, RemoteError
from gitml.layout import is_temp_name, temp_name
from gitml.store.readable import Readable
from gitml.store.remote import Remote


class LocalRemote(Remote):
    default_jobs = 4

    def __init__(self, name: str, url: str, options: Mapping[str, str] | None = None) -> None:
        super().__init__(name, url, options)
        path = url[len("file://") :] if url.startswith("file://") else url
        self.root = Path(path).expanduser()
        self._made: set[str] = set()  # folders known to exist

    def _path(self, key: str) -> Path:
        return self.root / key

    def has_many(self, keys: Iterable[str]) -> set[str]:
        return {k for k in keys if self._path(k).is_file()}

    def put_file(self, key: str, src: Path) -> None:
        try:
            f = open(src, "rb", buffering=0)  # noqa: SIM115 - closed below
        except OSError as e:
            raise RemoteError(f"remote '{self.name}': cannot read {src}: {e.strerror}") from e
        with f:
            self.put_stream(key, f, os.fstat(f.fileno()).st_size)

    def put_stream(self, key: str, stream: Readable, size: int) -> None:
        """Temp file beside the destination, then rename: readers never see part of it.
        String paths and a cache of folders made, since a push may write 20,000 keys."""
        dest = f"{self.root}/{key}"
        folder = dest.rpartition("/")[0]
        tmp = f"{folder}/{temp_name(key.rpartition('/')[2])}"
        try:
            if folder not in self._made:
                os.makedirs(folder, exist_ok=True)
                self._made.add(folder)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o444)
            with open(fd, "wb", buffering=0) as d:
                left = size
                while left > 0 and (block := stream.read(min(left, 8 << 20))):
                    d.write(block)
                    left -= len(block)
            if left:
                raise RemoteError(f"remote '{self.name}': {key}: the source ended {left} bytes early")
            os.replace(tmp, dest)
        except BaseException as e:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            if isinstance(e, OSError):
                raise RemoteError(f"remote '{self.name}': cannot write {dest}: {e.strerror}") from e
            raise

    def get_range(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        try:
            with open(f"{self.root}/{key}", "rb", buffering=0) as f:
                if start:
                    f.seek(start)
                data = f.read() if length is None else f.read(length)
        except FileNotFoundError as e:
            raise ObjectMissingError(f"remote '{self.name}' does not have {key}") from e
        except OSError as e:
            raise RemoteError(f"remote '{self.name}': cannot read {key}: {e.strerror}") from e
        if length is not None and len(data) != length:
            raise RemoteError(f"remote '{self.name}': {key} is shorter than expected "
                              f"({start + len(data)} bytes, wanted {start + length})")
        return data

    def local_file(self, key: str) -> str | None:
        path = f"{self.root}/{key}"
        return path if os.path.isfile(path) else None

    def get_file(self, key: str, dest: Path) -> None:
        src = self._path(key)
        try:
            shutil.copyfile(src, dest)
        except FileNotFoundError as e:
            raise ObjectMissingError(f"remote '{self.name}' does not have {key}") from e
        except OSError as e:
            raise RemoteError(f"remote '{self.name}': cannot read {src}: {e.strerror}") from e

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return
        for dirpath, _dirnames, filenames in os.walk(base):
            rel = Path(dirpath).relative_to(self.root)
            for fn in filenames:
                if fn.startswith(".tmp") or is_temp_name(fn):
                    continue
                yield (rel / fn).as_posix()

    def iter_key_info(self, prefix: str = "") -> Iterator[tuple[str, int, float]]:
        for key in self.iter_keys(prefix):
            try:
                st = self._path(key).stat()
            except FileNotFoundError:
                continue
            yield key, st.st_size, st.st_mtime

    def delete_many(self, keys: Iterable[str]) -> None:
        for k in keys:
            with contextlib.suppress(FileNotFoundError):
                self._path(k).unlink()

    def identity(self) -> str:
        return "file://" + os.path.realpath(self.root)

    def sweep_temp(self, older_than: float) -> int:
        removed = 0
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for fn in filenames:
                if not is_temp_name(fn):
                    continue
                path = os.path.join(dirpath, fn)
                with contextlib.suppress(FileNotFoundError):
                    if os.stat(path).st_mtime < older_than:
                        os.unlink(path)
                        removed += 1
        return removed

    def key_size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None
