"""Storage URIs are parsed strictly, and credentials in an endpoint URL are never shown."""

from __future__ import annotations

import logging
import os
import re
import socket
import traceback
from pathlib import Path

import pytest

from scythe.errors import StorageError, StorageURIError
from scythe.settings import storage_settings
from scythe.storage import LocalStore, S3Store, mask_url, open_store

ACCEPTED_FORMS = (
    "a local path (relative or absolute), file:///absolute/path, "
    "file://localhost/absolute/path or s3://bucket/prefix"
)
SECRET = "s3cr3t-Pa55"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def no_storage_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("URI", "BUCKET", "BUCKET_PREFIX", "ENDPOINT_URL", "REGION"):
        monkeypatch.delenv(f"SCYTHE_STORAGE_{name}", raising=False)
    return monkeypatch


# --------------------------------------------------------------------------- refused


REFUSED = {
    "empty": "",
    "blank": "   ",
    "tab": "\t",
    "leading space": " /tmp/data",
    "trailing space": "scythe-data ",
    "trailing newline": "s3://my-bucket/p\n",
    "s3 with one slash": "s3:/nobucket",
    "s3 without slashes": "s3:nobucket",
    "s3 without bucket": "s3://",
    "s3 with empty bucket": "s3:///no-bucket",
    "s3 uppercase bucket": "s3://My-Bucket/p",
    "s3 underscore bucket": "s3://my_bucket/p",
    "s3 short bucket": "s3://ab/p",
    "s3 long bucket": f"s3://{'b' * 64}/p",
    "s3 bucket ends with hyphen": "s3://bucket-/p",
    "s3 bucket with double dot": "s3://my..bucket/p",
    "s3 bucket as ip address": "s3://192.168.0.1/p",
    "s3 with port": "s3://my-bucket:9000/p",
    "s3 with query": "s3://my-bucket/p?versionId=1",
    "s3 with fragment": "s3://my-bucket/p#x",
    "s3 with empty prefix part": "s3://my-bucket/a//b",
    "s3 with dot-dot prefix": "s3://my-bucket/a/../b",
    "file with a host": "file://remotehost/data",
    "file with user at localhost": "file://me@localhost/data",
    "file with one slash": "file:/tmp/data",
    "file without slashes": "file:data",
    "file without path": "file://",
    "file localhost without path": "file://localhost",
    "file with query": "file:///tmp/data?x=1",
    "file with fragment": "file:///tmp/data#x",
    "gs": "gs://bucket/prefix",
    "http": "http://host/data",
    "https": "https://host/data",
    "s3a": "s3a://bucket/prefix",
    "colon in first part": "run:1/data",
}
if os.name != "nt":
    REFUSED["windows drive"] = "C:\\data"
    REFUSED["windows drive, forward slash"] = "C:/data"


@pytest.mark.parametrize("uri", list(REFUSED.values()), ids=list(REFUSED))
def test_open_store_refuses_a_malformed_uri_quoting_it(uri: str) -> None:
    with pytest.raises(StorageURIError) as caught:
        open_store(uri)

    assert type(caught.value) is StorageURIError
    assert isinstance(caught.value, StorageError) and isinstance(caught.value, ValueError)
    assert repr(mask_url(uri)) in str(caught.value)  # the value as given, userinfo masked
    assert ACCEPTED_FORMS in str(caught.value)


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("", "empty storage URI"),
        ("  ", "blank storage URI"),
        (" x", "leading or trailing whitespace"),
        ("s3:/nobucket", "s3 URIs start with s3://"),
        ("file://remotehost/data", "host other than localhost"),
        ("gs://bucket/p", "scheme 'gs'"),
        ("s3://My_Bucket/p", "3-63 lowercase letters"),
        ("run:1/data", "written ./run:1/data"),
    ],
)
def test_the_refusal_says_what_is_wrong(uri: str, why: str) -> None:
    with pytest.raises(StorageURIError, match=why):
        open_store(uri)


