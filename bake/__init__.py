"""Bake container images into EKS node AMIs.

This package is the AMI side. It never imports cdktf, the provider bindings or the
``constructs/`` source root: ``python -m bake`` must stay fast and light.
"""

__version__ = "0.1.0"
