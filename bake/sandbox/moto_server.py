"""Entry point of the sandbox's moto server process: ``python -m bake.sandbox.moto_server -H HOST -p PORT``.

It runs moto's own server, with one change: AWS itself publishes the EKS-optimized AMI
parameters under ``/aws/service/eks/``, and moto (like AWS) refuses a PutParameter there. Here
PutParameter on that prefix stores the value as if AWS had published it, so the sandbox can
seed the base AMI and a test can "publish" a new one to force a rebake. It also answers EBS
fast snapshot restore, which moto lacks (``bake.sandbox.moto_fsr``).
"""

from __future__ import annotations

import sys
from typing import Any

PUBLISHED_PREFIX = "/aws/service/eks/"


def _allow_published_parameters() -> None:
    from moto.core.utils import utcnow
    from moto.ssm.exceptions import ParameterAlreadyExists
    from moto.ssm.models import Parameter, SimpleSystemManagerBackend

    original = SimpleSystemManagerBackend.put_parameter

    def put_parameter(self: Any, name: str, description: str, value: str, parameter_type: str,
                      allowed_pattern: str, keyid: str, overwrite: bool, *args: Any, **kwargs: Any) -> Any:
        if not name.startswith(PUBLISHED_PREFIX):
            return original(self, name, description, value, parameter_type, allowed_pattern, keyid, overwrite, *args, **kwargs)
        versions = self._parameters[name]
        if versions and not overwrite:
            raise ParameterAlreadyExists()
        versions.append(Parameter(
            account_id=self.account_id, name=name, value=value, parameter_type=parameter_type,
            description=description, allowed_pattern=None, keyid=None, last_modified_date=utcnow(),
            version=len(versions) + 1, data_type=kwargs.get("data_type") or "text",
        ))
        return versions[-1]

    SimpleSystemManagerBackend.put_parameter = put_parameter  # type: ignore[method-assign]


def main(argv: list[str]) -> None:
    _allow_published_parameters()
    from bake.sandbox import moto_fsr

    moto_fsr.install()
    from moto.server import main as moto_main

    moto_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
