"""A temporary security group that admits SSH only from the configured CIDRs."""

from __future__ import annotations

from bake import resources, tags
from bake.errors import BakeError, UsageError
from bake.steps.base import BuildState

CHECKIP_URL = "https://checkip.amazonaws.com"


def runner_cidr() -> str:
    """The address this runner reaches the internet from, as a /32: the default for public_ip."""
    import ipaddress

    import requests

    try:
        ip = requests.get(CHECKIP_URL, timeout=10).text.strip()
        return f"{ipaddress.ip_address(ip)}/32"
    except (requests.RequestException, ValueError) as e:
        raise UsageError(
            f"cannot find this runner's public address ({CHECKIP_URL}: {e}); set ssh_cidrs in bake.toml"
        ) from None


def vpc_of(st: BuildState) -> tuple[str, list[str]]:
    """(VPC id, its CIDR blocks): the subnet's VPC, or the region's default VPC."""
    if st.plan.pool.subnet_id:
        try:
            subnet = st.ec2.describe_subnets(SubnetIds=[st.plan.pool.subnet_id])["Subnets"][0]
        except Exception as e:
            if resources.is_not_found(e):
                raise UsageError(f"pool {st.plan.pool.name}: subnet {st.plan.pool.subnet_id} does not exist") from None
            raise
        vpc_id = subnet["VpcId"]
        vpc = st.ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]
    else:
        vpcs = st.ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
        if not vpcs:
            raise UsageError(f"pool {st.plan.pool.name}: the region has no default VPC; set subnet_id")
        vpc = vpcs[0]
        vpc_id = vpc["VpcId"]
    blocks = [a["CidrBlock"] for a in vpc.get("CidrBlockAssociationSet", [])] or [vpc["CidrBlock"]]
    return vpc_id, blocks


class StepSecurityGroup:
    name = "security-group"
    title = "creating a temporary security group"

    def run(self, st: BuildState) -> None:
        vpc_id, vpc_blocks = vpc_of(st)
        proxied = st.plan.pool.ssh_proxy_command is not None
        if proxied:
            cidrs = []  # SSH arrives through the proxy's own channel (SSM, an endpoint): nothing inbound
        elif st.plan.pool.ssh_cidrs is not None:
            cidrs = st.plan.pool.ssh_cidrs
        elif st.plan.pool.ssh_host == "private_ip":
            cidrs = vpc_blocks
        else:
            cidrs = [runner_cidr()]
        group_name = f"bake-{st.plan.pool.name}-{st.run.id}"
        resp = st.ec2.create_security_group(
            GroupName=group_name,
            Description=f"eks-image-bake builder for pool {st.plan.pool.name}, run {st.run.id}: "
                        + ("nothing inbound" if proxied else "SSH only"),
            VpcId=vpc_id,
            TagSpecifications=[
                {
                    "ResourceType": "security-group",
                    "Tags": tags.as_aws(tags.run_tags(st.run.id, st.plan.pool.name, "security-group", st.run.created_at)),
                }
            ],
        )
        st.security_group_id = resp["GroupId"]
        if proxied:
            st.emit("step", f"security group {st.security_group_id} admits nothing inbound (ssh_proxy_command)", step=self.name)
            return
        v4 = [c for c in cidrs if ":" not in c]
        v6 = [c for c in cidrs if ":" in c]
        st.ec2.authorize_security_group_ingress(
            GroupId=st.security_group_id,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": 22,
                    "ToPort": 22,
                    "IpRanges": [{"CidrIp": c, "Description": "eks-image-bake SSH"} for c in v4],
                    "Ipv6Ranges": [{"CidrIpv6": c, "Description": "eks-image-bake SSH"} for c in v6],
                }
            ],
        )
        st.emit("step", f"security group {st.security_group_id} admits SSH from {', '.join(cidrs)}", step=self.name)

    def cleanup(self, st: BuildState, deadline_s: float = resources.GROUP_TIMEOUT) -> None:
        if not st.security_group_id:
            return
        try:
            resources.delete_security_group(st.ec2, st.security_group_id, timeout=deadline_s)
        except Exception as e:
            raise BakeError(f"cannot delete security group {st.security_group_id}: {e}") from None
        st.emit("cleanup", f"deleted security group {st.security_group_id}", step=self.name)
