"""The conformance suite on every registered family (built-ins and installed plugins)."""

import pytest

import taskforge
from taskforge.conformance import check_generator

# SQL builds databases and code runs the sandbox at every level: over ten seconds each on 2 cores.
SLOW_FAMILIES = {"sql", "code"}


@pytest.mark.parametrize(
    "family",
    [pytest.param(f, marks=pytest.mark.slow) if f in SLOW_FAMILIES else f for f in taskforge.families()],
)
def test_family_passes_conformance(family):
    report = check_generator(family, samples=3)
    assert report.ok, [(r.name, r.detail) for r in report.failures()]


def test_suite_catches_a_broken_generator():
    from tests.broken_generators import NonDeterministic, WrongGold

    assert not check_generator(NonDeterministic, cross_process=False).ok
    failures = {r.name for r in check_generator(WrongGold, cross_process=False).failures()}
    assert "gold answer passes at every level" in failures


def test_each_check_runs_alone_and_says_what_to_fix():
    from taskforge.conformance import CHECKS, Probe, check_gold_passes, check_splits_disjoint
    from tests.broken_generators import WrongGold

    probe = Probe(WrongGold, samples=2)
    assert "gold_response" in check_gold_passes(probe)
    assert check_splits_disjoint(probe) is None
    for _, check, _ in CHECKS:
        assert check.__name__.startswith("check_") and check.__doc__, check
