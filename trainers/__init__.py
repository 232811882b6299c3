"""The GRPO trainer (TRL's GRPOTrainer fed by a TaskStream), reward adapters, the tiny offline model and
evaluation (pass@k). torch, transformers and TRL load only when a function that needs them runs."""

from taskforge.trainers.config import ConfigError, TrainConfig, load_config
from taskforge.trainers.evaluate import evaluate, pass_at_k
from taskforge.trainers.grpo import train
from taskforge.trainers.rewards import TaskReward, format_reward
from taskforge.trainers.tiny import build_tiny_model

__all__ = [
    "ConfigError",
    "TaskReward",
    "TrainConfig",
    "build_tiny_model",
    "evaluate",
    "format_reward",
    "load_config",
    "pass_at_k",
    "train",
]
