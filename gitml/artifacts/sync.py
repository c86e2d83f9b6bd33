"""Transfers between a repository's store and its configured remotes.

The store-level work (which keys, a thread pool, verification) is in
:mod:`gitml.store.transfer`; this module adds what needs the repository: the remote's
settings, the known-keys index, the store lock and the stat cache.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from gitml.errors import ConfigError
from gitml.repo import MLRepo
from gitml.store import transfer
from gitml.store.fsutil import file_lock
from gitml.store.packs import PackIndex
from gitml.store.remote import Remote, open_remote
from gitml.store.transfer import Advance, Artifact, KnownIndex, TransferStats


def open_named_remote(repo: MLRepo, name: str | None) -> Remote:
    remotes = repo.config.remotes()
    if name is None:
        name = repo.config.default_remote()
        if name is None:
            if len(remotes) != 1:
                raise ConfigError("no default remote",
                                  "run `git ml remote add NAME URL --default` or pass -r NAME")
            name = next(iter(remotes))
    if name not in remotes:
        raise ConfigError(f"no remote named '{name}'", "see `git ml remote list`")
    opts = dict(remotes[name])
    url = opts.pop("url")
    remote = open_remote(name, url, opts)
    remote.warm_up()
    return remote


def known_index(repo: MLRepo, remote_name: str) -> KnownIndex:
    return KnownIndex(repo.ml_dir / "remotes" / f"{remote_name}.known")


def pack_index(repo: MLRepo, remote: Remote) -> PackIndex:
    """The pack index of ``remote``, its index files cached under the ml dir. (Its
    ``pack_mib`` option only decides how this clone pushes; what others packed is read.)"""
    return PackIndex(remote, pack_cache_dir(repo, remote.name))


def pack_cache_dir(repo: MLRepo, remote_name: str) -> Path:
    return repo.ml_dir / "remotes" / f"{remote_name}.packs"


def forget_remote(repo: MLRepo, remote_name: str) -> None:
    """Drop what this clone remembers about a remote (after it is removed or re-pointed)."""
    known_index(repo, remote_name).forget()
    cache = pack_cache_dir(repo, remote_name)
    if cache.is_dir():
        shutil.rmtree(cache, ignore_errors=True)


def push_artifacts(repo: MLRepo, arts: Sequence[Artifact], *, remote: Remote, jobs: int | None = None,
                   advance: Advance | None = None, verify: bool = False) -> TransferStats:
    return transfer.push(repo.store, remote, arts, known=known_index(repo, remote.name), jobs=jobs,
                         advance=advance, verify=verify, packs=pack_index(repo, remote),
                         pack_bytes=remote.pack_bytes)


def fetch_artifacts(repo: MLRepo, arts: Sequence[Artifact], *, remote: Remote | None = None,
                    remote_name: str | None = None, jobs: int | None = None,
                    advance: Advance | None = None) -> TransferStats:
    own = remote is None
    remote = remote or open_named_remote(repo, remote_name)
    try:
        with file_lock(repo.lock_path(), shared=True):
            stats = transfer.fetch(repo.store, remote, arts, known=known_index(repo, remote.name),
                                   jobs=jobs, advance=advance, packs=pack_index(repo, remote))
    finally:
        if own:
            remote.close()
    for _, p in arts:
        if p.kind == "dir":
            repo.stat_cache.mark_complete(p.oid)
    return stats
