"""Over-long responses are rejected before any extraction (issue 10): every family, one central check
(`Generator.screen`, from `safe_verify` and from the batch paths), constant time: the verifier and the
extractors never see the text."""

from __future__ import annotations

import pytest

import taskforge
from taskforge.api import verify_many
from taskforge.registry import get_generator

FAMILIES = ["arithmetic", "sat", "code", "sql"]
HUGE = "<answer>" + "9" * (50 << 20) + "</answer>"  # 50 MB: the extractors took about 10 s over it


@pytest.fixture(scope="module")
def tasks() -> dict:
    return {f: next(iter(taskforge.generate(f, 1, level=0, seed=3))) for f in FAMILIES}


def _never(*args, **kwargs):
    raise AssertionError("the verifier ran on an over-long response")


@pytest.mark.parametrize("family", FAMILIES)
def test_over_long_response_is_rejected_before_the_verifier(family: str, tasks, monkeypatch) -> None:
    gen = get_generator(family)
    assert gen.max_response_chars is not None and gen.max_response_chars < len(HUGE)
    monkeypatch.setattr(type(gen), "verify", _never)
    monkeypatch.setattr("taskforge.extract.extract_block", _never, raising=False)
    verdict = gen.safe_verify(tasks[family], HUGE)
    assert verdict.reason == "rejected" and not verdict.passed, verdict
    assert "longer than" in verdict.details["error"]


@pytest.mark.parametrize("family", FAMILIES)
def test_batch_paths_reject_too(family: str, tasks) -> None:
    task = tasks[family]
    gen = get_generator(family)
    limit = gen.max_response_chars
    just_over = "x" * (limit + 1)
    verdicts = verify_many([task, task, task], [HUGE, just_over, gen.gold_response(task)])
    assert [v.reason for v in verdicts[:2]] == ["rejected", "rejected"]
    assert verdicts[2].passed  # the limit leaves ordinary answers alone
    assert [v.reason for v in gen.verify_many([task], [HUGE])] == ["rejected"]
