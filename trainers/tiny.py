"""A tiny random-weight chat model, built offline and deterministically, for tests and the demo.

The tokenizer is a byte-level BPE trained in-process with `tokenizers` on text from our own families.
Trap: transformers 5 loads any tokenizer next to a Qwen2 config as `Qwen2Tokenizer`, which
swaps in Qwen2's own normalizer and pre-tokenizer. We train with exactly those (NFC + Qwen2's split
regex + byte-level), so whichever class loads the folder, the encodings are the ones we trained.

Sizes come as named presets (`PRESETS`) or explicit hidden/layers/heads; every preset keeps head_dim 64,
the least vLLM's CPU attention accepts. `tiny` (0.46M parameters) trains in seconds on a CPU; `small`
(about 26M) and `base` (about 86M) are the same pipeline for a GPU. Parameters per layer are about
10 * hidden^2 (attention 4 h^2 with as many key/value heads as heads, MLP 3 * h * 2h).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# name -> (hidden, layers, heads)
PRESETS: dict[str, tuple[int, int, int]] = {"tiny": (128, 2, 2), "small": (512, 8, 8), "base": (768, 12, 12)}
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
EOS, PAD = "<|im_end|>", "<|endoftext|>"
# Qwen2's pre-tokenizer split (the one Qwen2Tokenizer imposes on load).
QWEN2_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def _corpus(seed: int) -> list[str]:
    """Training text: arithmetic prompts and answers at every level (the core family, so the tokenizer does
    not change when other families are installed), SAT-style letters, and chat and answer markup."""
    from taskforge.api import generate
    from taskforge.generator import Generator
    from taskforge.registry import generator_class

    arithmetic: type[Generator] = generator_class("arithmetic")
    lines: list[str] = []
    for level in range(len(arithmetic.levels)):
        for task in generate("arithmetic", 8, level=level, seed=seed, split="train"):
            lines += [task.prompt, f"<answer>{task.answer}</answer>"]
    words = (
        "the a of to and is in that it for on with as be at by this answer think step result true false "
        "solve find give write return each every clause variable formula assignment satisfy json schema "
        "object value query table select from where function python test reasoning final"
    )
    lines += [words, words.title(), "<think>", "</think>", "<answer>", "</answer>", "\\boxed{}"]
    lines += ["```python", "```sql", "```json", '{"key": [1, 2.5, true, null]}']
    lines += [" & ".join("".join(c) for c in ("A!B", "!CD", "E!F", "GHI", "!J!K!L", "MNO"))]
    lines += [f"{r}\n" for r in ("system", "user", "assistant")]
    lines += [" ".join(str(i) for i in range(100)), "0110 1001 111000"]
    return lines


def _train_tokenizer(seed: int, vocab_size: int) -> Any:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(seed), trainer=trainer)
    return tok


def build_tiny_model(
    path: str | Path,
    seed: int = 0,
    *,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 2,
    vocab_size: int = 1024,
) -> Path:
    """Write a tokenizer and a random-weight Qwen2 causal LM into `path`; same seed, same bytes."""
    from taskforge.errors import ConfigError

    if min(hidden_size, num_layers, num_heads) < 1 or hidden_size % num_heads:
        raise ConfigError(
            f"hidden ({hidden_size}) must be a positive multiple of heads ({num_heads}), layers >= 1"
        )
    import torch
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(seed, vocab_size),
        eos_token=EOS,
        pad_token=PAD,
        unk_token=None,
        bos_token=None,
        additional_special_tokens=[SPECIAL_TOKENS[1]],
        model_max_length=4096,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(out)

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids(EOS),
        pad_token_id=tokenizer.convert_tokens_to_ids(PAD),
        torch_dtype="float32",
    )
    # Seed a private generator-state: building a model must not disturb the caller's RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    (out / "taskforge_tiny.json").write_text(
        json.dumps(
            {
                "seed": seed,
                "hidden_size": hidden_size,
                "layers": num_layers,
                "heads": num_heads,
                "parameters": n_params,
            }
        )
        + "\n"
    )
    return out


def preset_shape(preset: str) -> tuple[int, int, int]:
    """(hidden, layers, heads) of a named size; a clear error names the valid ones."""
    from taskforge.errors import ConfigError

    if preset not in PRESETS:
        raise ConfigError(f"unknown model preset {preset!r}; valid: {', '.join(PRESETS)}")
    return PRESETS[preset]