@pytest.mark.parametrize("name", ["URI", "BUCKET"])
def test_a_configured_uri_is_checked_too_and_the_error_names_the_setting(
    no_storage_env: pytest.MonkeyPatch, name: str
) -> None:
    value = "s3:/nobucket" if name == "URI" else "My_Bucket"
    no_storage_env.setenv(f"SCYTHE_STORAGE_{name}", value)

    with pytest.raises(StorageURIError, match=f"SCYTHE_STORAGE_{name}") as caught:
        open_store()

    assert ACCEPTED_FORMS in str(caught.value)
    assert value in str(caught.value)


@pytest.mark.parametrize(
    "root", ["", "   ", " /tmp/x", "s3://my-bucket/p", "file:///tmp/x", "s3:/x", "gs://b/p"]
)
def test_local_store_refuses_a_uri_or_blank_root(root: str) -> None:
    with pytest.raises(StorageURIError) as caught:
        LocalStore(root)

    assert repr(root) in str(caught.value)
    assert "a local path" in str(caught.value)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("",), "invalid S3 bucket name ''"),
        (("my-bucket/prefix",), "pass the bare bucket name"),
        (("s3://my-bucket",), "pass the bare bucket name"),
        (("My_Bucket",), "3-63 lowercase letters"),
        (("my-bucket", "a//b"), "invalid S3 key prefix 'a//b'"),
        (("my-bucket", "a/../b"), "invalid S3 key prefix"),
    ],
)
def test_s3_store_refuses_a_bad_bucket_or_prefix(args: tuple[str, ...], match: str) -> None:
    with pytest.raises(StorageURIError, match=match):
        S3Store(*args)


@pytest.mark.parametrize(
    "endpoint", ["", "minio:9000", "ftp://minio", "http://", " http://minio:9000", "http://[::1"]
)
def test_s3_store_refuses_an_unusable_endpoint_url(endpoint: str) -> None:
    with pytest.raises(StorageURIError, match="invalid S3 endpoint URL"):
        S3Store("my-bucket", endpoint_url=endpoint)


# --------------------------------------------------------------------------- accepted


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix"),
    [
        ("s3://my-bucket", "my-bucket", ""),
        ("s3://my-bucket/", "my-bucket", ""),
        ("s3://my-bucket/scythe", "my-bucket", "scythe"),
        ("s3://my-bucket/team/runs/", "my-bucket", "team/runs"),
        ("S3://my-bucket/p", "my-bucket", "p"),
        ("s3://a.b-c.123/p", "a.b-c.123", "p"),
        (f"s3://{'b' * 63}/p", "b" * 63, "p"),
        ("s3://abc/p q", "abc", "p q"),
    ],
)
def test_open_store_accepts_an_s3_uri(
    no_storage_env: pytest.MonkeyPatch, uri: str, bucket: str, prefix: str
) -> None:
    store = open_store(uri)

    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix) == (bucket, prefix)
    assert store.uri() == f"s3://{bucket}/{prefix}".rstrip("/")


def test_open_store_keeps_local_paths_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    expected = {
        "scythe-data": tmp_path / "scythe-data",
        "./out": tmp_path / "out",
        "out/runs": tmp_path / "out" / "runs",
        "../sibling": tmp_path / ".." / "sibling",
        "./run:1": tmp_path / "run:1",
        "/tmp/x": Path("/tmp/x"),
        str(tmp_path / "a b"): tmp_path / "a b",
        "file:///tmp/x": Path("/tmp/x"),
        "file://localhost/tmp/x": Path("/tmp/x"),
        "FILE://LocalHost/tmp/x": Path("/tmp/x"),
        "file:///tmp/my%20data": Path("/tmp/my data"),
        (tmp_path / "a?b#c").as_uri(): tmp_path / "a?b#c",
    }
    for uri, root in expected.items():
        store = open_store(uri)
        assert isinstance(store, LocalStore), uri
        assert store.root == root, uri


def test_open_store_expands_the_home_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")

    assert open_store("~/runs").root == Path("/home/someone/runs")


