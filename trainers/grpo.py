"""GRPO on a task stream: TRL's GRPOTrainer, fed by our TaskStream, rewarded by our verifiers.

    stream (controller proposes cells) -> datasets.IterableDataset (prompt, task) -> GRPOTrainer
        -> TaskReward (verify G completions per prompt) -> stream.observe(task_id, rewards) -> controller

The controller's and the stream's state ride in every checkpoint (`taskforge_state.json`), and a resumed
run goes on exactly as the uninterrupted run would have: the prompts TRL's dataloader had already pulled
for the next step are handed out again, the reward counters are restored, and the run log is cut back to
where it stood at the checkpoint.

Several processes (`torchrun --nproc_per_node N -m taskforge.cli train cfg.yaml`, or `accelerate launch`):
every rank runs the same stream with the same seed, so every rank proposes the same global batch and
keeps its own slice (accelerate's IterableDatasetShard); the reward gathers every rank's outcomes, so each
group is observed exactly once per rank, in the same order, and the controllers stay identical (checked
every step by a hash). Only the main process writes the run log and the checkpoint state.

A fixed dataset (`dataset:` in the YAML, or `train(cfg, dataset=...)`) takes the stream's place: a
`GresoFilter` walks it epoch by epoch and, with `greso:`, skips prompts before rollout (GRESO); it has the
stream's interface, so the same reward routing, run log, rank check and checkpoint state serve both.
With `surface:`, what the trainer's dataset iterates is wrapped in `taskforge.surface.Surfaced`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskforge.registry import generator_class
from taskforge.task import Task
from taskforge.trainers.config import ConfigError, TrainConfig, load_config, load_dataset, read_yaml, validate
from taskforge.trainers.policy_eval import PolicyEvaluator, needs_policy_evaluator
from taskforge.trainers.rewards import TaskReward, format_reward

STATE_FILE = "taskforge_state.json"
# Library warnings repeated every step or on every resume, none of which a user can act on.
QUIET_WARNINGS = (
    r"`is_gradient_checkpointing` is deprecated",  # TRL 1.16 asks the model under transformers 5's old name
    r"`gradient_checkpointing\w*` is deprecated",
)


@dataclass
class TrainResult:
    global_step: int
    output_dir: str
    log_path: str
    stream: Any
    reward: TaskReward
    trainer: Any
    start_state: dict[str, Any] | None = None
    already_done: bool = False  # resumed from a checkpoint at max_steps: nothing was trained

    def __getitem__(self, key: str) -> Any:  # lets the CLI read it like a dict
        return getattr(self, key)


# ---- the stream ---------------------------------------------------------------------------------


def build_stream(cfg: TrainConfig, log_path: Path | None, world_size: int = 1) -> Any:
    """One controller per family over its KnobSpace (a one-cell space for fixed params), combined by a
    Mixture with the configured weights, behind a TaskStream that writes the run log (`log_path`: the
    main process only; None elsewhere)."""
    from taskforge.curricula import KnobSpace, Mixture, make_controller
    from taskforge.curricula.stream import TaskStream

    ctrl_settings = {k: v for k, v in cfg.controller.items() if k != "name"}
    controllers = {}
    for t in cfg.tasks:
        cls = generator_class(t.family)
        if t.curriculum:
            space = KnobSpace.from_generator(cls, max_level=t.max_level)
            ctrl = make_controller(
                cfg.controller["name"], space=space, group_size=cfg.group_size, seed=cfg.seed, **ctrl_settings
            )
        else:
            params = cls.resolve_params(t.level, t.params)
            first = next(iter(params))
            space = KnobSpace({first: [params[first]]}, base=params, family=t.family)
            ctrl = make_controller("uniform", space=space, group_size=cfg.group_size, seed=cfg.seed)
        controllers[t.family] = ctrl
    mixture = Mixture(controllers, weights={t.family: t.weight for t in cfg.tasks}, seed=cfg.seed)
    # Propose one global generation batch at a time (every rank reads the whole global batch from its own,
    # identical stream and keeps its slice), so each batch's cells follow the freshest observations.
    kw = cfg.grpo_kwargs()
    opts = {
        "batch": max(cfg.prompts_per_generation(world_size), 1),
        "prefetch": 1,
        "log_path": log_path,
        **cfg.stream,
    }
    saturn = needs_policy_evaluator(list(controllers.values()))
    if saturn is not None and "evaluator" not in opts:
        # A YAML run cannot pass an evaluator: saturn's held-out checks sample the policy being trained.
        st = saturn.settings
        opts["evaluator"] = PolicyEvaluator(
            cfg.reward,
            temperature=st["eval_temperature"],
            top_p=st["eval_top_p"],
            max_tokens=st["eval_max_tokens"] or kw.get("max_completion_length", 256),
            seed=cfg.seed,
        )
    return TaskStream(mixture, seed=cfg.seed, **opts)


def build_dataset_source(cfg: TrainConfig, log_path: Path | None, tasks: list[Task] | None = None) -> Any:
    """The fixed dataset behind a GresoFilter: GRESO's settings with `greso:`, plain epochs without.
    `tasks`: the dataset already read (`load_dataset(cfg)`), else it is read here."""
    from taskforge.curricula.greso import GresoFilter
    from taskforge.trainers.config import load_dataset

    if tasks is None:
        tasks = load_dataset(cfg)
    if cfg.greso is None:
        return GresoFilter.plain(tasks, seed=cfg.seed, log_path=log_path)
    return GresoFilter(tasks, seed=cfg.seed, log_path=log_path, **cfg.greso)


def source_kind(source: Any) -> str:
    return "stream" if hasattr(source, "mixture") else "dataset"


def predicted_zero_var(task: Task) -> float | None:
    """What the controller predicted, when it proposed this task, for the chance of an all-equal group."""
    value = task.meta.get("predicted_zero_var")
    return float(value) if isinstance(value, (int, float)) else None


def stream_state(stream: Any) -> dict[str, Any]:
    return json.loads(json.dumps(stream.state_dict()))


def state_digest(stream: Any, shaper: Any = None) -> str:
    """A short hash of the controllers' state (or the fixed dataset's filter), and the length reward's
    state when there is one: equal on every rank, or the ranks' curricula or shaping diverged."""
    state = stream_state(stream)
    parts: dict[str, Any] = {"source": state.get("mixture", state)}
    if shaper is not None:
        parts["shaping"] = shaper.state_dict()
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.blake2b(blob, digest_size=8).hexdigest()


