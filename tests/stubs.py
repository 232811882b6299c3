"""Shared test doubles: the smallest Generator a test can subclass."""

from __future__ import annotations

from typing import Any

from taskforge.generator import Generator


class StubGenerator(Generator):
    """One level, no knobs, difficulty 0: a test overrides only `generate`/`verify` (and what it tests)."""

    levels = ({},)

    def difficulty(self, params: dict[str, Any]) -> float:
        return 0.0
