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
import re
import shutil
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from scythe.errors import ObjectNotFoundError, StorageError, StorageURIError

StrPath = str | os.PathLike[str]

_PARTIAL_SUFFIX = ".scythe-partial"
_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}
_EXISTS_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "412"}

_ACCEPTED_FORMS = (
    "a local path (relative or absolute), file:///absolute/path, "
    "file://localhost/absolute/path or s3://bucket/prefix"
)
_LOCAL_FORMS = "a local path (relative or absolute); open file:// and s3:// URIs with open_store()"
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")
_BUCKET_RULES = (
    "3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter "
    "or digit, without '..' and not an IP address"
)
# userinfo of a URL: whatever precedes the last "@" of its authority
_USERINFO = re.compile(r"(?<=://)[^/?#\s]*@")
_SECRET_QUERY = re.compile(
    r"([?&;][\w.-]*(?:signature|credential|token|secret|password|passwd|key|sig)[\w.-]*=)"
    r"[^&#\s'\"]*",
    re.IGNORECASE,
)


def mask_url(text: str) -> str:
    """``text`` with every URL's userinfo and secret-looking query values shown as ``***``.

    Works on a bare URL or on a message that contains URLs.

    >>> mask_url("http://AKIA:secret@minio:9000")
    'http://***@minio:9000'
    >>> mask_url("https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA&X-Amz-Signature=abc&n=1")
    'https://b.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Signature=***&n=1'
    """
    return _SECRET_QUERY.sub(r"\1***", _USERINFO.sub("***@", text))


INTERMEDIATES = "scatter-gather"
"""The folder of a run's intermediates: node batches, node manifests, inferred schemas."""
INTERMEDIATE_TAG = "scythe-intermediate=true"
"""The S3 object tag every object under a run's intermediates folder is written with, so a
bucket lifecycle rule can expire them (S3 lifecycle filters match prefixes or tags, and
the folder sits in the middle of a run's keys)."""


_RUN_ID_PARTS = 3
"""A run's id, the first parts of each of its keys: ``<experiment>/<version>/<time>``."""


def _tagging(key: str) -> dict[str, str]:
    """The tag of a key inside a run's intermediates folder, which comes right after the run's
    id: matched there only, so that an experiment, say, named like the folder keeps its results."""
    parts = key.split("/")
    inside = len(parts) > _RUN_ID_PARTS + 1 and parts[_RUN_ID_PARTS] == INTERMEDIATES
    return {"Tagging": INTERMEDIATE_TAG} if inside else {}


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
        """Atomically write ``data`` unless ``key`` exists: True if written, False if not.

        An object that exists holding exactly ``data`` counts as written: a
        retried request whose first reply was lost finds its own write.
        """

    @abstractmethod
    def list_keys(self, prefix: str = "") -> list[str]:
        """Every key under the ``prefix`` directory, recursively, sorted."""

    @abstractmethod
    def list_children(self, prefix: str = "") -> list[str]:
        """Names of the immediate child directories of ``prefix``, sorted."""

    @abstractmethod
    def upload_file(self, local_path: StrPath, key: str, *, move: bool = False) -> None:
        """Copy a local file to ``key``; with ``move`` the local file is the caller's to give
        up (a leaf's tempdir, deleted next), and a local store may move it instead."""

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
        self.root = Path(_local_root(root)).expanduser().absolute()

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
        # Written whole to a private file, then linked into place: link() fails if the key
        # exists, and a writer killed midway leaves no key, only its temporary file.
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}{_PARTIAL_SUFFIX}")
        try:
            with open(partial, "xb") as file:
                file.write(data)
            try:
                os.link(partial, path)
            except FileExistsError:
                raise
            except OSError:  # a filesystem without hard links: exclusive create, then write
                with open(path, "xb") as file:
                    file.write(data)
        except FileExistsError:
            return False
        finally:
            partial.unlink(missing_ok=True)
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

    def upload_file(self, local_path: StrPath, key: str, *, move: bool = False) -> None:
        _replace_atomically(self._path(key), lambda tmp: _move_or_copy(local_path, tmp, move))

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
        for problem in (_bucket_problem(bucket), _prefix_problem(prefix)):
            if problem:
                raise StorageURIError(problem)
        if endpoint_url is not None:
            _check_endpoint_url(endpoint_url)
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self._lock = threading.Lock()
        self._session: Any = None
        self._client: Any = None

    def __repr__(self) -> str:
        endpoint = None if self.endpoint_url is None else mask_url(self.endpoint_url)
        return f"S3Store({self.uri()!r}, endpoint_url={endpoint!r})"

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
            self._s3().put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, **_tagging(key)
            )

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
                    Bucket=self.bucket,
                    Key=self._key(key),
                    Body=data,
                    IfNoneMatch="*",
                    **_tagging(key),
                )
            except ClientError as err:
                if _error_code(err) not in _EXISTS_CODES:
                    raise
                # botocore retries a request whose reply was lost: the object may be our own
                return self.get_bytes(key) == data
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

    def upload_file(self, local_path: StrPath, key: str, *, move: bool = False) -> None:
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
                where = f" at {mask_url(self.endpoint_url)}" if self.endpoint_url else ""
                raise ObjectNotFoundError(
                    f"S3 bucket {self.bucket!r} does not exist{where}: create it, or point "
                    "SCYTHE_STORAGE_URI at an existing bucket"
                ) from _unless_secret(err)
            message = err.response.get("Error", {}).get("Message", "")
            raise StorageError(
                mask_url(f"S3 {action} of {self.uri(key)} failed: {code} {message}")
            ) from _unless_secret(err)
        except BotoCoreError as err:
            # botocore names the endpoint URL it failed to reach, credentials and all
            raise StorageError(
                mask_url(
                    f"S3 {action} of {self.uri(key)} failed: {err}. Check the AWS credentials "
                    "and SCYTHE_STORAGE_ENDPOINT_URL"
                )
            ) from _unless_secret(err)


