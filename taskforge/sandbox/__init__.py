"""Running untrusted code: a pool of long-lived workers (bubblewrap where present), a forked child per
sample under rlimits and seccomp, plain-data results compared on the host with exact types."""

from taskforge.sandbox._plain import PlainError, decode, encode, same
from taskforge.sandbox.pool import (
    STRICT_ENV,
    Result,
    Sample,
    Sandbox,
    SandboxUnavailable,
    bubblewrap_available,
    default_sandbox,
)

__all__ = [
    "STRICT_ENV",
    "PlainError",
    "Result",
    "Sample",
    "Sandbox",
    "SandboxUnavailable",
    "bubblewrap_available",
    "decode",
    "default_sandbox",
    "encode",
    "same",
]
