"""Curriculum controllers against simulated learners: how many rollouts until the hardest cell is learnt.

A learner has latent skills theta_j. The pass probability of cell x is

    p(x) = c(x) + (1 - c(x) - s) * prod_j sigmoid(a_j (theta_j - b_j(x)))

with a guess floor c and a slip s. A GRPO group is G Bernoulli draws at p(x). Skills move only on mixed
groups, by eta * sqrt(r (1 - r)) * 4 sigma_j (1 - sigma_j) (r: the group's pass fraction), so only items
near a skill's frontier teach it, and a group mixed by luck where a skill is far below the item teaches
that skill nothing. Presets (parameters drawn at random per seed):

- easy-1D: one knob, one skill.
- SAT-like: two knobs and skills, a guess floor that is high on easy cells (short formulas are often
  satisfied at random; the controller is told the guess rate, as a generator declares it), slips.
- code-like: three knobs and skills, skill 3 learns only once skill 1 is up (a prerequisite), and skills
  fade back toward their start (forgetting).
- adversarial: an irrelevant knob, an unlearnable region (the top value of knob 2 always fails), and
  drift (knob 1's items get harder as training goes on).
- luck-x0 / luck-x1: a guess floor of 0.5-0.7 on the cells low along knob 1 (resp. 2), falling to 0
  along it, not declared (a space built by hand); slips 0.04-0.1.
- misdeclared: the same floor along knob 1, while the space declares one along knob 2.
- non-monotone: knob 2's values are not listed easy to hard (its hardest value sits mid-list); the
  target is the truly hardest cell.
- narrow-band: skills move only on groups whose pass fraction lies in a band 0.25 wide (2-3 or 3-4 of 8).
- compensatory: our own learner family, unlike the others: one sigmoid of the summed skill margins (a
  skill can make up for another), an undeclared floor on the cells easy on both knobs, slips to 0.1.

Every rollout counts toward the budget, Saturn's evaluation rollouts included. Metrics per run: R80 =
rollouts until the target cell's true pass rate reaches 0.8 (the hardest learnable cell; censored at the
budget) and the share of zero-variance training groups until then; with --whole-budget every run goes to
the budget and AULC (mean true pass rate over the learnable cells averaged over the run), the whole-run
zero-variance share and the final mean pass rate are added. Seeds are paired: every controller meets the
same learners. The oracle is myopic: it sees the true pass rates and the learner's true one-step skill
gain and picks the cell with the largest expected gain; it is a ceiling for a controller that only
looks one batch ahead, not for every possible policy. The published samplers (MoPPS, SEC, DUMP: their
update rules re-implemented in curricula/baselines.py) run with the defaults set there.

    python benchmarks/curriculum_sim.py            # 20 held-out seeds (100-119) per preset -> benchmarks/results/
    python benchmarks/curriculum_sim.py --quick    # 3 seeds, 20k-rollout budget: a smoke run (R80 mostly censored)
    python benchmarks/curriculum_sim.py --first-seed 0 --seeds 8   # the training seeds the settings were tuned on
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from taskforge.curricula import KnobSpace, make_controller

G = 8  # rollouts per prompt
BATCH = 16  # prompts per step
CONTROLLERS = ("uniform", "fixed", "saturn", "adarft", "mopps", "sec", "dump", "adaptive", "oracle")
PUBLISHED = ("adarft", "mopps", "sec", "dump")  # re-implemented published samplers (Saturn's ladder apart)
PRESETS = (
    "easy-1D",
    "SAT-like",
    "code-like",
    "adversarial",
    "luck-x0",
    "luck-x1",
    "misdeclared",
    "non-monotone",
    "narrow-band",
    "compensatory",
)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class Learner:
    shape: tuple[int, ...]
    a: np.ndarray  # (skills,)
    theta: np.ndarray  # (skills,)
    B: np.ndarray  # (skills, cells): difficulty of each skill at each cell
    guess: np.ndarray  # (cells,)
    slip: float
    eta: float
    target: int  # the hardest learnable cell
    budget: int
    forget: float = 0.0
    prereq: tuple[int, int, float] | None = None  # (needed skill, gated skill, level of the needed skill)
    dead: np.ndarray | None = None  # (cells,) bool: the unlearnable region
    drift: np.ndarray | None = None  # (skills, cells) added to B per group
    band: tuple[float, float] | None = None  # skills move only on groups whose pass fraction lies in it
    compensatory: bool = False  # one sigmoid of the summed skill margins instead of a product of them
    theta0: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.theta0 = self.theta.copy()
        self.learnable = np.ones(self.B.shape[1], bool) if self.dead is None else ~self.dead

    def sig(self, cells: np.ndarray | slice = slice(None)) -> np.ndarray:
        margin = self.a[:, None] * (self.theta[:, None] - self.B[:, cells])
        if self.compensatory:  # one skill can make up for another: sigmoid of the summed margins
            return np.broadcast_to(sigmoid(margin.sum(axis=0)), margin.shape)
        return sigmoid(margin)

    def solve(self, cells: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Chance of solving by skill (no guess, no slip)."""
        s = self.sig(cells)
        return s[0] if self.compensatory else s.prod(axis=0)

    def teach(self, s: np.ndarray) -> np.ndarray:
        """How much a mixed group moves each skill, per unit step: 4 s (1 - s), shared by the skills'
        weights when they are compensatory."""
        t = 4.0 * s * (1.0 - s)
        if self.compensatory:
            t = t * (self.a / self.a.sum())[:, None]
        return t

    def step(self, r: np.ndarray) -> np.ndarray:
        """Skill step of a group with pass fraction r (mixed groups only)."""
        out = self.eta * np.sqrt(r * (1 - r))
        if self.band is not None:
            out = out * ((r >= self.band[0] - 1e-9) & (r <= self.band[1] + 1e-9))
        return out

    def pass_rates(self, cells: np.ndarray | slice = slice(None)) -> np.ndarray:
        c = self.guess[cells]
        p = c + (1.0 - c - self.slip) * self.solve(cells)
        if self.dead is not None:
            p = np.where(self.dead[cells], c, p)
        return p

    def gate(self) -> np.ndarray:
        g = np.ones_like(self.theta)
        if self.prereq is not None:
            need, gated, level = self.prereq
            g[gated] = sigmoid(4.0 * (self.theta[need] - level))
        return g

    def expected_gain(self) -> np.ndarray:
        """Expected total skill gain of one group at every cell (what the oracle maximises)."""
        p = self.pass_rates()
        k = np.arange(1, G)
        r = k / G
        logc = np.array([math.lgamma(G + 1) - math.lgamma(i + 1) - math.lgamma(G - i + 1) for i in k])
        pk = np.exp(
            logc[:, None]
            + k[:, None] * np.log(np.maximum(p, 1e-12))
            + (G - k)[:, None] * np.log(np.maximum(1 - p, 1e-12))
        )
        signal = (pk * self.step(r)[:, None]).sum(axis=0)
        gain = (self.teach(self.sig()) * self.gate()[:, None]).sum(axis=0)
        out = signal * gain
        if self.dead is not None:
            out = np.where(self.dead, 0.0, out)
        return out

    def train(self, cells: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One batch of groups: returns the pass counts and updates the skills (a minibatch step)."""
        p = self.pass_rates(cells)
        k = rng.binomial(G, p)
        r = k / G
        mixed = (k > 0) & (k < G)
        if self.dead is not None:
            mixed &= ~self.dead[cells]  # passes in the dead region are luck: nothing to learn from them
        step = self.step(r) * mixed  # (batch,)
        self.theta += (self.teach(self.sig(cells)) * step[None, :]).sum(axis=1) * self.gate()
        n = len(cells)
        if self.forget:
            self.theta -= self.forget * n * (self.theta - self.theta0)
        if self.drift is not None:
            self.B += self.drift * n
        return k

    def held_out(self, cells: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.binomial(1, self.pass_rates(cells))


def make_learner(preset: str, seed: int, quick: bool) -> tuple[Learner, KnobSpace]:
    rng = np.random.default_rng([seed, PRESETS.index(preset)])
    shape, skills = {"easy-1D": ((8,), 1), "code-like": ((5, 4, 4), 3), "adversarial": ((6, 5, 3), 2)}.get(
        preset, ((6, 6), 2)
    )
    grid = np.indices(shape).reshape(len(shape), -1).T
    pos = grid / (np.array(shape) - 1)
    # Each skill's difficulty grows along its knob; the hardest value is 3 to 5 logits above the easiest.
    span = rng.uniform(3.0, 5.0, skills)
    B = np.zeros((skills, grid.shape[0]))
    for j in range(skills):
        steps = rng.uniform(0.5, 1.5, shape[j] - 1)
        ladder = np.concatenate([[0.0], np.cumsum(steps)]) * span[j] / steps.sum()
        if preset == "non-monotone" and j == 1:
            # The knob's values are not listed easy to hard: its hardest value sits mid-list.
            top = int(rng.integers(1, shape[j] - 1))
            ladder = np.insert(ladder[:-1], top, ladder[-1])
        B[j] = ladder[grid[:, j]]
    a = rng.uniform(1.0, 2.0, skills)
    theta = rng.uniform(0.8, 1.6, skills) / a + 0.0  # the easiest cell passes about 70-80% per skill
    guess = np.zeros(grid.shape[0])
    declared: np.ndarray | None = None  # the guess rate the space is told (None: undeclared)
    slip = 0.0
    kwargs: dict = {}
    target = grid.shape[0] - 1
    eta = rng.uniform(0.004, 0.008)
    if preset == "SAT-like":
        # A random assignment satisfies a short formula often: up to ~50% on the easiest cells.
        guess = rng.uniform(0.3, 0.5) * np.exp(-rng.uniform(2.5, 4.0) * pos.mean(axis=1))
        declared = guess
        slip = rng.uniform(0.02, 0.06)
    elif preset == "code-like":
        slip = rng.uniform(0.0, 0.03)
        kwargs["prereq"] = (0, 2, float(B[0].max() * rng.uniform(0.4, 0.6)))
        kwargs["forget"] = rng.uniform(2e-5, 6e-5)
    elif preset == "adversarial":
        slip = rng.uniform(0.0, 0.04)
        guess = np.full(grid.shape[0], rng.uniform(0.0, 0.05))
        declared = guess
        kwargs["dead"] = grid[:, 1] == shape[1] - 1
        target = int(np.ravel_multi_index((shape[0] - 1, shape[1] - 2, shape[2] - 1), shape))
        drift = np.zeros_like(B)
        drift[0] = pos[:, 0] * rng.uniform(1.0, 1.5)  # knob 1's hard items drift up by ~1 logit
    elif preset in ("luck-x0", "luck-x1", "misdeclared"):
        # Lucky guesses up to 0.5-0.7 on the cells low along one knob, falling to 0 along it; slips up to
        # 0.1. luck-*: nothing declared; misdeclared: the space is told the same floor on the other knob.
        j = 1 if preset == "luck-x1" else 0
        floor = rng.uniform(0.5, 0.7) * (1.0 - pos[:, j]) ** rng.uniform(0.7, 1.5)
        guess = floor
        if preset == "misdeclared":
            declared = rng.uniform(0.5, 0.7) * (1.0 - pos[:, 1]) ** rng.uniform(0.7, 1.5)
        slip = rng.uniform(0.04, 0.1)
    elif preset == "non-monotone":
        slip = rng.uniform(0.0, 0.05)
        target = int(np.argmax((a[:, None] * B).sum(axis=0)))  # the hardest cell, wherever it lies
    elif preset == "narrow-band":
        lo = rng.uniform(0.2, 0.35)
        kwargs["band"] = (lo, lo + 0.25)  # gains only on groups passing 2-3 (or 3-4) of 8
        slip = rng.uniform(0.0, 0.05)
    elif preset == "compensatory":
        # Our own learner family: one sigmoid of summed skill margins (a skill can make up for the other),
        # an undeclared guess floor on the cells easy on both knobs, slips up to 0.1.
        kwargs["compensatory"] = True
        guess = rng.uniform(0.4, 0.7) * (1.0 - pos[:, 0]) * (1.0 - pos[:, 1])
        slip = rng.uniform(0.03, 0.1)
    budget = 20_000 if quick else 100_000
    if preset == "adversarial":
        kwargs["drift"] = drift / (budget / G)
    learner = Learner(shape, a, theta, B, guess, slip, eta, target, budget, **kwargs)
    # The designer's ladder: the diagonal from the easiest cell to the target.
    tgt = np.unravel_index(target, shape)
    steps = max(tgt) + 1
    levels = [
        {f"x{j}": int(round(i * tgt[j] / (steps - 1))) for j in range(len(shape))} for i in range(steps)
    ]
    space = KnobSpace(
        {f"x{j}": list(range(n)) for j, n in enumerate(shape)},
        levels=levels,
        guess_rate=None
        if declared is None
        else (
            lambda p, g=declared, s=shape: float(
                g[np.ravel_multi_index(tuple(p[f"x{j}"] for j in range(len(s))), s)]
            )
        ),
    )
    return learner, space


@dataclass
class Run:
    r80: float
    censored: bool
    aulc: float
    zero_var: float  # share of zero-variance training groups until R80 (while there is something to learn)
    zero_var_all: float  # the same over the whole budget, mastered phase included
    final: float
    curve: np.ndarray  # mean learnable pass rate at CURVE_POINTS fractions of the budget
    target_curve: np.ndarray
    us_per_proposal: float


CURVE_POINTS = 60


def run_one(args: tuple) -> tuple[str, str, int, Run]:
    preset, name, seed, quick, extra, lag, whole = args
    learner, space = make_learner(preset, seed, quick)
    rng = np.random.default_rng([seed, 7, PRESETS.index(preset)])
    budget = learner.budget
    ctrl = None
    if name != "oracle":
        settings = {}
        if name == "fixed":  # the ladder spread over the first half of the budget
            settings["per_level"] = max(int(0.5 * budget / G / len(space.levels)), 1)
        if name == "saturn":
            settings = {"check_every": 128, "eval_size": 32, "epsilon": 0.5}
        settings.update(extra.get(name, {}))
        ctrl = make_controller(name, space=space, group_size=G, seed=seed, **settings)
    used = 0
    groups = zero = 0
    r80, censored = float(budget), True
    zero_learning = float("nan")
    marks = np.linspace(0, budget, CURVE_POINTS)
    curve = np.zeros(CURVE_POINTS)
    tcurve = np.zeros(CURVE_POINTS)
    mark = 0
    prop_time = 0.0
    proposals = 0
    ahead = None
    while used < budget:
        while mark < CURVE_POINTS and marks[mark] <= used:
            p = learner.pass_rates()
            curve[mark] = p[learner.learnable].mean()
            tcurve[mark] = p[learner.target]
            mark += 1
        if ctrl is None:
            gain = learner.expected_gain()
            best = np.flatnonzero(gain >= gain.max() - 1e-12)
            cells = rng.choice(best, size=BATCH)
        else:
            t0 = time.perf_counter()
            if not lag or ahead is None:
                ahead = ctrl.propose_index(BATCH)
            cells = ahead
            if lag:  # TRL's trainer generates the next batch before this one's rewards are in
                ahead = ctrl.propose_index(BATCH)
            prop_time += time.perf_counter() - t0
            proposals += BATCH
        k = learner.train(cells, rng)
        used += G * len(cells)
        groups += len(cells)
        zero += int(((k == 0) | (k == G)).sum())
        if ctrl is not None:
            for c, kk in zip(cells, k, strict=True):
                ctrl.observe(int(c), [1.0] * int(kk) + [0.0] * int(G - kk))
            request = ctrl.eval_request()
            if request:
                ecells = np.array([space.index(c) for c in request])
                res = learner.held_out(ecells, rng)
                used += len(ecells)
                for c, r in zip(request, res, strict=True):
                    ctrl.observe_eval(c, [float(r)])
        if censored and learner.pass_rates(np.array([learner.target]))[0] >= 0.8:
            r80, censored = float(min(used, budget)), False
            zero_learning = zero / max(groups, 1)
            if not whole:
                break  # the rest of the curve holds its last value (see `whole` for the full budget)
    p = learner.pass_rates()
    curve[mark:], tcurve[mark:] = p[learner.learnable].mean(), p[learner.target]
    final = float(learner.pass_rates()[learner.learnable].mean())
    if censored:
        zero_learning = zero / max(groups, 1)
    us = prop_time / proposals * 1e6 if proposals else float("nan")
    run = Run(
        r80, censored, float(curve.mean()), zero_learning, zero / max(groups, 1), final, curve, tcurve, us
    )
    return preset, name, seed, run


def bootstrap_median(x: np.ndarray, rng: np.random.Generator, n: int = 2000) -> tuple[float, float]:
    idx = rng.integers(0, len(x), size=(n, len(x)))
    meds = np.median(x[idx], axis=1)
    return float(np.percentile(meds, 2.5)), float(np.percentile(meds, 97.5))


def bootstrap_ratio(
    x: np.ndarray, y: np.ndarray, rng: np.random.Generator, n: int = 2000
) -> tuple[float, float, float]:
    """Median of x over median of y with a paired bootstrap CI (same seeds resampled for both)."""
    idx = rng.integers(0, len(x), size=(n, len(x)))
    ratios = np.median(x[idx], axis=1) / np.median(y[idx], axis=1)
    return (
        float(np.median(x) / np.median(y)),
        float(np.percentile(ratios, 2.5)),
        float(np.percentile(ratios, 97.5)),
    )


def targets_table(runs: dict, presets: list[str], names: list[str], rng: np.random.Generator) -> list[str]:
    """The issue's targets for the adaptive controller, as markdown rows (ratios of median R80, paired
    bootstrap 95% CI; 'ok' or 'MISS' on the point estimate)."""
    out = [
        "| preset | vs uniform (<= 0.40) | vs best published (<= 0.75) | vs oracle (<= 1.2) | seeds worse than uniform |",
        "|---|---|---|---|---|",
    ]

    def r80(p: str, c: str) -> np.ndarray:
        return np.array([r.r80 for r in runs[(p, c)]])

    for p in presets:
        ad = r80(p, "adaptive")
        cells = []
        for ref, bound in (("uniform", 0.40), ("published", 0.75), ("oracle", 1.2)):
            if ref == "published":
                pub = [c for c in names if c in PUBLISHED]
                ref = min(pub, key=lambda c: np.median(r80(p, c))) if pub else ""
            if ref not in names:
                cells.append("")
                continue
            x, lo, hi = bootstrap_ratio(ad, r80(p, ref), rng)
            tag = f" vs {ref}" if ref in PUBLISHED else ""
            cells.append(f"{x:.2f} ({lo:.2f}-{hi:.2f}){tag} {'ok' if x <= bound else 'MISS'}")
        if "uniform" in names:
            worse = int((ad > r80(p, "uniform")).sum())
            cells.append(f"{worse}/{len(ad)} {'ok' if worse == 0 else 'MISS'}")
        else:
            cells.append("")
        out.append(f"| {p} | " + " | ".join(cells) + " |")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 seeds and a 20k-rollout budget (a smoke run)")
    ap.add_argument("--seeds", type=int, default=None, help="paired seeds per preset (default 20, quick 3)")
    ap.add_argument(
        "--first-seed",
        type=int,
        default=100,
        help="seeds first-seed.. (settings were tuned on seeds 0-7: report held-out ones, 100 on)",
    )
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--controllers", default=",".join(CONTROLLERS))
    ap.add_argument("--adaptive", default="{}", help="JSON settings for the adaptive controller")
    ap.add_argument(
        "--settings", default="{}", help='JSON settings per controller: {"mopps": {"decay": 0.9}}'
    )
    ap.add_argument(
        "--lag",
        type=int,
        choices=(0, 1),
        default=0,
        help="1: propose each batch before the previous one is observed (TRL's one-batch lag)",
    )
    ap.add_argument(
        "--whole-budget",
        action="store_true",
        help="run every controller to the budget (AULC, final pass and zero-var over the whole run are then "
        "true figures; by default a run stops at R80 and they cover the run until then)",
    )
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--png", default=str(Path(__file__).parent / "results" / "curriculum_sim.png"))
    ap.add_argument(
        "--out",
        default=None,
        help="markdown table (default benchmarks/results/curriculum_sim.md on a full run; none on --quick)",
    )
    args = ap.parse_args(argv)
    seeds = args.seeds or (3 if args.quick else 20)
    presets = [p for p in args.presets.split(",") if p]
    names = [c for c in args.controllers.split(",") if c]
    for p in presets:
        if p not in PRESETS:
            ap.error(f"unknown preset {p!r}; valid: {', '.join(PRESETS)}")
    for c in names:
        if c != "oracle" and c not in CONTROLLERS:
            ap.error(f"unknown controller {c!r}; valid: {', '.join(CONTROLLERS)}")
    try:
        extra = {k: dict(v) for k, v in json.loads(args.settings).items()}
        extra.setdefault("adaptive", {}).update(json.loads(args.adaptive))
    except (ValueError, TypeError, AttributeError) as exc:
        ap.error(f"--settings / --adaptive must be JSON objects: {exc}")
    jobs = [
        (p, c, s, args.quick, extra, args.lag, args.whole_budget)
        for p in presets
        for c in names
        for s in range(args.first_seed, args.first_seed + seeds)
    ]
    t0 = time.perf_counter()
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            results = list(pool.map(run_one, jobs, chunksize=2))
    else:
        results = [run_one(j) for j in jobs]
    elapsed = time.perf_counter() - t0
    runs: dict[tuple[str, str], list[Run]] = {}
    for p, c, _s, r in results:
        runs.setdefault((p, c), []).append(r)
    rng = np.random.default_rng(0)
    lines = [
        f"# Curriculum on simulated learners ({seeds} paired seeds per preset, seeds {args.first_seed}-"
        f"{args.first_seed + seeds - 1}, G={G}, {BATCH} prompts per step, {'quick' if args.quick else 'full'} budget"
        f"{', one-batch lag' if args.lag else ''}; {elapsed:.0f} s)",
        "",
        "| preset | controller | median R80 (95% CI) | censored | R80 / adaptive | zero-var groups until R80 | "
        + ("AULC | zero-var whole run | final pass | " if args.whole_budget else "")
        + "us/proposal |",
        "|---|---|---|---|---|---|---|" + ("---|---|---|" if args.whole_budget else ""),
    ]
    for p in presets:
        for c in names:
            rs = runs[(p, c)]
            r80 = np.array([r.r80 for r in rs])
            lo, hi = bootstrap_median(r80, rng)
            ratio = ""
            if "adaptive" in names and c != "adaptive":
                ad = np.array([r.r80 for r in runs[(p, "adaptive")]])
                ratio = f"{np.median(r80) / np.median(ad):.2f}"
            us = np.median([r.us_per_proposal for r in rs])
            whole = (
                f"{np.mean([r.aulc for r in rs]):.3f} | {np.mean([r.zero_var_all for r in rs]):.0%} "
                f"| {np.mean([r.final for r in rs]):.3f} | "
                if args.whole_budget
                else ""
            )
            lines.append(
                f"| {p} | {c} | {np.median(r80):,.0f} ({lo:,.0f}-{hi:,.0f}) | {sum(r.censored for r in rs)}/{len(rs)} "
                f"| {ratio} | {np.mean([r.zero_var for r in rs]):.1%} | {whole}{'' if math.isnan(us) else f'{us:.0f}'} |"
            )
    if "adaptive" in names:
        lines += ["", "## Targets (adaptive median R80 as a ratio, paired bootstrap 95% CI)", ""]
        lines += targets_table(runs, presets, names, rng)
    print("\n".join(lines))
    out = args.out or (None if args.quick else str(Path(__file__).parent / "results" / "curriculum_sim.md"))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text("\n".join(lines) + "\n")
        print(f"\ntable: {out}")
    if args.png:
        plot(runs, presets, names, args.png, "quick" if args.quick else "full")
        print(f"\nlearning curves: {args.png}")
    return 0


def plot(runs: dict, presets: list[str], names: list[str], path: str, label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(len(presets), 5)
    rows = -(-len(presets) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(presets) :]:
        ax.axis("off")
    x = np.linspace(0, 1, CURVE_POINTS)
    for ax, p in zip(axes.flat, presets, strict=False):
        budget = make_learner(p, 0, label == "quick")[0].budget
        for c in names:
            tc = np.median([r.target_curve for r in runs[(p, c)]], axis=0)
            ax.plot(
                x * budget / 1000,
                tc,
                label=c,
                lw=2.2 if c == "adaptive" else 1.2,
                ls="--" if c == "oracle" else "-",
            )
        ax.axhline(0.8, color="grey", lw=0.6, ls=":")
        ax.set_title(p)
        ax.set_xlabel("rollouts (thousands)")
        ax.set_ylim(0, 1)
    for row in axes:
        row[0].set_ylabel("true pass rate, hardest cell (median)")
    axes[0][min(len(presets), cols) - 1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
