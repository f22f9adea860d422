"""Shared fixtures: a real S3 endpoint (moto in server mode) and stores on both backends."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from scythe.storage import LocalStore, S3Store, Store

# Shared, noisy machines: no per-example deadline (speed is measured in benchmarks/).
settings.register_profile("scythe", deadline=None)
settings.load_profile("scythe")

MOTO_REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with code {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"moto server did not listen on 127.0.0.1:{port} within {timeout} s")


def _moto_port() -> int:
    """TEST_MOTO_PORT (one port per pytest-xdist worker: gw0 takes it, gw1 the next), else a free one."""
    base = os.environ.get("TEST_MOTO_PORT")
    if not base:
        return _free_port()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(base) + int(worker.removeprefix("gw") or 0)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Endpoint URL of a moto S3 server on 127.0.0.1, with dummy AWS credentials set.

    The server runs in its own process: deltalake may hold the GIL while it
    waits on HTTP, which would starve a server thread in the test process.
    """
    port = _moto_port()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", MOTO_REGION)
        # real profiles, tokens or endpoints of the developer must not leak into tests
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
            env.delenv(name, raising=False)
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for_port(port, process)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


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
