"""Curriculum controllers follow their rules; state round-trips; the adaptive one moves with the learner."""

from __future__ import annotations

import json
import math
import threading

import numpy as np
import pytest

from taskforge.curricula import KnobSpace, Mixture, make_controller, p_mixed
from taskforge.errors import ConfigError
from taskforge.generators.arithmetic import Arithmetic

SPACE = {"n": [3, 4, 5], "k": [5, 6, 7, 8], "l": [5, 10, 20, 40]}
NAMES = ["uniform", "fixed", "saturn", "adarft", "mopps", "sec", "dump", "adaptive"]


def space() -> KnobSpace:
    return KnobSpace(SPACE)


def group(passes: int, g: int = 8) -> list[float]:
    return [1.0] * passes + [0.0] * (g - passes)


def test_space_addressing_and_levels() -> None:
    sp = space()
    assert sp.size == 48
    for c in range(sp.size):
        assert sp.index(sp.cell(c)) == c
    assert sp.cell(0) == {"n": 3, "k": 5, "l": 5} and sp.cell(sp.hardest) == {"n": 5, "k": 8, "l": 40}
    assert sp.levels[0] == 0 and sp.levels[-1] == sp.hardest
    assert sp.difficulty[0] == 0 and sp.difficulty[sp.hardest] == 100
    with pytest.raises(ValueError, match="not a cell"):
        sp.index({"n": 6, "k": 5, "l": 5})


def test_space_from_generator_follows_the_ladder() -> None:
    sp = KnobSpace.from_generator(Arithmetic)
    assert sp.names == ["digits", "digits_b"]  # op is constant along the ladder: a fixed base param
    assert sp.base["op"] == "mul"
    assert sp.values[0] == [1, 2, 3, 4, 5, 6, 8, 10, 15, 20]
    assert len(sp.levels) == len(Arithmetic.levels)
    top = sp.cell(sp.levels[-1])
    assert top == {"digits": 20, "digits_b": 20}
    assert sp.to_params(top)["op"] == "mul"
    assert sp.nearest_level({"digits": 4, "digits_b": 4}) == 5
    # Difficulty comes from the generator, rescaled: the ladder climbs monotonically.
    d = [sp.difficulty[i] for i in sp.levels]
    assert d == sorted(d) and d[0] == 0 and d[-1] == 100


@pytest.mark.parametrize("name", NAMES)
def test_proposals_are_cells_and_state_round_trips(name: str) -> None:
    sp = space()
    a = make_controller(name, space=sp, group_size=8, seed=3)
    rng = np.random.default_rng(0)
    for _ in range(5):
        for cell in a.propose(16):
            assert sp.index(cell) >= 0
            a.observe(cell, group(int(rng.integers(0, 9))))
    state = json.loads(json.dumps(a.state_dict()))
    b = make_controller(name, space=sp, group_size=8, seed=99)
    b.load_state_dict(state)
    for _ in range(5):
        pa, pb = a.propose(16), b.propose(16)
        assert pa == pb
        for cell in pa:
            r = group(int(rng.integers(0, 9)))
            a.observe(cell, r)
            b.observe(cell, r)
    assert json.dumps(a.state_dict()) == json.dumps(b.state_dict())


def test_unknown_controller_and_setting() -> None:
    with pytest.raises(ValueError, match="valid: adaptive, adarft, dump, fixed, mopps, saturn, sec, uniform"):
        make_controller("nope", space=space())
    with pytest.raises(ConfigError, match="no setting"):
        make_controller("adarft", space=space(), etaa=3)


def test_fixed_schedule() -> None:
    sp = space()
    ctrl = make_controller("fixed", space=sp, per_level=10)
    cells = ctrl.propose(25) + ctrl.propose(100)
    levels = [sp.nearest_level(c) for c in cells]
    assert levels[:10] == [0] * 10 and levels[10:20] == [1] * 10 and levels[20:30] == [2] * 10
    assert levels[-1] == len(sp.levels) - 1  # stays at the top


