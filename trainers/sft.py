"""Supervised warm start: fine-tune on gold responses of a task mix, with TRL's SFTTrainer.

    model: runs/tiny-model            # a local folder (no hub access at run time)
    output_dir: runs/tiny-sft         # afterwards a valid `model:` for `taskforge train` and `taskforge eval`
    seed: 0
    examples: 4000                    # gold (prompt, response) pairs in all, split by weight
    tasks:                            # the same shape as `taskforge train`, plus `levels` (several levels)
      - {family: arithmetic, weight: 1.0, levels: [0, 1, 2]}
      - {family: sat, weight: 0.5, level: 0}
    sft: {max_steps: 400, per_device_train_batch_size: 32, learning_rate: 1.0e-3}

Each example is a train-split task and its generator's `gold_response` (the reference answer written as
a model should write it, e.g. `<answer>42</answer>`); held-out evaluation uses the test split, which is
disjoint by construction. The data is a prompt-completion dataset, so the loss covers the completion
only (TRL's `completion_only_loss`, on by default for that shape): the prompt is not trained on.
Everything is validated before the model loads; `resume` continues from a checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskforge.errors import ConfigError
from taskforge.registry import get_generator
from taskforge.trainers.config import (
    check_fields,
    read_run_config,
    task_family,
    typed,
    validate_model_folder,
)

TOP_KEYS = {"model", "output_dir", "seed", "examples", "tasks", "sft"}
TASK_KEYS = {"family", "weight", "level", "levels", "params"}
# CPU defaults (a plain SFTConfig() on a machine without CUDA asks for bf16); the user's `sft:` wins.
SFT_DEFAULTS: dict[str, Any] = {
    "logging_steps": 10,
    "report_to": [],
    "save_strategy": "no",
    "per_device_train_batch_size": 32,
    "learning_rate": 1e-3,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 20,
    "max_length": 512,
}


@dataclass
class SFTMix:
    family: str
    weight: float = 1.0
    levels: list[int | None] = field(default_factory=lambda: [None])  # None: `params` alone
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class SFTRunConfig:
    model: str
    output_dir: str
    tasks: list[SFTMix]
    seed: int = 0
    examples: int = 1000
    sft: dict[str, Any] = field(default_factory=dict)

    def sft_kwargs(self) -> dict[str, Any]:
        import torch

        kw = {**SFT_DEFAULTS, **self.sft, "output_dir": self.output_dir, "seed": self.seed}
        if not torch.cuda.is_available():
            kw.setdefault("use_cpu", True)
            kw.setdefault("bf16", False)
        return kw


def load_sft_config(source: str | Path | dict[str, Any]) -> SFTRunConfig:
    """Read (a YAML path or a dict) and validate; raises ConfigError with one clear message."""
    raw, entries = read_run_config(source, TOP_KEYS, TASK_KEYS)
    mix = []
    for entry in entries:
        if "level" in entry and "levels" in entry:
            raise ConfigError(f"{entry['family']}: give `level` or `levels`, not both")
        levels = entry.get("levels", [entry["level"]] if "level" in entry else [None])
        if not isinstance(levels, list) or not levels:
            raise ConfigError(f"{entry['family']}: `levels` must be a non-empty list of level indices")
        mix.append(
            SFTMix(
                entry["family"],
                float(entry.get("weight", 1.0)),
                list(levels),
                dict(entry.get("params") or {}),
            )
        )
    cfg = SFTRunConfig(
        model=typed(raw["model"], "model", "path"),
        output_dir=typed(raw["output_dir"], "output_dir", "path"),
        tasks=mix,
        seed=typed(raw.get("seed", 0), "seed", "integer"),
        examples=typed(raw.get("examples", 1000), "examples", "integer"),
        sft=dict(raw.get("sft") or {}),
    )
    validate_sft(cfg)
    return cfg


def validate_sft(cfg: SFTRunConfig) -> None:
    """Everything that can be checked without loading a model; the first problem found is raised."""
    validate_model_folder(cfg.model)
    if cfg.examples < 1:
        raise ConfigError(f"examples must be >= 1, got {cfg.examples}")
    for t in cfg.tasks:
        cls = task_family(t.family, t.weight)
        for level in t.levels:
            try:
                cls.resolve_params(level, t.params)
            except (ValueError, KeyError, IndexError) as exc:
                raise ConfigError(f"{t.family}: {exc}") from None
    from trl import SFTConfig

    check_fields(SFTConfig, cfg.sft)
    if int(cfg.sft.get("max_steps", 0) or 0) <= 0 and "num_train_epochs" not in cfg.sft:
        raise ConfigError("sft.max_steps (or sft.num_train_epochs) must be set")
    try:
        SFTConfig(**cfg.sft_kwargs())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"SFTConfig rejected the settings: {exc}") from None


def shares(total: int, weights: list[float]) -> list[int]:
    """Split `total` by weight into integers that sum to `total` (largest remainders, ties to the first)."""
    exact = [total * w / sum(weights) for w in weights]
    out = [int(x) for x in exact]
    for i in sorted(range(len(exact)), key=lambda i: out[i] - exact[i])[: total - sum(out)]:
        out[i] += 1
    return out


def gold_examples(cfg: SFTRunConfig) -> list[dict[str, Any]]:
    """The prompt-completion rows: train-split tasks of the mix and their gold responses, in a fixed order
    (same config, same rows). Entries and their levels share `examples` by weight, levels equally."""
    from taskforge.api import generate

    slots = [(t, level, t.weight / len(t.levels)) for t in cfg.tasks for level in t.levels]
    rows = []
    for (t, level, _), n in zip(slots, shares(cfg.examples, [w for *_, w in slots]), strict=True):
        gen = get_generator(t.family)
        for task in generate(t.family, n, level=level, params=t.params or None, seed=cfg.seed, split="train"):
            rows.append(
                {
                    "prompt": task.messages,
                    "completion": [{"role": "assistant", "content": gen.gold_response(task)}],
                    "task_id": task.id,
                }
            )
    return rows


def _checkpoint(out: Path, resume: str | bool | None) -> str | None:
    if not resume:
        return None
    if resume is True or resume == "latest":
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(str(out)) if out.is_dir() else None
        if last is None:
            raise ConfigError(f"--resume: no checkpoint-* folder in {out}")
        return last
    if not Path(str(resume)).is_dir():
        raise ConfigError(f"--resume: checkpoint folder {resume} does not exist")
    return str(resume)


def build_sft_trainer(cfg: SFTRunConfig) -> Any:
    """TRL's SFTTrainer on the gold rows of `cfg` (model loaded, nothing trained yet)."""
    import datasets
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    transformers.set_seed(cfg.seed)
    dataset = datasets.Dataset.from_list(gold_examples(cfg)).remove_columns("task_id")
    tokenizer = AutoTokenizer.from_pretrained(cfg.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(cfg.model)
    return SFTTrainer(
        model=model, args=SFTConfig(**cfg.sft_kwargs()), train_dataset=dataset, processing_class=tokenizer
    )


def sft(
    config: SFTRunConfig | dict[str, Any] | str | Path, resume: str | bool | None = None
) -> dict[str, Any]:
    """Run the warm start; returns {"global_step", "output_dir", "examples", "train_loss"}. `resume` is a
    checkpoint folder or "latest" (set `sft.save_steps` to write checkpoints)."""
    cfg = config if isinstance(config, SFTRunConfig) else load_sft_config(config)
    out = Path(cfg.output_dir)
    ckpt = _checkpoint(out, resume)
    trainer = build_sft_trainer(cfg)
    result = trainer.train(resume_from_checkpoint=ckpt)
    trainer.save_model(str(out))  # model + tokenizer: a valid `model:` for train and eval
    trainer.processing_class.save_pretrained(str(out))
    return {
        "global_step": trainer.state.global_step,
        "output_dir": str(out),
        "examples": len(trainer.train_dataset),
        "train_loss": float(result.training_loss),
    }