_KNOWN_STORES: dict[str, Store] = {}


def remember_store(store: Store) -> Store:
    """Make ``open_store(store.uri())`` in this process return ``store`` itself.

    Engines call it with the store a run was allocated on, so nodes reach the
    same endpoint and credentials even when the environment does not name them.
    """
    _KNOWN_STORES[store.uri()] = store
    return store


def forget_stores() -> None:
    """Forget every remembered store (a forked worker drops the driver's, clients and all)."""
    _KNOWN_STORES.clear()


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
    """Open the store at a local path, ``file://`` URI or ``s3://bucket/prefix``.

    Without ``uri``, opens the configured one (``SCYTHE_STORAGE_URI``, else
    ``SCYTHE_STORAGE_BUCKET``, else ``./scythe-data``). S3 endpoint and region
    come from ``SCYTHE_STORAGE_ENDPOINT_URL`` and ``SCYTHE_STORAGE_REGION``.
    Nothing is contacted until the store is used.

    Accepted: a relative or absolute local path; ``file:///abs/path`` or
    ``file://localhost/abs/path``; ``s3://bucket`` or ``s3://bucket/prefix``
    with a valid S3 bucket name. Schemes are case-insensitive (``S3://``).
    Anything else is a ``StorageURIError``: a blank value or one with
    surrounding whitespace, another scheme (``gs://``, ``http://``), a
    malformed one (``s3:/b``, ``s3:b``), a ``file://`` URI naming another host.
    A relative path whose first part holds a ``:`` reads as a scheme: write
    ``./a:b``. ``C:\\data`` is a local path on Windows only.

    >>> open_store("s3://my-bucket/scythe").uri("exp/v1.0.0/manifest.yml")
    's3://my-bucket/scythe/exp/v1.0.0/manifest.yml'
    """
    configured = None
    if uri is None:
        configured = _storage_settings()
        uri = configured.resolved_uri()
    try:
        scheme = _check_storage_uri(uri)
        location = _split_s3_uri(uri) if scheme == "s3" else None
        path = _file_uri_path(uri) if scheme == "file" else uri
    except StorageURIError as err:
        if configured is None:
            raise
        source = "SCYTHE_STORAGE_BUCKET and _BUCKET_PREFIX"
        raise StorageURIError(
            f"{err} (from {'SCYTHE_STORAGE_URI' if configured.URI else source})"
        ) from None
    # a known store is found under its own spelling, s3:// in lowercase
    known = _known_store(f"s3://{uri[len('s3://') :]}" if location else path)
    if known is not None:
        return known
    if location is None:
        return LocalStore(path)
    settings = _storage_settings()
    return S3Store(*location, endpoint_url=settings.ENDPOINT_URL, region=settings.REGION)


def _storage_settings() -> Any:
    """``SCYTHE_STORAGE_*``, read now; the settings code loads only when a call needs it
    (opening a local path needs none)."""
    from scythe.settings import storage_settings as read

    return read()


def _uri_error(
    uri: str, adjective: str, why: str = "", forms: str = _ACCEPTED_FORMS
) -> StorageURIError:
    detail = f" ({why})" if why else ""
    return StorageURIError(f"{adjective} storage URI {mask_url(uri)!r}{detail}: use {forms}")


