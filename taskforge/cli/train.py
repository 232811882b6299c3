"""`taskforge tiny-model`, `taskforge train` and `taskforge eval`: the training side of the CLI.

torch and TRL are imported inside the commands, so `taskforge --help` stays fast without [train].
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from taskforge.cli.app import app, console, fail, say
from taskforge.errors import MissingExtraError
from taskforge.io import check_writable


def _need_train_extra() -> None:
    import importlib.util

    missing = [m for m in ("torch", "transformers", "trl", "datasets") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtraError(f"{', '.join(missing)} not installed: pip install 'taskforge[train]'")


@app.command("tiny-model")
def tiny_model(
    out_dir: Path = typer.Argument(..., help="folder to write the tokenizer and model into"),
    seed: int = typer.Option(0, help="weights and tokenizer corpus seed"),
    preset: str = typer.Option("tiny", help="named size: tiny (0.46M, CPU), small (~26M), base (~86M)"),
    hidden: int = typer.Option(None, help="hidden size (overrides the preset)"),
    layers: int = typer.Option(None, help="number of layers (overrides the preset)"),
    heads: int = typer.Option(None, help="attention heads (overrides the preset; head_dim 64 suits vLLM)"),
) -> None:
    """Build a random-weight Qwen2 chat model and tokenizer, offline and deterministically."""
    _need_train_extra()
    from taskforge.trainers.tiny import build_tiny_model, preset_shape

    h, n_layers, n_heads = preset_shape(preset)
    path = build_tiny_model(
        out_dir, seed=seed, hidden_size=hidden or h, num_layers=layers or n_layers, num_heads=heads or n_heads
    )
    import json

    info = json.loads((path / "taskforge_tiny.json").read_text())
    say(f"model written to {path} ({info['parameters']:,} parameters)")


@app.command("sft")
def sft_cmd(
    config: Path = typer.Argument(
        ..., help="warm-start config (YAML): model, output_dir, tasks, examples, sft"
    ),
    resume: str = typer.Option(None, "--resume", help="checkpoint folder, or 'latest' in the output dir"),
) -> None:
    """Supervised warm start on gold responses of a task mix (TRL's SFTTrainer, completion-only loss)."""
    _need_train_extra()
    from taskforge.trainers.sft import load_sft_config, sft

    result = sft(load_sft_config(config), resume=resume)
    say(
        f"done: {result['global_step']} steps on {result['examples']} gold examples, "
        f"train loss {result['train_loss']:.3f}; model in {result['output_dir']}"
    )


@app.command("train")
def train_cmd(
    config: Path = typer.Argument(..., help="training config (YAML)"),
    resume: str = typer.Option(None, "--resume", help="checkpoint folder, or 'latest' in the output dir"),
    max_steps: int = typer.Option(None, help="override grpo.max_steps"),
) -> None:
    """GRPO on a task stream with a curriculum controller, or on a fixed `dataset:` (with GRESO's `greso:`
    filter), with TRL's GRPOTrainer. Several processes: `torchrun --nproc_per_node N -m taskforge train
    CONFIG` (one logical curriculum across the ranks)."""
    _need_train_extra()
    from taskforge.trainers.config import load_config, read_yaml
    from taskforge.trainers.grpo import train

    raw = read_yaml(config)
    if max_steps is not None and isinstance(raw.get("grpo") or {}, dict):
        # Into the YAML's mapping, so the override is validated with the rest (`--max-steps 0` was set
        # after the checks and failed in transformers, with a traceback, once the model had loaded).
        raw["grpo"] = {**(raw.get("grpo") or {}), "max_steps": max_steps}
    result = train(load_config(raw), resume=resume)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun / accelerate launch the main process reports
    if result.already_done:
        say(
            f"nothing to do: the run already reached max_steps ({result.global_step}); output {result.output_dir}"
        )
        return
    say(f"done: {result['global_step']} steps; run log {result['log_path']}; output {result['output_dir']}")


@app.command("eval")
def eval_cmd(
    model: str = typer.Option(None, "--model", help="model folder (hf, vllm) or served model name (openai)"),
    tasks: Path = typer.Option(None, "--tasks", help="JSONL file of tasks (taskforge or Saturn records)"),
    bench: Path = typer.Option(
        None, "--bench", help="Saturn-style benchmark folder: one JSONL file per level"
    ),
    samples: int = typer.Option(12, "--samples", help="completions per task (n)"),
    k: str = typer.Option(
        None, "-k", help="comma-separated k for pass@k, each <= samples [default: 1,3,5,7,10 up to --samples]"
    ),
    backend: str = typer.Option("hf", "--backend", help="hf | vllm | openai"),
    base_url: str = typer.Option(
        None, "--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1"
    ),
    api_key: str = typer.Option(
        None, "--api-key", envvar="OPENAI_API_KEY", help="bearer token for --base-url"
    ),
    output: Path = typer.Option(
        Path("eval_out"), "-o", "--output", help="folder for completions and results"
    ),
    temperature: float = typer.Option(0.6, help="sampling temperature (Saturn: 0.6)"),
    top_p: float = typer.Option(0.95, help="nucleus sampling (Saturn: 0.95)"),
    max_tokens: int = typer.Option(
        15_000, help="max new tokens per completion (Saturn: 15,000, so R1-style reasoning is not cut)"
    ),
    limit: int = typer.Option(None, help="evaluate only the first N tasks (per level for --bench)"),
    seed: int = typer.Option(0),
    scoring: str = typer.Option(
        "strict", "--scoring", help="SAT scoring: strict (ours) | lenient | saturn (Saturn's reward, exactly)"
    ),
    model_name: str = typer.Option(
        None,
        "--model-name",
        help="name in Saturn's layout <out>/<level>/<name>/ (default: the model folder's name)",
    ),
    tokenizer: str = typer.Option(
        None,
        "--tokenizer",
        help="tokenizer folder to count tokens as Saturn does (default: the model folder)",
    ),
    rescore: Path = typer.Option(
        None, "--rescore", help="a Saturn results.jsonl (records + completions): score it again, no sampling"
    ),
    level: str = typer.Option(None, "--level", help="--rescore: level name (default: from Saturn's layout)"),
    surface: str = typer.Option(
        None, "--surface", help="surface forms to ask each task in: all, or e.g. plain,qa,numbers"
    ),
) -> None:
    """Unbiased pass@k per family and level, and average completion tokens."""
    try:
        ks = None if k is None else [int(x) for x in k.split(",") if x.strip()]
    except ValueError:
        fail(f"-k must be comma-separated integers, got {k!r}")
    from taskforge.trainers.evaluate import DEFAULT_KS, SCORINGS

    if scoring not in SCORINGS:
        fail(f"--scoring must be one of {', '.join(SCORINGS)}, got {scoring!r}")
    if surface is not None:
        from taskforge.surface import parse_forms

        try:
            parse_forms(surface)
        except ValueError as exc:
            fail(f"--surface: {exc}")
    if rescore is not None:
        _rescore(
            rescore, scoring, output, list(DEFAULT_KS) if ks is None else ks, model_name, level, tokenizer
        )
        return
    if model is None:
        fail("--model is required (or --rescore a results.jsonl)")
    if tasks is not None and not tasks.is_file():
        fail(f"tasks file {tasks} does not exist")
    if bench is not None and not bench.is_dir():
        fail(f"benchmark folder {bench} does not exist")
    if backend in ("hf", "vllm"):
        _need_train_extra()
    check_writable(output, folder=True)  # before a model loads, not after minutes of sampling
    from taskforge.trainers.evaluate import default_ks, evaluate

    result = evaluate(
        model,
        tasks_file=tasks,
        bench_dir=bench,
        backend=backend,
        samples=samples,
        ks=ks,
        base_url=base_url,
        api_key=api_key,
        output_dir=output,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        seed=seed,
        limit=limit,
        model_name=model_name,
        scoring=scoring,
        tokenizer=tokenizer,
        surface=surface,
        progress=True,
    )
    _print_table(
        result,
        default_ks(samples) if ks is None else ks,
        f"pass@k ({samples} samples per task, scoring {scoring})",
    )
    say(f"completions and results in {output}")


def _rescore(
    path: Path,
    scoring: str,
    output: Path,
    ks: list[int],
    model_name: str | None,
    level: str | None,
    tokenizer: str | None,
) -> None:
    from taskforge.trainers.evaluate import rescore

    if tokenizer is not None:
        _need_train_extra()
    check_writable(output, folder=True)
    result = rescore(
        path,
        scoring=scoring,
        output_dir=output,
        ks=ks,
        model_name=model_name,
        level=level,
        tokenizer=tokenizer,
    )
    _print_table(result, ks, f"pass@k of {path} (scoring {scoring})")
    say(f"rescored results in {output}")


def _print_table(result: Any, ks: list[int], title: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title)
    cols = [f"pass@{x}" for x in ks]
    for c in ("family/level", "tasks", *cols, "avg tokens"):
        table.add_column(c)
    for key, g in result.groups.items():
        tok = g["average_tokens"]
        table.add_row(
            escape(key),
            str(g["n_tasks"]),
            *(f"{g.get(c, float('nan')):.3f}" for c in cols),
            "-" if tok is None else f"{tok:.1f}",
        )
    console.print(table)
