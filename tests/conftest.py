"""Shared fixtures: a real S3 endpoint (moto in server mode) and stores on both backends."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from scythe.storage import LocalStore, S3Store, Store

MOTO_REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Endpoint URL of a moto S3 server on 127.0.0.1, with dummy AWS credentials set."""
    from moto.server import ThreadedMotoServer

    port = int(os.environ.get("SCYTHE_TEST_MOTO_PORT") or _free_port())
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", MOTO_REGION)
        # real profiles, tokens or endpoints of the developer must not leak into tests
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
            env.delenv(name, raising=False)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stop()


@pytest.fixture
def s3_bucket(moto_server: str) -> str:
    """A new, empty bucket on the moto server."""
    import boto3

    bucket = f"scythe-test-{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=moto_server, region_name=MOTO_REGION).create_bucket(
        Bucket=bucket
    )
    return bucket


@pytest.fixture
def s3_store(moto_server: str, s3_bucket: str) -> S3Store:
    """An ``S3Store`` for ``s3://<fresh bucket>/scythe`` on the moto server."""
    return S3Store(s3_bucket, "scythe", endpoint_url=moto_server, region=MOTO_REGION)


@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    """A ``LocalStore`` in a fresh temporary directory."""
    return LocalStore(tmp_path / "store")


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest) -> Store:
    """The same tests on both backends."""
    return request.getfixturevalue(f"{request.param}_store")