def source_summary(source: Any) -> dict[str, float]:
    """The dashboard scalars of the task source: the controllers' summary, or the GRESO filter's."""
    return controller_summary(source) if source_kind(source) == "stream" else source.metrics()


def controller_summary(stream: Any) -> dict[str, float]:
    """A few scalars per family for the dashboards, read from the controller without drawing a proposal:
    the family's share of the mix, groups observed, the mean predicted pass rate over the ladder's levels,
    and `frontier_level`, how many levels it predicts to pass at least half the time."""
    out: dict[str, float] = {}
    weights = stream.mixture.weights()
    for family, ctrl in stream.mixture.controllers.items():
        out[f"curriculum/{family}/weight"] = float(weights[family])
        out[f"curriculum/{family}/observed"] = float(ctrl.observed)
        levels = ctrl.space.levels
        preds = [ctrl.predict(ctrl.space.cell(c))["p"] for c in levels]
        out[f"curriculum/{family}/predicted_p_mean"] = float(sum(preds) / len(preds))
        out[f"curriculum/{family}/frontier_level"] = float(sum(p >= 0.5 for p in preds))
    return out


# ---- the callback -------------------------------------------------------------------------------


def make_callback(
    stream: Any,
    reward: TaskReward,
    log_path: Path,
    heldout: Any = None,
    shaper: Any = None,
    options: dict[str, Any] | None = None,
) -> Any:
    from accelerate.utils import gather_object
    from transformers import Trainer, TrainerCallback

    class TaskforgeCallback(TrainerCallback):
        """Writes one run-log line per logging step (TRL's metrics, which carry our pass rates, choices and
        controller summary), checks that every rank holds the same controller state, runs the held-out
        evaluation every `eval_every` steps, and saves our state with every checkpoint."""

        def __init__(self) -> None:
            self.start_state: dict[str, Any] | None = None
            self.trainer: Any = None  # set by train(): the held-out evaluation logs through it
            self.resumed_from: Path | None = None  # set by train() on resume
            self._digests: list[str] = []

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            # What the run starts from (after a resume: what the checkpoint held); kept for the record.
            self.start_state = stream_state(stream)
            if heldout is not None and state.global_step == 0:
                self._evaluate(state)

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.resumed_from is not None:
                # transformers restores the checkpoint's RNG state before creating the dataloader's iterator,
                # and torch draws a base seed from the global generator when it does: the resumed run would
                # sample from a state one draw off the uninterrupted run's. Restored again here, just before
                # the first step's generation, it is the state the uninterrupted run had at this point.
                self.trainer._load_rng_state(str(self.resumed_from))
                self.resumed_from = None

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            # An endless stream has no epochs: transformers counts them from the point a run was resumed,
            # so a resumed run would log other figures than the uninterrupted one. The share of max_steps
            # is the same in both.
            state.epoch = state.global_step / state.max_steps
            # A collective call on every rank: cheap (a hash each), and a divergence stops the run loudly
            # instead of training on curricula that silently differ.
            # The length reward's state only matters across ranks (and a large HAPO history costs a hash).
            digest = state_digest(stream, shaper if args.world_size > 1 else None)
            self._digests = list(gather_object([digest])) if args.world_size > 1 else [digest]
            if len(set(self._digests)) > 1:
                raise RuntimeError(
                    f"controller or length-reward states differ across ranks at step {state.global_step}: "
                    f"{self._digests}"
                )
            if heldout is not None and heldout.every and state.global_step % heldout.every == 0:
                self._evaluate(state)

        def _evaluate(self, state: Any) -> None:
            if not state.is_world_process_zero:
                return  # the main process evaluates; the others wait for it at the next collective
            metrics = heldout.run(self.trainer)
            self._write(
                {"event": "heldout", "step": state.global_step, "observed": stream.observed, **metrics}
            )
            # transformers' own Trainer.log sends them to the report_to backends at this step; TRL's override
            # would also flush (and so steal) the training metrics gathered for this step's log. Logging
            # clears `should_log`, which would drop this step's regular log line: it is put back.
            control = self.trainer.control
            should_log = control.should_log
            Trainer.log(self.trainer, dict(metrics))
            self.trainer.control.should_log = control.should_log = should_log

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
        ) -> None:
            if not state.is_world_process_zero or not logs or any(k.startswith("heldout/") for k in logs):
                return
            rec: dict[str, Any] = {"event": "train_step", "step": state.global_step}
            rec.update({k: v for k, v in logs.items() if isinstance(v, (int, float, str))})
            rec["state_digests"] = self._digests
            self._write(rec)

        def _write(self, rec: dict[str, Any]) -> None:
            stream.log_record(rec)  # the stream owns the run log (main process only; a no-op elsewhere)

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if not state.is_world_process_zero:
                return
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            ckpt.mkdir(parents=True, exist_ok=True)
            payload = {
                "global_step": state.global_step,
                "source": source_kind(stream),
                "stream": stream_state(stream),
                "groups_routed": reward.groups_routed,
                "options": options,  # what the saved state means: a resume must bring the same
                # Where the run log stood: a resume from here cuts it back, so no step is logged twice.
                "log_offset": log_path.stat().st_size if log_path.is_file() else 0,
            }
            tmp = ckpt / (STATE_FILE + ".tmp")
            tmp.write_text(json.dumps(payload))
            tmp.replace(ckpt / STATE_FILE)

    return TaskforgeCallback()


