"""GRPO on a task stream: TRL's GRPOTrainer, fed by our TaskStream, rewarded by our verifiers.

    stream (controller proposes cells) -> datasets.IterableDataset (prompt, task) -> GRPOTrainer
        -> TaskReward (verify G completions per prompt) -> stream.observe(task_id, rewards) -> controller

The controller's and the stream's state ride in every checkpoint (`taskforge_state.json`), and a resumed
run starts from exactly that state.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskforge.registry import generator_class
from taskforge.task import Task
from taskforge.trainers.config import ConfigError, TrainConfig, load_config
from taskforge.trainers.rewards import TaskReward, format_reward

STATE_FILE = "taskforge_state.json"


@dataclass
class TrainResult:
    global_step: int
    output_dir: str
    log_path: str
    stream: Any
    reward: TaskReward
    trainer: Any
    start_state: dict[str, Any] | None = None

    def __getitem__(self, key: str) -> Any:  # lets the CLI read it like a dict
        return getattr(self, key)


# ---- the stream ---------------------------------------------------------------------------------


def build_stream(cfg: TrainConfig, log_path: Path) -> Any:
    """One controller per family over its KnobSpace (a one-cell space for fixed params), combined by a
    Mixture with the configured weights, behind a TaskStream that writes the run log."""
    from taskforge.curricula import KnobSpace, Mixture, make_controller
    from taskforge.curricula.stream import TaskStream

    ctrl_settings = {k: v for k, v in cfg.controller.items() if k != "name"}
    controllers = {}
    for t in cfg.tasks:
        cls = generator_class(t.family)
        if t.curriculum:
            space = KnobSpace.from_generator(cls)
            ctrl = make_controller(cfg.controller["name"], space=space, group_size=cfg.group_size, seed=cfg.seed, **ctrl_settings)
        else:
            params = cls.resolve_params(t.level, t.params)
            first = next(iter(params))
            space = KnobSpace({first: [params[first]]}, base=params, family=t.family)
            ctrl = make_controller("uniform", space=space, group_size=cfg.group_size, seed=cfg.seed)
        controllers[t.family] = ctrl
    mixture = Mixture(controllers, weights={t.family: t.weight for t in cfg.tasks}, seed=cfg.seed)
    # Propose one generation batch at a time, so each batch's cells follow the freshest observations.
    kw = cfg.grpo_kwargs()
    per_gen = kw["per_device_train_batch_size"] * (kw.get("steps_per_generation") or kw.get("gradient_accumulation_steps", 1))
    opts = {"batch": max(per_gen // cfg.group_size, 1), "prefetch": 1, "log_path": log_path, **cfg.stream}
    return TaskStream(mixture, seed=cfg.seed, **opts)


def predicted_zero_var(task: Task) -> float | None:
    """What the controller predicted, when it proposed this task, for the chance of an all-equal group."""
    value = task.meta.get("predicted_zero_var")
    return float(value) if isinstance(value, (int, float)) else None


def stream_state(stream: Any) -> dict[str, Any]:
    return json.loads(json.dumps(stream.state_dict()))


# ---- the callback -------------------------------------------------------------------------------


def make_callback(stream: Any, reward: TaskReward, log_path: Path) -> Any:
    from transformers import TrainerCallback

    class TaskforgeCallback(TrainerCallback):
        """Writes one run-log line per logging step (TRL's metrics, our pass rates per family and level,
        the controller's choices, observed vs predicted zero-variance share) and saves our state with
        every checkpoint."""

        def __init__(self) -> None:
            self._lock = threading.Lock()
            self.start_state: dict[str, Any] | None = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            # What the run starts from (after a resume: what the checkpoint held); kept for the record.
            self.start_state = stream_state(stream)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            if not state.is_world_process_zero:
                return
            rec: dict[str, Any] = {"event": "train_step", "step": state.global_step}
            rec.update({k: v for k, v in (logs or {}).items() if isinstance(v, (int, float, str))})
            rec.update(reward.stats.drain())
            with self._lock, log_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(rec, default=float) + "\n")

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if not state.is_world_process_zero:
                return
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            ckpt.mkdir(parents=True, exist_ok=True)
            payload = {"global_step": state.global_step, "stream": stream_state(stream), "groups_routed": reward.groups_routed}
            tmp = ckpt / (STATE_FILE + ".tmp")
            tmp.write_text(json.dumps(payload))
            tmp.replace(ckpt / STATE_FILE)

    return TaskforgeCallback()


def save_merged_lora(model: Any, out: Path) -> None:
    """vLLM loads a full model folder, not an adapter: write the merged weights over the adapter files."""
    model.merge_and_unload().save_pretrained(str(out))
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (out / name).unlink(missing_ok=True)


def find_checkpoint(output_dir: str | Path, resume: str | bool) -> Path:
    """`resume` is a checkpoint folder, or True/'latest' for the newest checkpoint in the output dir."""
    if resume is True or resume == "latest":
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None
        if last is None:
            raise ConfigError(f"--resume: no checkpoint-* folder in {output_dir}")
        return Path(last)
    path = Path(str(resume))
    if not path.is_dir():
        raise ConfigError(f"--resume: checkpoint folder {path} does not exist")
    if not (path / STATE_FILE).is_file():
        raise ConfigError(f"--resume: {path} has no {STATE_FILE} (not written by taskforge train)")
    return path


# ---- train --------------------------------------------------------------------------------------


def train(config: TrainConfig | dict[str, Any] | str | Path, resume: str | bool | None = None) -> TrainResult:
    """Run GRPO as configured; `resume` continues from a checkpoint with the stream and controller state
    it saved. Bad configuration raises ConfigError before any model loads."""
    cfg = config if isinstance(config, TrainConfig) else load_config(config)
    ckpt = find_checkpoint(cfg.output_dir, resume) if resume else None

    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    transformers.set_seed(cfg.seed)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        stream = build_stream(cfg, out / "run_log.jsonl")
    except (TypeError, ValueError) as exc:  # e.g. saturn without an evaluator: still before any model loads
        raise ConfigError(f"task stream: {exc}") from None
    if ckpt is not None:
        saved = json.loads((ckpt / STATE_FILE).read_text())
        stream.load_state_dict(saved["stream"])
    log_path = Path(getattr(stream, "log_path", None) or out / "run_log.jsonl")

    reward = TaskReward(cfg.group_size, stream.observe, predict_zero_var=predicted_zero_var, workers=cfg.verify_workers)
    reward_funcs: list[Any] = [reward]
    if cfg.format_reward:
        reward_funcs.append(format_reward)

    tokenizer = AutoTokenizer.from_pretrained(cfg.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(cfg.model)
    peft_config = None
    if cfg.lora is not None:
        from peft import LoraConfig

        peft_config = LoraConfig(**{"task_type": "CAUSAL_LM", "r": 8, "lora_alpha": 16, "target_modules": "all-linear", **cfg.lora})

    if cfg.use_vllm and cfg.vllm_mode == "colocate":
        from taskforge.trainers.vllm_cpu import keep_cpu_linears_live

        keep_cpu_linears_live()  # on CPU only: so TRL's weight syncs reach the logits vLLM samples from
    callback = make_callback(stream, reward, log_path)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=GRPOConfig(**cfg.grpo_kwargs()),
        train_dataset=stream.as_hf_dataset(),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[callback],
    )
    try:
        trainer.train(resume_from_checkpoint=str(ckpt) if ckpt is not None else None)
        trainer.save_model(str(out))  # the final model (or LoRA adapter) and tokenizer, ready for `taskforge eval`
        if cfg.merge_lora and trainer.accelerator.is_main_process:
            save_merged_lora(trainer.accelerator.unwrap_model(trainer.model), out)
    finally:
        close = getattr(stream, "close", None)
        if callable(close):
            close()
    return TrainResult(trainer.state.global_step, str(out), str(log_path), stream, reward, trainer, callback.start_state)
