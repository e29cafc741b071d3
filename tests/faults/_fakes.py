"""The fake batch schedulers the fault tests run against: one case per backend flavour.

A test module picks its cases with ``fake_case = fake_case_fixture(...)`` and
imports :func:`personality` (which the ``fake_scheduler`` fixture of
tests/fakesched reads to start the right fake).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

__all__ = ["FAKE_CASES", "fake_case_fixture", "personality"]

#: case id -> (backend name in jobfleet, fake personality, extra backend options)
FAKE_CASES: dict[str, tuple[str, str, str]] = {
    "htcondor": ("htcondor", "htcondor", ""),
    "lsf": ("lsf", "lsf", ""),
    "openpbs": ("pbs", "pbs", 'flavour = "openpbs"'),
    "torque": ("pbs", "pbs", 'flavour = "torque"'),
    "sge": ("sge", "sge", ""),
    "dirac": ("dirac", "dirac", ""),
}


def fake_case_fixture(*names: str) -> Any:
    """A ``fake_case`` fixture parametrised over the cases ``names`` (default: all)."""

    @pytest.fixture(params=list(names or FAKE_CASES))
    def fake_case(
        request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[tuple[str, str, str]]:
        if request.param in ("openpbs", "torque"):
            monkeypatch.setenv("FAKESCHED_PBS_FLAVOUR", request.param)  # the fake's flavour
        yield FAKE_CASES[request.param]

    return fake_case


@pytest.fixture
def personality(fake_case: tuple[str, str, str]) -> str:
    return fake_case[1]
