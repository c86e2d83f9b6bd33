"""Transfers between a repository's store and its configured remotes.

The store-level work (which keys, a thread pool, verification) is in
:mod:`gitml.store.transfer`; this module adds what needs the repository: the remote's
settings, the known-keys index, the store lock and the stat cache.

What this clone knows of a remote (the keys it holds, its pack indexes) is kept under
``<ml dir>/remotes/`` by the remote's identity (resolved URL and prefix), not its name:
a remote re-pointed through Git or ``remote modify`` starts afresh by construction.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from gitml.errors import (
    ConfigError,
    CorruptObjectError,
    GitMLError,
    ObjectMissingError,
    RemoteOptionError,
    UsageError,
)
from gitml.layout import REMOTES_DIR
from gitml.repo import MLRepo
from gitml.store import transfer
from gitml.store.fsutil import file_lock
from gitml.store.packs import PackIndex
from gitml.store.remote import Remote, open_remote
from gitml.store.transfer import Advance, Artifact, KnownIndex, TransferStats


def remote_options(repo: MLRepo, name: str | None) -> tuple[str, dict[str, str]]:
    """(name, options including url) of the named remote, or of the default one."""
    remotes = repo.config.remotes()
    if name is None:
        default = repo.config.default_remote()
        if default is None:
            if len(remotes) != 1:
                raise ConfigError("no default remote",
                                  "run `git ml remote add NAME URL --default` or pass -r NAME")
            default = next(iter(remotes))
        name = default
    if name not in remotes:
        raise ConfigError(f"no remote named '{name}'", "see `git ml remote list`")
    return name, dict(remotes[name])


def open_named_remote(repo: MLRepo, name: str | None) -> Remote:
    name, opts = remote_options(repo, name)
    url = opts.pop("url")
    with hinted():
        remote = open_remote(name, url, opts)
    remote.warm_up()
    return remote


@contextlib.contextmanager
def hinted() -> Iterator[None]:
    """Add what to do to store errors (the store does not know the commands)."""
    try:
        yield
    except RemoteOptionError as e:
        e.hint = e.hint or f"`git ml remote modify {e.remote} {e.option} {e.example}`"
        raise
    except ObjectMissingError as e:
        if e.hint is None and "to upload are missing" in e.message:
            e.hint = "run `git ml fsck`, then `git ml add` the files again or fetch them from a remote"
        elif e.hint is None and "are not in the local store" in e.message:
            e.hint = "run `git ml add` on them (or `git ml fetch` from where they are) before pushing"
        raise
    except CorruptObjectError as e:
        e.hint = e.hint or REPAIR_HINT
        raise


def _state_stem(repo: MLRepo, remote: Remote) -> Path:
    digest = hashlib.sha256(remote.identity().encode()).hexdigest()[:20]
    return repo.ml_dir / REMOTES_DIR / digest


def known_index(repo: MLRepo, remote: Remote) -> KnownIndex:
    return KnownIndex(_state_stem(repo, remote).with_suffix(".known"))


def pack_cache_dir(repo: MLRepo, remote: Remote) -> Path:
    return _state_stem(repo, remote).with_suffix(".packs")


def pack_index(repo: MLRepo, remote: Remote) -> PackIndex:
    """The pack index of ``remote``, its index files cached under the ml dir. (Its
    ``pack_mib`` option only decides how this clone pushes; what others packed is read.)"""
    return PackIndex(remote, pack_cache_dir(repo, remote))


def forget_remote(repo: MLRepo, remote: Remote) -> None:
    """Drop what this clone remembers about a remote's content."""
    known_index(repo, remote).forget()
    cache = pack_cache_dir(repo, remote)
    if cache.is_dir():
        shutil.rmtree(cache, ignore_errors=True)


# configuring remotes ------------------------------------------------------------------
def resolve_url(url: str, base: Path) -> str:
    """A remote URL as it is stored: a folder path made absolute (relative to ``base``,
    the caller's folder), other URLs as given. An empty URL is refused."""
    if not url.strip():
        raise UsageError("the remote URL is empty", "give a folder path or s3://bucket/prefix")
    if "://" in url:
        return url
    path = Path(url).expanduser()
    return str((path if path.is_absolute() else base / path).resolve())


def check_remote(name: str, url: str, options: dict[str, str]) -> None:
    """Refuse a URL or option now (one-line error, config unchanged) rather than at the
    next push: opening a remote checks its scheme, bucket and options, offline."""
    with hinted():
        open_remote(name, url, options).close()


def add_remote(repo: MLRepo, name: str, url: str, *, base: Path, default: bool, local: bool) -> str:
    if not name.strip() or "/" in name or name.startswith("-"):
        raise UsageError(f"bad remote name {name!r}", "use letters, digits, '-' and '_'")
    url = resolve_url(url, base)
    check_remote(name, url, {})
    repo.config.add_remote(name, url, default=default, local=local)
    return url


