"""A store behaves the same on a local directory and on S3 (moto in server mode)."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from scythe.errors import StorageError
from scythe.storage import LocalStore, S3Store, Store, open_store

RUN = "exp/v1.0.0/2026-01-02T03-04-05.000000Z"


def test_put_then_get_returns_the_same_bytes(store: Store) -> None:
    store.put_bytes(f"{RUN}/manifest.yml", b"status: complete\n")

    assert store.get_bytes(f"{RUN}/manifest.yml") == b"status: complete\n"
    assert store.exists(f"{RUN}/manifest.yml")
    assert not store.exists(f"{RUN}/missing.yml")


def test_put_replaces_an_existing_object(store: Store) -> None:
    store.put_bytes("a.txt", b"old")
    store.put_bytes("a.txt", b"new")

    assert store.get_bytes("a.txt") == b"new"
    assert store.list_keys() == ["a.txt"]


def test_missing_key_error_names_its_uri(store: Store) -> None:
    with pytest.raises(StorageError, match="no object at") as caught:
        store.get_bytes(f"{RUN}/nope.yml")

    assert store.uri(f"{RUN}/nope.yml") in str(caught.value)


def test_uri_is_absolute_and_ends_with_the_key(store: Store) -> None:
    uri = store.uri(f"{RUN}/manifest.yml")

    assert uri.endswith(f"/{RUN}/manifest.yml")
    assert uri.startswith("s3://") or Path(uri).is_absolute()
    assert store.uri() == uri.removesuffix(f"/{RUN}/manifest.yml")


def test_list_keys_is_recursive_sorted_and_relative_to_the_store(store: Store) -> None:
    for key in ["exp/v2/b.txt", "exp/v1/run/a.txt", "exp/v1/z.txt", "other/c.txt", "exp.txt"]:
        store.put_bytes(key, b"x")

    assert store.list_keys("exp") == ["exp/v1/run/a.txt", "exp/v1/z.txt", "exp/v2/b.txt"]
    assert store.list_keys("exp/v1/") == ["exp/v1/run/a.txt", "exp/v1/z.txt"]
    assert store.list_keys() == [
        "exp.txt",
        "exp/v1/run/a.txt",
        "exp/v1/z.txt",
        "exp/v2/b.txt",
        "other/c.txt",
    ]
    assert store.list_keys("absent") == []


def test_list_children_names_immediate_directories_only(store: Store) -> None:
    for key in ["exp/v1.0.0/t1/m.yml", "exp/v1.0.0/t2/m.yml", "exp/v0.9.0/t/m.yml", "exp/f.txt"]:
        store.put_bytes(key, b"x")

    assert store.list_children("exp") == ["v0.9.0", "v1.0.0"]
    assert store.list_children("exp/v1.0.0") == ["t1", "t2"]
    assert store.list_children() == ["exp"]
    assert store.list_children("absent") == []


def test_put_if_absent_writes_once(store: Store) -> None:
    assert store.put_if_absent(f"{RUN}/commit.lock", b"first") is True
    assert store.put_if_absent(f"{RUN}/commit.lock", b"second") is False

    assert store.get_bytes(f"{RUN}/commit.lock") == b"first"


def test_put_if_absent_race_has_exactly_one_winner(store: Store) -> None:
    contenders = 4
    barrier = threading.Barrier(contenders)
    winners: list[bytes] = []

    def contend(data: bytes) -> None:
        barrier.wait()
        if store.put_if_absent("race/key", data):
            winners.append(data)

    threads = [threading.Thread(target=contend, args=(f"{i}".encode(),)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(winners) == 1
    assert store.get_bytes("race/key") == winners[0]


def test_upload_then_download_round_trips_a_file(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "in" / "weather.epw"
    source.parent.mkdir()
    source.write_bytes(bytes(range(256)) * 100)

    store.upload_file(source, f"{RUN}/artifacts/weather/weather.epw")
    target = tmp_path / "out" / "nested" / "copy.epw"
    store.download_file(f"{RUN}/artifacts/weather/weather.epw", target)

    assert target.read_bytes() == source.read_bytes()


def test_download_of_missing_key_names_its_uri(store: Store, tmp_path: Path) -> None:
    with pytest.raises(StorageError) as caught:
        store.download_file("nope.bin", tmp_path / "nope.bin")

    assert store.uri("nope.bin") in str(caught.value)


def test_delete_prefix_removes_everything_under_it_and_nothing_else(store: Store) -> None:
    for key in ["exp/v1/a.txt", "exp/v1/sub/b.txt", "exp/v10/c.txt", "exp/keep.txt"]:
        store.put_bytes(key, b"x")

    store.delete_prefix("exp/v1")

    assert store.list_keys() == ["exp/keep.txt", "exp/v10/c.txt"]
    store.delete_prefix("absent")  # deleting nothing is fine


def test_delete_prefix_refuses_the_store_root(store: Store) -> None:
    with pytest.raises(StorageError, match="whole store"):
        store.delete_prefix("")


@pytest.mark.parametrize("key", ["../escape", "a/../b", "a//b", "a\\b", ""])
def test_invalid_keys_are_refused(store: Store, key: str) -> None:
    with pytest.raises(StorageError, match="invalid store key"):
        store.put_bytes(key, b"x")


def test_a_used_store_survives_pickling(store: Store) -> None:
    store.put_bytes("before.txt", b"written before pickling")

    copy = pickle.loads(pickle.dumps(store))
    copy.put_bytes("after.txt", b"written by the copy")

    assert copy.get_bytes("before.txt") == b"written before pickling"
    assert store.get_bytes("after.txt") == b"written by the copy"
    assert copy.uri("x") == store.uri("x")


def test_s3_store_creates_no_client_until_used(moto_server: str, s3_bucket: str) -> None:
    store = S3Store(s3_bucket, "scythe", endpoint_url=moto_server)
    assert store._client is None

    store.put_bytes("k", b"v")
    assert store._client is not None
    assert pickle.loads(pickle.dumps(store))._client is None


def test_delta_table_round_trips_through_storage_options(store: Store) -> None:
    table = pa.table({"sort_index": pa.array([0, 1, 2], pa.int64()), "r": [0.5, None, 2.0]})
    uri = store.table_uri(f"{RUN}/final/scalars")

    write_deltalake(uri, table, storage_options=store.storage_options())
    first = DeltaTable(uri, storage_options=store.storage_options())
    write_deltalake(uri, table, mode="append", storage_options=store.storage_options())
    second = DeltaTable(uri, storage_options=store.storage_options())

    assert first.version() == 0
    assert first.to_pyarrow_table() == table
    assert second.version() == 1
    assert second.to_pyarrow_table().num_rows == 6
    assert f"{RUN}/final/scalars/_delta_log/00000000000000000001.json" in store.list_keys(RUN)


def test_concurrent_delta_appends_all_land(store: Store) -> None:
    uri = store.table_uri("t/concurrent")
    options = store.storage_options()
    write_deltalake(uri, pa.table({"writer": [-1]}), storage_options=options)
    writers = 4
    barrier = threading.Barrier(writers)

    def append(writer: int) -> None:
        barrier.wait()
        write_deltalake(uri, pa.table({"writer": [writer]}), mode="append", storage_options=options)

    threads = [threading.Thread(target=append, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    result = DeltaTable(uri, storage_options=options)
    assert result.version() == writers
    assert sorted(result.to_pyarrow_table()["writer"].to_pylist()) == [-1, 0, 1, 2, 3]


def test_s3_storage_options_point_delta_at_the_same_endpoint(s3_store: S3Store) -> None:
    options = s3_store.storage_options()

    assert options["AWS_ENDPOINT_URL"] == s3_store.endpoint_url
    assert options["AWS_ALLOW_HTTP"] == "true"
    assert options["AWS_REGION"] == "us-east-1"
    assert options["AWS_ACCESS_KEY_ID"] == "testing"
    assert options["AWS_CONDITIONAL_PUT"] == "etag"
    assert "AWS_S3_ALLOW_UNSAFE_RENAME" not in options


def test_open_store_accepts_a_plain_path(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "data"))

    assert isinstance(store, LocalStore)
    assert store.uri("a/b") == str(tmp_path / "data" / "a" / "b")


def test_open_store_accepts_a_file_uri(tmp_path: Path) -> None:
    store = open_store((tmp_path / "my data").as_uri())

    assert isinstance(store, LocalStore)
    assert store.root == tmp_path / "my data"


def test_open_store_defaults_to_the_configured_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SCYTHE_STORAGE_URI", raising=False)
    monkeypatch.delenv("SCYTHE_STORAGE_BUCKET", raising=False)
    monkeypatch.chdir(tmp_path)

    assert open_store().uri() == str(tmp_path / "scythe-data")

    monkeypatch.setenv("SCYTHE_STORAGE_URI", str(tmp_path / "elsewhere"))
    assert open_store().uri() == str(tmp_path / "elsewhere")


def test_open_store_for_s3_uses_the_configured_endpoint(
    moto_server: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCYTHE_STORAGE_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("SCYTHE_STORAGE_REGION", "us-east-1")

    store = open_store(f"s3://{s3_bucket}/runs/")
    store.put_bytes("exp/manifest.yml", b"ok")

    assert isinstance(store, S3Store)
    assert store.endpoint_url == moto_server
    assert store.uri("exp/manifest.yml") == f"s3://{s3_bucket}/runs/exp/manifest.yml"
    assert open_store(f"s3://{s3_bucket}/runs").get_bytes("exp/manifest.yml") == b"ok"


def test_missing_bucket_error_says_to_create_it(moto_server: str) -> None:
    store = S3Store("scythe-no-such-bucket", "p", endpoint_url=moto_server)

    with pytest.raises(StorageError, match="'scythe-no-such-bucket' does not exist"):
        store.put_bytes("k", b"v")


@pytest.mark.parametrize("uri", ["gs://bucket/prefix", "s3:///no-bucket"])
def test_open_store_refuses_an_unusable_uri_naming_it(uri: str) -> None:
    with pytest.raises(StorageError, match="s3://bucket/prefix") as caught:
        open_store(uri)

    assert repr(uri) in str(caught.value)


def test_open_store_refuses_an_empty_uri() -> None:
    with pytest.raises(StorageError, match="empty storage URI"):
        open_store("")
