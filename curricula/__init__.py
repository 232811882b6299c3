"""Curriculum controllers: which difficulty cell to train on next, from the pass rates observed."""

from taskforge.curricula import adaptive as _adaptive  # noqa: F401  (registers "adaptive")
from taskforge.curricula import baselines as _baselines  # noqa: F401  (registers the baselines)
from taskforge.curricula.adaptive import Adaptive
from taskforge.curricula.base import CONTROLLERS, Controller, make_controller, p_mixed, register_controller
from taskforge.curricula.mixture import Mixture
from taskforge.curricula.space import KnobSpace
from taskforge.curricula.stream import TaskStream

__all__ = [
    "CONTROLLERS",
    "Adaptive",
    "Controller",
    "KnobSpace",
    "Mixture",
    "TaskStream",
    "make_controller",
    "p_mixed",
    "register_controller",
]
