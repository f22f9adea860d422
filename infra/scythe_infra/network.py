"""Where the tasks run: a new VPC (public task subnets, private data subnets) or an existing one."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from scythe_infra.config import StackConfig

ZONES = 2  # RDS subnet groups need two availability zones


@dataclass(frozen=True)
class Network:
    vpc_id: pulumi.Input[str]
    cidr: pulumi.Input[str]
    task_subnet_ids: list[pulumi.Input[str]]
    private_subnet_ids: list[pulumi.Input[str]]
    worker_security_group: aws.ec2.SecurityGroup


def create_network(name: str, config: StackConfig) -> Network:
    """The VPC, its subnets and the workers' security group (egress only: nothing calls a worker)."""
    if config.vpc_id:
        vpc_id: pulumi.Input[str] = config.vpc_id
        cidr: pulumi.Input[str] = aws.ec2.get_vpc_output(id=config.vpc_id).cidr_block
        task_subnets: list[pulumi.Input[str]] = list(config.subnet_ids)
        private_subnets: list[pulumi.Input[str]] = list(
            config.private_subnet_ids or config.subnet_ids
        )
    else:
        vpc_id, cidr, task_subnets, private_subnets = _new_vpc(name, config)
    workers = aws.ec2.SecurityGroup(
        f"{name}-workers",
        vpc_id=vpc_id,
        description="Scythe workers: no inbound traffic, any outbound (Hatchet, S3, image pulls)",
        egress=[_all_egress()],
        tags={"Name": f"{name}-workers"},
    )
    return Network(vpc_id, cidr, task_subnets, private_subnets, workers)


def _new_vpc(
    name: str, config: StackConfig
) -> tuple[pulumi.Input[str], str, list[pulumi.Input[str]], list[pulumi.Input[str]]]:
    vpc = aws.ec2.Vpc(
        f"{name}-vpc",
        cidr_block=config.vpc_cidr,
        enable_dns_hostnames=True,  # private DNS of the self-hosted Hatchet and of endpoints
        enable_dns_support=True,
        tags={"Name": f"{name}-vpc"},
    )
    child = pulumi.ResourceOptions(parent=vpc)
    gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, opts=child)
    public_routes = aws.ec2.RouteTable(
        f"{name}-public",
        vpc_id=vpc.id,
        routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": gateway.id}],
        opts=child,
    )
    private_routes = aws.ec2.RouteTable(f"{name}-private", vpc_id=vpc.id, opts=child)
    zones = aws.get_availability_zones_output(state="available").names
    blocks = list(ipaddress.ip_network(config.vpc_cidr).subnets(new_prefix=20))
    public, private = [], []
    for i in range(ZONES):
        for kind, routes, found in (
            ("public", public_routes, public),
            ("private", private_routes, private),
        ):
            subnet = aws.ec2.Subnet(
                f"{name}-{kind}-{i}",
                vpc_id=vpc.id,
                cidr_block=str(blocks[i if kind == "public" else ZONES + i]),
                availability_zone=zones[i],
                map_public_ip_on_launch=False,
                tags={"Name": f"{name}-{kind}-{i}"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-{kind}-{i}", subnet_id=subnet.id, route_table_id=routes.id, opts=child
            )
            found.append(subnet.id)
    # S3 traffic stays on AWS's network (and costs no NAT or internet transfer).
    aws.ec2.VpcEndpoint(
        f"{name}-s3",
        vpc_id=vpc.id,
        service_name=aws.get_region_output().region.apply(lambda r: f"com.amazonaws.{r}.s3"),
        vpc_endpoint_type="Gateway",
        route_table_ids=[public_routes.id, private_routes.id],
        opts=child,
    )
    return vpc.id, config.vpc_cidr, public, private


def _all_egress() -> dict[str, object]:
    return {"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}


def ingress_from(group: aws.ec2.SecurityGroup, port: int, description: str) -> dict[str, object]:
    """An ingress rule letting ``group``'s members reach ``port`` over TCP."""
    return {
        "protocol": "tcp",
        "from_port": port,
        "to_port": port,
        "security_groups": [group.id],
        "description": description,
    }