def test_saturn_advances_exactly_when_threshold_crossed() -> None:
    sp = space()
    ctrl = make_controller("saturn", space=sp, epsilon=0.5, check_every=4, eval_size=10)
    level0 = sp.cell(sp.levels[0])
    for _ in range(3):
        ctrl.observe(level0, group(8))
        assert ctrl.eval_request() == []  # not checked before N samples
    ctrl.observe(level0, group(8))
    req = ctrl.eval_request()
    assert req == [level0] * 10
    assert ctrl.eval_request() == []  # one evaluation at a time
    # pass@1 = 5/10 = 0.5 is not above epsilon: stay.
    for i, cell in enumerate(req):
        ctrl.observe_eval(cell, [1.0 if i < 5 else 0.0])
    assert ctrl.level == 0 and ctrl.eval_rollouts == 10
    assert ctrl.propose(3) == [level0] * 3
    for _ in range(4):
        ctrl.observe(level0, group(8))
    req = ctrl.eval_request()
    for i, cell in enumerate(req):
        ctrl.observe_eval(cell, [1.0 if i < 6 else 0.0])  # 0.6 > 0.5: advance
    assert ctrl.level == 1 and ctrl.eval_rollouts == 20
    assert ctrl.propose(2) == [sp.cell(sp.levels[1])] * 2


def test_saturn_train_source_spends_no_eval_rollouts() -> None:
    sp = space()
    ctrl = make_controller("saturn", space=sp, check_every=2, eval_source="train", epsilon=0.5)
    cell = sp.cell(sp.levels[0])
    ctrl.observe(cell, group(7))
    assert ctrl.level == 0
    ctrl.observe(cell, group(6))
    assert ctrl.level == 1 and ctrl.eval_rollouts == 0 and ctrl.eval_request() == []


def test_adarft_moves_target_by_the_formula() -> None:
    sp = space()
    ctrl = make_controller("adarft", space=sp, t0=30.0)
    cells = ctrl.propose(4)
    d = [sp.cell_difficulty(c) for c in cells]
    nearest = np.min(np.abs(sp.difficulty - 30.0))
    assert all(abs(abs(x - 30.0) - nearest) < 1e-9 for x in d)
    rewards = [group(6), group(7), group(8), group(5)]
    for c, r in zip(cells, rewards, strict=True):
        ctrl.observe(c, r)
    mean = np.mean(np.concatenate(rewards))
    assert ctrl.target == pytest.approx(30.0 + 50.0 * math.tanh(2.0 * (mean - 0.5)))
    t = ctrl.target
    cells = ctrl.propose(2)
    ctrl.observe(cells[0], group(0))
    assert ctrl.target == t  # a batch is the size of the last proposal: no move after half of it
    ctrl.observe(cells[1], group(0))
    assert ctrl.target == pytest.approx(max(t - 50.0 * math.tanh(1.0), 0.0))


@pytest.mark.parametrize("name", ["adaptive", "adarft", "saturn"])
def test_all_pass_moves_harder_all_fail_moves_easier(name: str) -> None:
    sp = space()

    def mean_difficulty(passes: int) -> float:
        settings = {
            "saturn": {"check_every": 8, "eval_source": "train"},
            "adarft": {"t0": 50.0},  # start mid-scale so that it can move both ways
            "adaptive": {"init_theta": 3.0},  # likewise (by default it starts at the easy edge)
        }.get(name, {})
        ctrl = make_controller(name, space=sp, seed=1, **settings)
        first = np.mean([sp.cell_difficulty(c) for c in ctrl.propose(16)])
        for _ in range(30):
            for c in ctrl.propose(16):
                ctrl.observe(c, group(passes))
        return float(np.mean([sp.cell_difficulty(c) for c in ctrl.propose(64)])) - first

    assert mean_difficulty(8) > 10
    if name != "saturn":  # saturn never goes back down
        assert mean_difficulty(0) < -10


