"""IAM roles, each allowed only what its tasks touch.

- the **worker task role** (what ``scythe worker`` itself may do): the bucket, nothing else;
- the **execution roles** (what ECS does to start a task): read the named secrets,
  write to the stack's log groups, pull from the stack's image repository;
- the self-hosted Hatchet's task role: only the channel ``aws ecs execute-command`` uses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

ECS_TASKS = "ecs-tasks.amazonaws.com"
# ECR's login call is account-wide: AWS accepts no narrower resource for it.
ECR_LOGIN = {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"}
ECS_EXEC = [
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
]


def assume_role_policy(service: str = ECS_TASKS) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
            ],
        }
    )


def _role(name: str, policy: pulumi.Input[str] | None) -> aws.iam.Role:
    role = aws.iam.Role(name, assume_role_policy=assume_role_policy())
    if policy is not None:
        aws.iam.RolePolicy(
            name, role=role.id, policy=policy, opts=pulumi.ResourceOptions(parent=role)
        )
    return role


def bucket_statements(bucket_arn: str) -> list[dict[str, object]]:
    """Read, write, list and delete in the one bucket (delete: leaf rows and staged retries)."""
    return [
        {
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
            "Resource": bucket_arn,
        },
        {
            "Effect": "Allow",
            "Action": [
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:GetObjectTagging",
                "s3:PutObjectTagging",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ],
            "Resource": f"{bucket_arn}/*",
        },
    ]


def worker_task_role(name: str, bucket_arn: pulumi.Input[str]) -> aws.iam.Role:
    """The role ``scythe worker`` runs with: the experiment bucket only."""
    policy = pulumi.Output.from_input(bucket_arn).apply(
        lambda arn: json.dumps({"Version": "2012-10-17", "Statement": bucket_statements(arn)})
    )
    return _role(f"{name}-worker-task", policy)


def execution_role(
    name: str,
    secret_arns: Sequence[pulumi.Input[str]],
    log_group_arns: Sequence[pulumi.Input[str]],
    repository_arn: pulumi.Input[str] | None = None,
) -> aws.iam.Role:
    """The role ECS starts tasks with: these secrets, these log groups, this repository."""
    repos = [repository_arn] if repository_arn is not None else []
    policy = pulumi.Output.all(list(secret_arns), list(log_group_arns), repos).apply(
        lambda args: json.dumps(_execution_policy(*args))
    )
    return _role(name, policy)


def _execution_policy(
    secrets: list[str], log_groups: list[str], repos: list[str]
) -> dict[str, object]:
    statements: list[dict[str, object]] = [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [f"{arn}:*" for arn in log_groups],
        }
    ]
    if secrets:
        statements.append(
            {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": secrets}
        )
    if repos:
        statements.append(ECR_LOGIN)
        statements.append(
            {
                "Effect": "Allow",
                "Action": [
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchCheckLayerAvailability",
                ],
                "Resource": repos,
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def hatchet_task_role(name: str) -> aws.iam.Role:
    """The self-hosted engine's role: the ECS Exec channel (to create tokens), nothing else."""
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ECS_EXEC, "Resource": "*"}],
        }
    )
    return _role(f"{name}-hatchet-task", policy)
