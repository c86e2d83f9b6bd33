"""A remote in S3 or any S3-compatible object store (MinIO, Ceph, R2, moto, ...).

URL: ``s3://bucket/prefix``. Options (all strings, from the gitml config):

- ``endpoint_url``: an S3-compatible server (``http://127.0.0.1:9000``); path-style
  addressing is used when it is set.
- ``region``, ``profile``: as in the AWS CLI.
- ``access_key_id`` / ``secret_access_key`` / ``session_token``: explicit credentials
  (secrets, kept in the local config only). Otherwise the standard AWS chain is used
  (environment, shared config/credentials files, profiles, instance metadata).
- ``jobs``: default parallelism; sizes the connection pool and the part concurrency.
- ``max_attempts`` (default 8, the first try included) and ``retry_mode`` (``standard``/``adaptive``, default
  ``adaptive``): botocore's retries with exponential backoff for timeouts, 5xx and
  throttling.
- ``connect_timeout`` / ``read_timeout`` in seconds.

Design notes:

- One boto3 client per remote, created lazily under a lock and shared by every
  thread (botocore clients are thread-safe; sessions are not).
- Objects up to :data:`MULTIPART_THRESHOLD` go in a single PUT / GET (one request
  each, which is what matters for thousands of small chunks); bigger ones go up and
  down in parallel parts through boto3's transfer manager. A multipart upload only
  becomes visible when it completes, so readers never see a partial object.
- :meth:`S3Remote.has_many` never costs one request per key when many keys are
  asked: keys are grouped by namespace and first fan-out hex digit (``objects/a``),
  and the groups are listed in parallel (``list_objects_v2`` under that prefix,
  paginated, starting just before the first wanted key and stopping past the last).
  After each page the listing seeks (``StartAfter``) to the next key still
  unresolved, so every request resolves at least one key: a dense question costs
  one request per 1,000 keys, a sparse one against a huge bucket never more than
  HEADs would. A lone key in its group, or a handful of keys, get plain HEADs.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from gitml.errors import ConfigError, ObjectMissingError, RemoteError
from gitml.store.readable import Readable
from gitml.store.remote import Remote, number_option

MiB = 1024 * 1024
#: objects larger than this go up and down in parallel parts
MULTIPART_THRESHOLD = 16 * MiB
#: bytes uploaded from memory in one PUT (packs are 16 MiB by default)
SINGLE_PUT_MAX = 64 * MiB
#: size of one part of a multipart transfer
PART_SIZE = 16 * MiB
#: keys per ListObjectsV2 page (S3's maximum)
LIST_PAGE = 1000
#: S3's limit of keys per DeleteObjects request
DELETE_BATCH = 1000
#: at most this many keys are checked with plain HEADs; above it, ranges are listed
HEAD_ONLY_MAX = 4
_COPY_BLOCK = MiB

_ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AuthorizationHeaderMalformed",
        "UnrecognizedClientException",
        "403",
        "Forbidden",
    }
)
_MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})

T = TypeVar("T")


def _parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` -> ``("bucket", "some/prefix/")`` (prefix "" or ending in /)."""
    rest = url[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    return bucket, (prefix + "/" if prefix else "")


def _list_group(key: str) -> str:
    """The listing prefix of a key: its namespace and the first hex digit of its fan-out.

    ``objects/ab/cdef`` -> ``objects/a``: 16 listing groups per namespace, each a
    contiguous, lexicographically sorted slice of the remote's keys.
    """
    ns, sep, rest = key.partition("/")
    if not sep:
        return ""
    return ns + "/" + rest[:1]


class S3Remote(Remote):
    default_jobs = 16

    def __init__(self, name: str, url: str, options: Mapping[str, str] | None = None) -> None:
        super().__init__(name, url, options)
        self.bucket, self.prefix = _parse_url(url)
        if not self.bucket:
            raise ConfigError(
                f"remote '{name}': URL {url!r} names no bucket", "use s3://bucket/prefix"
            )
        opts = self.options
        self.endpoint_url = opts.get("endpoint_url") or None
        self.region = opts.get("region") or None
        self.profile = opts.get("profile") or None
        self.jobs = number_option(name, opts, "jobs", self.default_jobs, int, minimum=1,
                                  what="a positive integer", example="N")
        self.default_jobs = self.jobs  # what the transfer layer uses when -j is not given
        self.max_attempts = number_option(name, opts, "max_attempts", 8, int, minimum=1,
                                          what="a positive integer", example="N")
        self.retry_mode = opts.get("retry_mode") or "adaptive"
        if self.retry_mode not in ("standard", "adaptive", "legacy"):
            raise ConfigError(
                f"remote '{name}': retry_mode must be standard or adaptive, not {self.retry_mode!r}"
            )
        self.connect_timeout = number_option(name, opts, "connect_timeout", 10.0, float, minimum=0.001,
                                     what="a positive number of seconds", example="SECONDS")
        self.read_timeout = number_option(name, opts, "read_timeout", 60.0, float, minimum=0.001,
                                     what="a positive number of seconds", example="SECONDS")
        self._client: Any = None
        self._lock = threading.Lock()
        self._bucket_checked = False
        self._closed = False
        # sizes seen by the last iter_keys listing (gc asks key_size for many keys)
        self._sizes: dict[str, int] = {}

    # connection ------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The shared boto3 S3 client (created on first use, thread-safe afterwards)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def warm_up(self) -> None:
        """Import boto3 and build the client on a thread (~0.6 s) while the caller reads
        pointers; a failure here is ignored and raised again, properly, on first use."""

        def build() -> None:
            with contextlib.suppress(Exception):
                _ = self.client
                if self._closed:
                    self.close()

        threading.Thread(target=build, name="gitml-s3-warm-up", daemon=True).start()

    def _make_client(self) -> Any:
        import boto3
        import botocore.config
        from botocore.exceptions import BotoCoreError, ProfileNotFound

        opts = self.options
        try:
            session = boto3.session.Session(
                profile_name=self.profile,
                aws_access_key_id=opts.get("access_key_id") or None,
                aws_secret_access_key=opts.get("secret_access_key") or None,
                aws_session_token=opts.get("session_token") or None,
                region_name=self.region,
            )
        except ProfileNotFound as e:
            raise ConfigError(
                f"remote '{self.name}': AWS profile '{self.profile}' not found",
                "check ~/.aws/config or the remote's profile option",
            ) from e
        region = self.region or session.region_name or "us-east-1"
        s3_cfg: dict[str, Any] = {}
        if self.endpoint_url:
            s3_cfg["addressing_style"] = "path"
        retries: Any = {"mode": self.retry_mode, "total_max_attempts": self.max_attempts}
        config = botocore.config.Config(
            region_name=region,
            # transfer threads + the part threads of the odd large object
            max_pool_connections=max(16, self.jobs * 2 + 8),
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            retries=retries,
            s3=s3_cfg,  # type: ignore[arg-type]
            tcp_keepalive=True,
        )
        try:
            return session.client("s3", endpoint_url=self.endpoint_url, config=config)
        except (BotoCoreError, ValueError) as e:
            raise RemoteError(
                f"remote '{self.name}': cannot set up the S3 client for {self.url}: {e}"
            ) from e

    def close(self) -> None:
        self._closed = True
        # a warm-up thread that is still building the client holds the lock: don't wait
        # for it (a no-op push needs no client); it closes what it built when it sees _closed
        if not self._lock.acquire(blocking=False):
            return
        try:
            client, self._client = self._client, None
        finally:
            self._lock.release()
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def identity(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")

    def describe(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"{self.name} ({self.url}{where})"

    # errors ----------------------------------------------------------------
    def _where(self, key: str | None = None) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key or ''}"

    def _raise(self, exc: BaseException, key: str | None = None) -> NoReturn:
        """Turn a botocore/boto3 exception into a one-line gitml error."""
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        where = self._where(key)
        if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, ClientError):
            exc = exc.__context__
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                self._raise_no_bucket(exc)
            if code in _ACCESS_CODES or status == 403:
                raise RemoteError(
                    f"remote '{self.name}': access denied by {self._where()} "
                    f"(check AWS credentials / profile)"
                ) from None
            if key is not None and (code in _MISSING_KEY_CODES or status == 404):
                raise ObjectMissingError(f"remote '{self.name}' does not have {key}") from None
            msg = str(err.get("Message") or code or exc).splitlines()[0]
            raise RemoteError(f"remote '{self.name}': {where}: {code or status}: {msg}") from None
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            raise RemoteError(
                f"remote '{self.name}': no AWS credentials for {self._where()}",
                "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or the remote's profile or "
                "access_key_id option",
            ) from None
        if isinstance(exc, ConnectionError):
            endpoint = self.endpoint_url or "the S3 endpoint"
            raise RemoteError(
                f"remote '{self.name}': cannot reach {endpoint} for {self._where()}: "
                f"{type(exc).__name__}",
                "check endpoint_url and the network",
            ) from None
        if isinstance(exc, BotoCoreError):
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise RemoteError(f"remote '{self.name}': {where}: {text}") from None
        if isinstance(exc, OSError):
            raise RemoteError(
                f"remote '{self.name}': {where}: {exc.strerror or exc}"
            ) from None
        raise RemoteError(f"remote '{self.name}': {where}: {type(exc).__name__}: {exc}") from None

    def _raise_no_bucket(self, exc: BaseException | None = None) -> NoReturn:
        raise RemoteError(
            f"remote '{self.name}': bucket '{self.bucket}' does not exist"
            + (f" at {self.endpoint_url}" if self.endpoint_url else ""),
            f"create it (e.g. `aws s3 mb s3://{self.bucket}`) or fix the remote's URL",
        ) from None

    def _call(self, fn: Callable[[], T], key: str | None = None) -> T:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn()
        except (ClientError, BotoCoreError) as e:
            self._raise(e, key)

    def _check_bucket(self) -> None:
        """Raise a clear error when the bucket is missing or inaccessible (cached)."""
        if self._bucket_checked:
            return
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as e:
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = str(e.response.get("Error", {}).get("Code", ""))
            if status == 404 or code in ("NoSuchBucket", "404", "NotFound"):
                self._raise_no_bucket(e)
            self._raise(e)
        except BotoCoreError as e:
            self._raise(e)
        self._bucket_checked = True

    def _s3key(self, key: str) -> str:
        return self.prefix + key

    def _transfer_config(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD,
            multipart_chunksize=PART_SIZE,
            max_concurrency=max(2, min(self.jobs, 8)),
            use_threads=True,
        )

    # Remote API --------------------------------------------------------------
    def put_file(self, key: str, src: Path) -> None:
        try:
            size = os.stat(src).st_size
        except OSError as e:
            raise RemoteError(f"remote '{self.name}': cannot read {src}: {e.strerror}") from e
        s3key = self._s3key(key)
        self._sizes.pop(key, None)
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if size <= MULTIPART_THRESHOLD:
                with open(src, "rb") as f:
                    data = f.read()
                self.client.put_object(Bucket=self.bucket, Key=s3key, Body=data)
            else:
                self.client.upload_file(
                    str(src), self.bucket, s3key, Config=self._transfer_config()
                )
        except (ClientError, BotoCoreError, S3UploadFailedError) as e:
            self._raise(e, None)
        except OSError as e:
            raise RemoteError(f"remote '{self.name}': cannot read {src}: {e.strerror}") from e

    def put_stream(self, key: str, stream: Readable, size: int) -> None:
        self._sizes.pop(key, None)
        s3key = self._s3key(key)
        if size <= SINGLE_PUT_MAX:
            self._call(lambda: self.client.put_object(Bucket=self.bucket, Key=s3key, Body=stream,
                                                      ContentLength=size))
            return
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.upload_fileobj(stream, self.bucket, s3key, Config=self._transfer_config())
        except (ClientError, BotoCoreError, S3UploadFailedError) as e:
            self._raise(e, None)

    def get_range(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._s3key(key)}
        if length is not None:
            if length == 0:
                return b""
            kwargs["Range"] = f"bytes={start}-{start + length - 1}"
        elif start:
            kwargs["Range"] = f"bytes={start}-"
        data: bytes = self._get_object(key, kwargs, read=True)
        if length is not None and len(data) != length:
            raise RemoteError(f"remote '{self.name}': {self._where(key)} returned "
                              f"{len(data)} bytes at {start}, wanted {length}")
        return data

    def _get_object(self, key: str, kwargs: dict[str, Any], *, read: bool) -> Any:
        """GET, with gitml errors; with ``read``, the whole body (a body cut off mid-way is
        asked for again: botocore only retries the request itself)."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            IncompleteReadError,
            ResponseStreamingError,
        )

        for attempt in range(3):
            try:
                resp = self.client.get_object(**kwargs)
                if not read:
                    return resp
                return resp["Body"].read()
            except (IncompleteReadError, ResponseStreamingError) as e:
                if attempt == 2:
                    self._raise(e, key)
            except ClientError as e:
                code = str(e.response.get("Error", {}).get("Code", ""))
                if code == "NoSuchBucket":
                    self._raise_no_bucket(e)
                status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if code in _MISSING_KEY_CODES or status == 404:
                    self._check_bucket()
                self._raise(e, key)
            except BotoCoreError as e:
                self._raise(e, key)
        raise AssertionError("unreachable")

    def get_file(self, key: str, dest: Path) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        s3key = self._s3key(key)
        resp = self._get_object(key, {"Bucket": self.bucket, "Key": s3key}, read=False)
        body = resp["Body"]
        length = int(resp.get("ContentLength") or 0)
        try:
            if length > MULTIPART_THRESHOLD:
                # big: drop this stream and fetch parallel ranged parts instead
                body.close()
                self.client.download_file(
                    self.bucket, s3key, str(dest), Config=self._transfer_config()
                )
                return
            with open(dest, "wb") as out:
                shutil.copyfileobj(body, out, _COPY_BLOCK)
        except (ClientError, BotoCoreError) as e:
            self._raise(e, key)
        except OSError as e:
            raise RemoteError(
                f"remote '{self.name}': cannot write {dest}: {e.strerror or e}"
            ) from e
        finally:
            with contextlib.suppress(Exception):
                body.close()

    def key_size(self, key: str) -> int | None:
        cached = self._sizes.get(key)
        if cached is not None:
            return cached
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=self._s3key(key))
        except ClientError as e:
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404:
                return None
            self._raise(e, key)
        except BotoCoreError as e:
            self._raise(e, key)
        return int(resp.get("ContentLength", 0))

    def _head(self, key: str) -> bool:
        return self.key_size(key) is not None

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        for key, _size, _mtime in self.iter_key_info(prefix):
            yield key

    def iter_key_info(self, prefix: str = "") -> Iterator[tuple[str, int, float]]:
        """``(key, size, last-modified epoch seconds)`` for every key under ``prefix``.

        Not (yet) in the Remote ABC: it lets remote gc report sizes without a HEAD per
        key and spare objects younger than a grace period (a push from another clone
        whose commits this clone has not fetched yet).
        """
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket,
            Prefix=self.prefix + prefix,
            PaginationConfig={"PageSize": 1000},
        )
        strip = len(self.prefix)
        it = iter(pages)
        while True:
            page = self._call(lambda: next(it, None))
            if page is None:
                return
            for obj in page.get("Contents", ()):
                key = obj["Key"][strip:]
                size = int(obj.get("Size", 0))
                self._sizes[key] = size
                modified = obj.get("LastModified")
                yield key, size, (modified.timestamp() if modified is not None else 0.0)

    def delete_many(self, keys: Iterable[str]) -> None:
        batch: list[str] = []
        for key in keys:
            batch.append(key)
            if len(batch) == DELETE_BATCH:
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)

    def _delete_batch(self, keys: list[str]) -> None:
        for k in keys:
            self._sizes.pop(k, None)
        resp = self._call(
            lambda: self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": self._s3key(k)} for k in keys], "Quiet": True},
            )
        )
        errors = [e for e in resp.get("Errors", ()) if e.get("Code") != "NoSuchKey"]
        if errors:
            first = errors[0]
            key = str(first.get("Key", ""))[len(self.prefix) :]
            code = str(first.get("Code", ""))
            if code in _ACCESS_CODES:
                raise RemoteError(
                    f"remote '{self.name}': access denied by {self._where(key)} "
                    f"(check AWS credentials / profile)"
                )
            raise RemoteError(
                f"remote '{self.name}': could not delete {len(errors)} key(s), "
                f"first {key}: {code}: {first.get('Message', '')}"
            )

    def has_many(self, keys: Iterable[str]) -> set[str]:
        wanted = sorted(set(keys))
        if not wanted:
            return set()
        found = self._has_many(wanted)
        if len(found) < len(wanted):
            # HEAD answers 404 for a missing bucket too: make sure "absent" is not that
            self._check_bucket()
        return found

    def _has_many(self, wanted: list[str]) -> set[str]:
        workers = max(1, min(self.jobs, 32))
        if len(wanted) <= HEAD_ONLY_MAX:
            return self._head_many(wanted, workers)
        groups: dict[str, list[str]] = {}
        for key in wanted:  # sorted in, so every group is sorted too
            groups.setdefault(_list_group(key), []).append(key)
        singles = [g[0] for g in groups.values() if len(g) == 1]
        ranges = [(p, g) for p, g in groups.items() if len(g) > 1]
        found: set[str] = set()
        if singles:
            found |= self._head_many(singles, workers)
        if len(ranges) <= 1:
            return found | (self._has_range(*ranges[0]) if ranges else set())
        with ThreadPoolExecutor(
            max_workers=min(workers, len(ranges)), thread_name_prefix="gitml-s3-has"
        ) as ex:
            for part in ex.map(lambda r: self._has_range(*r), ranges):
                found |= part
        return found

    def _head_many(self, keys: list[str], workers: int) -> set[str]:
        if len(keys) == 1:
            return set(keys) if self._head(keys[0]) else set()
        with ThreadPoolExecutor(
            max_workers=min(workers, len(keys)), thread_name_prefix="gitml-s3-head"
        ) as ex:
            return {k for k, ok in zip(keys, ex.map(self._head, keys), strict=True) if ok}

    def _has_range(self, group: str, keys: list[str]) -> set[str]:
        """Which of the sorted ``keys`` (all under the listing prefix ``group``) exist.

        Lists ``group`` from just before the first wanted key and, after each page,
        seeks (``StartAfter``) to just before the next key still unresolved, so every
        request resolves at least one key (never worse than HEADs) and a dense range
        costs one request per 1,000 keys.
        """
        s3keys = [self._s3key(k) for k in keys]
        wanted = dict(zip(s3keys, keys, strict=True))
        last = s3keys[-1]
        found: set[str] = set()
        start = s3keys[0][:-1]
        while True:
            kwargs: dict[str, Any] = {
                "Bucket": self.bucket,
                "Prefix": self.prefix + group,
                "MaxKeys": LIST_PAGE,
            }
            if start > kwargs["Prefix"]:
                kwargs["StartAfter"] = start
            resp = self._call(lambda kw=kwargs: self.client.list_objects_v2(**kw))  # type: ignore[misc]
            listed = resp.get("Contents", ())
            for obj in listed:
                k = wanted.get(obj["Key"])
                if k is not None:
                    found.add(k)
            if not resp.get("IsTruncated") or not listed:
                return found
            upto = str(listed[-1]["Key"])
            if upto >= last:
                return found
            nxt = s3keys[bisect.bisect_right(s3keys, upto)]
            start = max(upto, nxt[:-1])
