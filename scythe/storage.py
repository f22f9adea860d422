"""One store over a local directory or S3: bytes under relative keys.

Keys are relative, ``/``-separated strings (``"exp/v1.0.0/<time>/manifest.yml"``)
and mean the same thing on both backends. Stores hold no client until first
used and survive pickling, so they can be sent to worker processes.

>>> import tempfile
>>> store = open_store(tempfile.mkdtemp())
>>> store.put_bytes("exp/v1.0.0/manifest.yml", b"status: complete\\n")
>>> store.list_children("exp")
['v1.0.0']
>>> store.put_if_absent("exp/v1.0.0/manifest.yml", b"status: partial\\n")
False
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from scythe.errors import ObjectNotFoundError, StorageError, StorageURIError
from scythe.settings import storage_settings

StrPath = str | os.PathLike[str]

_PARTIAL_SUFFIX = ".scythe-partial"
_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}
_EXISTS_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "412"}


class Store(ABC):
    """Bytes under relative ``/``-separated keys, with Delta Lake locations for tables."""

    @abstractmethod
    def uri(self, key: str = "") -> str:
        """Absolute location of ``key`` (a path, or ``s3://bucket/prefix/key``)."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Write ``data`` at ``key``, replacing what was there."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Read the object at ``key``; ``StorageError`` naming its URI if missing."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key``."""

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Atomically write ``data`` unless ``key`` exists: True if written, False if not."""

    @abstractmethod
    def list_keys(self, prefix: str = "") -> list[str]:
        """Every key under the ``prefix`` directory, recursively, sorted."""

    @abstractmethod
    def list_children(self, prefix: str = "") -> list[str]:
        """Names of the immediate child directories of ``prefix``, sorted."""

    @abstractmethod
    def upload_file(self, local_path: StrPath, key: str) -> None:
        """Copy a local file to ``key``."""

    @abstractmethod
    def download_file(self, key: str, local_path: StrPath) -> None:
        """Copy the object at ``key`` to a local file, creating its directory."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Delete every key under the ``prefix`` directory."""

    @abstractmethod
    def storage_options(self) -> dict[str, str]:
        """Options for ``deltalake.write_deltalake`` / ``DeltaTable`` at ``table_uri``."""

    def table_uri(self, key: str) -> str:
        """Location of the Delta table at ``key``, as deltalake expects it."""
        return self.uri(_clean_key(key))

    def file_uri(self, key: str) -> str:
        """The URI tables store for the object at ``key``: ``s3://...`` or ``file://...``.

        >>> LocalStore("/data").file_uri("exp/v1.0.0/t/artifacts/a.epw")
        'file:///data/exp/v1.0.0/t/artifacts/a.epw'
        """
        uri = self.uri(key)
        return uri if "://" in uri else Path(uri).as_uri()


class LocalStore(Store):
    """A store in a local directory (the embedded default, ``./scythe-data``)."""

    def __init__(self, root: StrPath) -> None:
        self.root = Path(root).expanduser().absolute()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def uri(self, key: str = "") -> str:
        return str(self._path(key, allow_empty=True))

    def put_bytes(self, key: str, data: bytes) -> None:
        _replace_atomically(self._path(key), lambda tmp: tmp.write_bytes(data))

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError) as err:
            raise _missing_error(str(path)) from err

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(path, "xb") as file:
                file.write(data)
        except FileExistsError:
            return False
        return True

    def list_keys(self, prefix: str = "") -> list[str]:
        base = self._path(prefix, allow_empty=True)
        if not base.is_dir():
            return []
        return sorted(
            path.relative_to(self.root).as_posix()
            for path in base.rglob("*")
            if path.is_file() and not path.name.endswith(_PARTIAL_SUFFIX)
        )

    def list_children(self, prefix: str = "") -> list[str]:
        base = self._path(prefix, allow_empty=True)
        if not base.is_dir():
            return []
        return sorted(path.name for path in base.iterdir() if path.is_dir())

    def upload_file(self, local_path: StrPath, key: str) -> None:
        _replace_atomically(self._path(key), lambda tmp: shutil.copyfile(local_path, tmp))

    def download_file(self, key: str, local_path: StrPath) -> None:
        source = self._path(key)
        if not source.is_file():
            raise _missing_error(str(source))
        Path(local_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, local_path)

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(_refuse_root(prefix, self.uri())), ignore_errors=True)

    def storage_options(self) -> dict[str, str]:
        return {}

    def _path(self, key: str, *, allow_empty: bool = False) -> Path:
        cleaned = _clean_key(key, allow_empty=allow_empty)
        return self.root / cleaned if cleaned else self.root


