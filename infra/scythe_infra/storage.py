"""The experiment bucket: private, encrypted, unversioned, intermediates expiring."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

import scythe.storage
from scythe_infra.config import StackConfig

INTERMEDIATE_TAG = tuple(scythe.storage.INTERMEDIATE_TAG.split("=", 1))
"""The object tag the lifecycle rule expires: Scythe's S3 store writes every object of a
run's ``scatter-gather/`` intermediates with it (``scythe.storage.INTERMEDIATE_TAG``).

S3 lifecycle filters match key *prefixes*, and a run's intermediates sit in the
middle of its keys (``<prefix>/<experiment>/<version>/<time>/scatter-gather/...``),
so the rule selects them by tag instead (see docs/deployment.md).
"""


@dataclass(frozen=True)
class Storage:
    bucket: aws.s3.Bucket
    public_access_block: aws.s3.BucketPublicAccessBlock
    encryption: aws.s3.BucketServerSideEncryptionConfiguration
    versioning: aws.s3.BucketVersioning
    lifecycle: aws.s3.BucketLifecycleConfiguration
    policy: aws.s3.BucketPolicy


def create_storage(name: str, config: StackConfig) -> Storage:
    """The bucket and its settings; every setting is its own resource, as AWS provider v7 wants."""
    bucket = aws.s3.Bucket(
        f"{name}-runs",
        bucket=config.bucket_name,
        force_destroy=config.force_destroy,
        tags={"scythe:stack": name},
    )
    child = pulumi.ResourceOptions(parent=bucket)
    public_access_block = aws.s3.BucketPublicAccessBlock(
        f"{name}-runs-public-access",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=child,
    )
    aws.s3.BucketOwnershipControls(
        f"{name}-runs-ownership",
        bucket=bucket.id,
        rule={"object_ownership": "BucketOwnerEnforced"},  # no ACLs at all
        opts=child,
    )
    encryption = aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-runs-encryption",
        bucket=bucket.id,
        rules=[
            {
                "apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"},
                "bucket_key_enabled": True,
            }
        ],
        opts=child,
    )
    versioning = aws.s3.BucketVersioning(
        f"{name}-runs-versioning",
        bucket=bucket.id,
        # Delta tables keep their own history; S3 versions would only keep deleted bytes.
        versioning_configuration={"status": "Disabled"},
        opts=child,
    )
    lifecycle = _lifecycle(name, bucket, config, child)
    policy = aws.s3.BucketPolicy(
        f"{name}-runs-tls-only",
        bucket=bucket.id,
        policy=bucket.arn.apply(_tls_only_policy),
        opts=pulumi.ResourceOptions(parent=bucket, depends_on=[public_access_block]),
    )
    return Storage(bucket, public_access_block, encryption, versioning, lifecycle, policy)


def _lifecycle(
    name: str, bucket: aws.s3.Bucket, config: StackConfig, opts: pulumi.ResourceOptions
) -> aws.s3.BucketLifecycleConfiguration:
    key, value = INTERMEDIATE_TAG
    return aws.s3.BucketLifecycleConfiguration(
        f"{name}-runs-lifecycle",
        bucket=bucket.id,
        rules=[
            {
                "id": "expire-scatter-gather-intermediates",
                "status": "Enabled",
                "filter": {"tag": {"key": key, "value": value}},
                "expiration": {"days": config.intermediates_expire_days},
            },
            {
                "id": "abort-incomplete-multipart-uploads",
                "status": "Enabled",
                "filter": {"prefix": ""},
                "abort_incomplete_multipart_upload": {"days_after_initiation": 2},
            },
        ],
        opts=opts,
    )


def _tls_only_policy(bucket_arn: str) -> str:
    """A bucket policy that refuses every request not made over TLS; it grants nothing."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )
