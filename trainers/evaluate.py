"""Evaluation: sample n completions per task, verify them, report unbiased pass@k per family and level.

Backends: `hf` (transformers' generate, on the machine), `vllm` (an in-process vLLM engine) and `openai`
(any OpenAI-compatible chat server, e.g. `vllm serve`; plain HTTP from the standard library). Every
completion is sampled with its own seed, `completion_seed(run seed, task id, sample index)`, on every
backend: pass@k assumes the n samples of a task are independent.
A Saturn-style benchmark folder (`n3_k5_length20_sample100.jsonl`, ...) is one level per file, and each
level gets Saturn's files in Saturn's layout, `<out>/<level>/<model_name>/evaluation_results.json` (keys in
Saturn's order, indent 4, no trailing newline, as Saturn's `eval_k.py` writes it) and `results.jsonl` (each
record plus its `completions`, as Saturn's `inference_k.py` writes it). `rescore` reads such a
`results.jsonl` (Saturn's published model outputs, or ours) and scores it again in any scoring mode.

Scoring modes (SAT tasks; other families always use their own verifier): `strict` (the default, our
verifier: exactly k characters 0/1 once whitespace is removed), `lenient` (our reading of Saturn's rule:
the last `<answer>` or balanced `\\boxed{}`, spaces stripped, no length check) and `saturn` (Saturn's
reward exactly, `taskforge.generators.sat.saturn_reward`: pass when it is 1).
"""

from __future__ import annotations

import json
import math
import re
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
from taskforge.generators.sat.records import task_from_record
from taskforge.io import check_writable, read_jsonl
from taskforge.seeding import key_seed
from taskforge.task import Task, canonical_json

DEFAULT_KS = (1, 3, 5, 7, 10)
BACKENDS = ("hf", "vllm", "openai")
SCORINGS = ("strict", "lenient", "saturn")
# Saturn's inference_k.py asks for 15,000 new tokens (with a 16,384-token context): R1-style reasoning on
# its benchmark runs to thousands of tokens (Saturn-7B averages 6,183 on its easiest level), and a
# truncated completion has no box.
DEFAULT_MAX_TOKENS = 15_000


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
    record: dict[str, Any] | None = None  # the row as read (Saturn's results.jsonl repeats it)


@dataclass
class Sampling:
    samples: int = 12
    temperature: float = 0.6  # Saturn's evaluation defaults
    top_p: float = 0.95
    max_tokens: int = DEFAULT_MAX_TOKENS
    seed: int = 0


# ---- loading ------------------------------------------------------------------------------------


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return list(read_jsonl(path))


def load_tasks_file(path: str | Path, limit: int | None = None) -> list[EvalItem]:
    """A JSONL file of tasks (taskforge's or Saturn's records); each task reported under its own level."""
    rows = _read_jsonl(Path(path))[:limit]
    items = []
    for row in rows:
        task = task_from_record(row)
        items.append(EvalItem(task, level_label(task), task.messages, row))
    return items


