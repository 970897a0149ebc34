"""Whether the tests run in CI, read one way everywhere.

``.ci/run`` exports ``CI=true`` itself; GitHub Actions and most CI services set ``CI=true``
too. Under CI a missing component fails the test instead of skipping it.
"""

from __future__ import annotations

import os

import pytest

TRUE = ("1", "true", "yes")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in TRUE


def unavailable(reason: str) -> None:
    """Fail under CI, skip elsewhere: a missing component never turns into a green CI run."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing component is a failure)", pytrace=False)
    pytest.skip(reason)
