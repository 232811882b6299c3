"""The GRPO trainer on CPU: config validation, an end-to-end mix with the adaptive controller,
checkpoint/resume of the controller state, and a learning test on a task the tiny model can learn."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("trl")

from taskforge.generator import Knob  # noqa: E402
from taskforge.registry import _registry, register  # noqa: E402
from taskforge.task import Verdict  # noqa: E402
from taskforge.trainers.config import ConfigError, load_config  # noqa: E402
from tests.stubs import StubGenerator  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from taskforge.trainers.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


class SayTarget(StubGenerator):
    """Test-only family: pass when the reply contains the target character. A random-weight model emits it
    in a few percent of short replies, so GRPO has signal from the first step and a clear way up."""

    family = "test_say_target"
    knobs = (Knob("target", str, ">", choices=(">", "7")),)
    levels = ({"target": ">"},)

    def generate(self, params, rng):
        n = rng.randrange(10**9)
        return self.make_task(
            params,
            prompt=f"Reply with {params['target']}. ({n})",
            answer=params["target"],
            check={"target": params["target"]},
        )

    def verify(self, task, response):
        ok = task.check["target"] in response
        return Verdict.ok(parsed=response[:20]) if ok else Verdict.fail("wrong", parsed=response[:20])

    def corrupt_answer(self, task, rng):
        return "<answer>8</answer>"


@pytest.fixture
def say_target():
    register(SayTarget)
    yield SayTarget
    _registry.pop(SayTarget.family, None)


def base_config(model, out, **grpo):
    return {
        "model": str(model),
        "output_dir": str(out),
        "seed": 0,
        "tasks": [
            {"family": "arithmetic", "weight": 1.0, "curriculum": True},
            {"family": "sat", "weight": 1.0, "curriculum": True},
        ],
        "controller": {"name": "adaptive"},
        "grpo": {
            "max_steps": 4,
            "num_generations": 4,
            "per_device_train_batch_size": 8,
            "max_completion_length": 8,
            "learning_rate": 1e-3,
            **grpo,
        },
    }


# ---- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["tasks"].append({"family": "no_such_family"}), "unknown family 'no_such_family'"),
        (lambda c: c.update(model="/nonexistent/model"), "does not exist"),
        (lambda c: c["grpo"].update(not_a_field=1), "unknown GRPOConfig fields ['not_a_field']"),
        (lambda c: c["grpo"].update(shuffle_dataset=True), "cannot be changed"),
        (lambda c: c["grpo"].pop("max_steps"), "max_steps must be an integer > 0"),
        (lambda c: c["tasks"][0].update(level=1), "not both"),
        (lambda c: c["tasks"].append({"family": "arithmetic", "params": {"digits": 999}}), "digits"),
        (lambda c: c.update(lora={"rank": 8}), "unknown LoRA fields"),
        (lambda c: c.update(bogus=1), "unknown config keys"),
        (lambda c: c.update(controller={"name": "nope"}), "unknown controller 'nope'"),
        (lambda c: c.update(controller={"name": "adaptive", "no_such_setting": 1}), "no setting"),
    ],
)
def test_bad_config_stops_before_any_model_loads(tiny_model, tmp_path, monkeypatch, change, message):
    import transformers

    def boom(*a, **k):
        raise AssertionError("a model was loaded before the config was validated")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", boom)
    cfg = base_config(tiny_model, tmp_path / "out")
    change(cfg)
    with pytest.raises(
        ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
    ):
        from taskforge.trainers import train

        train(cfg)


def test_vllm_asked_for_but_missing(tiny_model, tmp_path):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    cfg = base_config(tiny_model, tmp_path / "out")
    cfg["use_vllm"] = True
    with pytest.raises(ConfigError, match="vllm is not installed"):
        load_config(cfg)


def test_vllm_server_mode_needs_cuda(tiny_model, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    cfg = base_config(tiny_model, tmp_path / "out")
    cfg.update(use_vllm=True, vllm_mode="server")
    with pytest.raises(ConfigError, match="vllm_mode: server needs a CUDA GPU"):
        load_config(cfg)


def test_train_cli_bad_config_exits_2(tiny_model, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from taskforge.cli import app

    cfg = base_config(tiny_model, tmp_path / "out")
    cfg["tasks"] = [{"family": "nope"}]
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["train", str(path)])
    assert res.exit_code == 2 and "unknown family 'nope'" in res.output
    assert not (tmp_path / "out").exists()


# ---- end to end ---------------------------------------------------------------------------------


def _observed(stream) -> int:
    return sum(c.observed for c in stream.mixture.controllers.values())


def _controller_state(state: dict) -> dict:
    """The controller part of a saved stream state: the Mixture's, with one controller per family."""
    return state["mixture"]


