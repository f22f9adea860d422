"""IAM: the workers may touch the bucket, ECS may read the secrets; nothing else is granted."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("pulumi")
pytest.importorskip("pulumi_aws")

from infra_harness import BASE_CONFIG, DB_PASSWORD, deploy

CONFIGS = {
    "existing engine": BASE_CONFIG,
    "self-hosted engine": {
        "hatchet": "self-hosted",
        "hatchetToken": "t0k",
        "hatchetDbPassword": DB_PASSWORD,
    },
    "gpu leaves, own image": {
        **BASE_CONFIG,
        "image": "ghcr.io/lab/w:1",
        "specialLeaf": {"kind": "gpu"},
    },
}


@pytest.fixture(scope="module", params=list(CONFIGS), ids=list(CONFIGS))
def stack(request):
    return deploy(CONFIGS[request.param])


def policies(stack):
    """Each inline role policy by role name: its statements, and the role's resource name."""
    roles = {f"{r.name}-id": r.name for r in stack.of_type("aws:iam/role:Role")}
    found = {}
    for policy in stack.of_type("aws:iam/rolePolicy:RolePolicy"):
        found[roles[policy.inputs["role"]]] = json.loads(policy.inputs["policy"])["Statement"]
    return found


def resources(statement):
    value = statement["Resource"]
    return [value] if isinstance(value, str) else value


def test_worker_task_role_grants_the_bucket_and_nothing_else(stack):
    bucket_arn = stack.one("aws:s3/bucket:Bucket").state["arn"]
    statements = policies(stack)["scythe-test-worker-task"]
    granted = {arn for s in statements for arn in resources(s)}
    assert granted == {bucket_arn, f"{bucket_arn}/*"}
    assert all(s["Effect"] == "Allow" for s in statements)
    actions = {a for s in statements for a in s["Action"]}
    assert all(a.startswith("s3:") and "*" not in a for a in actions), actions
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"} <= actions


def test_execution_roles_grant_only_the_stacks_secrets_logs_and_images(stack):
    secrets = {s.state["arn"] for s in stack.of_type("aws:secretsmanager/secret:Secret")}
    logs = {f"{g.state['arn']}:*" for g in stack.of_type("aws:cloudwatch/logGroup:LogGroup")}
    repos = {r.state["arn"] for r in stack.of_type("aws:ecr/repository:Repository")}
    for role, statements in policies(stack).items():
        if not role.endswith("-exec"):
            continue
        for statement in statements:
            actions = set(statement["Action"])
            if actions == {"ecr:GetAuthorizationToken"}:  # account-wide by AWS's design
                assert repos and statement["Resource"] == "*"
                continue
            service = {a.split(":")[0] for a in actions}
            allowed = {"secretsmanager": secrets, "logs": logs, "ecr": repos}[service.pop()]
            assert not service, actions
            assert set(resources(statement)) <= allowed, (role, statement)


def test_every_secret_is_read_only_by_execution_roles(stack):
    for role, statements in policies(stack).items():
        reads = [s for s in statements if any(a.startswith("secretsmanager:") for a in s["Action"])]
        assert not reads or role.endswith("-exec"), role
        for statement in reads:
            assert statement["Action"] == ["secretsmanager:GetSecretValue"]


def test_no_role_is_granted_anything_broader(stack):
    """Wildcard resources only where AWS takes no other: ECR login and ECS Exec's channel."""
    for role, statements in policies(stack).items():
        for statement in statements:
            if "*" not in resources(statement):
                continue
            actions = set(statement["Action"])
            ecs_exec = role == "scythe-test-hatchet-task" and all(
                a.startswith("ssmmessages:") for a in actions
            )
            assert actions == {"ecr:GetAuthorizationToken"} or ecs_exec, (role, statement)
    attachments = stack.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    # only the GPU instances' ECS agent gets AWS's managed policy; no task role does
    assert {a.inputs["role"] for a in attachments} <= {"scythe-test-gpu-instance-mock"}
    assert all(
        a.inputs["policyArn"].endswith("AmazonEC2ContainerServiceforEC2Role") for a in attachments
    )


def test_tasks_run_with_these_roles(stack):
    arns = {r.state["arn"]: r.name for r in stack.of_type("aws:iam/role:Role")}
    for definition in stack.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        execution = arns[definition.inputs["executionRoleArn"]]
        task = arns.get(definition.inputs.get("taskRoleArn"))
        if definition.name == "scythe-test-hatchet":
            assert (execution, task) == ("scythe-test-hatchet-exec", "scythe-test-hatchet-task")
        else:
            assert (execution, task) == ("scythe-test-worker-exec", "scythe-test-worker-task")
