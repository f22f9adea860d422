"""GPU instances for the optional ``specialLeaf`` service of kind ``gpu`` (Fargate has no GPUs).

An auto-scaling group of ECS GPU-optimised instances, Spot by default above an
on-demand base like the Fargate services, offered to the cluster as one more
capacity provider whose managed scaling follows the service's tasks.
"""

from __future__ import annotations

import base64

import pulumi
import pulumi_aws as aws

from scythe_infra.config import SpecialLeafConfig
from scythe_infra.iam import assume_role_policy
from scythe_infra.network import Network

GPU_AMI_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2/gpu/recommended/image_id"
# What the ECS agent on an instance needs (register, pull, log); the tasks get their own role.
ECS_INSTANCE_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"


def gpu_capacity_provider(
    name: str,
    cluster: aws.ecs.Cluster,
    network: Network,
    leaf: SpecialLeafConfig,
    assign_public_ip: bool,
) -> aws.ecs.CapacityProvider:
    """GPU instances as a capacity provider of ``cluster``, at most ``maxCount`` of them."""
    template = _launch_template(name, cluster, network, leaf, assign_public_ip)
    group = aws.autoscaling.Group(
        f"{name}-gpu",
        min_size=0,
        max_size=leaf.max_count,
        vpc_zone_identifiers=network.task_subnet_ids,
        mixed_instances_policy={
            "launch_template": {
                "launch_template_specification": {
                    "launch_template_id": template.id,
                    "version": "$Latest",
                }
            },
            "instances_distribution": {
                "on_demand_base_capacity": leaf.on_demand_base,
                "on_demand_percentage_above_base_capacity": 0 if leaf.spot else 100,
                "spot_allocation_strategy": "price-capacity-optimized",
            },
        },
        tags=[{"key": "AmazonECSManaged", "value": "true", "propagate_at_launch": True}],
        opts=pulumi.ResourceOptions(ignore_changes=["desiredCapacity"]),
    )
    return aws.ecs.CapacityProvider(
        f"{name}-gpu",
        auto_scaling_group_provider={
            "auto_scaling_group_arn": group.arn,
            "managed_scaling": {"status": "ENABLED", "target_capacity": 100},
            "managed_termination_protection": "DISABLED",
            "managed_draining": "ENABLED",
        },
    )


def _instance_profile(name: str) -> aws.iam.InstanceProfile:
    role = aws.iam.Role(
        f"{name}-gpu-instance", assume_role_policy=assume_role_policy("ec2.amazonaws.com")
    )
    aws.iam.RolePolicyAttachment(
        f"{name}-gpu-instance",
        role=role.name,
        policy_arn=ECS_INSTANCE_POLICY,
        opts=pulumi.ResourceOptions(parent=role),
    )
    return aws.iam.InstanceProfile(f"{name}-gpu-instance", role=role.name)


def _launch_template(
    name: str,
    cluster: aws.ecs.Cluster,
    network: Network,
    leaf: SpecialLeafConfig,
    assign_public_ip: bool,
) -> aws.ec2.LaunchTemplate:
    """ECS's GPU-optimised AMI, joining ``cluster``; metadata only with a session token."""
    user_data = cluster.name.apply(
        lambda c: base64.b64encode(
            f"#!/bin/bash\necho ECS_CLUSTER={c} >> /etc/ecs/ecs.config\n".encode()
        ).decode()
    )
    return aws.ec2.LaunchTemplate(
        f"{name}-gpu",
        image_id=aws.ssm.get_parameter_output(name=GPU_AMI_PARAMETER).value,
        instance_type=leaf.instance_type,
        iam_instance_profile={"arn": _instance_profile(name).arn},
        network_interfaces=[
            {
                "associate_public_ip_address": str(assign_public_ip).lower(),
                "security_groups": [network.worker_security_group.id],
            }
        ],
        user_data=user_data,
        metadata_options={"http_tokens": "required"},
    )