def test_adaptive_targets_mixed_groups_and_skips_saturated_cells() -> None:
    sp = KnobSpace({"x": list(range(8))})
    ctrl = make_controller("adaptive", space=sp, seed=0)
    true_p = np.array([0.99, 0.97, 0.9, 0.7, 0.5, 0.2, 0.02, 0.0])
    rng = np.random.default_rng(0)
    for _ in range(60):
        for c in ctrl.propose_index(16):
            ctrl.observe(int(c), list((rng.random(8) < true_p[c]).astype(float)))
    chosen = ctrl.propose_index(400)
    share = np.bincount(chosen, minlength=8) / 400
    assert share[3:6].sum() > 0.8  # where groups are mixed
    assert share[[0, 6, 7]].sum() < 0.05  # all-pass / all-fail cells are skipped
    pred = ctrl.predict({"x": 4})
    assert abs(pred["p"] - 0.5) < 0.15
    assert pred["p_zero_var"] == pytest.approx(1 - p_mixed(pred["p"], 8))


def test_adaptive_discounts_declared_guessing() -> None:
    # Knob x0: cells with x0 = 0 pass half the time by luck (declared); knob x1 needs a skill that is
    # in doubt at x1 = 1 and absent beyond. A group mixed by luck (x0 = 0, x1 >= 2) teaches nothing.
    sp = KnobSpace({"x0": [0, 1], "x1": [0, 1, 2, 3]}, guess_rate=lambda p: 0.5 if p["x0"] == 0 else 0.0)
    q = np.array([0.9, 0.5, 0.05, 0.0])
    true_p = (
        np.where(sp.grid[:, 0] == 0, 0.5, 0.0) + np.where(sp.grid[:, 0] == 0, 0.5, 1.0) * q[sp.grid[:, 1]]
    )
    ctrl = make_controller("adaptive", space=sp, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(40):
        for c in ctrl.propose_index(8):
            ctrl.observe(int(c), list((rng.random(8) < true_p[c]).astype(float)))
    chosen = ctrl.propose_index(400)
    luck_only = np.flatnonzero((sp.grid[:, 0] == 0) & (sp.grid[:, 1] >= 2))
    assert np.isin(chosen, luck_only).mean() < 0.1
    assert np.mean(sp.grid[chosen, 1] == 1) > 0.5


def _luck_learner(j: int) -> tuple[KnobSpace, np.ndarray]:
    # Two knobs; luck up to 0.7 on the cells low along knob j (undeclared), slips of 0.08; skill 1 passes
    # the first three values of knob 1-j, skill on knob j is good only up to value 2.
    sp = KnobSpace({"x0": list(range(6)), "x1": list(range(6))})
    pos = sp.pos
    luck = 0.7 * (1.0 - pos[:, j])
    skill = (
        1.0 / (1.0 + np.exp(-(2.0 - 1.5 * sp.grid[:, j]))) / (1.0 + np.exp(-(2.5 - 1.5 * sp.grid[:, 1 - j])))
    )
    return sp, luck + (1.0 - luck - 0.08) * skill


@pytest.mark.parametrize("j", [0, 1])
def test_adaptive_learns_an_undeclared_floor(j: int) -> None:
    # No guess rate is declared; cells low on knob j pass up to 70% by luck. Seen across the grid, the
    # floor is learned (the same skill fails where luck is absent), and the controller does not spend its
    # prompts on cells mixed by luck where skill is absent.
    sp, true_p = _luck_learner(j)
    ctrl = make_controller("adaptive", space=sp, seed=0)
    rng = np.random.default_rng(1)
    for _ in range(60):
        for c in range(sp.size):
            ctrl.observe(c, list((rng.random(8) < true_p[c]).astype(float)))
    floor = ctrl.floor()
    lucky = (sp.grid[:, j] == 0) & (sp.grid[:, 1 - j] >= 4)  # passes ~0.7, by luck only
    assert floor[lucky].mean() > 0.4
    assert floor[sp.grid[:, j] == 5].max() < 0.15
    chosen = ctrl.propose_index(400)
    assert np.isin(chosen, np.flatnonzero(lucky)).mean() < 0.05


def test_adaptive_prefers_progress_over_stuck_mixed_cells() -> None:
    # (0, 1) stays at 0.5 whatever is trained (mixed by luck); (1, 0) climbs from 0.3 while it is
    # trained. Both look alike to a variance-only score; learning progress must favour (1, 0).
    sp = KnobSpace({"x0": [0, 1], "x1": [0, 1]})
    ctrl = make_controller("adaptive", space=sp, seed=0)
    rng = np.random.default_rng(0)
    p = np.array([0.95, 0.5, 0.3, 0.02])
    for _ in range(150):
        for c in ctrl.propose_index(8):
            if c == 2:
                p[2] = min(p[2] + 0.002, 0.8)
            ctrl.observe(int(c), list((rng.random(8) < p[c]).astype(float)))
    assert np.mean(ctrl.propose_index(400) == 2) > 0.6


def test_adaptive_starts_at_the_easy_edge() -> None:
    sp = space()
    ctrl = make_controller("adaptive", space=sp, seed=0)
    first = ctrl.propose_index(64)
    assert np.mean(sp.difficulty[first]) < 25  # of 0..100


def test_adaptive_is_cheap() -> None:
    # Not a timing benchmark (see benchmarks/curriculum_sim.py); a guard against an accidental blow-up.
    import time

    ctrl = make_controller("adaptive", space=space(), seed=0)
    t = time.perf_counter()
    for _ in range(20):
        ctrl.propose(16)
    assert (time.perf_counter() - t) / 320 < 0.005


def _two(sp: KnobSpace, weights, seed: int = 0) -> Mixture:
    return Mixture(
        {"a": make_controller("uniform", space=sp), "b": make_controller("uniform", space=sp)},
        weights,
        seed=seed,
    )


def test_mixture_weights_fixed_and_adaptive() -> None:
    sp = space()
    mix = _two(sp, {"a": 3, "b": 1})
    fams = [f for f, _ in mix.propose(40)]
    assert fams.count("a") == 30 and fams.count("b") == 10
    assert mix.weights() == pytest.approx({"a": 0.75, "b": 0.25})
    ad = _two(sp, "adaptive", seed=1)
    for _ in range(100):
        for f, cell in ad.propose(8):
            ad.observe(f, cell, group(4) if f == "a" else group(8))  # only a's groups teach
    w = ad.weights()
    assert w["a"] > 0.8 and w["b"] >= 0.05
    state = json.loads(json.dumps(ad.state_dict()))
    ad2 = _two(sp, "adaptive", seed=7)
    ad2.load_state_dict(state)
    assert ad2.propose(16) == ad.propose(16)
    with pytest.raises(ValueError):
        Mixture({"a": make_controller("uniform", space=sp)}, {"b": 1.0})


@pytest.mark.parametrize("batch", [1, 2, 3, 8])
def test_mixture_honours_weights_at_any_batch_size(batch: int) -> None:
    sp = space()
    for weights in ({"a": 2, "b": 1}, {"a": 0.9, "b": 0.1}, {"a": 1, "b": 1}):
        mix = _two(sp, weights, seed=batch)
        fams: list[str] = []
        while len(fams) < 1000:
            fams += [f for f, _ in mix.propose(batch)]
        share = fams[:1000].count("a") / 1000
        assert abs(share - weights["a"] / sum(weights.values())) <= 0.02, (weights, batch, share)
        # Within one prompt of the exact share at every point, not only on average.
        counts = np.cumsum([f == "a" for f in fams])
        exact = np.arange(1, len(fams) + 1) * weights["a"] / sum(weights.values())
        assert np.abs(counts - exact).max() <= 1.0 + batch


def test_mixture_state_round_trips_mid_stream() -> None:
    # Credit carried across calls is state: a restored mixture proposes exactly what the original does.
    sp = space()
    ctrls = {
        "a": make_controller("adaptive", space=sp, seed=1),
        "b": make_controller("mopps", space=sp, seed=2),
    }
    mix = Mixture(ctrls, {"a": 2, "b": 1}, seed=3)
    rng = np.random.default_rng(0)
    for _ in range(7):
        for f, cell in mix.propose(1):
            mix.observe(f, cell, group(int(rng.integers(0, 9))))
    state = json.loads(json.dumps(mix.state_dict()))
    other = Mixture(
        {"a": make_controller("adaptive", space=sp, seed=5), "b": make_controller("mopps", space=sp)},
        {"a": 2, "b": 1},
        seed=9,
    )
    other.load_state_dict(state)
    for _ in range(20):
        pa, pb = mix.propose(1), other.propose(1)
        assert pa == pb
        for f, cell in pa:
            r = group(int(rng.integers(0, 9)))
            mix.observe(f, cell, r)
            other.observe(f, cell, r)
    assert json.dumps(mix.state_dict()) == json.dumps(other.state_dict())


@pytest.mark.parametrize("name", NAMES)
def test_thread_safety_smoke(name: str) -> None:
    sp = space()
    ctrl = make_controller(name, space=sp, seed=0)
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for _ in range(50):
                for c in ctrl.propose(4):
                    ctrl.observe(c, group(int(rng.integers(0, 9))))
                    ctrl.eval_request()
                json.dumps(ctrl.state_dict())
        except BaseException as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert ctrl.proposed == 4 * 50 * 4 and ctrl.observed == 4 * 50 * 4


def test_benchmark_quick_mode_runs_and_prints(tmp_path, capsys) -> None:
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "curriculum_sim.py"
    spec = importlib.util.spec_from_file_location("curriculum_sim", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    png = tmp_path / "curves.png"
    assert (
        mod.main(
            [
                "--quick",
                "--seeds",
                "2",
                "--workers",
                "1",
                "--presets",
                "easy-1D,adversarial",
                "--controllers",
                "uniform,saturn,mopps,adaptive,oracle",
                "--png",
                str(png),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    for word in ("| easy-1D | adaptive |", "| adversarial | oracle |", "vs uniform", "median R80"):
        assert word in out
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("family", ["arithmetic", "sat"])
def test_space_from_generator_orders_each_knob_easy_to_hard(family: str) -> None:
    from taskforge.registry import families, generator_class

    if family not in families():
        pytest.skip(f"{family} family not installed")
    cls = generator_class(family)
    sp = KnobSpace.from_generator(cls)
    for j in range(len(sp.names)):
        marginal = [sp.difficulty[sp.grid[:, j] == i].mean() for i in range(sp.shape[j])]
        assert marginal == sorted(marginal)
    # Every ladder level is a cell, and a cell's params generate a task of that family.
    for lvl in sp.levels:
        params = cls.resolve_params(None, sp.to_params(sp.cell(lvl)))
        assert cls().sample(params, 0, "train", 0).family == family
    if family == "sat":  # short formulas are often satisfied at random: the generator says so
        assert sp.guess.max() > 0.3 and sp.guess[sp.levels[-1]] < 0.01


@pytest.mark.parametrize("name", NAMES)
def test_controllers_never_propose_a_cell_the_generator_refuses(name: str) -> None:
    # SAT's knobs cross: a clause of n literals needs k >= n variables, so some cells of the grid its
    # ladder spans are not served. The adaptive controller starts at the easy edge, where they lie.
    from taskforge.registry import families, generator_class

    if "sat" not in families():
        pytest.skip("sat family not installed")
    cls = generator_class("sat")
    sp = KnobSpace.from_generator(cls)
    assert not sp.valid.all()  # the case this test is about
    ctrl = make_controller(name, space=sp, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(10):
        for cell in ctrl.propose(16):
            cls.check_params(sp.to_params(cell))  # raises for a refused cell
            ctrl.observe(cell, group(int(rng.integers(0, 9))))
