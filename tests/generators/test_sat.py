"""The sat family: generation per mode, verification (strict and lenient), model counts, guess rate."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest
from pysat.solvers import Cadical153, Glucose4

from taskforge.conformance import check_generator
from taskforge.errors import GenerationError, KnobError
from taskforge.generators.sat import MODEL_CAP, SAT, count_models, draw_clauses, model_count
from taskforge.registry import get_generator
from taskforge.task import Task, Verdict

GEN: SAT = get_generator("sat")  # type: ignore[assignment]


def _params(**kw: object) -> dict:
    return GEN.resolve_params(None, kw)


def _satisfies(clauses: list[list[int]], bits: str) -> bool:
    return all(any((lit > 0) == (bits[abs(lit) - 1] == "1") for lit in c) for c in clauses)


def _all_models(clauses: list[list[int]], k: int, solver: type = Glucose4) -> list[str]:
    """Every model, enumerated by a different solver than the generator's (blocking over all k vars)."""
    out = []
    with solver(bootstrap_with=clauses) as s:
        s.add_clause([k, -k])
        while s.solve():
            model = s.get_model()[:k]
            out.append("".join("1" if x > 0 else "0" for x in model))
            s.add_clause([-x for x in model])
    return out


def _tasks(mode: str, levels: list[tuple[int, int, int]], count: int = 6, **kw: object) -> list[Task]:
    out = []
    for n, k, l in levels:
        params = _params(n=n, k=k, l=l, mode=mode, **kw)
        out += [GEN.sample(params, 11, "train", i) for i in range(count)]
    return out


PLANTED = [(lv["n"], lv["k"], lv["l"]) for lv in SAT.levels]
RANDOM = [(3, 5, 13), (4, 8, 40), (3, 7, 40), (3, 12, 55), (3, 26, 112)]  # rising D
UNIQUE = [(3, 5, 15), (3, 7, 40), (3, 8, 40), (3, 10, 45)]


def test_levels_rise_in_saturn_d_and_start_with_saturns_ladder() -> None:
    ds = [GEN.difficulty(lv) for lv in SAT.levels]
    assert ds == sorted(ds) and len(set(ds)) == len(ds)
    assert [(lv["n"], lv["k"], lv["l"]) for lv in SAT.levels[:3]] == [(3, 5, 5), (3, 5, 6), (3, 5, 13)]


@pytest.mark.parametrize(("mode", "levels"), [("planted", PLANTED), ("random", RANDOM), ("unique", UNIQUE)])
def test_gold_answers_pass_and_are_models(mode: str, levels: list) -> None:
    for task in _tasks(mode, levels, count=4):
        check = task.check
        n, k, l = task.params["n"], task.params["k"], task.params["l"]
        assert len(check["clauses"]) == l and len({tuple(c) for c in check["clauses"]}) == l
        assert all(
            len(c) == n and len({abs(x) for x in c}) == n and max(map(abs, c)) <= k for c in check["clauses"]
        )
        assert _satisfies(check["clauses"], task.answer)
        back = Task.from_json(task.to_json())
        assert GEN.verify(back, GEN.gold_response(task)).passed
        assert GEN.verify(back, f"<answer>{task.answer}</answer>").passed


@pytest.mark.parametrize(
    ("mode", "levels"), [("planted", PLANTED[:14]), ("random", RANDOM[:3]), ("unique", UNIQUE)]
)
def test_model_count_matches_independent_enumeration(mode: str, levels: list) -> None:
    for task in _tasks(mode, levels, count=3):
        models = _all_models(task.check["clauses"], task.check["k"], Cadical153)
        assert task.meta["models"] == min(len(models), MODEL_CAP)
        if mode == "unique":
            assert models == [task.answer]


def test_every_model_passes_and_every_non_model_fails() -> None:
    """Verification checks the clauses, not the gold answer: all 2^k assignments of small formulas."""
    for task in _tasks("planted", [(3, 5, 13), (3, 7, 20), (4, 7, 20)], count=3):
        k = task.check["k"]
        models = set(_all_models(task.check["clauses"], k))
        for bits in ("".join(p) for p in itertools.product("01", repeat=k)):
            verdict = GEN.verify(task, f"\\boxed{{{bits}}}")
            assert verdict.passed == (bits in models), bits
            if not verdict.passed:
                assert verdict.reason == "wrong" and not _satisfies(
                    [task.check["clauses"][verdict.details["violated_clause"]]], bits
                )


def test_exact_counter_equals_solver_enumeration() -> None:
    rng = random.Random(3)
    for _ in range(150):
        k = rng.randint(2, 12)
        n = rng.randint(1, min(k, 4))
        l = rng.randint(1, min(40, 3 * k, math.comb(k, n) * 2**n))
        clauses = [list(c) for c in draw_clauses(n, k, l, rng)]
        exact = model_count(clauses, k, 1 << k)
        if k <= 9:
            assert exact == len(_all_models(clauses, k))
        for cap in (2, MODEL_CAP):
            assert model_count(clauses, k, cap) == count_models(clauses, k, cap)[1] == min(exact, cap)


def test_numbered_format_for_large_k() -> None:
    params = _params(n=3, k=40, l=170)
    task = GEN.sample(params, 0, "train", 0)
    assert task.check["format"] == "numbered"
    problem = json.loads(task.prompt.rsplit("Below is the SAT problem you need to solve:\n", 1)[1])
    assert problem["k"] == 40 and problem["clause"].count(" & ") == 169 and "(x" in problem["clause"]
    assert GEN.verify(task, GEN.gold_response(task)).passed
    letters = GEN.sample(_params(n=3, k=5, l=13, format="numbered"), 0, "train", 0)
    assert "(x" in letters.prompt and GEN.verify(letters, GEN.gold_response(letters)).passed


