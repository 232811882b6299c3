"""The lead's conformance suite (taskforge.check) on the sql family."""

from __future__ import annotations

from taskforge.conformance import check_generator
from taskforge.generators.sql import SQL


def test_sql_family_passes_the_conformance_suite() -> None:
    report = check_generator(SQL, samples=2, seed=0)
    assert report.ok, [(r.name, r.detail) for r in report.failures()]
    assert len(report.results) >= 10
