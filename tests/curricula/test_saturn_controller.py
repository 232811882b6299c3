"""The saturn controller run as Saturn ran it: a start level, a ladder that moves only l at fixed (n, k),
Saturn's benchmark levels held out, an iteration cap, the estimation step, n samples per held-out task."""

from __future__ import annotations

import json

import pytest

from taskforge.curricula import KnobSpace, TaskStream, make_controller
from taskforge.generators.sat import SAT
from taskforge.generators.sat.saturn import SATURN_TEST_LEVELS
from taskforge.task import Task


@pytest.fixture(scope="module")
def sat_space() -> KnobSpace:
    return KnobSpace.from_generator(SAT)


def cells(ctrl) -> list[tuple[int, int, int]]:
    return [tuple(ctrl.space.cell(c)[x] for x in ("n", "k", "l")) for c in ctrl.ladder]


def evaluate(ctrl, pass_rate: float) -> None:
    """Answer the pending evaluation: the first round(pass_rate * rollouts) rollouts pass."""
    req = ctrl.eval_request()
    assert req, "an evaluation was due"
    n = ctrl.settings["eval_samples"]
    passed = round(pass_rate * len(req) * n)
    for i, cell in enumerate(req):
        ctrl.observe_eval(cell, [1.0 if i * n + j < passed else 0.0 for j in range(n)])
    assert ctrl.history[-1][2] == pytest.approx(passed / (len(req) * n))


def test_l_ladder_from_a_start_level_without_benchmark_levels(sat_space) -> None:
    ctrl = make_controller("saturn", space=sat_space, start={"n": 3, "k": 5, "l": 13}, move="l")
    # Only l moves; (3,5,20) and (3,5,25) are Saturn's benchmark levels; beyond l=70 no formula exists
    # (C(5,3) * 7 = 70 distinct clauses a planted assignment satisfies).
    assert cells(ctrl) == [(3, 5, l_) for l_ in (5, 6, 13, 15, 40, 45, 55, 70)]
    assert ctrl.space.cell(ctrl.current) == {"n": 3, "k": 5, "l": 13}
    assert ctrl.propose(2) == [{"n": 3, "k": 5, "l": 13}] * 2
    kept = make_controller("saturn", space=sat_space, start=[3, 5, 13], move="l", holdout=[])
    assert (3, 5, 20) in cells(kept) and kept.space.cell(kept.current)["l"] == 13
    with pytest.raises(ValueError, match="held-out evaluation level"):
        make_controller("saturn", space=sat_space, start={"n": 3, "k": 5, "l": 20}, move="l")
    with pytest.raises(ValueError, match="not a knob"):
        make_controller("saturn", space=sat_space, move="m")


def test_default_ladder_keeps_benchmark_levels_off(sat_space) -> None:
    ladder = set(cells(make_controller("saturn", space=sat_space)))
    everything = set(cells(make_controller("saturn", space=sat_space, holdout=[])))
    assert everything - ladder == set(SATURN_TEST_LEVELS)


def test_iteration_cap_stops_advancing(sat_space) -> None:
    ctrl = make_controller(
        "saturn",
        space=sat_space,
        start={"n": 3, "k": 5, "l": 13},
        move="l",
        iterations=2,
        check_every=2,
        eval_size=4,
        epsilon=0.75,
    )
    for target_l in (13, 15):
        cell = ctrl.space.cell(ctrl.current)
        assert cell["l"] == target_l
        ctrl.observe(cell, [1.0] * 8)
        ctrl.observe(cell, [1.0] * 8)
        evaluate(ctrl, 0.75)  # not above epsilon: stay
        assert ctrl.space.cell(ctrl.current)["l"] == target_l and not ctrl.finished
        ctrl.observe(cell, [1.0] * 8)
        ctrl.observe(cell, [1.0] * 8)
        evaluate(ctrl, 1.0)
    assert ctrl.finished and ctrl.completed == 2 and ctrl.space.cell(ctrl.current)["l"] == 15
    for _ in range(4):
        ctrl.observe(ctrl.space.cell(ctrl.current), [1.0] * 8)
    assert ctrl.eval_request() == [] and ctrl.propose(1) == [{"n": 3, "k": 5, "l": 15}]


def test_estimation_skips_a_level_already_above_epsilon(sat_space) -> None:
    ctrl = make_controller(
        "saturn",
        space=sat_space,
        start={"n": 3, "k": 5, "l": 5},
        move="l",
        estimate=True,
        eval_size=3,
        eval_samples=4,
        epsilon=0.5,
        check_every=100,
    )
    # On entering: an evaluation before any training, 3 tasks x 4 samples.
    req = ctrl.eval_request()
    assert req == [{"n": 3, "k": 5, "l": 5}] * 3
    for cell in req:
        ctrl.observe_eval(cell, [1.0, 1.0, 1.0, 0.0])
    assert ctrl.eval_rollouts == 12 and ctrl.history[-1][2] == 0.75
    # Already above epsilon: (3,5,5) is skipped without counting as an iteration; (3,5,6) is estimated.
    assert ctrl.space.cell(ctrl.current)["l"] == 6 and ctrl.completed == 0
    evaluate(ctrl, 0.25)
    assert ctrl.space.cell(ctrl.current)["l"] == 6
    assert ctrl.eval_request() == []  # now training: the next check after check_every prompts
    restored = make_controller(
        "saturn",
        space=sat_space,
        start={"n": 3, "k": 5, "l": 5},
        move="l",
        estimate=True,
        eval_size=3,
        eval_samples=4,
        epsilon=0.5,
        check_every=100,
    )
    restored.load_state_dict(json.loads(json.dumps(ctrl.state_dict())))
    assert restored.current == ctrl.current and restored.history == ctrl.history
    assert restored.eval_request() == [] and restored.propose(1) == ctrl.propose(1)


def test_stream_estimates_before_training_with_n_samples_per_task() -> None:
    seen: list[list[str]] = []

    def evaluator(tasks: list[Task]) -> list[float]:
        seen.append([t.id for t in tasks])
        assert all(t.split == "val" for t in tasks)
        return [0.0] * len(tasks)

    stream = TaskStream.from_families(
        "sat",
        "saturn",
        seed=0,
        batch=2,
        evaluator=evaluator,
        controller_settings={
            "start": {"n": 3, "k": 5, "l": 13},
            "move": "l",
            "estimate": True,
            "eval_size": 2,
            "eval_samples": 3,
        },
    )
    first = next(stream)
    assert len(seen) == 1 and len(seen[0]) == 6  # evaluated before the first training task was made
    ids = seen[0]
    assert ids[0] == ids[1] == ids[2] != ids[3] == ids[4] == ids[5]  # each held-out task sampled 3 times
    assert first.params["l"] == 13 and first.split == "train"