def test_strict_parse_and_garbage() -> None:
    task = GEN.sample(_params(n=3, k=8, l=40), 0, "train", 0)
    gold = task.answer
    spaced = " ".join(gold)
    assert GEN.verify(task, f"\\boxed{{ {spaced} }}").passed
    assert GEN.verify(task, f"<answer>\n{gold}\n</answer>").passed
    rng = random.Random(0)
    cases = {
        "no_answer": ["", "the answer is " + gold, "\\boxed{" + gold, None],
        "malformed": [
            "\\boxed{}",
            f"\\boxed{{{gold[:-1]}}}",
            f"\\boxed{{{gold}0}}",
            f"\\boxed{{{gold[:-1]}2}}",
            f"\\boxed{{{gold.replace('1', '١')}}}",
            f"\\boxed{{{gold.replace('1', 'T')}}}",
            "<answer><answer></answer></answer>",
            f"\\boxed{{{{{gold}}}}}",
            "<answer>" + "1" * 300_000 + "</answer>",
            f"\\boxed{{{gold},}}",
            f"\\boxed{{0b{gold}}}",
        ],
    }
    for reason, responses in cases.items():
        for response in responses:
            verdict = GEN.safe_verify(task, response)
            assert isinstance(verdict, Verdict) and not verdict.passed, response
            if response is not None:
                assert verdict.reason == reason, (response[:50], verdict)
    for _ in range(50):
        junk = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300))).decode("latin-1")
        for response in (junk, f"\\boxed{{{junk}}}", f"<answer>{junk}</answer>"):
            assert not GEN.safe_verify(task, response).passed


def test_lenient_mode_semantics() -> None:
    """Saturn's reward: no length check, missing positions read 0, extra characters ignored."""
    for task in _tasks("planted", [(3, 5, 13), (3, 7, 20)], count=5, strict=False):
        gold = task.answer
        assert GEN.verify(task, f"\\boxed{{{gold}111}}").passed
        stripped = gold.rstrip("0")
        assert GEN.verify(task, f"\\boxed{{{stripped}}}").passed
        bad = GEN.corrupt_answer(task, random.Random(1))
        assert not GEN.verify(task, bad).passed


def test_corrupt_answer_violates_a_clause() -> None:
    rng = random.Random(5)
    for task in _tasks("planted", PLANTED, count=2) + _tasks("unique", UNIQUE[:2], count=2):
        bad = GEN.corrupt_answer(task, rng)
        assert bad is not None
        verdict = GEN.verify(task, bad)
        assert not verdict.passed and verdict.reason == "wrong"


def test_guess_rate_matches_measured_rate() -> None:
    """planted: exact; the mean over formulas of models/2^k is the chance a random assignment passes."""
    for n, k, l in [(3, 5, 5), (3, 5, 13), (4, 7, 20), (3, 8, 40)]:
        params = _params(n=n, k=k, l=l)
        tasks = [GEN.sample(params, 2, "train", i) for i in range(300)]
        measured = sum(model_count(t.check["clauses"], k, 1 << k) for t in tasks) / (300 * 2**k)
        predicted = GEN.guess_rate(params)
        assert predicted == pytest.approx(measured, rel=0.15, abs=0.003), (n, k, l)
    params = _params(n=3, k=8, l=40, mode="random")
    tasks = [GEN.sample(params, 2, "train", i) for i in range(200)]
    measured = sum(model_count(t.check["clauses"], 8, 1 << 8) for t in tasks) / (200 * 2**8)
    assert GEN.guess_rate(params) <= measured  # a lower bound: random formulas are kept only if satisfiable
    assert GEN.guess_rate(_params(n=3, k=8, l=40, mode="unique")) == 2**-8


def test_bad_knobs_give_clear_errors() -> None:
    for kw, text in [
        ({"n": 3, "k": 27, "l": 100, "format": "letters"}, "letters"),
        ({"n": 5, "k": 4, "l": 3}, "k >= n"),
        ({"n": 3, "k": 5, "l": 71}, "distinct clauses"),
        ({"n": 3, "k": 5, "l": 6, "mode": "unique"}, "unique mode needs l >= 8"),
    ]:
        with pytest.raises(KnobError, match=text):
            _params(**kw)  # refused by check_params, before anything is generated
    with pytest.raises(GenerationError, match="raise l"):
        GEN.generate(_params(n=3, k=10, l=12, mode="unique"), random.Random(0))


def test_same_seed_same_bytes_different_seed_differs() -> None:
    for mode, (n, k, l) in [("planted", (3, 8, 40)), ("random", (3, 8, 40)), ("unique", (3, 8, 40))]:
        params = _params(n=n, k=k, l=l, mode=mode)
        a = [GEN.sample(params, 9, "train", i).to_json() for i in range(10)]
        b = [SAT().sample(params, 9, "train", i).to_json() for i in range(10)]
        c = [GEN.sample(params, 10, "train", i).to_json() for i in range(10)]
        assert a == b and not set(a) & set(c)


@pytest.mark.parametrize("mode", ["random", "unique"])
def test_conformance_suite_passes_in_other_modes(mode: str) -> None:
    levels = tuple(
        {"n": n, "k": k, "l": l, "mode": mode} for n, k, l in (RANDOM if mode == "random" else UNIQUE)
    )
    cls = type(f"SAT_{mode}", (SAT,), {"levels": levels})
    report = check_generator(cls, samples=3, cross_process=False)
    assert report.ok, report.failures()