def modify_remote(repo: MLRepo, name: str, option: str, value: str, *, base: Path,
                  local: bool) -> None:
    """Set one option of a remote; a new ``url`` is resolved and checked like in
    :func:`add_remote`. What was known of the old place stays filed under its identity."""
    if not option.replace("_", "").isalnum():
        raise UsageError(f"bad option name {option!r}")
    remotes = repo.config.remotes()
    if option == "url":
        value = resolve_url(value, base)
    if name in remotes:
        opts = {**remotes[name], option: value}
        url = opts.pop("url")
        check_remote(name, url, opts)
    repo.config.set_remote_option(name, option, value, local=local)


def remove_remote(repo: MLRepo, name: str) -> None:
    remote: Remote | None = None
    remotes = repo.config.remotes()
    if name in remotes:
        opts = dict(remotes[name])
        try:
            remote = open_remote(name, opts.pop("url"), opts)
        except GitMLError:
            remote = None
    repo.config.remove_remote(name)
    if remote is not None:
        forget_remote(repo, remote)


# moving content -------------------------------------------------------------------------
def push_artifacts(repo: MLRepo, arts: Sequence[Artifact], *, remote: Remote, jobs: int | None = None,
                   advance: Advance | None = None, verify: bool = False) -> TransferStats:
    """Upload what ``remote`` lacks; every object sent is verified first. ``verify`` also
    reads back what the remote holds and replaces what is damaged there."""
    with hinted():
        return transfer.push(repo.store, remote, arts, known=known_index(repo, remote), jobs=jobs,
                             advance=advance, verify=verify, packs=pack_index(repo, remote),
                             pack_bytes=remote.pack_bytes)


REPAIR_HINT = ("run `git ml fetch --repair` to replace it with a good copy from a remote, "
               "or `git ml add` the file again")


def fetch_artifacts(repo: MLRepo, arts: Sequence[Artifact], *, remote: Remote | None = None,
                    remote_name: str | None = None, jobs: int | None = None,
                    advance: Advance | None = None, repair: bool = False) -> TransferStats:
    """Download what the store lacks for ``arts``, verified. ``repair`` first checks every
    local object of ``arts`` and deletes the damaged ones, so good copies come down."""
    own = remote is None
    remote = remote or open_named_remote(repo, remote_name)
    try:
        repo.store.sweep_tmp()
        with file_lock(repo.lock_path(), shared=True):
            dropped = drop_damaged(repo, arts, jobs=jobs or 4) if repair else []
            stats = transfer.fetch(repo.store, remote, arts, known=known_index(repo, remote),
                                   jobs=jobs, advance=advance, packs=pack_index(repo, remote))
            stats.repaired = len(dropped)
    finally:
        if own:
            remote.close()
    for _, p in arts:
        if p.kind == "dir":
            repo.stat_cache.mark_complete(p.oid)
    return stats


def drop_damaged(repo: MLRepo, arts: Sequence[Artifact], *, jobs: int) -> list[str]:
    """Delete the local objects of ``arts`` whose bytes do not hash to their id (trees
    first, since a damaged tree names the wrong members); returns their keys."""
    from concurrent.futures import ThreadPoolExecutor

    from gitml.store.keys import OBJECTS, key_for

    store = repo.store
    dropped: list[str] = []
    store.packs.refresh()
    for pack_id in list(store.packs.damaged):  # an index that does not parse: its pack goes
        store.packs.delete(pack_id)
        dropped.append(f"packs/{pack_id}.idx")
    for _, p in arts:
        if p.kind == "dir" and store.has_object(p.oid):
            key = key_for(OBJECTS, p.oid)
            if store.verify_key(key):
                store.remove_keys([key])
                dropped.append(key)
    keys: dict[str, None] = {}
    for _, p in arts:
        try:
            keys.update(dict.fromkeys(store.keys_of(p.oid, p.kind)))
        except GitMLError:
            continue  # missing or damaged root: fetched (and verified) below
    present = [k for k in keys if store.has_key(k)]

    def damaged(key: str) -> str | None:
        return key if store.verify_key(key, whole=False) else None

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        dropped += [bad for bad in pool.map(damaged, present) if bad is not None]
    store.remove_keys([k for k in dropped if not k.startswith("packs/")])  # rewrites packs
    if dropped:
        repo.stat_cache.clear_complete()
    return dropped


def not_on_remote(repo: MLRepo, arts: Sequence[Artifact], remote: Remote) -> list[str]:
    """The artifacts (of ``arts``) not wholly on ``remote``, as far as the known-keys index
    and one batched question to the remote tell."""
    known = known_index(repo, remote)
    per_art: dict[str, list[str]] = {}
    for art, p in arts:
        leaves, roots, missing = transfer.artifact_keys(repo.store, [(art, p)])
        per_art[art] = leaves + roots if not missing else []
    transfer.learn_presence(remote, known, [k for keys in per_art.values() for k in keys],
                            packs=pack_index(repo, remote))
    return sorted(a for a, keys in per_art.items()
                  if not keys or any(k not in known.keys for k in keys))
