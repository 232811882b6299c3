"""Every error taskforge raises for a user mistake or an unusable environment, under one base.

Catch `TaskforgeError` once; the CLI turns any of them into one line on stderr and exit code 2. Each class
keeps the builtin base it had before this module existed, so `except ValueError` (or `KeyError`, ...) in
callers' code still works.
"""

from __future__ import annotations


class TaskforgeError(Exception):
    """Base of every error taskforge raises on purpose; the message is one line saying what to do."""


class KnobError(TaskforgeError, ValueError):
    """A bad knob name, value or combination of values; the message names what is valid."""


class UnknownFamilyError(TaskforgeError, KeyError):
    """A family name that no built-in generator or installed plugin registers."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DatasetError(TaskforgeError, ValueError):
    """A bad dataset request, or a file that cannot be read as tasks or responses."""


class OutputError(TaskforgeError, OSError):
    """An output file or folder that cannot be written; raised before any work starts."""


class ConfigError(TaskforgeError, ValueError):
    """A bad training, evaluation or curriculum configuration (unknown key, controller or setting)."""


class PluginError(TaskforgeError, ValueError):
    """A `module:Class` target that cannot be imported or is not a Generator subclass."""


class SaturnFormatError(TaskforgeError, ValueError):
    """A record that is not in Saturn's released format."""


class GenerationError(TaskforgeError, RuntimeError):
    """Valid knobs that still cannot produce the requested tasks (too few distinct problems)."""


class MissingExtraError(TaskforgeError, ImportError):
    """An optional dependency is not installed; the message gives the pip command that installs it."""


class SandboxUnavailableError(TaskforgeError, RuntimeError):
    """The code sandbox cannot run here with the isolation asked for."""


class BackendError(TaskforgeError, RuntimeError):
    """A model backend (an OpenAI-compatible server, vLLM) refused a request or could not be reached."""


__all__ = [
    "BackendError",
    "ConfigError",
    "DatasetError",
    "GenerationError",
    "KnobError",
    "MissingExtraError",
    "OutputError",
    "PluginError",
    "SandboxUnavailableError",
    "SaturnFormatError",
    "TaskforgeError",
    "UnknownFamilyError",
]
