"""scythe-engine 1.x's S3 helpers, under its import path.

``s3_client`` is created when first used, not at import (reading credentials
at import was one of that version's defects).
"""

from __future__ import annotations

from typing import Any, Literal

from scythe.errors import StorageError


def __getattr__(name: str) -> Any:
    if name == "s3_client":
        import boto3

        client = boto3.client("s3")
        globals()["s3_client"] = client
        return client
    raise AttributeError(f"module 'scythe.utils.s3' has no attribute {name!r}")


def check_experiment_exists(s3: Any, bucket: str, bucket_prefix: str, experiment_id: str) -> bool:
    """Whether any object exists under ``<bucket_prefix>/<experiment_id>`` in ``bucket``."""
    listing = s3.list_objects_v2(
        Bucket=bucket, Prefix=f"{bucket_prefix}/{experiment_id}", MaxKeys=1
    )
    return listing.get("KeyCount", 0) > 0


def raise_on_forbidden_experiment(
    s3: Any,
    bucket: str,
    bucket_prefix: str,
    experiment_id: str,
    existing_artifacts: Literal["forbid", "overwrite"] = "forbid",
) -> None:
    """Raise ``StorageError`` if the experiment exists and ``existing_artifacts`` is ``forbid``."""
    if existing_artifacts == "forbid" and check_experiment_exists(
        s3, bucket, bucket_prefix, experiment_id
    ):
        raise StorageError(
            f"experiment {experiment_id} already exists in s3://{bucket}/{bucket_prefix}"
        )


__all__ = ["check_experiment_exists", "raise_on_forbidden_experiment"]  # and s3_client, lazily
