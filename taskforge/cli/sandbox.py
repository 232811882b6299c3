"""`taskforge sandbox`: which isolation layers the code sandbox has on this machine, and a smoke test."""

from __future__ import annotations

import time

from taskforge.cli.app import app, console, fail


@app.command("sandbox")
def sandbox_info(workers: int = 2) -> None:
    """Show the code sandbox's layers (bubblewrap, Landlock, seccomp) and judge one sample."""
    from taskforge.sandbox import Sample, Sandbox

    with Sandbox(workers) as box:  # SandboxUnavailable is a TaskforgeError: one line, exit 2
        layers = box.layers()
        started = time.perf_counter()
        result = box.run([Sample("def solve(x):\n    return x * x\n", "solve", [((3,), 9), ((-2,), 4)])])[0]
        elapsed = time.perf_counter() - started
    console.print(f"isolation: {layers['isolation']}")
    console.print(f"landlock:  {'yes' if layers['landlock'] else 'no (kernel without Landlock)'}")
    console.print("seccomp:   yes; rlimits: cpu, address space, file size, open files, processes")
    console.print(
        f"workers:   {len(layers['workers'])}; smoke sample: {result.status} in {elapsed * 1000:.0f} ms"
    )
    if not result.ok:
        fail(f"the smoke sample did not pass: {result}")