class S3Store(Store):
    """A store under ``s3://bucket/prefix`` on AWS or any S3-compatible endpoint.

    The boto3 client is created on first use and dropped when pickled.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        if not bucket or "/" in bucket:
            raise StorageURIError(f"invalid S3 bucket name {bucket!r}: pass the bare bucket name")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self._lock = threading.Lock()
        self._session: Any = None
        self._client: Any = None

    def __repr__(self) -> str:
        return f"S3Store({self.uri()!r}, endpoint_url={self.endpoint_url!r})"

    def with_client(self, client: Any) -> S3Store:
        """This store, reached through the caller's boto3 S3 ``client`` (and its credentials).

        Worker processes cannot receive a client: they connect with the same
        endpoint and region, and the credentials of their environment.
        """
        endpoint = client.meta.endpoint_url
        if endpoint and "amazonaws.com" in endpoint:
            endpoint = None
        store = S3Store(
            self.bucket,
            self.prefix,
            endpoint_url=self.endpoint_url or endpoint,
            region=self.region or client.meta.region_name,
        )
        store._client = client
        return store

    def __getstate__(self) -> dict[str, Any]:
        # clients, sessions and locks cannot cross process boundaries; rebuild them lazily
        return {**self.__dict__, "_lock": None, "_session": None, "_client": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self._key(key, allow_empty=True)}".rstrip("/")

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._errors("put", key):
            self._s3().put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_bytes(self, key: str) -> bytes:
        with self._errors("get", key):
            return self._s3().get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        with self._errors("head", key):
            try:
                self._s3().head_object(Bucket=self.bucket, Key=self._key(key))
            except ClientError as err:
                if _error_code(err) in _MISSING_CODES:
                    return False
                raise
        return True

    def put_if_absent(self, key: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        with self._errors("conditional put", key):
            try:
                self._s3().put_object(
                    Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*"
                )
            except ClientError as err:
                if _error_code(err) in _EXISTS_CODES:
                    return False
                raise
        return True

    def list_keys(self, prefix: str = "") -> list[str]:
        root = self._dir_prefix("")
        keys = [
            item["Key"][len(root) :]
            for page in self._pages(prefix)
            for item in page.get("Contents", [])
            if not item["Key"].endswith("/")
        ]
        return sorted(keys)

    def list_children(self, prefix: str = "") -> list[str]:
        base = self._dir_prefix(prefix)
        return sorted(
            common["Prefix"][len(base) :].rstrip("/")
            for page in self._pages(prefix, Delimiter="/")
            for common in page.get("CommonPrefixes", [])
        )

    def upload_file(self, local_path: StrPath, key: str) -> None:
        with self._errors("upload", key):
            self._s3().upload_file(os.fspath(local_path), self.bucket, self._key(key))

    def download_file(self, key: str, local_path: StrPath) -> None:
        Path(local_path).parent.mkdir(parents=True, exist_ok=True)
        with self._errors("download", key):
            self._s3().download_file(self.bucket, self._key(key), os.fspath(local_path))

    def delete_prefix(self, prefix: str) -> None:
        _refuse_root(prefix, self.uri())
        keys = [item["Key"] for page in self._pages(prefix) for item in page.get("Contents", [])]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            with self._errors("delete", prefix):
                response = self._s3().delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            if response.get("Errors"):
                first = response["Errors"][0]
                raise StorageError(
                    f"could not delete {len(response['Errors'])} objects under "
                    f"{self.uri(prefix)}, e.g. {first.get('Key')!r}: {first.get('Message')}"
                )

    def storage_options(self) -> dict[str, str]:
        client = self._s3()
        # commits are PutObject with If-None-Match: *, so concurrent writers cannot
        # overwrite each other's log entries (no locking provider or unsafe rename needed)
        options = {"AWS_CONDITIONAL_PUT": "etag"}
        region = self.region or client.meta.region_name
        if region:
            options["AWS_REGION"] = region
        if self.endpoint_url:
            options["AWS_ENDPOINT_URL"] = self.endpoint_url
            if self.endpoint_url.startswith("http://"):
                options["AWS_ALLOW_HTTP"] = "true"
        if self._session is not None:
            credentials = self._session.get_credentials()
        else:  # a client the caller gave (with_client)
            credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            options["AWS_ACCESS_KEY_ID"] = frozen.access_key
            options["AWS_SECRET_ACCESS_KEY"] = frozen.secret_key
            if frozen.token:
                options["AWS_SESSION_TOKEN"] = frozen.token
        return options

    def _s3(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3
                    from botocore.config import Config

                    session = boto3.session.Session(region_name=self.region)
                    # custom endpoints (MinIO, moto) rarely resolve bucket subdomains
                    config = Config(s3={"addressing_style": "path"}) if self.endpoint_url else None
                    self._session = session
                    self._client = session.client(
                        "s3", endpoint_url=self.endpoint_url, config=config
                    )
        return self._client

    def _key(self, key: str, *, allow_empty: bool = False) -> str:
        cleaned = _clean_key(key, allow_empty=allow_empty)
        return "/".join(part for part in (self.prefix, cleaned) if part)

    def _dir_prefix(self, prefix: str) -> str:
        full = self._key(prefix, allow_empty=True)
        return f"{full}/" if full else ""

    def _pages(self, prefix: str, **kwargs: str) -> Iterator[dict[str, Any]]:
        paginator = self._s3().get_paginator("list_objects_v2")
        with self._errors("list", prefix):
            yield from paginator.paginate(
                Bucket=self.bucket, Prefix=self._dir_prefix(prefix), **kwargs
            )

    @contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as err:
            code = _error_code(err)
            if code in _MISSING_CODES:
                raise _missing_error(self.uri(key)) from err
            if code == "NoSuchBucket":
                where = f" at {self.endpoint_url}" if self.endpoint_url else ""
                raise ObjectNotFoundError(
                    f"S3 bucket {self.bucket!r} does not exist{where}: create it, or point "
                    "SCYTHE_STORAGE_URI at an existing bucket"
                ) from err
            message = err.response.get("Error", {}).get("Message", "")
            raise StorageError(f"S3 {action} of {self.uri(key)} failed: {code} {message}") from err
        except BotoCoreError as err:
            raise StorageError(
                f"S3 {action} of {self.uri(key)} failed: {err}. Check the AWS credentials "
                "and SCYTHE_STORAGE_ENDPOINT_URL"
            ) from err


_KNOWN_STORES: dict[str, Store] = {}


def remember_store(store: Store) -> Store:
    """Make ``open_store(store.uri())`` in this process return ``store`` itself.

    Engines call it with the store a run was allocated on, so nodes reach the
    same endpoint and credentials even when the environment does not name them.
    """
    _KNOWN_STORES[store.uri()] = store
    return store


def known_stores() -> list[Store]:
    """The stores remembered in this process (sent along to worker processes)."""
    return list(_KNOWN_STORES.values())


def _known_store(uri: str) -> Store | None:
    if uri in _KNOWN_STORES:
        return _KNOWN_STORES[uri]
    for known in _KNOWN_STORES.values():
        # an S3 URI anywhere in a known bucket reuses that store's endpoint settings
        if isinstance(known, S3Store) and uri.startswith(f"s3://{known.bucket}/"):
            prefix = uri[len(f"s3://{known.bucket}/") :]
            return S3Store(
                known.bucket, prefix, endpoint_url=known.endpoint_url, region=known.region
            )
    return None


def open_store(uri: str | None = None) -> Store:
    """Open the store at a path, ``file://`` URI or ``s3://bucket/prefix``.

    Without ``uri``, opens the configured one (``SCYTHE_STORAGE_URI``, else
    ``SCYTHE_STORAGE_BUCKET``, else ``./scythe-data``). S3 endpoint and region
    come from ``SCYTHE_STORAGE_ENDPOINT_URL`` and ``SCYTHE_STORAGE_REGION``.
    Nothing is contacted until the store is used.

    >>> open_store("s3://my-bucket/scythe").uri("exp/v1.0.0/manifest.yml")
    's3://my-bucket/scythe/exp/v1.0.0/manifest.yml'
    """
    if uri is None:
        uri = storage_settings().resolved_uri()
    known = _known_store(uri) if uri else None
    if known is not None:
        return known
    if not uri:
        raise StorageURIError("empty storage URI: pass a path, a file:// URI or s3://bucket/prefix")
    if "://" not in uri:
        return LocalStore(uri)
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        host = "" if parsed.netloc in ("", "localhost") else parsed.netloc
        return LocalStore(unquote(host + parsed.path))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StorageURIError(f"storage URI {uri!r} has no bucket: use s3://bucket/prefix")
        settings = storage_settings()
        return S3Store(
            parsed.netloc, parsed.path, endpoint_url=settings.ENDPOINT_URL, region=settings.REGION
        )
    raise StorageURIError(
        f"unsupported storage URI {uri!r}: use a local path, a file:// URI or s3://bucket/prefix"
    )


def _clean_key(key: str, *, allow_empty: bool = False) -> str:
    cleaned = key.strip("/")
    parts = cleaned.split("/") if cleaned else []
    if "\\" in key or any(part in ("", ".", "..") for part in parts) or not (parts or allow_empty):
        raise StorageURIError(
            f"invalid store key {key!r}: use a relative, '/'-separated key without empty, "
            "'.' or '..' parts, e.g. 'exp/v1.0.0/manifest.yml'"
        )
    return cleaned


def _refuse_root(prefix: str, root_uri: str) -> str:
    if not prefix.strip("/"):
        raise StorageURIError(f"refusing to delete the whole store at {root_uri}: pass a prefix")
    return prefix


def _replace_atomically(path: Path, write: Callable[[Path], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}{_PARTIAL_SUFFIX}")
    try:
        write(tmp)
        os.replace(tmp, path)  # readers see the old file or the new one, never half of one
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _missing_error(uri: str) -> ObjectNotFoundError:
    return ObjectNotFoundError(
        f"no object at {uri}: check the key, or that the step writing it finished"
    )


def _error_code(err: Any) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


__all__ = ["LocalStore", "S3Store", "Store", "open_store"]