def load_bench_dir(path: str | Path, limit: int | None = None) -> dict[str, list[EvalItem]]:
    """A Saturn-style benchmark folder: every `*.jsonl` file is one level, named by its file stem."""
    files = sorted(Path(path).glob("*.jsonl"))
    if not files:
        raise DatasetError(f"no *.jsonl files in benchmark folder {path}")
    levels = {}
    for f in files:
        levels[f.stem] = [EvalItem(task_from_record(r), f.stem, record=r) for r in _read_jsonl(f)[:limit]]
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
        texts = [
            tok.apply_chat_template(it.messages, tokenize=False, add_generation_prompt=True) for it in chunk
        ]
        # Row i*n + j is sample j of prompt i (greedy decoding refuses num_return_sequences > 1).
        rows_in = [t for t in texts for _ in range(s.samples)]
        enc = tok(rows_in, return_tensors="pt", padding=True, add_special_tokens=False)
        procs = LogitsProcessorList(
            [_seeded_sampler(_seeds(chunk, s), s.temperature, s.top_p)] if s.temperature > 0 else []
        )
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
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:  # a reset under load: retry
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
    pool = ThreadPoolExecutor(max(1, concurrency))
    try:
        futures = [pool.submit(one, i, j, next(seeds)) for i in range(len(items)) for j in range(s.samples)]
        for fut in as_completed(futures):
            i, j, text, ntok = fut.result()
            out[i][j] = (text, ntok)
            left[i] -= 1
            if progress is not None:
                progress(int(left[i] == 0), 1)
    finally:
        # On an error or Ctrl-C, drop the queued requests rather than wait for all of them.
        pool.shutdown(wait=False, cancel_futures=True)
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
        TextColumn("eval"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("tasks,"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("elapsed,"),
        TimeRemainingColumn(),
        TextColumn("left"),
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

_SATURN_REASONS = {1.0: "ok", 0.0: "wrong", -1.0: "no_answer"}


def _with_strictness(task: Task, strict: bool) -> Task:
    if task.family != "sat" or bool(task.check.get("strict", True)) == strict:
        return task
    return Task.from_dict({**task.to_dict(), "check": {**task.check, "strict": strict}})


def score_completions(
    tasks: Sequence[Task], texts: Sequence[str], scoring: str = "strict"
) -> list[dict[str, Any]]:
    """One {passed, reason, reward} per completion under a scoring mode (SAT tasks only; other families
    use their verifier). `reward` is the training reward: 1/0, or Saturn's 1/0/-1 in saturn mode."""
    if scoring not in SCORINGS:
        raise ConfigError(f"unknown scoring {scoring!r}; valid: {', '.join(SCORINGS)}")
    out: list[dict[str, Any] | None] = [None] * len(tasks)
    mine: list[int] = []
    if scoring == "saturn":
        from taskforge.generators.sat.reward import saturn_task_reward

        for i, t in enumerate(tasks):
            if t.family != "sat":
                mine.append(i)
                continue
            r = saturn_task_reward(t, texts[i])
            out[i] = {"passed": r == 1.0, "reason": _SATURN_REASONS.get(r, "malformed"), "reward": r}
    else:
        mine = list(range(len(tasks)))
    if mine:
        strict = scoring == "strict"
        verdicts = verify_many([_with_strictness(tasks[i], strict) for i in mine], [texts[i] for i in mine])
        for i, v in zip(mine, verdicts, strict=True):
            out[i] = {"passed": v.passed, "reason": v.reason, "reward": float(v.score)}
    return out  # type: ignore[return-value]


def saturn_pass_at_k(n: int, c: int, k: int) -> float:
    """pass@k as Saturn's eval_k.py computes it, k > n included (then 1 if any sample passed, else 0)."""
    if c == 0:
        return 0.0
    if n - c < k:
        return 1.0
    return pass_at_k(n, c, k)


def count_tokens(tokenizer: Any, text: str) -> int:
    """Saturn's count: tokens of the decoded completion, without special tokens (`tokenizer.tokenize`)."""
    return len(tokenizer.tokenize(text))


def load_tokenizer(path: str | Path | None) -> Any:
    if path is None:
        return None
    if not Path(path).is_dir():
        raise ConfigError(f"tokenizer folder {path} does not exist")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


@dataclass
class EvalResult:
    groups: dict[str, dict[str, Any]]  # "family/level" -> {n_tasks, samples, pass@k..., average_tokens}
    records: list[dict[str, Any]]
    per_task: list[tuple[int, int, float | None]] = field(default_factory=list)  # (n, correct, mean tokens)


def score(
    items: Sequence[EvalItem],
    completions: Completions,
    ks: Sequence[int],
    scoring: str = "strict",
    tokenizer: Any = None,
) -> EvalResult:
    """Verify every completion and summarise per family and level. Token counts come from `tokenizer`
    (Saturn's count) when given, else from the backend; a task's count is the mean over its samples and
    a level's the mean over its tasks, summed in Saturn's order."""
    tasks = [it.task for it, comps in zip(items, completions, strict=True) for _ in comps]
    texts = [c for comps in completions for c, _ in comps]
    scored = score_completions(tasks, texts, scoring)
    records, pos = [], 0
    per_task: list[tuple[int, int, float | None]] = []
    per_group: dict[str, list[tuple[int, int, float | None]]] = defaultdict(list)
    for it, comps in zip(items, completions, strict=True):
        correct = 0
        counts: list[int | float] = []
        for j, (text, ntok) in enumerate(comps):
            v = scored[pos]
            pos += 1
            correct += v["passed"]
            if tokenizer is not None:
                ntok = count_tokens(tokenizer, text)
            if ntok is not None:
                counts.append(ntok)
            records.append(
                {
                    "task_id": it.task.id,
                    "family": it.task.family,
                    "level": it.level,
                    "sample": j,
                    "completion": text,
                    "tokens": ntok,
                    "passed": v["passed"],
                    "reason": v["reason"],
                    "reward": v["reward"],
                }
            )
        mean_tokens = sum(counts) / len(counts) if counts and len(counts) == len(comps) else None
        row = (len(comps), correct, mean_tokens)
        per_task.append(row)
        per_group[f"{it.task.family}/{it.level}"].append(row)
    groups = {}
    for key, rows in sorted(per_group.items()):
        n = min(r[0] for r in rows)
        summary: dict[str, Any] = {"n_tasks": len(rows), "samples": n}
        for k in ks:
            if k <= n:
                summary[f"pass@{k}"] = sum(pass_at_k(r[0], r[1], k) for r in rows) / len(rows)
        summary["average_tokens"] = _mean_tokens(rows)
        groups[key] = summary
    return EvalResult(groups, records, per_task)


def _mean_tokens(rows: Sequence[tuple[int, int, float | None]]) -> float | None:
    if not rows or any(r[2] is None for r in rows):
        return None
    total = 0.0
    for r in rows:
        total += r[2]  # type: ignore[operator]  # Saturn adds task by task, then divides once
    return total / len(rows)


def saturn_summary(
    model_name: str, rows: Sequence[tuple[int, int, float | None]], ks: Sequence[int]
) -> dict[str, Any]:
    """Saturn's evaluation_results.json content: model_name, pass@k in order, average_tokens."""
    out: dict[str, Any] = {"model_name": model_name}
    for k in ks:
        total = 0  # Saturn's accumulator starts at int 0 and adds each task's pass@k in file order
        for n, c, _ in rows:
            total += saturn_pass_at_k(n, c, k)
        out[f"pass@{k}"] = total / len(rows)
    out["average_tokens"] = _mean_tokens(rows)
    return out


def write_saturn_level(
    out: Path,
    level: str,
    model_name: str,
    items: Sequence[EvalItem],
    completions: Sequence[Sequence[str]],
    rows: Sequence[tuple[int, int, float | None]],
    ks: Sequence[int],
) -> Path:
    """Saturn's files for one level under `<out>/<level>/<model_name>/`; returns that folder."""
    folder = out / level / model_name
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "results.jsonl").open("w", encoding="utf-8") as fh:
        for it, texts in zip(items, completions, strict=True):
            rec = dict(it.record if it.record is not None else it.task.to_dict())
            rec["completions"] = list(texts)
            fh.write(json.dumps(rec) + "\n")  # json.dumps defaults, as Saturn writes it
    summary = saturn_summary(model_name, rows, ks)
    # Saturn: json.dump(..., indent=4) and nothing after it.
    (folder / "evaluation_results.json").write_text(json.dumps(summary, indent=4), encoding="utf-8")
    return folder


def default_model_name(model: str, backend: str = "hf") -> str:
    """The model folder's name (Saturn's folders are named after the model), or the served name."""
    if backend == "openai":
        return model
    return Path(model).name or str(model)


def _write_ours(out: Path, result: EvalResult, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "completions.jsonl").open("w", encoding="utf-8") as fh:
        for rec in result.records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    (out / "results.json").write_text(
        json.dumps({"model_name": name, "groups": result.groups}, indent=2) + "\n"
    )


def _check_ks(ks: Sequence[int], samples: int | None) -> None:
    bad = [k for k in ks if k < 1 or (samples is not None and k > samples)]
    if bad:
        raise ConfigError(f"k must lie in 1..samples ({samples}); got {bad}")


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
    max_tokens: int = DEFAULT_MAX_TOKENS,
    seed: int = 0,
    limit: int | None = None,
    model_name: str | None = None,
    scoring: str = "strict",
    tokenizer: str | Path | None = None,
    surface: str | Sequence[str] | None = None,
    progress: bool = False,
) -> EvalResult:
    """Sample, verify, and write `completions.jsonl`, `results.json` (and Saturn's files for a bench dir).

    `ks` defaults to DEFAULT_KS clipped to `samples`; an explicit k above `samples` is an error.

    `surface` ("all" or form names, taskforge.surface): every task is asked in each form and pass@k is
    reported per family/level@form and per form (`surface/<form>`); Saturn's per-level files are skipped.

    Tokens are counted as Saturn counts them with `tokenizer` (default: the model folder for hf and vllm;
    the openai backend counts each completion's own usage unless a tokenizer folder is given)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if scoring not in SCORINGS:
        raise ConfigError(f"unknown scoring {scoring!r}; valid: {', '.join(SCORINGS)}")
    if (tasks_file is None) == (bench_dir is None):
        raise ConfigError("give exactly one of a tasks file or a benchmark folder")
    if samples < 1:
        raise ConfigError(f"samples must be >= 1, got {samples}")
    if ks is None:
        ks = default_ks(samples)
    _check_ks(ks, samples)
    if backend == "openai" and not base_url:
        raise ConfigError("the openai backend needs a base URL (e.g. http://127.0.0.1:8000/v1)")
    if backend != "openai" and not Path(model).is_dir():
        raise ConfigError(f"model folder {model} does not exist")
    if backend == "vllm" and (Path(model) / "adapter_config.json").is_file():
        raise ConfigError(
            f"{model} holds a LoRA adapter, which the vllm backend does not load: train with `merge_lora: true`, or use --backend hf"
        )
    if backend == "vllm":
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise MissingExtraError(
                "backend vllm asked for, but vllm is not installed: pip install 'taskforge[vllm]'"
            )
    check_writable(output_dir, folder=True)

    if bench_dir is not None:
        by_level = load_bench_dir(bench_dir, limit)
        items = [it for lvl in by_level.values() for it in lvl]
    else:
        by_level = {}
        items = load_tasks_file(tasks_file, limit)  # type: ignore[arg-type]
    if not items:
        raise DatasetError("no tasks to evaluate")
    if surface is not None:
        items, by_level = surface_items(items, surface, seed), {}
    tok = load_tokenizer(tokenizer if tokenizer is not None else (model if backend != "openai" else None))

    s = Sampling(samples, temperature, top_p, max_tokens, seed)
    with progress_bar(len(items), enabled=progress) as report:
        if backend == "hf":
            completions = sample_hf(model, items, s, progress=report)
        elif backend == "vllm":
            completions = sample_vllm(model, items, s, progress=report)
        else:
            completions = sample_openai(model, items, s, base_url, api_key, progress=report)  # type: ignore[arg-type]
    result = score(items, completions, ks, scoring, tok)
    if surface is not None:
        add_surface_summary(result, items, ks)

    out = Path(output_dir)
    name = model_name or default_model_name(model, backend)
    _write_ours(out, result, name)
    start = 0
    for level, level_items in by_level.items():
        end = start + len(level_items)
        texts = [[c for c, _ in comps] for comps in completions[start:end]]
        write_saturn_level(out, level, name, level_items, texts, result.per_task[start:end], ks)
        start = end
    return result


def surface_items(items: Sequence[EvalItem], surface: str | Sequence[str], seed: int = 0) -> list[EvalItem]:
    """Each item once per surface form, reported under `<level>@<form>`."""
    from taskforge.surface import parse_forms, render

    try:
        forms = parse_forms(surface)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    out = []
    for form in forms:
        for it in items:
            task = render(it.task, form, seed)
            out.append(EvalItem(task, f"{it.level}@{form}", task.messages))
    return out


def add_surface_summary(result: EvalResult, items: Sequence[EvalItem], ks: Sequence[int]) -> None:
    """pass@k per surface form over all tasks (`surface/<form>` in `result.groups`)."""
    per_form: dict[str, list[tuple[int, int, float | None]]] = defaultdict(list)
    for it, row in zip(items, result.per_task, strict=True):
        per_form[it.task.meta.get("surface", "plain")].append(row)
    for form, rows in per_form.items():
        summary: dict[str, Any] = {"n_tasks": len(rows), "samples": min(r[0] for r in rows)}
        for k in ks:
            if k <= summary["samples"]:
                summary[f"pass@{k}"] = sum(pass_at_k(r[0], r[1], k) for r in rows) / len(rows)
        summary["average_tokens"] = _mean_tokens(rows)
        result.groups[f"surface/{form}"] = summary


SATURN_LEVEL_DIR = re.compile(r"n\d+_k\d+_length\d+_sample\d+")


def rescore(
    results_file: str | Path,
    *,
    scoring: str = "strict",
    output_dir: str | Path = "eval_out",
    ks: Sequence[int] = DEFAULT_KS,
    model_name: str | None = None,
    level: str | None = None,
    tokenizer: str | Path | None = None,
) -> EvalResult:
    """Score a Saturn `results.jsonl` (records with their `completions`) again, without sampling.

    Level and model name default to the file's place in Saturn's layout (`<level>/<model>/results.jsonl`);
    tokens are counted with `tokenizer` (Saturn's count) or left out (`average_tokens` null)."""
    check_writable(output_dir, folder=True)
    path = Path(results_file)
    if not path.is_file():
        raise DatasetError(f"results file {path} does not exist")
    rows = _read_jsonl(path)
    if not rows:
        raise DatasetError(f"{path}: no records")
    for i, row in enumerate(rows, 1):
        comps = row.get("completions") if isinstance(row, dict) else None
        if not isinstance(comps, list) or not comps or not all(isinstance(c, str) for c in comps):
            raise DatasetError(
                f"{path}: record {i} has no `completions` list of strings (not a results.jsonl)"
            )
    _check_ks(ks, None)
    if level is None:
        grand = path.resolve().parent.parent.name
        level = grand if SATURN_LEVEL_DIR.fullmatch(grand) else path.stem
    name = model_name or path.resolve().parent.name or "model"
    items = []
    for row in rows:
        task = task_from_record(row)
        items.append(EvalItem(task, level, task.messages, row))
    completions: Completions = [[(c, None) for c in row["completions"]] for row in rows]
    result = score(items, completions, ks, scoring, load_tokenizer(tokenizer))
    out = Path(output_dir)
    _write_ours(out, result, name)
    write_saturn_level(out, level, name, items, [row["completions"] for row in rows], result.per_task, ks)
    return result
