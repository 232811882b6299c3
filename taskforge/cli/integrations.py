"""`taskforge export verl`, `taskforge serve` (OpenRLHF's remote reward) and `generate --ray`.

Errors follow the CLI's rule: a `TaskforgeError` raised here or in the library becomes one line and exit 2.
"""

from __future__ import annotations

from pathlib import Path

import typer

from taskforge.cli.app import app, fail, say
from taskforge.cli.data import progress_bar
from taskforge.cli.export import export_app
from taskforge.errors import MissingExtraError
from taskforge.io import DatasetComplete, DatasetSpec, read_tasks

SERVE_EXTRA = "taskforge serve needs FastAPI and uvicorn: pip install 'taskforge[serve]'"


def generate_on_ray(spec: DatasetSpec, out: Path, address: str, resume: bool) -> None:
    """The body of `taskforge generate ... --ray [--ray-address ADDRESS]`."""
    from taskforge.integrations.ray import BLOCK_ROWS, generate_ray, parts_dir

    spec.validate()
    bar, jobs = progress_bar(), []  # the bar starts with the first rows, not before a refusal

    def advance(k: int) -> None:
        if not jobs:
            bar.start()
            jobs.append(bar.add_task(f"generate {spec.family or spec.mix} on Ray", total=spec.n))
        bar.advance(jobs[0], k)

    try:
        written = generate_ray(
            spec,
            out,
            address=None if address == "local" else address,
            block_rows=BLOCK_ROWS,
            resume=resume,
            progress=advance,
        )
    except DatasetComplete:
        say(f"{out} is already complete ({spec.n} tasks); nothing to do")
        return
    except KeyboardInterrupt:
        say(f"interrupted: finished blocks are kept in {parts_dir(out)}; run the same command with --resume")
        raise typer.Exit(130) from None
    finally:
        if jobs:
            bar.stop()
    say(f"wrote {out} ({spec.n} tasks, {written} generated now)")


@export_app.command("verl")
def verl(
    tasks: Path = typer.Argument(..., help="tasks file `taskforge generate` wrote (.jsonl or .parquet)"),
    out: Path = typer.Option(..., "--out", "-o", help="output folder (gets <split>.parquet)"),
) -> None:
    """Write verl's RL parquet schema (data_source, prompt, ability, reward_model, extra_info); the reward is
    `reward.custom_reward_function.path=pkg://taskforge.integrations.verl`, `.name=compute_score`."""
    from taskforge.integrations.verl import export_verl

    with progress_bar() as bar:
        job = bar.add_task("export verl", total=None)
        written = export_verl(read_tasks(tasks), out, on_task=lambda: bar.advance(job))
    for path in written:
        say(f"wrote {path}")


@app.command()
def serve(
    tasks: list[Path] = typer.Option(
        ..., "--tasks", "-t", help="tasks file or folder (repeatable; Saturn JSONL too)"
    ),
    port: int = typer.Option(5000, "--port", "-p"),
    host: str = typer.Option("127.0.0.1", help="0.0.0.0 to accept other machines"),
    batch_size: int = typer.Option(64, help="responses verified together"),
    max_queue: int = typer.Option(4096, help="responses waiting at most; beyond, requests get 503"),
    timeout: float = typer.Option(60.0, help="seconds per request before a 504"),
    ray_actors: int = typer.Option(0, help="verify on this many Ray actors (0: in this process)"),
    ray_address: str = typer.Option(None, help="Ray cluster to join (default: a local one)"),
) -> None:
    """Serve rewards over HTTP in OpenRLHF's remote reward protocol (POST /get_reward)."""
    if not 1 <= port <= 65535:
        fail(f"--port must be in 1..65535, got {port}")
    if batch_size < 1 or max_queue < 1 or not timeout > 0 or ray_actors < 0:
        fail("--batch-size and --max-queue must be >= 1, --timeout > 0 and --ray-actors >= 0")
    try:
        import uvicorn

        from taskforge.integrations.serve import TaskIndex, create_app
    except ImportError:
        raise MissingExtraError(SERVE_EXTRA) from None
    index = TaskIndex.load(tasks)
    verify = None
    if ray_actors:
        from taskforge.integrations.ray import VerifierPool

        verify = VerifierPool(ray_actors, address=ray_address).verify_many
    application = create_app(
        index, verify=verify, batch_size=batch_size, max_queue=max_queue, timeout_s=timeout
    )
    say(f"serving {len(index)} tasks on http://{host}:{port}/get_reward (OpenRLHF: --reward.remote_url)")
    uvicorn.run(application, host=host, port=port, log_level="warning")
