"""The experiment bucket: public access blocked, encrypted, unversioned, intermediates expiring."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("pulumi")
pytest.importorskip("pulumi_aws")

from infra_harness import BASE_CONFIG, deploy


@pytest.fixture(scope="module")
def stack():
    return deploy({**BASE_CONFIG, "intermediatesExpireDays": 12, "bucketName": "lab-runs"})


def test_bucket_blocks_every_kind_of_public_access(stack):
    bucket = stack.one("aws:s3/bucket:Bucket")
    block = stack.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert block.inputs["bucket"] == f"{bucket.name}-id"
    for setting in (
        "blockPublicAcls",
        "blockPublicPolicy",
        "ignorePublicAcls",
        "restrictPublicBuckets",
    ):
        assert block.inputs[setting] is True, setting
    ownership = stack.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls")
    assert ownership.inputs["rule"] == {"objectOwnership": "BucketOwnerEnforced"}


def test_bucket_is_encrypted_and_unversioned(stack):
    encryption = stack.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    (rule,) = encryption.inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    versioning = stack.one("aws:s3/bucketVersioning:BucketVersioning")
    assert versioning.inputs["versioningConfiguration"] == {"status": "Disabled"}


def test_bucket_name_and_destroy_protection_come_from_config(stack):
    bucket = stack.one("aws:s3/bucket:Bucket")
    assert bucket.inputs["bucket"] == "lab-runs"
    assert bucket.inputs["forceDestroy"] is False


def test_intermediates_expire_and_nothing_else_does(stack):
    from scythe_infra.storage import INTERMEDIATE_TAG

    lifecycle = stack.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    rules = {rule["id"]: rule for rule in lifecycle.inputs["rules"]}
    expire = rules["expire-scatter-gather-intermediates"]
    assert expire["status"] == "Enabled"
    assert expire["filter"] == {"tag": {"key": INTERMEDIATE_TAG[0], "value": INTERMEDIATE_TAG[1]}}
    assert expire["expiration"] == {"days": 12}
    # every other rule only cleans up unfinished uploads: results are never expired
    others = [r for r in rules.values() if r is not expire]
    assert others and all("expiration" not in r for r in others)
    assert all("abortIncompleteMultipartUpload" in r for r in others)


def test_bucket_policy_only_denies_plain_http(stack):
    policy = json.loads(stack.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == ["arn:aws:s3:::lab-runs", "arn:aws:s3:::lab-runs/*"]