def test_end_to_end_mix_adaptive_checkpoint_resume(tiny_model, tmp_path):
    from taskforge.trainers import train

    out = tmp_path / "run"
    cfg = base_config(tiny_model, out, save_strategy="steps", save_steps=2)
    first = train(cfg)
    assert first.global_step == 4
    groups_per_step = 8 // 4
    # The controller receives every group: one observation per prompt, G rewards each.
    assert first.reward.groups_routed == 4 * groups_per_step
    assert _observed(first.stream) == 4 * groups_per_step

    steps = [json.loads(line) for line in Path(first.log_path).read_text().splitlines()]
    steps = [r for r in steps if r.get("event") == "train_step" and "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    for r in steps:
        assert "frac_reward_zero_std" in r and "taskforge/predicted_zero_var" in r
        assert 0.0 <= r["taskforge/predicted_zero_var"] <= 1.0
        assert r["taskforge/frac_groups_zero_var"] == pytest.approx(r["frac_reward_zero_std"])
        assert any(k.startswith("pass_rate/") and k.count("/") == 2 for k in r)  # per family and level
        assert sum(v for k, v in r.items() if k.startswith("cells/")) == pytest.approx(
            1.0
        )  # shares of the groups
        assert r["taskforge/groups"] == groups_per_step and r["curriculum/arithmetic/observed"] >= 1
    families = {k.split("/")[1] for r in steps for k in r if k.startswith("pass_rate/")}
    assert families == {"arithmetic", "sat"}

    # Checkpoints carry the stream's and controller's state.
    saved2 = json.loads((out / "checkpoint-2" / "taskforge_state.json").read_text())
    saved4 = json.loads((out / "checkpoint-4" / "taskforge_state.json").read_text())
    assert saved2["global_step"] == 2 and saved4["global_step"] == 4
    assert _controller_state(saved2["stream"]) != _controller_state(saved4["stream"])
    assert _controller_state(saved4["stream"]) == _controller_state(
        json.loads(json.dumps(first.stream.state_dict()))
    )

    # Resume from step 2: the fresh run starts with exactly the controller state of that checkpoint, and
    # goes on observing from there.
    resumed = train(cfg, resume=str(out / "checkpoint-2"))
    assert resumed.global_step == 4
    assert _controller_state(resumed.start_state) == _controller_state(saved2["stream"])
    assert _observed(resumed.stream) == _observed_in(saved2) + 2 * groups_per_step
    # --resume latest picks the newest checkpoint.
    from taskforge.trainers.grpo import find_checkpoint

    assert find_checkpoint(out, "latest").name == "checkpoint-4"
    with pytest.raises(ConfigError, match="no checkpoint"):
        find_checkpoint(tmp_path / "empty", "latest")


def _observed_in(saved: dict) -> int:
    return sum(c["counters"][1] for c in saved["stream"]["mixture"]["controllers"].values())


# ---- learning -----------------------------------------------------------------------------------


def hypergeom_upper_tail(successes_late: int, n_late: int, successes_total: int, n_total: int) -> float:
    """One-sided Fisher exact test: P(at least `successes_late` of the passes fall in the late phase) when
    passes are spread at random over early and late completions (the null: no learning)."""
    denom = math.comb(n_total, successes_total)
    return (
        sum(
            math.comb(n_late, x) * math.comb(n_total - n_late, successes_total - x)
            for x in range(successes_late, min(n_late, successes_total) + 1)
        )
        / denom
    )


def test_rewards_flow_into_gradients(tiny_model, tmp_path, say_target):
    """On a task the tiny model can learn, the pass rate of the last 3 steps beats the first 3 steps by a
    margin that chance would not give: one-sided Fisher exact test, p < 0.01 (fixed seed 0)."""
    from taskforge.trainers import train

    cfg = {
        "model": str(tiny_model),
        "output_dir": str(tmp_path / "learn"),
        "seed": 0,
        "tasks": [{"family": say_target.family, "curriculum": True}],
        "controller": {"name": "uniform"},
        "grpo": {
            "max_steps": 10,
            "num_generations": 8,
            "per_device_train_batch_size": 16,
            "max_completion_length": 8,
            "learning_rate": 1e-2,
            "temperature": 1.0,
        },
    }
    res = train(cfg)
    hist = res.reward.history
    assert len(hist) == 10 and all(n == 16 for _, n in hist)
    early = sum(p for p, _ in hist[:3])
    late = sum(p for p, _ in hist[-3:])
    p_value = hypergeom_upper_tail(late, 48, early + late, 96)
    print(
        f"passes per step {[p for p, _ in hist]}; early {early}/48, late {late}/48, one-sided p = {p_value:.2e}"
    )
    assert late > early and p_value < 0.01, (hist, p_value)
