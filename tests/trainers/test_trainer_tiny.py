"""The tiny offline model: deterministic bytes, and a tokenizer that round-trips after reload."""

from __future__ import annotations

import hashlib

import pytest

pytest.importorskip("transformers")


def _digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path):
    from taskforge.trainers.tiny import build_tiny_model

    a = _digest(build_tiny_model(tmp_path / "a", seed=0))
    b = _digest(build_tiny_model(tmp_path / "b", seed=0))
    c = _digest(build_tiny_model(tmp_path / "c", seed=1))
    assert a == b
    assert a["model.safetensors"] != c["model.safetensors"]


TEXTS = [
    "Compute 48213 × 907. Give the exact integer result inside <answer></answer>.",
    "<answer>43729191</answer>",
    '{"n_sat": 3, "k": 5, "clause": "!A!B!C & A!DE"}\n\\boxed{10110}',
    "naïve café — 東京 🙂\t tabs  and   spaces\r\n",
    "12345678901234567890",
]


def test_tokenizer_round_trips_after_reload(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from taskforge.trainers.tiny import build_tiny_model

    path = build_tiny_model(tmp_path / "m", seed=0)
    tok = AutoTokenizer.from_pretrained(path)
    trained = Tokenizer.from_file(str(path / "tokenizer.json"))
    for text in TEXTS:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
        # The trap: transformers 5 loads this folder as Qwen2Tokenizer, whose own pre-tokenizer must give
        # exactly the ids the tokenizer was trained to give.
        assert ids == trained.encode(text).ids
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.eos_token_id == tok.eos_token_id and model.config.pad_token_id == tok.pad_token_id
    assert model.config.hidden_size // model.config.num_attention_heads >= 64  # usable by vLLM's CPU backend
    assert model.config.vocab_size == len(tok)


def test_tiny_model_cli(tmp_path):
    from typer.testing import CliRunner

    from taskforge.cli import app

    res = CliRunner().invoke(app, ["tiny-model", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cli" / "model.safetensors").is_file() and (
        tmp_path / "cli" / "tokenizer.json"
    ).is_file()