def save_merged_lora(model: Any, out: Path) -> None:
    """vLLM loads a full model folder, not an adapter: write the merged weights over the adapter files."""
    model.merge_and_unload().save_pretrained(str(out))
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (out / name).unlink(missing_ok=True)


def resume_options(cfg: TrainConfig, dataset_tasks: list[Task] | None) -> dict[str, Any]:
    """The options whose state a checkpoint holds: GRESO's settings (its exploration rates and runs), the
    length reward without its weight (HAPO's histories, LASER-D's targets) and the fixed dataset (the
    filter's per-prompt arrays are indexed by its order)."""
    shaping = (
        None if cfg.length_reward is None else {k: v for k, v in cfg.length_reward.items() if k != "weight"}
    )
    digest = None
    if dataset_tasks is not None:
        digest = hashlib.sha256("\n".join(t.id for t in dataset_tasks).encode()).hexdigest()[:16]
    return {"greso": cfg.greso, "length_reward": shaping, "dataset": digest}


def check_resume_options(saved: dict[str, Any] | None, now: dict[str, Any], ckpt: Path | None) -> None:
    """Refuse a resume whose config changes what the checkpoint's state means. Without this, `greso:
    {enabled: false}` on a GRESO checkpoint kept skipping with the saved rates, a changed length reward
    silently restarted from empty state, and a different dataset misread the per-prompt arrays."""
    if saved is None:  # a checkpoint from before options were saved
        return
    for key, value in now.items():
        if saved.get(key) != value:
            what = "tasks (ids)" if key == "dataset" else "settings"
            raise ConfigError(
                f"--resume: {ckpt} was written with other `{key}` {what} ({saved.get(key)!r}; this config: "
                f"{value!r}); resume with the same `{key}`, or train into a new output_dir"
            )


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


