"""Evaluation: sample n completions per task, verify them, report unbiased pass@k per family and level.

Backends: `hf` (transformers' generate, on the machine), `vllm` (an in-process vLLM engine) and `openai`
(any OpenAI-compatible chat server, e.g. `vllm serve`; plain HTTP from the standard library). Every
completion is sampled with its own seed, `completion_seed(run seed, task id, sample index)`, on every
backend: pass@k assumes the n samples of a task are independent.
A Saturn-style benchmark folder (`n3_k5_length20_sample100.jsonl`, ...) is one level per file, and each
level gets Saturn's `evaluation_results.json` next to our own results.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskforge.api import level_label, verify_many
from taskforge.errors import BackendError, ConfigError, DatasetError, MissingExtraError
from taskforge.io import check_writable, read_jsonl
from taskforge.seeding import key_seed
from taskforge.task import Task, canonical_json

DEFAULT_KS = (1, 3, 5, 7, 10)
BACKENDS = ("hf", "vllm", "openai")


def default_ks(samples: int) -> list[int]:
    """DEFAULT_KS clipped to the sample count: `--samples 4` reports pass@1 and pass@3, not an error."""
    return [k for k in DEFAULT_KS if k <= samples]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k) (Chen et al., 2021)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    # The product form avoids huge binomials: C(n-c,k)/C(n,k) = prod_{i=n-c+1..n} (1 - k/i).
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


@dataclass
class EvalItem:
    """One task to evaluate, with the label of the level it is reported under."""

    task: Task
    level: str
    messages: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Sampling:
    samples: int = 12
    temperature: float = 0.6  # Saturn's evaluation defaults
    top_p: float = 0.95
    max_tokens: int = 1024
    seed: int = 0


# ---- loading ------------------------------------------------------------------------------------


def _task_from_record(row: dict[str, Any]) -> Task:
    if "family" in row and "check" in row:
        return Task.from_dict(row)
    if {"n_sat", "k", "clause", "solution"} <= set(row):
        from taskforge.generators.sat.saturn import record_to_task

        return record_to_task(row)  # Saturn's own (lenient) verification, as its evaluation scores
    raise DatasetError(f"not a taskforge task or Saturn record (fields: {sorted(row)[:8]})")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return list(read_jsonl(path))


def load_tasks_file(path: str | Path, limit: int | None = None) -> list[EvalItem]:
    """A JSONL file of tasks (taskforge's or Saturn's records); each task reported under its own level."""
    rows = _read_jsonl(Path(path))[:limit]
    items = []
    for row in rows:
        task = _task_from_record(row)
        items.append(EvalItem(task, level_label(task), task.messages))
    return items


def load_bench_dir(path: str | Path, limit: int | None = None) -> dict[str, list[EvalItem]]:
    """A Saturn-style benchmark folder: every `*.jsonl` file is one level, named by its file stem."""
    files = sorted(Path(path).glob("*.jsonl"))
    if not files:
        raise DatasetError(f"no *.jsonl files in benchmark folder {path}")
    levels = {}
    for f in files:
        levels[f.stem] = [EvalItem(_task_from_record(r), f.stem) for r in _read_jsonl(f)[:limit]]
        for item in levels[f.stem]:
            item.messages = item.task.messages
    return levels


# ---- backends -----------------------------------------------------------------------------------
# Each returns, per item, a list of (completion text, completion token count or None). `progress`, when
# given, is called with (tasks finished, completions finished) as work completes.

Completions = list[list[tuple[str, int | None]]]
Progress = Callable[[int, int], None]


def completion_seed(seed: int, task_id: str, sample: int) -> int:
    """The sampling seed of completion `sample` of one task: a hash of (run seed, task id, sample index),
    the same on every backend. One seed per task made vLLM's n completions of a prompt largely identical
    (8-9 distinct of 20 on the tiny model), which pass@k's independence assumption cannot survive.
    31 bits: OpenAI-compatible servers other than vLLM may keep the seed in an int32."""
    return key_seed(canonical_json(["eval", seed, task_id, sample])) & 0x7FFFFFFF


def _seeds(items: Sequence[EvalItem], s: Sampling) -> list[int]:
    """Per-completion seeds in output order: task-major, sample-minor."""
    return [completion_seed(s.seed, it.task.id, j) for it in items for j in range(s.samples)]


def _seeded_sampler(seeds: Sequence[int], temperature: float, top_p: float) -> Any:
    """A logits processor that turns greedy decoding into sampling with one generator per row: the
    Gumbel-max trick (argmax of log p + Gumbel noise is a draw from p). transformers' own sampling draws
    from the global RNG for the whole batch, so a completion would depend on its batch neighbours; here
    row r draws only from its own seed."""
    import torch
    from transformers import LogitsProcessor

    class SeededGumbel(LogitsProcessor):
        def __init__(self) -> None:
            self.gens = [torch.Generator().manual_seed(int(sd)) for sd in seeds]

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            logits = scores.float() / temperature
            if top_p < 1.0:
                # Nucleus: keep the smallest prefix of the sorted distribution whose mass reaches top_p.
                sorted_logits, order = logits.sort(dim=-1, descending=True)
                probs = sorted_logits.softmax(dim=-1)
                drop_sorted = probs.cumsum(dim=-1) - probs >= top_p  # the mass before it already suffices
                drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
                logits = logits.masked_fill(drop, float("-inf"))
            logp = logits.log_softmax(dim=-1)
            vocab = logp.shape[-1]
            u = torch.stack([torch.rand(vocab, generator=g) for g in self.gens])
            gumbel = -torch.log(-torch.log(u.clamp_(1e-20, 1.0 - 1e-7)))
            return logp + gumbel

    return SeededGumbel()


def sample_hf(
    model_path: str,
    items: Sequence[EvalItem],
    s: Sampling,
    batch_prompts: int = 8,
    progress: Progress | None = None,
) -> Completions:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LogitsProcessorList

    tok = AutoTokenizer.from_pretrained(model_path)
    tok.padding_side = "left"  # decoder-only generation pads on the left
    model = AutoModelForCausalLM.from_pretrained(model_path)
    model.eval()
    # Our settings only: a model's shipped generation_config (top_k, penalties) would change what is sampled.
    gen_config = GenerationConfig(
        do_sample=False,
        max_new_tokens=s.max_tokens,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    out: Completions = []
    for start in range(0, len(items), batch_prompts):
        chunk = items[start : start + batch_prompts]
        texts = [tok.apply_chat_template(it.messages, tokenize=False, add_generation_prompt=True) for it in chunk]
        # Row i*n + j is sample j of prompt i (greedy decoding refuses num_return_sequences > 1).
        rows_in = [t for t in texts for _ in range(s.samples)]
        enc = tok(rows_in, return_tensors="pt", padding=True, add_special_tokens=False)
        procs = LogitsProcessorList([_seeded_sampler(_seeds(chunk, s), s.temperature, s.top_p)] if s.temperature > 0 else [])
        with torch.no_grad():
            gen = model.generate(**enc, generation_config=gen_config, logits_processor=procs)
        new = gen[:, enc["input_ids"].shape[1] :]
        for i in range(len(chunk)):
            rows = []
            for j in range(s.samples):
                ids = new[i * s.samples + j].tolist()
                if tok.eos_token_id in ids:
                    ids = ids[: ids.index(tok.eos_token_id) + 1]
                ids = [t for t in ids if t != tok.pad_token_id]
                rows.append((tok.decode(ids, skip_special_tokens=True), len(ids)))
            out.append(rows)
        if progress is not None:
            progress(len(chunk), len(chunk) * s.samples)
    return out


def sample_vllm(
    model_path: str,
    items: Sequence[EvalItem],
    s: Sampling,
    llm: Any = None,
    progress: Progress | None = None,
    chunk_completions: int = 512,
) -> Completions:
    """One request per completion, each with its own seed (vLLM's n>1 under one seed repeats itself), sent
    in chunks of about `chunk_completions` so the progress bar moves; prefix caching shares the prompt."""
    from vllm import LLM, SamplingParams

    engine = llm or LLM(model=model_path, seed=s.seed, enforce_eager=True)
    out: Completions = []
    per_chunk = max(1, chunk_completions // s.samples)
    for start in range(0, len(items), per_chunk):
        chunk = items[start : start + per_chunk]
        params = [
            SamplingParams(n=1, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=seed)
            for seed in _seeds(chunk, s)
        ]
        convs = [it.messages for it in chunk for _ in range(s.samples)]
        results = engine.chat(convs, params, use_tqdm=False)
        flat = [(r.outputs[0].text, len(r.outputs[0].token_ids)) for r in results]
        out += [flat[i * s.samples : (i + 1) * s.samples] for i in range(len(chunk))]
        if progress is not None:
            progress(len(chunk), len(flat))
    return out


def _post_json(url: str, body: dict[str, Any], api_key: str | None, timeout: float) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    for attempt in range(3):
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code < 500 or attempt == 2:
                detail = exc.read()[:300].decode(errors="replace")
                raise BackendError(f"{url}: HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError) as exc:
            if attempt == 2:
                raise BackendError(f"{url}: {exc}") from None
        time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


def sample_openai(
    model_name: str,
    items: Sequence[EvalItem],
    s: Sampling,
    base_url: str,
    api_key: str | None = None,
    timeout: float = 600.0,
    progress: Progress | None = None,
    concurrency: int = 16,
) -> Completions:
    """Chat completions from an OpenAI-compatible server: one request (n=1) per completion, so each has its
    own seed and its own `usage.completion_tokens`; `concurrency` requests in flight let the server batch."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    url = base_url.rstrip("/") + "/chat/completions"

    def one(i: int, j: int, seed: int) -> tuple[int, int, str, int | None]:
        body = {
            "model": model_name,
            "messages": items[i].messages,
            "n": 1,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
            "seed": seed,
        }
        reply = _post_json(url, body, api_key, timeout)
        choices = reply.get("choices") or []
        if not choices:
            raise BackendError(f"{url}: reply without choices")
        ch = choices[0]
        text = (ch.get("message") or {}).get("content") or ch.get("text") or ""
        ntok = (reply.get("usage") or {}).get("completion_tokens")
        return i, j, text, int(ntok) if isinstance(ntok, (int, float)) else None

    out: Completions = [[("", None)] * s.samples for _ in items]
    left = [s.samples] * len(items)
    seeds = iter(_seeds(items, s))
    with ThreadPoolExecutor(max(1, concurrency)) as pool:
        futures = [pool.submit(one, i, j, next(seeds)) for i in range(len(items)) for j in range(s.samples)]
        try:
            for fut in as_completed(futures):
                i, j, text, ntok = fut.result()
                out[i][j] = (text, ntok)
                left[i] -= 1
                if progress is not None:
                    progress(int(left[i] == 0), 1)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    return out


@contextmanager
def progress_bar(n_tasks: int, enabled: bool = True) -> Iterator[Progress | None]:
    """A progress bar on stderr (tasks done, completions per second, time left); yields the callback the
    backends report to, or None when disabled."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as Bar

    start, completions = time.monotonic(), 0
    columns = (
        TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TextColumn("tasks,"), TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(), TextColumn("elapsed,"), TimeRemainingColumn(), TextColumn("left"),
    )
    with Bar(*columns, console=Console(stderr=True)) as bar:
        handle = bar.add_task("eval", total=n_tasks, rate="- completions/s,")

        def update(tasks: int, done: int) -> None:
            nonlocal completions
            completions += done
            rate = completions / max(time.monotonic() - start, 1e-9)
            bar.update(handle, advance=tasks, rate=f"{rate:.1f} completions/s,")

        yield update


# ---- scoring ------------------------------------------------------------------------------------


@dataclass
class EvalResult:
    groups: dict[str, dict[str, Any]]  # "family/level" -> {n_tasks, samples, pass@k..., average_tokens}
    records: list[dict[str, Any]]


def score(items: Sequence[EvalItem], completions: Completions, ks: Sequence[int]) -> EvalResult:
    tasks = [it.task for it, comps in zip(items, completions, strict=True) for _ in comps]
    texts = [c for comps in completions for c, _ in comps]
    verdicts = verify_many(tasks, texts)
    records, pos = [], 0
    per_group: dict[str, list[tuple[int, int, list[float]]]] = defaultdict(list)
    for it, comps in zip(items, completions, strict=True):
        correct = 0
        tokens: list[float] = []
        for j, (text, ntok) in enumerate(comps):
            v = verdicts[pos]
            pos += 1
            correct += v.passed
            if ntok is not None:
                tokens.append(float(ntok))
            records.append(
                {
                    "task_id": it.task.id,
                    "family": it.task.family,
                    "level": it.level,
                    "sample": j,
                    "completion": text,
                    "tokens": ntok,
                    "passed": v.passed,
                    "reason": v.reason,
                }
            )
        per_group[f"{it.task.family}/{it.level}"].append((len(comps), correct, tokens))
    groups = {}
    for key, rows in sorted(per_group.items()):
        n = min(r[0] for r in rows)
        summary: dict[str, Any] = {"n_tasks": len(rows), "samples": n}
        for k in ks:
            if k <= n:
                summary[f"pass@{k}"] = sum(pass_at_k(r[0], r[1], k) for r in rows) / len(rows)
        toks = [t for r in rows for t in r[2]]
        summary["average_tokens"] = sum(toks) / len(toks) if toks else None
        groups[key] = summary
    return EvalResult(groups, records)


def evaluate(
    model: str,
    *,
    tasks_file: str | Path | None = None,
    bench_dir: str | Path | None = None,
    backend: str = "hf",
    samples: int = 12,
    ks: Sequence[int] | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    output_dir: str | Path = "eval_out",
    temperature: float = 0.6,
    top_p: float = 0.95,
    max_tokens: int = 1024,
    seed: int = 0,
    limit: int | None = None,
    model_name: str | None = None,
    progress: bool = False,
) -> EvalResult:
    """Sample, verify, and write `completions.jsonl`, `results.json` (and Saturn's files for a bench dir).
    `ks` defaults to DEFAULT_KS clipped to `samples`; an explicit k above `samples` is an error."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if (tasks_file is None) == (bench_dir is None):
        raise ConfigError("give exactly one of a tasks file or a benchmark folder")
    if samples < 1:
        raise ConfigError(f"samples must be >= 1, got {samples}")
    if ks is None:
        ks = default_ks(samples)
    bad = [k for k in ks if k < 1 or k > samples]
    if bad:
        raise ConfigError(f"k must lie in 1..samples ({samples}); got {bad}")
    if backend == "openai" and not base_url:
        raise ConfigError("the openai backend needs a base URL (e.g. http://127.0.0.1:8000/v1)")
    if backend != "openai" and not Path(model).is_dir():
        raise ConfigError(f"model folder {model} does not exist")
    if backend == "vllm" and (Path(model) / "adapter_config.json").is_file():
        raise ConfigError(f"{model} holds a LoRA adapter, which the vllm backend does not load: train with `merge_lora: true`, or use --backend hf")
    if backend == "vllm":
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise MissingExtraError("backend vllm asked for, but vllm is not installed: pip install 'taskforge[vllm]'")
    check_writable(output_dir, folder=True)

    if bench_dir is not None:
        by_level = load_bench_dir(bench_dir, limit)
        items = [it for lvl in by_level.values() for it in lvl]
    else:
        by_level = {}
        items = load_tasks_file(tasks_file, limit)  # type: ignore[arg-type]
    if not items:
        raise DatasetError("no tasks to evaluate")

    s = Sampling(samples, temperature, top_p, max_tokens, seed)
    with progress_bar(len(items), enabled=progress) as report:
        if backend == "hf":
            completions = sample_hf(model, items, s, progress=report)
        elif backend == "vllm":
            completions = sample_vllm(model, items, s, progress=report)
        else:
            completions = sample_openai(model, items, s, base_url, api_key, progress=report)  # type: ignore[arg-type]
    result = score(items, completions, ks)

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "completions.jsonl").open("w", encoding="utf-8") as fh:
        for rec in result.records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    name = model_name or model
    (out / "results.json").write_text(json.dumps({"model_name": name, "groups": result.groups}, indent=2) + "\n")
    for level in by_level:
        # Saturn's summary per level; one family per benchmark folder, so the group key is unique.
        group = next(v for k, v in result.groups.items() if k.endswith("/" + level))
        saturn = {"model_name": name}
        saturn.update({f"pass@{k}": group.get(f"pass@{k}") for k in ks})
        saturn["average_tokens"] = group["average_tokens"]
        (out / level).mkdir(exist_ok=True)
        (out / level / "evaluation_results.json").write_text(json.dumps(saturn, indent=2) + "\n")
    return result
