"""taskforge: procedural verifiable tasks with controllable difficulty, and the curriculum that doses them."""

from taskforge.api import generate, verify
from taskforge.errors import TaskforgeError
from taskforge.extract import extract_answer
from taskforge.generator import Generator, Knob, KnobError
from taskforge.registry import families, generator_class, get_generator, register
from taskforge.task import Task, Verdict

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # `taskforge.to_hf_dataset` loads its adapter (and pyarrow) on first use: `import taskforge` stays light.
    if name == "to_hf_dataset":
        from taskforge.integrations.hf import to_hf_dataset

        return to_hf_dataset
    raise AttributeError(f"module 'taskforge' has no attribute {name!r}")


__all__ = [
    "Generator",
    "Knob",
    "KnobError",
    "Task",
    "TaskforgeError",
    "Verdict",
    "extract_answer",
    "families",
    "generate",
    "generator_class",
    "get_generator",
    "register",
    "to_hf_dataset",
    "verify",
]