def _quiet_library_noise() -> None:
    """Warnings that repeat every step and tell a taskforge user nothing they can act on."""
    import warnings

    from transformers.utils import logging as hf_logging

    for pattern in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    # "The following layers were not sharded" on every save of a model without a tensor-parallel plan.
    hf_logging.get_logger("transformers.distributed.tensor_parallel").setLevel(hf_logging.ERROR)


# ---- train --------------------------------------------------------------------------------------


def train(
    config: TrainConfig | dict[str, Any] | str | Path,
    resume: str | bool | None = None,
    *,
    dataset: Any = None,
) -> TrainResult:
    """Run GRPO as configured; `resume` continues from a checkpoint with the stream and controller state
    it saved, exactly as the uninterrupted run would have gone on. `dataset` (a `datasets.Dataset` of task
    rows, a list of Tasks, a tasks file) trains on that fixed dataset instead of the configured stream.
    Bad configuration raises ConfigError before any model loads. Under `torchrun`/`accelerate launch`
    every rank runs this same function."""
    if dataset is not None:
        if isinstance(config, TrainConfig):
            cfg = dataclasses.replace(config, dataset=dataset, tasks=[])
            validate(cfg)
        else:
            cfg = load_config({**read_yaml(config), "dataset": dataset, "tasks": []})
    else:
        cfg = config if isinstance(config, TrainConfig) else load_config(config)
    ckpt = find_checkpoint(cfg.output_dir, resume) if resume else None
    saved = json.loads((ckpt / STATE_FILE).read_text()) if ckpt is not None else None
    if saved is not None and saved.get("source", "stream") != (
        "stream" if cfg.dataset is None else "dataset"
    ):
        raise ConfigError(
            f"--resume: {ckpt} was written by a run on a {saved.get('source', 'stream')}, and this config "
            "trains on the other kind of task source"
        )

    # Read (and checked) before the output folder is touched or the model loads.
    dataset_tasks = None if cfg.dataset is None else load_dataset(cfg)
    options = resume_options(cfg, dataset_tasks)
    if saved is not None:
        check_resume_options(saved.get("options"), options, ckpt)

    import transformers
    from accelerate.utils import gather_object
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    _quiet_library_noise()
    transformers.set_seed(cfg.seed)
    out = Path(cfg.output_dir)
    args = GRPOConfig(**cfg.grpo_kwargs())  # sets up the process group under torchrun
    main = args.process_index == 0
    log_path = out / "run_log.jsonl"
    done = saved is not None and int(saved["global_step"]) >= args.max_steps
    if main:
        out.mkdir(parents=True, exist_ok=True)
        if saved is not None and not done and log_path.is_file():
            # A resume from an earlier checkpoint: what the log holds past it is replayed by this run.
            with log_path.open("r+b") as fh:
                fh.truncate(int(saved.get("log_offset", fh.seek(0, 2))))
    if cfg.dataset is not None:
        stream = build_dataset_source(cfg, log_path if main else None, dataset_tasks)
    else:
        try:
            stream = build_stream(cfg, log_path if main else None, args.world_size)
        except (TypeError, ValueError) as exc:  # e.g. saturn without an evaluator: before any model loads
            raise ConfigError(f"task stream: {exc}") from None
    if saved is not None:
        # replay: the prompts the dataloader had pulled for the next step died with the old process.
        stream.load_state_dict(saved["stream"], replay=True)

    reward = TaskReward(
        cfg.group_size,
        stream.observe,
        predict_zero_var=predicted_zero_var,
        workers=cfg.verify_workers,
        reward=cfg.reward,
        gather=gather_object if args.world_size > 1 else None,
        metrics=lambda: source_summary(stream),
    )
    if saved is not None:
        reward.groups_routed = int(saved.get("groups_routed", 0))
    reward_funcs: list[Any] = [reward]
    if cfg.format_reward:
        reward_funcs.append(format_reward)
    shaper = None
    if cfg.length_reward:  # after format_reward: the order of cfg.grpo_kwargs()'s reward_weights
        from taskforge.trainers import shaping

        shaper = shaping.make_length_reward(
            cfg.length_reward,
            cfg.group_size,
            correct=reward,
            max_completion_length=args.max_completion_length,
            # Every rank's rows, so that every rank holds the same state (rank 0's save is complete).
            gather=gather_object if args.world_size > 1 else None,
            rank=args.process_index,
        )
        if ckpt is not None:
            shaping.load_shaping_state(shaper, ckpt)
        reward_funcs.append(shaper)

    tokenizer = AutoTokenizer.from_pretrained(cfg.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(cfg.model)
    tied = dict(getattr(model, "all_tied_weights_keys", None) or {})
    if tied:
        # Tied weights (lm_head = embeddings) are saved once, so a checkpoint lacks lm_head.weight, and on
        # resume transformers warned that it was missing. Declared as not saved, it is re-tied on load.
        model._keys_to_ignore_on_save = set(tied)
    peft_config = None
    if cfg.lora is not None:
        from peft import LoraConfig

        peft_config = LoraConfig(
            **{"task_type": "CAUSAL_LM", "r": 8, "lora_alpha": 16, "target_modules": "all-linear", **cfg.lora}
        )

    if cfg.use_vllm and cfg.vllm_mode == "colocate":
        from taskforge.trainers.vllm_cpu import keep_cpu_linears_live

        keep_cpu_linears_live()  # on CPU only: so TRL's weight syncs reach the logits vLLM samples from
    heldout = None
    if cfg.eval_every:
        from taskforge.trainers.heldout import HeldOut

        heldout = HeldOut.from_config(cfg)
    callback = make_callback(stream, reward, log_path, heldout, shaper, options)
    if cfg.surface:
        from taskforge.curricula.stream import TaskStream
        from taskforge.surface import Surfaced

        # Only what the dataset iterates is wrapped: ids are unchanged, so observe and state are the source's.
        train_dataset = TaskStream.as_hf_dataset(Surfaced(stream, cfg.surface, cfg.seed))  # type: ignore[arg-type]
    else:
        train_dataset = stream.as_hf_dataset()
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[callback] + ([shaping.shaping_callback(shaper)] if shaper is not None else []),
    )
    callback.trainer = trainer
    callback.resumed_from = ckpt
    if isinstance(getattr(stream, "evaluator", None), PolicyEvaluator):
        stream.evaluator.bind(trainer, tokenizer)
    try:
        if done:
            # Finished already: transformers would still take one step past max_steps.
            trainer.state.global_step = int(saved["global_step"])
        else:
            trainer.train(resume_from_checkpoint=str(ckpt) if ckpt is not None else None)
            trainer.save_model(
                str(out)
            )  # the final model (or LoRA adapter) and tokenizer, ready for `taskforge eval`
            if cfg.merge_lora and trainer.accelerator.is_main_process:
                save_merged_lora(trainer.accelerator.unwrap_model(trainer.model), out)
    finally:
        stream.close()
    return TrainResult(
        trainer.state.global_step,
        str(out),
        str(log_path),
        stream,
        reward,
        trainer,
        callback.start_state,
        done,
    )