def test_the_default_store_is_still_a_local_directory(
    no_storage_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    no_storage_env.chdir(tmp_path)

    assert open_store().uri() == str(tmp_path / "scythe-data")


# --------------------------------------------------------------------------- masking


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("http://AKIA:secret@minio:9000", "http://***@minio:9000"),
        ("https://user@host/path", "https://***@host/path"),
        ("http://u:p@ss@host:1/x", "http://***@host:1/x"),
        ("http://minio:9000", "http://minio:9000"),
        ("s3://my-bucket/a@b", "s3://my-bucket/a@b"),
        (
            'Could not connect to the endpoint URL: "http://k:s@127.0.0.1:1/b/k"',
            'Could not connect to the endpoint URL: "http://***@127.0.0.1:1/b/k"',
        ),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F&X-Amz-Signature=ab12&n=1",
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Signature=***&n=1",
        ),
        (
            "https://h/k?AWSAccessKeyId=AKIA&Signature=x&x-amz-security-token=t",
            "https://h/k?AWSAccessKeyId=***&Signature=***&x-amz-security-token=***",
        ),
    ],
)
def test_mask_url_hides_userinfo_and_signed_query_values(text: str, masked: str) -> None:
    assert mask_url(text) == masked


def _store_with_secret(port: int, monkeypatch: pytest.MonkeyPatch) -> S3Store:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # a refused connection fails at once
    return S3Store(
        "my-bucket", "p", endpoint_url=f"http://AKIA:{SECRET}@127.0.0.1:{port}", region="us-east-1"
    )


def test_no_error_or_repr_shows_the_endpoint_credentials(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store_with_secret(_closed_port(), monkeypatch)

    assert SECRET not in repr(store)
    assert "http://***@127.0.0.1:" in repr(store)
    with caplog.at_level(logging.DEBUG, logger="scythe"):
        for attempt in (
            lambda: store.put_bytes("k", b"v"),
            lambda: store.get_bytes("k"),
            lambda: store.exists("k"),
            lambda: store.list_keys(),
        ):
            with pytest.raises(StorageError) as caught:
                attempt()
            assert SECRET not in str(caught.value)
            assert "http://***@127.0.0.1:" in str(caught.value)
            # nor does the traceback, where a chained botocore error would name the endpoint
            assert SECRET not in "".join(traceback.format_exception(caught.value))
    assert SECRET not in caplog.text


def test_an_invalid_endpoint_with_credentials_is_refused_masked() -> None:
    with pytest.raises(StorageURIError) as caught:
        S3Store("my-bucket", endpoint_url=f"ftp://AKIA:{SECRET}@host")

    assert SECRET not in str(caught.value)
    assert "ftp://***@host" in str(caught.value)


def test_a_refused_uri_with_credentials_is_quoted_masked() -> None:
    for uri in (f"http://AKIA:{SECRET}@host/data", f"s3://AKIA:{SECRET}@my-bucket/p"):
        with pytest.raises(StorageURIError) as caught:
            open_store(uri)
        assert SECRET not in str(caught.value)
        assert "://***@" in str(caught.value)


def test_storage_settings_repr_hides_the_endpoint(no_storage_env: pytest.MonkeyPatch) -> None:
    endpoint = f"http://AKIA:{SECRET}@host:9000"
    no_storage_env.setenv("SCYTHE_STORAGE_ENDPOINT_URL", endpoint)
    settings = storage_settings()

    assert endpoint == settings.ENDPOINT_URL
    assert SECRET not in repr(settings) and SECRET not in str(settings)


@pytest.mark.s3
def test_missing_bucket_error_masks_the_endpoint(moto_server: str) -> None:
    endpoint = moto_server.replace("http://", f"http://AKIA:{SECRET}@")
    store = S3Store("scythe-no-such-bucket", "p", endpoint_url=endpoint)

    with pytest.raises(
        StorageError, match=re.escape("does not exist at http://***@127.0.0.1:")
    ) as caught:
        store.put_bytes("k", b"v")

    assert SECRET not in str(caught.value)
