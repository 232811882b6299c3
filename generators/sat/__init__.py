"""SAT: find an assignment that satisfies a CNF formula (n literals per clause, k variables, l clauses).

Modes:
- `planted` (Saturn's construction): draw a hidden assignment, then l distinct clauses each satisfied by it
  (n distinct variables, a sign pattern other than the one that falsifies the clause). The gold answer is
  the hidden assignment; the formula often has other models.
- `random`: l distinct clauses drawn uniformly (any signs), kept only if PySAT's MiniSat finds a model,
  which is the gold answer.
- `unique`: exactly one model, proved by the solver: solve, block the model, solve again -> UNSAT.
  Formulas are drawn planted and kept when unique. A planted formula F is drawn with probability
  proportional to its number of models, so conditioned on "exactly one model" the draw is uniform over
  uniquely satisfiable formulas: the same distribution as random-then-filter, at far fewer draws.

Every task records in `meta["models"]` its number of models, counted with blocking clauses up to
MODEL_CAP (a value equal to the cap means "at least").

Formats: `letters` is Saturn's text (`!A!BC & AB!D`, k <= 26, Saturn's prompt byte for byte);
`numbered` writes `(x1 | !x3 | x7) & ...` for any k. `auto` picks letters where k <= 26.

Verification reads only `task.check`: the answer (last <answer> or \\boxed{}) is parsed strictly (exactly k
characters 0/1 once whitespace is removed) and every clause is checked against it, so any model passes,
not just the gold one. With `strict=false` (lenient) the same answer is checked as Saturn checks an
assignment: no length check, position i is variable i, a missing position counts as 0, a character other
than 0/1 makes neither literal true. Lenient is not Saturn's reward, which reads only the last
`\\boxed{...}` on one line and keeps spaces: that is `saturn_reward` (generators/sat/reward.py).
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import random
from collections.abc import Sequence
from typing import Any

from pysat.solvers import Minisat22

from taskforge.errors import GenerationError, KnobError
from taskforge.extract import extract_answer
from taskforge.generator import Generator, Knob
from taskforge.generators.sat.reward import saturn_reward
from taskforge.generators.sat.saturn import (
    MAX_LETTER_VARS,
    SATURN_TEST_LEVELS,
    SATURN_TRAIN_LEVELS,
    clause_to_letters,
    saturn_difficulty,
    saturn_prompt,
)
from taskforge.registry import register
from taskforge.task import Task, Verdict

MODEL_CAP = 16
MAX_RANDOM_DRAWS = 1000  # random mode: formulas drawn before giving up on a satisfiable one
MAX_UNIQUE_DRAWS = 2000  # unique mode: planted formulas drawn before giving up on a unique one

NUMBERED_PROMPT = (
    "You are now required to solve a SAT (Boolean Satisfiability) problem. The problem is provided in JSON "
    "format, containing the following fields:\n\n"
    '- "n_sat": The number of variables in each clause (n-SAT problem).\n'
    '- "k": The total number of distinct variables in the problem, named x1, x2, ..., xk.\n'
    '- "clause": A string representation of the SAT formula, where clauses are separated by " & " '
    '(representing logical AND). Each clause is written in parentheses with its literals separated by " | " '
    '(representing logical OR). A negation is indicated by "!" before a variable.\n\n'
    "Your task is to provide a valid solution. The answer is a string of length k representing the truth "
    "values of the variables in order x1, x2, ..., xk (1 for true, 0 for false). If there are multiple "
    "solutions, provide any one of them.\n"
    "Please reason step by step, and put your final answer within \\boxed{}.\n\n"
    "**Example**\n"
    '{"n_sat": 3, "k": 4, "clause": "(!x2 | !x3 | !x4) & (x1 | !x2 | !x4) & (x1 | x2 | !x4)"}\n'
    "**Final Answer**\n"
    "\\boxed{1101}\n\n"
    "Below is the SAT problem you need to solve:\n"
)


def clause_to_numbered(clause: Sequence[int]) -> str:
    return (
        "(" + " | ".join(("!x" if lit < 0 else "x") + str(abs(lit)) for lit in sorted(clause, key=abs)) + ")"
    )


def count_models(
    clauses: Sequence[Sequence[int]], k: int, cap: int = MODEL_CAP
) -> tuple[list[int] | None, int]:
    """(first model as DIMACS literals over all k variables, number of models up to `cap`).

    Each model found is blocked with a clause over all k variables, so variables that occur in no clause
    are counted too (the tautology [k, -k] makes the solver create every variable)."""
    with Minisat22(bootstrap_with=clauses) as solver:
        solver.add_clause([k, -k])
        first, count = None, 0
        while count < cap and solver.solve():
            model = solver.get_model()[:k]
            if first is None:
                first = model
            count += 1
            solver.add_clause([-lit for lit in model])
    return first, count


EXACT_COUNT_MAX_K = 12  # up to here models are counted exactly with bit sets over all 2^k assignments


@functools.lru_cache(maxsize=16)
def _variable_masks(k: int) -> tuple[int, list[int]]:
    """Bit a of masks[v] is set iff assignment a (variable v at bit v-1 of a) makes v true."""
    full = (1 << (1 << k)) - 1
    masks = [0]
    for v in range(1, k + 1):
        half = 1 << (v - 1)
        block = ((1 << half) - 1) << half
        masks.append(sum(block << start for start in range(0, 1 << k, 2 * half)))
    return full, masks


@functools.lru_cache(maxsize=1 << 14)  # at k = 12 a mask is 512 bytes
def _clause_models(clause: tuple[int, ...], k: int) -> int:
    full, masks = _variable_masks(k)
    out = 0
    for lit in clause:
        out |= masks[lit] if lit > 0 else full ^ masks[-lit]
    return out


def model_count(clauses: Sequence[Sequence[int]], k: int, cap: int = MODEL_CAP) -> int:
    """Number of models up to `cap`: exact bit-set counting for small k (the same number the solver
    enumeration gives, at a tenth of the cost), else enumeration with blocking clauses."""
    if k > EXACT_COUNT_MAX_K:
        return count_models(clauses, k, cap)[1]
    sat = _variable_masks(k)[0]
    for clause in clauses:
        sat &= _clause_models(tuple(clause), k)
    return min(bin(sat).count("1"), cap)


def _bits_to_answer(bits: int, k: int) -> str:
    return "".join("1" if bits >> i & 1 else "0" for i in range(k))


def _model_to_answer(model: Sequence[int]) -> str:
    return "".join("1" if lit > 0 else "0" for lit in model)


MAX_TABLE = 1 << 18  # clause tables up to this many rows are cached per (n, k)


@functools.lru_cache(maxsize=32)
def _clause_table(n: int, k: int) -> tuple[tuple[tuple[int, ...], int, int], ...] | None:
    """Every clause on n distinct variables of k (variables ascending), with bit masks of its positive and
    negative literals; None when the table would be too large (then clauses are drawn one by one)."""
    if math.comb(k, n) * 2**n > MAX_TABLE:
        return None
    rows = []
    for vs in itertools.combinations(range(1, k + 1), n):
        for signs in range(2**n):
            clause = tuple(-v if signs >> i & 1 else v for i, v in enumerate(vs))
            pos = sum(1 << (v - 1) for v in clause if v > 0)
            neg = sum(1 << (-v - 1) for v in clause if v < 0)
            rows.append((clause, pos, neg))
    return tuple(rows)


def draw_clauses(
    n: int, k: int, l: int, rng: random.Random, planted: int | None = None
) -> list[tuple[int, ...]]:
    """l distinct clauses, each with n distinct variables in ascending order, drawn uniformly; with
    `planted` (an assignment as bits, variable i at bit i-1) only clauses it satisfies.

    Saturn draws a variable set, then a sign pattern other than the falsifying one: that is uniform over
    the clauses the assignment satisfies, which is what rejecting the falsified ones from a uniform draw
    gives too (with probability 2^-n per draw)."""
    table = _clause_table(n, k)
    # An assignment falsifies a clause iff none of its positive variables is set and all negative ones are.
    check = planted is not None
    bits = planted or 0
    if table is not None and 2 * l > len(table) * (1 - 2.0**-n if check else 1):
        # Dense: rejection would loop long; sample from the full list of admissible clauses instead.
        return rng.sample(
            [c for c, pos, neg in table if not (check and not bits & pos and bits & neg == neg)], l
        )
    chosen: dict[tuple[int, ...], None] = {}  # insertion-ordered, so the draw is reproducible
    variables = range(1, k + 1)
    size, rand = len(table) if table else 0, rng.random
    while len(chosen) < l:
        if table is not None:
            # int(random() * size): a bias below size / 2^53, and four times faster than randrange.
            clause, pos, neg = table[int(rand() * size)]
        else:
            signs = rng.getrandbits(n)
            clause = tuple(
                -v if signs >> i & 1 else v for i, v in enumerate(sorted(rng.sample(variables, n)))
            )
            pos = sum(1 << (v - 1) for v in clause if v > 0)
            neg = sum(1 << (-v - 1) for v in clause if v < 0)
        if not (check and not bits & pos and bits & neg == neg):
            chosen[clause] = None
    return list(chosen)


@functools.lru_cache(maxsize=1 << 17)
def _letters(clause: tuple[int, ...]) -> str:
    return clause_to_letters(clause)


def _json_problem(n: int, k: int, clause_text: str) -> str:
    return json.dumps({"n_sat": n, "k": k, "clause": clause_text})


def _all_levels() -> tuple[dict[str, int], ...]:
    # Saturn's training ladder, its ten evaluation levels, then larger formulas near the 3-SAT threshold
    # (l/k about 4.2 to 5), all ordered by Saturn's D so that difficulty rises along the ladder.
    beyond = ((3, 8, 40), (3, 10, 45), (3, 12, 55), (3, 16, 70), (3, 20, 88), (3, 26, 112), (3, 40, 170))
    triples = sorted(
        {*SATURN_TRAIN_LEVELS, *SATURN_TEST_LEVELS, *beyond}, key=lambda t: saturn_difficulty(*t)
    )
    return tuple({"n": n, "k": k, "l": l} for n, k, l in triples)


@register
class SAT(Generator):
    family = "sat"
    version = "1"
    description = (
        "CNF satisfiability (PySAT): planted (Saturn), solver-filtered random, or unique-model formulas."
    )
    knobs = (
        Knob("n", int, 3, low=1, high=12, help="literals per clause"),
        Knob("k", int, 5, low=1, high=1000, help="variables"),
        Knob("l", int, 5, low=1, high=10_000, help="clauses"),
        Knob("mode", str, "planted", choices=("planted", "random", "unique")),
        Knob("format", str, "auto", choices=("auto", "letters", "numbered"), help="auto: letters if k <= 26"),
        Knob("strict", bool, True, help="false: Saturn's lenient verifier (no length check)"),
    )
    levels = _all_levels()
    # Saturn's benchmark levels: a saturn curriculum keeps them off its training ladder by default.
    eval_levels = tuple({"n": n, "k": k, "l": l} for n, k, l in SATURN_TEST_LEVELS)

    def difficulty(self, params: dict[str, Any]) -> float:
        return saturn_difficulty(params["n"], params["k"], params["l"])

    # ---- generation ---------------------------------------------------------------------------------
    def generate(self, params: dict[str, Any], rng: random.Random) -> Task:
        n, k, l, mode = params["n"], params["k"], params["l"], params["mode"]
        if mode == "planted":
            bits = rng.getrandbits(k)
            return self.build_task(params, draw_clauses(n, k, l, rng, planted=bits), _bits_to_answer(bits, k))
        if mode == "random":
            for _ in range(MAX_RANDOM_DRAWS):
                clauses = draw_clauses(n, k, l, rng)
                first, count = count_models(clauses, k)
                if first is not None:
                    return self.build_task(params, clauses, _model_to_answer(first), models=count)
            raise GenerationError(
                f"no satisfiable random formula in {MAX_RANDOM_DRAWS} draws at n={n}, k={k}, l={l}"
            )
        for _ in range(MAX_UNIQUE_DRAWS):
            clauses = draw_clauses(n, k, l, rng, planted=rng.getrandbits(k))
            first, count = count_models(clauses, k, cap=2)
            if count == 1:
                return self.build_task(params, clauses, _model_to_answer(first), models=1)
        raise GenerationError(
            f"no formula with a unique model in {MAX_UNIQUE_DRAWS} draws at n={n}, k={k}, l={l}; raise l"
        )

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        n, k, l = params["n"], params["k"], params["l"]
        if n > k:
            raise KnobError(f"n={n} literals per clause need k >= n variables, got k={k}")
        if params["format"] == "letters" and k > MAX_LETTER_VARS:
            raise KnobError(f"format 'letters' needs k <= {MAX_LETTER_VARS}, got k={k}; use format=numbered")
        signs = 2**n - 1 if params["mode"] in ("planted", "unique") else 2**n
        capacity = math.comb(k, n) * signs
        if l > capacity:
            raise KnobError(
                f"only {capacity} distinct clauses exist at n={n}, k={k} for mode {params['mode']}"
            )
        # Each clause rules out exactly 2^(k-n) assignments, so fewer clauses than that cannot leave a
        # single model; above the bound `generate` draws until the solver proves uniqueness.
        if params["mode"] == "unique" and l * 2 ** (k - n) < 2**k - 1:
            raise KnobError(f"unique mode needs l >= {math.ceil((2**k - 1) / 2 ** (k - n))} at n={n}, k={k}")

    def build_task(
        self,
        params: dict[str, Any],
        clauses: Sequence[Sequence[int]],
        answer: str,
        *,
        models: int | None = None,
        meta: dict[str, Any] | None = None,
        keep_order: bool = False,
    ) -> Task:
        """A task from a formula and its gold answer. Clauses are put in the format's canonical order
        (Saturn's `sorted()` of the letters text) unless `keep_order` (a record read from a file)."""
        n, k = params["n"], params["k"]
        fmt = params["format"]
        if fmt == "auto":
            fmt = "letters" if k <= MAX_LETTER_VARS else "numbered"
        # Literals in order of variable (drawn clauses already are; a record read from a file may not be).
        clauses = [tuple(sorted(c, key=abs)) for c in clauses] if keep_order else [tuple(c) for c in clauses]
        if fmt == "letters":
            texts = [_letters(c) for c in clauses]
            if keep_order:
                ordered = [list(c) for c in clauses]
            else:
                order = sorted(range(len(clauses)), key=texts.__getitem__)
                ordered = [list(clauses[i]) for i in order]
                texts = [texts[i] for i in order]
            prompt = saturn_prompt(n, k, " & ".join(texts))
        else:
            ordered = [list(c) for c in clauses]
            if not keep_order:
                ordered.sort(key=lambda c: [(abs(x), x < 0) for x in c])
            text = " & ".join(clause_to_numbered(c) for c in ordered)
            prompt = NUMBERED_PROMPT + _json_problem(n, k, text) + "\n"
        if models is None:
            models = model_count(ordered, k)
        check = {"n": n, "k": k, "clauses": ordered, "format": fmt, "strict": bool(params["strict"])}
        return self.make_task(
            params,
            prompt=prompt,
            answer=answer,
            check=check,
            meta={"models": models, "models_cap": MODEL_CAP, **(meta or {})},
        )

    # ---- verification -------------------------------------------------------------------------------
    def verify(self, task: Task, response: str) -> Verdict:
        text = extract_answer(response)
        if text is None:
            return Verdict.fail("no_answer")
        check = task.check
        k = check["k"]
        if check.get("strict", True):
            if len(text) > 8 * k + 64:  # far too long to be k bits with spacing: do not even scan it
                return Verdict.fail("malformed", parsed=text[:64], expected_length=k)
            bits = "".join(text.split())
            if len(bits) != k or bits.strip("01"):
                return Verdict.fail("malformed", parsed=bits[:64], expected_length=k)
            true_lits = {i if c == "1" else -i for i, c in enumerate(bits, 1)}
        else:
            # Saturn's calc_sat_value: position i is variable i, missing positions read '0', extra ignored.
            bits = text[:k].ljust(k, "0")
            true_lits = {i if c == "1" else -i for i, c in enumerate(bits, 1) if c in "01"}
        for idx, clause in enumerate(check["clauses"]):
            if true_lits.isdisjoint(clause):
                return Verdict.fail("wrong", parsed=bits, violated_clause=idx)
        return Verdict.ok(parsed=bits)

    def gold_response(self, task: Task) -> str:
        return f"\\boxed{{{task.answer}}}"

    def corrupt_answer(self, task: Task, rng: random.Random) -> str | None:
        """The gold assignment with the literals of one clause all made false: that clause is violated."""
        bits = list(task.answer)
        for lit in rng.choice(task.check["clauses"]):
            bits[abs(lit) - 1] = "0" if lit > 0 else "1"
        return f"\\boxed{{{''.join(bits)}}}"

    def guess_rate(self, params: dict[str, Any]) -> float:
        """Chance that a uniform random assignment satisfies the formula.

        planted: exact for the distribution. An assignment at Hamming distance d from the hidden one
        falsifies exactly C(k,n) - C(k-d,n) of the M = C(k,n)(2^n - 1) clauses the hidden one satisfies,
        and the l clauses are a uniform l-subset of those M.  unique: exactly 2^-k.
        random: the unconditioned rate C(M' - C(k,n), l) / C(M', l), M' = C(k,n) 2^n, floored at 2^-k; a
        lower bound, since the formula is also conditioned on being satisfiable."""
        n, k, l, mode = params["n"], params["k"], params["l"], params["mode"]
        if n > k:
            return 0.0
        sets = math.comb(k, n)
        if mode == "unique":
            return 2.0**-k
        if mode == "random":
            total = sets * 2**n
            return max(math.comb(total - sets, l) / math.comb(total, l), 2.0**-k) if l <= total else 0.0
        pool = sets * (2**n - 1)
        if l > pool:
            return 0.0
        denom = math.comb(pool, l) * 2**k
        return (
            sum(math.comb(k, d) * math.comb(pool - (sets - math.comb(k - d, n)), l) for d in range(k + 1))
            / denom
        )


__all__ = ["SAT", "count_models", "draw_clauses", "model_count", "saturn_reward"]
