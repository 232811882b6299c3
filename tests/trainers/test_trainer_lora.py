"""LoRA outputs that vLLM can load: `merge_lora: true` saves the merged model instead of the adapter."""

from __future__ import annotations

import pytest

pytest.importorskip("peft")

from taskforge.trainers.config import ConfigError, load_config  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from taskforge.trainers.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def test_merged_adapter_reloads_as_the_same_model(tiny_model, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from taskforge.trainers.grpo import save_merged_lora

    torch.manual_seed(0)
    # init_lora_weights=False: random A and B, so the adapter changes the outputs (a trained one would).
    peft = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model),
        LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False),
    )
    x = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        want = peft(x).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_model)(x).logits
    assert (want - base).abs().max() > 1e-3
    out = tmp_path / "out"
    peft.save_pretrained(out)  # what trainer.save_model leaves for a LoRA run
    assert (out / "adapter_config.json").is_file()
    save_merged_lora(peft, out)
    assert not (out / "adapter_config.json").exists() and not (out / "adapter_model.safetensors").exists()
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not hasattr(merged, "peft_config")
    with torch.no_grad():
        assert torch.allclose(merged(x).logits, want, atol=1e-5)


def test_train_with_merge_lora_saves_a_full_model(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM

    from taskforge.trainers import train

    cfg = {
        "model": str(tiny_model),
        "output_dir": str(tmp_path / "run"),
        "seed": 0,
        "tasks": [{"family": "arithmetic", "level": 0}],
        "lora": {"r": 4},
        "merge_lora": True,
        "grpo": {
            "max_steps": 1,
            "num_generations": 4,
            "per_device_train_batch_size": 4,
            "max_completion_length": 4,
        },
    }
    res = train(cfg)
    out = tmp_path / "run"
    assert (
        res.global_step == 1
        and (out / "config.json").is_file()
        and not (out / "adapter_config.json").exists()
    )
    model = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_merge_lora_needs_lora(tiny_model, tmp_path):
    cfg = {
        "model": str(tiny_model),
        "output_dir": str(tmp_path),
        "tasks": ["arithmetic"],
        "merge_lora": True,
        "grpo": {"max_steps": 1},
    }
    with pytest.raises(ConfigError, match="merge_lora is set but lora is not"):
        load_config(cfg)