def _check_storage_uri(uri: str, forms: str = _ACCEPTED_FORMS) -> str | None:
    """The lowercase scheme of a storage URI, None for a local path; StorageURIError if unusable."""
    if not uri:
        raise _uri_error(uri, "empty", forms=forms)
    if not uri.strip():
        raise _uri_error(uri, "blank", forms=forms)
    if uri != uri.strip():
        raise _uri_error(uri, "malformed", "leading or trailing whitespace", forms)
    match = _SCHEME.match(uri)
    if match is None or (os.name == "nt" and len(match.group(1)) == 1):
        return None  # a path (on Windows, "C:" is a drive)
    scheme = match.group(1).lower()
    if scheme not in ("s3", "file"):
        drive = len(scheme) == 1 and uri[2:3] in ("/", "\\")
        why = "a Windows drive path, local only on Windows" if drive else f"scheme {scheme!r}"
        if not drive and "://" not in uri:
            why += f"; a relative path whose first part holds ':' is written ./{uri}"
        raise _uri_error(uri, "unsupported", why, forms)
    if not uri[match.end() :].startswith("//"):
        raise _uri_error(uri, "malformed", f"{scheme} URIs start with {scheme}://", forms)
    return scheme


def _split_s3_uri(uri: str) -> tuple[str, str]:
    """Bucket and prefix of an ``s3://`` URI, checked."""
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise _uri_error(uri, "malformed", "no bucket")
    if _bucket_problem(bucket):
        raise _uri_error(uri, "malformed", f"an S3 bucket name is {_BUCKET_RULES}")
    if "?" in prefix or "#" in prefix:
        raise _uri_error(uri, "malformed", "an S3 storage URI takes no '?' or '#'")
    if _prefix_problem(prefix):
        raise _uri_error(uri, "malformed", "an empty, '.' or '..' part in the prefix")
    return bucket, prefix


def _file_uri_path(uri: str) -> str:
    """The local path a ``file://`` URI names; only ``localhost`` (or no host) is local."""
    try:
        parsed = urlsplit(uri)
    except ValueError as err:
        raise _uri_error(uri, "malformed", str(err)) from None
    if parsed.netloc.lower() not in ("", "localhost"):
        raise _uri_error(uri, "unsupported", "a file:// URI naming a host other than localhost")
    if "?" in uri or "#" in uri:
        raise _uri_error(uri, "malformed", "a file URI takes no '?' or '#'; write them as %3F, %23")
    path = unquote(parsed.path)
    if not path.startswith("/"):
        raise _uri_error(uri, "malformed", "no absolute path after file://")
    if os.name == "nt" and re.match(r"/[A-Za-z]:", path):
        path = path[1:]  # file:///C:/data
    return path


def _local_root(root: StrPath) -> StrPath:
    """``root`` if it names a local directory; StorageURIError for a URI or a blank value."""
    text = os.fspath(root)
    if _check_storage_uri(text, _LOCAL_FORMS) is not None:
        raise StorageURIError(
            f"LocalStore takes a local path, not the URI {mask_url(text)!r}: use {_LOCAL_FORMS}"
        )
    return root


def _bucket_problem(bucket: str) -> str | None:
    if (
        isinstance(bucket, str)
        and _BUCKET_NAME.fullmatch(bucket)
        and ".." not in bucket
        and not _IP_ADDRESS.fullmatch(bucket)
    ):
        return None
    shown = mask_url(bucket) if isinstance(bucket, str) else bucket
    hint = "pass the bare bucket name; " if isinstance(bucket, str) and "/" in bucket else ""
    return f"invalid S3 bucket name {shown!r}: {hint}a bucket name is {_BUCKET_RULES}"


def _prefix_problem(prefix: str) -> str | None:
    cleaned = prefix.strip("/")
    if not cleaned or all(part not in ("", ".", "..") for part in cleaned.split("/")):
        return None
    return (
        f"invalid S3 key prefix {prefix!r}: use '/'-separated parts without empty, '.' or "
        "'..' parts, e.g. 'scythe/runs'"
    )


def _check_endpoint_url(endpoint_url: str) -> None:
    try:
        parsed = urlsplit(endpoint_url)
        usable = parsed.scheme.lower() in ("http", "https") and bool(parsed.hostname)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 host
        usable = False
    if not usable or endpoint_url != endpoint_url.strip():
        raise StorageURIError(
            f"invalid S3 endpoint URL {mask_url(endpoint_url)!r}: use http://host:port or "
            "https://host (SCYTHE_STORAGE_ENDPOINT_URL), or leave it unset for AWS S3"
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


def _move_or_copy(source: StrPath, target: Path, move: bool) -> None:
    """``source`` renamed to ``target`` if ``move`` and on the same filesystem, else copied."""
    if move:
        try:
            os.rename(source, target)
            return
        except OSError:  # another filesystem: copy
            pass
    shutil.copyfile(source, target)


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


def _unless_secret(err: BaseException) -> BaseException | None:
    """``err`` to chain a masked error to, or None when its own text would show a secret."""
    text = str(err)
    return err if mask_url(text) == text else None


def _error_code(err: Any) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


__all__ = ["LocalStore", "S3Store", "Store", "mask_url", "open_store"]
