"""``NodePoolsStack``: the AWS provider, the state backend and one ``NodePool`` per pool."""

from __future__ import annotations

from cdktf import LocalBackend, S3Backend, TerraformStack
from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderDefaultTags
from constructs import Construct

from nodepools.pool import NodePool
from nodepools.props import StackProps

# Relative to the stack's folder (cdktf.out/stacks/nodepools): the project root, where `cdktf`
# and `python main.py` run, so the state file survives a clean of cdktf.out/.
DEFAULT_LOCAL_STATE = "../../../terraform.nodepools.tfstate"


class NodePoolsStack(TerraformStack):
    def __init__(self, scope: Construct, id: str, props: StackProps) -> None:
        super().__init__(scope, id)
        p = props.provider

        def provider(id: str, region: str, alias: str | None = None) -> AwsProvider:
            # No endpoints, no skip flags: tests point the provider at moto with AWS_ENDPOINT_URL.
            return AwsProvider(
                self, id,
                region=region,
                alias=alias,
                profile=p.profile,
                allowed_account_ids=list(p.allowed_account_ids) or None,
                default_tags=[AwsProviderDefaultTags(tags=dict(p.default_tags))] if p.default_tags else None,
            )

        provider("aws", props.region)
        # One alias per other region (named after it: `aws.eu-west-1`); the default serves the
        # stack's region, so a one-region stack is exactly what it was.
        regional: dict[str, AwsProvider | None] = {props.region: None}
        regional.update({r: provider(f"aws_{r}", r, alias=r) for r in props.regions()})
        s = props.state
        if s.backend == "s3":
            S3Backend(
                self,
                bucket=s.bucket,
                key=s.key,
                region=s.region or props.region,
                dynamodb_table=s.dynamodb_table,
                encrypt=s.encrypt,
                kms_key_id=s.kms_key_id,
                role_arn=s.role_arn,
            )
            if s.use_lockfile is not None:  # S3-native locking (terraform >= 1.10): no binding yet
                self.add_override("terraform.backend.s3.use_lockfile", s.use_lockfile)
        else:
            LocalBackend(self, path=s.path or DEFAULT_LOCAL_STATE)
        self.pools = {pool.name: NodePool(self, pool.name, pool, regional) for pool in props.pools}
