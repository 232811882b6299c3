"""Warm start (`taskforge sft`): gold rows, completion-only loss, a model folder train/eval accept, resume;
model sizes for `taskforge tiny-model`; the learning-curve benchmark's smoke run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")

from taskforge.trainers.config import ConfigError, load_config  # noqa: E402
from taskforge.trainers.sft import build_sft_trainer, gold_examples, load_sft_config, sft, shares  # noqa: E402
from taskforge.trainers.tiny import build_tiny_model  # noqa: E402

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "taskforge")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(
        tmp_path_factory.mktemp("m") / "tiny", seed=0, hidden_size=64, num_layers=1, num_heads=1
    )


def _cfg(model: Path, out: Path, **sft_kw: object) -> dict:
    return {
        "model": str(model),
        "output_dir": str(out),
        "seed": 3,
        "examples": 40,
        "tasks": [{"family": "arithmetic", "levels": [0, 1]}, {"family": "sat", "level": 0, "weight": 0.5}],
        "sft": {"max_steps": 4, "per_device_train_batch_size": 8, **sft_kw},
    }


def test_shares_sum_and_follow_weights() -> None:
    assert shares(10, [1, 1, 1]) == [4, 3, 3]
    assert sum(shares(1001, [0.5, 0.25, 0.25])) == 1001
    assert shares(8, [3, 1]) == [6, 2]


def test_gold_rows_are_train_split_gold_answers_in_a_fixed_order(tiny: Path, tmp_path: Path) -> None:
    cfg = load_sft_config(_cfg(tiny, tmp_path / "o"))
    rows = gold_examples(cfg)
    assert len(rows) == 40 and rows == gold_examples(cfg)
    from taskforge import get_generator, verify

    families = [r["prompt"][-1]["content"] for r in rows]
    assert sum("×" in p for p in families) == 27  # 2/3 of 40 by weight (two levels of arithmetic, sat at 0.5)
    for row in rows[:5]:
        assert row["completion"][0]["role"] == "assistant"
    # every completion is the generator's gold response and passes its verifier
    from taskforge.api import generate

    tasks = list(generate("arithmetic", 14, level=0, seed=3, split="train"))
    assert [r["completion"][0]["content"] for r in rows[:14]] == [
        get_generator("arithmetic").gold_response(t) for t in tasks
    ]
    assert all(verify(t, get_generator("arithmetic").gold_response(t)).passed for t in tasks)


def test_loss_covers_the_completion_only(tiny: Path, tmp_path: Path) -> None:
    trainer = build_sft_trainer(load_sft_config(_cfg(tiny, tmp_path / "o")))
    batch = next(iter(trainer.get_train_dataloader()))
    tok = trainer.processing_class
    for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True):
        trained = [int(i) for i, lab in zip(ids, labels, strict=True) if lab != -100]
        text = tok.decode(trained)
        assert "<answer>" in text or "\\boxed" in text  # the gold answer is trained on
        assert "Compute" not in text and "clause" not in text.lower()  # the prompt is not


def test_output_is_a_model_for_train_and_resume_continues(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "warm"
    res = sft(_cfg(tiny, out, save_strategy="steps", save_steps=2))
    assert res["global_step"] == 4 and (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    train_cfg = load_config(
        {
            "model": str(out),
            "output_dir": str(tmp_path / "g"),
            "tasks": [{"family": "arithmetic", "curriculum": True, "max_level": 2}],
            "grpo": {"max_steps": 1},
        }
    )
    assert train_cfg.model == str(out)
    # Resume from the step-2 checkpoint: the run finishes at step 4 with the same weights as straight through.
    import torch
    from safetensors.torch import load_file

    straight = load_file(str(out / "model.safetensors"))
    out2 = tmp_path / "warm2"
    (out2).mkdir()
    import shutil

    shutil.copytree(out / "checkpoint-2", out2 / "checkpoint-2")
    res2 = sft(_cfg(tiny, out2, save_strategy="steps", save_steps=2), resume="latest")
    assert res2["global_step"] == 4
    resumed = load_file(str(out2 / "model.safetensors"))
    assert all(torch.allclose(straight[k], resumed[k], atol=1e-6) for k in straight)


def test_bad_configs_fail_before_the_model_loads(tiny: Path, tmp_path: Path) -> None:
    bad = [
        ({"examples": 0}, "examples"),
        ({"tasks": [{"family": "nope"}]}, "nope"),
        ({"tasks": [{"family": "arithmetic", "levels": [99]}]}, "arithmetic"),
        ({"sft": {"max_steps": 2, "not_a_field": 1}}, "not_a_field"),
        ({"tasks": [{"family": "arithmetic", "level": 0, "levels": [1]}]}, "not both"),
    ]
    for change, words in bad:
        with pytest.raises(ConfigError, match=words):
            load_sft_config({**_cfg(tiny, tmp_path / "o"), **change})
    with pytest.raises(ConfigError, match="resume"):
        sft(_cfg(tiny, tmp_path / "none"), resume="latest")


def test_tiny_model_sizes_from_the_cli(tmp_path: Path) -> None:
    res = subprocess.run(
        [CLI, "tiny-model", str(tmp_path / "m"), "--hidden", "64", "--layers", "3", "--heads", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    info = json.loads((tmp_path / "m" / "taskforge_tiny.json").read_text())
    assert (info["hidden_size"], info["layers"], info["heads"]) == (64, 3, 1)
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["num_hidden_layers"] == 3 and cfg["hidden_size"] == 64
    res = subprocess.run(
        [CLI, "tiny-model", str(tmp_path / "x"), "--hidden", "100", "--heads", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2 and "multiple of heads" in res.stdout + res.stderr
    res = subprocess.run(
        [CLI, "tiny-model", str(tmp_path / "y"), "--preset", "huge"], capture_output=True, text=True
    )
    assert res.returncode == 2 and "tiny, small, base" in res.stdout + res.stderr


def test_learning_curve_quick_writes_its_results(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "learning_curve.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads((tmp_path / "learning_curve_quick.json").read_text())
    for name in ("adaptive", "uniform"):
        (run,) = data["controllers"][name]
        assert (
            run["rollouts"][0] == 0
            and run["rollouts"] == sorted(run["rollouts"])
            and len(run["rollouts"]) >= 3
        )
        assert all(0.0 <= p <= 1.0 for p in run["heldout_pass"]) and len(run["heldout_pass"]) == len(
            run["rollouts"]
        )
    # both controllers start from the same warm start: the same held-out score at step 0
    assert (
        data["controllers"]["adaptive"][0]["heldout_pass"][0]
        == data["controllers"]["uniform"][0]["heldout_pass"][0]
    )
    assert (tmp_path / "learning_curve_quick.png").stat().st_size > 1000
    assert "| adaptive |" in (tmp_path / "learning_curve_quick.md").read_text()
