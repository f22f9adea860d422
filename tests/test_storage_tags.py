"""On S3, a run's intermediates carry the tag the bucket's lifecycle rule expires."""

from __future__ import annotations

import boto3
import pytest

from scythe.storage import INTERMEDIATE_TAG, S3Store

pytestmark = pytest.mark.s3


def _tags(store: S3Store, moto_server: str, key: str) -> dict[str, str]:
    client = boto3.client("s3", endpoint_url=moto_server)
    found = client.get_object_tagging(Bucket=store.bucket, Key=store._key(key))["TagSet"]
    return {t["Key"]: t["Value"] for t in found}


def test_intermediates_are_tagged_and_results_are_not(s3_store, moto_server):
    run = "exp/v1.0.0/2026-01-01T00-00-00.000000Z"
    s3_store.put_bytes(f"{run}/scatter-gather/node-0/batch.parquet", b"rows")
    assert s3_store.put_if_absent(f"{run}/scatter-gather/node-0/manifest.json", b"{}")
    s3_store.put_bytes(f"{run}/manifest.yml", b"status: complete")
    s3_store.put_bytes(f"{run}/final/scalars/part-0.parquet", b"rows")
    key, value = INTERMEDIATE_TAG.split("=")
    assert _tags(s3_store, moto_server, f"{run}/scatter-gather/node-0/batch.parquet") == {
        key: value
    }
    assert _tags(s3_store, moto_server, f"{run}/scatter-gather/node-0/manifest.json") == {
        key: value
    }
    assert _tags(s3_store, moto_server, f"{run}/manifest.yml") == {}
    assert _tags(s3_store, moto_server, f"{run}/final/scalars/part-0.parquet") == {}


def test_only_the_intermediates_folder_of_a_run_is_tagged_not_a_name_like_it(s3_store, moto_server):
    # experiment names may be any text without '/': one named like the folder keeps its results
    run = "scatter-gather/v1.0.0/2026-01-01T00-00-00.000000Z"
    s3_store.put_bytes(f"{run}/final/scalars/part-0.parquet", b"rows")
    assert s3_store.put_if_absent(f"{run}/final/scalars/part-1.parquet", b"rows")
    s3_store.put_bytes(f"{run}/scatter-gather/node-0/batch.parquet", b"rows")
    key, value = INTERMEDIATE_TAG.split("=")
    assert _tags(s3_store, moto_server, f"{run}/final/scalars/part-0.parquet") == {}
    assert _tags(s3_store, moto_server, f"{run}/final/scalars/part-1.parquet") == {}
    assert _tags(s3_store, moto_server, f"{run}/scatter-gather/node-0/batch.parquet") == {
        key: value
    }
