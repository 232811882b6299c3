"""KnobSpace: the grid of difficulty cells a controller chooses from.

Each knob has an ordered list of values, easy to hard; a cell is one value per knob. Cells are addressed
internally by a flat index (numpy row-major order) so that controllers can score every cell at once.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np


class KnobSpace:
    """Ordered knob values (easy to hard), a ladder of levels through them, and a 0-100 difficulty scale.

    `levels` defaults to the diagonal (every knob moves from its first to its last value together);
    `difficulty` (params -> float) defaults to the mean normalised position of the knobs; it is rescaled
    to 0..100 over all cells. `base` holds fixed params merged into every cell by `to_params`.
    `guess_rate` (params -> float) is the chance a blind guess passes (e.g. a short SAT formula).
    """

    def __init__(
        self,
        knobs: Mapping[str, Sequence[Any]],
        *,
        levels: Sequence[Mapping[str, Any]] | None = None,
        base: Mapping[str, Any] | None = None,
        difficulty: Callable[[dict[str, Any]], float] | None = None,
        guess_rate: Callable[[dict[str, Any]], float] | None = None,
        family: str | None = None,
        valid: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        if not knobs:
            raise ValueError("a KnobSpace needs at least one knob")
        self.names: list[str] = list(knobs)
        self.values: list[list[Any]] = [list(v) for v in knobs.values()]
        for name, vals in zip(self.names, self.values, strict=True):
            if not vals:
                raise ValueError(f"knob {name!r} has no values")
            if len({_key(v) for v in vals}) != len(vals):
                raise ValueError(f"knob {name!r} repeats a value: {vals}")
        self.family = family
        self.base = dict(base or {})
        self.shape = tuple(len(v) for v in self.values)
        self.size = int(np.prod(self.shape))
        self._lookup = [{_key(v): i for i, v in enumerate(vals)} for vals in self.values]
        self._fast = [_hashable_index(vals) for vals in self.values]
        # grid[c] = knob indices of cell c; pos[c] = the same scaled to 0..1 per knob (0 = easiest value).
        self.grid = np.indices(self.shape).reshape(len(self.shape), -1).T.copy()
        self.pos = self.grid / np.maximum(np.array(self.shape) - 1, 1)
        if difficulty is None:
            raw = self.pos.mean(axis=1)
        else:
            raw = np.array([float(difficulty(self.to_params(self.cell(c)))) for c in range(self.size)])
        span = raw.max() - raw.min()
        self.difficulty = 100.0 * (raw - raw.min()) / span if span > 0 else np.zeros(self.size)
        if guess_rate is None:
            self.guess = np.zeros(self.size)
        else:
            self.guess = np.clip(
                [float(guess_rate(self.to_params(self.cell(c)))) for c in range(self.size)], 0, 0.99
            )
        if levels is None:
            steps = max(self.shape)
            levels = [
                {
                    n: vals[round(i * (len(vals) - 1) / max(steps - 1, 1))]
                    for n, vals in zip(self.names, self.values, strict=True)
                }
                for i in range(steps)
            ]
        self.levels: list[int] = [self.index(lvl) for lvl in levels]
        # The hardest cell: every knob at its last value (the R80 target of the benchmark).
        self.hardest = self.size - 1
        # valid[c]: the cell's params are a combination the generator can serve (a SAT clause of n
        # literals needs k >= n variables). Controllers never propose an invalid cell: `snap` maps each
        # cell to itself, or an invalid one to the nearest valid cell (ties to the easier).
        if valid is None:
            self.valid = np.ones(self.size, dtype=bool)
        else:
            self.valid = np.array([bool(valid(self.to_params(self.cell(c)))) for c in range(self.size)])
        if not self.valid.any():
            raise ValueError(f"no cell of this space is valid: {self.describe()}")
        ok = np.flatnonzero(self.valid)
        dist = np.abs(self.pos[:, None, :] - self.pos[None, ok, :]).sum(axis=2) + 1e-6 * self.pos[ok].sum(
            axis=1
        )
        self.snap = ok[np.argmin(dist, axis=1)]

    # ---- addressing -------------------------------------------------------------------------------
    def index(self, cell: Mapping[str, Any]) -> int:
        """Flat index of a cell given as {knob: value}; knobs of `base` may be present and are ignored."""
        try:
            idx = tuple(self._find(j, cell[n]) for j, n in enumerate(self.names))
        except KeyError:
            raise ValueError(f"{dict(cell)} is not a cell of this space {self.describe()}") from None
        return int(np.ravel_multi_index(idx, self.shape))

    def _find(self, j: int, value: Any) -> int:
        # Fast path: the value itself (same type, so 1, 1.0 and True stay distinct); else its JSON spelling.
        try:
            i = self._fast[j].get(value)
        except TypeError:  # unhashable (a list read back from JSON)
            i = None
        if i is not None and type(self.values[j][i]) is type(value):
            return i
        return self._lookup[j][_key(value)]

    def cell(self, index: int) -> dict[str, Any]:
        return {
            n: self.values[j][int(k)]
            for j, (n, k) in enumerate(zip(self.names, self.grid[index], strict=True))
        }

    def to_params(self, cell: Mapping[str, Any]) -> dict[str, Any]:
        """Generator params for a cell: the fixed `base` params updated with the cell's knob values."""
        return {**self.base, **{n: cell[n] for n in self.names}}

    def nearest_level(self, cell: Mapping[str, Any] | int) -> int:
        """The ladder level closest to a cell (in normalised knob positions; ties go to the easier level)."""
        c = cell if isinstance(cell, int | np.integer) else self.index(cell)
        dist = np.abs(self.pos[self.levels] - self.pos[c]).sum(axis=1)
        return int(np.argmin(dist))

    def cell_difficulty(self, cell: Mapping[str, Any]) -> float:
        """Difficulty of a cell on the 0..100 scale of this space."""
        return float(self.difficulty[self.index(cell)])

    def describe(self) -> str:
        return json.dumps(dict(zip(self.names, self.values, strict=True)), default=str)

    # ---- construction from a generator -------------------------------------------------------------
    @classmethod
    def from_generator(
        cls, gen: Any, knobs: Sequence[str] | None = None, max_level: int | None = None
    ) -> KnobSpace:
        """The space spanned by a generator's level ladder (levels 0..max_level, all by default): each knob
        that varies along the ladder, with the distinct values it takes there, easy to hard; knobs constant
        along the ladder become fixed `base` params. The space's difficulty and guess rate come from the
        generator."""
        gen_cls = gen if isinstance(gen, type) else type(gen)
        inst = gen if not isinstance(gen, type) else gen_cls()
        top = len(gen_cls.levels) if max_level is None else max_level + 1
        ladder = [gen_cls.resolve_params(i) for i in range(top)]
        names = (
            list(knobs)
            if knobs is not None
            else [k.name for k in gen_cls.knobs if len({_key(lvl[k.name]) for lvl in ladder}) > 1]
        )
        if not names:
            names = [gen_cls.knobs[0].name] if gen_cls.knobs else []
        if not names:
            raise ValueError(f"family {gen_cls.family!r} has no knobs to build a space from")
        values: dict[str, list[Any]] = {n: [] for n in names}
        for lvl in ladder:
            for n in names:
                if _key(lvl[n]) not in {_key(v) for v in values[n]}:
                    values[n].append(lvl[n])
        base = {k: v for k, v in ladder[0].items() if k not in names}
        has_guess = type(inst).guess_rate is not _base_guess_rate()
        # A ladder may move a knob both ways (Saturn's SAT levels raise n, which alone makes a formula
        # easier, together with k and l). Order each knob's values by the generator's difficulty
        # averaged over the other knobs, so that "later value = harder" holds knob by knob.
        probe = cls(
            values,
            levels=[{n: lvl[n] for n in names} for lvl in ladder],
            base=base,
            difficulty=inst.difficulty,
        )
        for j, n in enumerate(names):
            marginal = [probe.difficulty[probe.grid[:, j] == i].mean() for i in range(len(values[n]))]
            order = sorted(
                range(len(marginal)), key=lambda i, m=marginal: m[i]
            )  # stable: ladder order on ties
            values[n] = [values[n][i] for i in order]
        return cls(
            values,
            levels=[{n: lvl[n] for n in names} for lvl in ladder],
            base=base,
            difficulty=inst.difficulty,
            guess_rate=inst.guess_rate if has_guess else None,
            family=gen_cls.family,
            valid=lambda params: _serves(gen_cls, params),
        )


def _serves(gen_cls: Any, params: dict[str, Any]) -> bool:
    """Whether the generator accepts these params (its cross-knob rules, e.g. SAT's k >= n)."""
    check = getattr(gen_cls, "check_params", None)
    if check is None:
        return True
    try:
        check(params)
    except Exception:  # a KnobError, or any refusal: the cell is not served
        return False
    return True


def _hashable_index(values: list[Any]) -> dict[Any, int]:
    out: dict[Any, int] = {}
    for i, v in enumerate(values):
        with contextlib.suppress(TypeError):
            out.setdefault(v, i)
    return out


def _base_guess_rate() -> Any:
    from taskforge.generator import Generator

    return Generator.guess_rate


def _key(value: Any) -> str:
    # Knob values compare by their JSON spelling: a cell read back from a JSON log (lists for tuples)
    # still finds its index, while 1, 1.0 and True stay distinct.
    return json.dumps(value, sort_keys=True, default=str)
