"""The methods as `taskforge train` options: GRESO on a fixed dataset (`dataset:` + `greso:`), surface
forms during training (`surface:`), and the length reward's state kept equal across ranks."""

from __future__ import annotations

import json
import math
import threading

import pytest

import taskforge
from taskforge.api import verify_many
from taskforge.surface import FORMS, Surfaced, choose_form
from taskforge.trainers.shaping import Hapo, LaserD, ShorterBetter

VOLATILE = ("time", "runtime", "per_second", "flos")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    pytest.importorskip("trl")
    from taskforge.trainers.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="module")
def tasks_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    path.write_text("".join(t.to_json() + "\n" for t in taskforge.generate("arithmetic", 6, level=0, seed=9)))
    return path


def _config(model, out, dataset, **extra):
    return {
        "model": str(model),
        "output_dir": str(out),
        "seed": 0,
        "dataset": str(dataset),
        "grpo": {
            "max_steps": 6,
            "num_generations": 4,
            "per_device_train_batch_size": 8,
            "max_completion_length": 8,
            "learning_rate": 1e-3,
            "save_strategy": "steps",
            "save_steps": 2,
        },
        **extra,
    }


def _records(path):
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if not any(w in k for w in VOLATILE)} for r in recs]


# ---- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"greso": {"enabled": True}, "dataset": None}, "greso filters a fixed dataset"),
        ({"greso": {"p_min": 0.9, "p_start": 0.5}}, r"greso.p_min must be in \(0, p_start\]"),
        ({"greso": {"skip": 1}}, "unknown greso keys"),
        ({"greso": "yes"}, "greso must be a mapping"),
        ({"surface": "shouting"}, "unknown surface form"),
        ({"surface": 3}, "surface must be"),
        ({"tasks": [{"family": "arithmetic"}]}, "either `tasks`"),
        ({"dataset": "no/such/file.jsonl"}, "does not exist"),
        ({"eval_every": 2}, "eval_every needs `tasks`"),
    ],
)
def test_bad_method_options_are_one_clear_error(tiny_model, tasks_file, tmp_path, change, message):
    from taskforge.trainers.config import ConfigError, load_config

    raw = {**_config(tiny_model, tmp_path / "out", tasks_file), **change}
    if raw.get("dataset") is None:
        raw.pop("dataset")
        raw.setdefault("tasks", [{"family": "arithmetic"}])
    with pytest.raises(ConfigError, match=message):
        load_config(raw)


def test_options_are_read(tiny_model, tasks_file, tmp_path):
    from taskforge.curricula.greso import DEFAULTS
    from taskforge.trainers.config import load_config

    base = _config(tiny_model, tmp_path / "out", tasks_file)
    cfg = load_config({**base, "greso": {"enabled": True, "p_min": 0.1}, "surface": "random"})
    assert cfg.greso == {**DEFAULTS, "p_min": 0.1} and cfg.surface == list(FORMS) and cfg.tasks == []
    off = load_config({**base, "greso": {"enabled": False, "p_min": 0.1}, "surface": ["qa", "numbers"]})
    assert off.greso is None and off.surface == ["qa", "numbers"]


# ---- surface forms ------------------------------------------------------------------------------


def test_surfaced_source_keeps_ids_and_verifier_and_is_reproducible():
    tasks = list(taskforge.generate("arithmetic", 12, level=3, seed=4))
    # Each draw as the stream would stamp it: a stream index in meta.
    drawn = [type(t)(**{**t.to_dict(), "meta": {**t.meta, "stream_index": i}}) for i, t in enumerate(tasks)]
    a = list(Surfaced(iter(drawn), ["qa", "distractor", "numbers"], seed=1))
    b = list(Surfaced(iter(drawn), ["qa", "distractor", "numbers"], seed=1))
    assert [t.to_json() for t in a] == [t.to_json() for t in b]
    assert [t.id for t in a] == [t.id for t in tasks]
    assert {t.meta["surface"] for t in a} == {"qa", "distractor", "numbers"}  # 12 draws hit all three
    assert all(
        t.meta["surface"] == choose_form(d, ["qa", "distractor", "numbers"], 1)
        for t, d in zip(a, drawn, strict=True)
    )
    # The same verifier: gold passes and a wrong answer fails in every form.
    gold = [f"<answer>{t.answer}</answer>" for t in a]
    assert all(v.passed for v in verify_many(a, gold))
    assert not any(v.passed for v in verify_many(a, ["<answer>-99999</answer>"] * len(a)))
    # Another position of the same task may be asked in another form.
    again = [
        type(t)(**{**t.to_dict(), "meta": {**t.meta, "stream_index": 100 + i}}) for i, t in enumerate(tasks)
    ]
    assert [choose_form(t, FORMS, 1) for t in again] != [choose_form(t, FORMS, 1) for t in drawn]


# ---- length reward across ranks -----------------------------------------------------------------


def _two_rank_gather():
    """gather_object for two threads standing in for two ranks: each gets both ranks' rows, rank order."""
    barrier, slots = threading.Barrier(2), {}

    def gather(rows):
        rank = rows[0][0]
        slots[rank] = rows
        barrier.wait()
        out = slots[0] + slots[1]
        barrier.wait()
        return out

    return gather


def _task(tid: str, **meta) -> str:
    return json.dumps({"id": tid, "family": "arithmetic", "difficulty": 1.0, "meta": meta})


def _run_ranks(ranks, slices):
    """Each rank's reward call on its own slice, concurrently (the gather is a collective)."""
    out = {}

    def run(k):
        out[k] = _call(ranks[k], slices[k])

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(ranks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


class _Outcome:
    def __init__(self, texts, passed):
        self.last_outcome = (list(texts), list(passed))


def _call(fn, rows):
    """rows: [(task_json, length, passed)] of one rank's slice."""
    texts = [f"r{fn.rank}c{i}" for i in range(len(rows))]
    fn.correct = _Outcome(texts, [ok for _, _, ok in rows])
    return fn(completions=texts, completion_ids=[[0] * n for _, n, _ in rows], task=[t for t, _, _ in rows])


@pytest.mark.parametrize(
    "make", [lambda **kw: Hapo(4, **kw), lambda **kw: LaserD(4, target=100, window=64, **kw)]
)
def test_length_reward_state_is_the_same_on_every_rank(make):
    """A global batch of 3 groups of 4 cut 6 / 6 between two ranks: the 2nd group straddles them. With the
    gather, both ranks score whole groups, return their own slice, and end with the state one process
    would have after the whole batch."""
    p, q, r = _task("p", predicted_p=0.9), _task("q", predicted_p=0.5), _task("r", predicted_p=0.1)
    batch = [(p, 30, True), (p, 10, True), (p, 50, False), (p, 20, True)]
    batch += [(q, 20, True), (q, 60, False), (q, 15, True), (q, 70, False)]
    batch += [(r, 90, False), (r, 25, True), (r, 80, False), (r, 35, True)]
    gather = _two_rank_gather()
    ranks = [make(gather=gather, rank=k) for k in (0, 1)]
    single = make()
    for _ in range(2):  # twice: the second batch is scored against the first batch's state
        out = _run_ranks(ranks, [batch[:6], batch[6:]])
        whole = _call(single, batch)
        assert out[0] + out[1] == pytest.approx(whole)
        assert ranks[0].state_dict() == ranks[1].state_dict() == single.state_dict()
    if isinstance(single, Hapo):
        assert single.history == {"p": 10, "q": 15, "r": 25}  # q's 15 was on rank 1 only
        # The straddling group q against its history 15: cos(pi/2 * L/15) for correct, min(., 0) for wrong.
        assert out[0][4:6] == pytest.approx([math.cos(math.pi / 2 * 20 / 15), -1.0])
    else:
        assert sum(len(v) for v in single.recent.values()) == 24  # every rank's rows, both batches


def test_shorter_better_group_cut_by_ranks_is_scored_whole():
    q = _task("q")
    gather = _two_rank_gather()
    ranks = [ShorterBetter(4, scale=10, gather=gather, rank=k) for k in (0, 1)]
    rows = [(q, 20, False), (q, 30, True), (q, 10, True), (q, 40, False)]
    out = _run_ranks(ranks, [rows[:2], rows[2:]])
    # SOL = 10 (rank 1's row); alone, rank 0 would have taken 30 as the group's shortest correct.
    assert out[0] + out[1] == pytest.approx([-1.0, -2.0, 0.0, -3.0])


# ---- a tiny-model run ---------------------------------------------------------------------------


@pytest.mark.slow
def test_greso_on_a_fixed_dataset_logs_skips_reproducibly_and_resumes(tiny_model, tasks_file, tmp_path):
    """Six prompts, 2 per step, 6 steps (two epochs): the random-weight model fails every group, so after
    the first epoch GRESO skips prompts. The option is read, the skip rate and the predicted vs observed
    zero-variance share reach the run log, the same seed makes the same decisions, and a run resumed from
    a checkpoint goes on as the uninterrupted one."""
    from taskforge.trainers import train

    greso = {"enabled": True, "p_start": 0.5, "adapt_every": 4}
    out = tmp_path / "a"
    cfg = _config(tiny_model, out, tasks_file, greso=greso, surface="random")
    first = train(cfg)
    assert first.global_step == 6 and type(first.stream).__name__ == "GresoFilter"
    log = _records(out / "run_log.jsonl")
    observed = [r for r in log if r["event"] == "observe"]
    assert len(observed) == 12 and all(len(r["rewards"]) == 4 for r in observed)
    assert [r["step"] for r in observed] == [s for s in range(1, 7) for _ in range(2)]
    greso_recs = [r for r in log if r["event"] == "greso"]
    assert len(greso_recs) == 3
    assert all({"skip_rate", "predicted_zero_var", "observed_zero_var"} <= set(r) for r in greso_recs)
    assert first.stream.skipped > 0 and greso_recs[-1]["skip_rate"] > 0
    steps = [r for r in log if r["event"] == "train_step" and "loss" in r]
    assert len(steps) == 6
    assert all("greso/skip_rate" in r and "taskforge/predicted_zero_var" in r for r in steps)
    assert steps[-1]["greso/skip_rate"] == pytest.approx(first.stream.skip_rate)
    # surface: random: prompts were asked in several forms, each form's pass rate is logged.
    forms = {k.split("/")[-1] for r in steps for k in r if k.startswith("pass_rate/surface/")}
    assert len(forms) >= 2 and forms <= set(FORMS)
    saved = json.loads((out / "checkpoint-6" / "taskforge_state.json").read_text())
    assert saved["source"] == "dataset" and saved["stream"]["skipped"] == first.stream.skipped

    # The same seed in another folder: the same prompts, the same skips.
    second = train(_config(tiny_model, tmp_path / "b", tasks_file, greso=greso, surface="random"))
    log_b = _records(tmp_path / "b" / "run_log.jsonl")
    assert [r["task_id"] for r in log_b if r["event"] == "observe"] == [r["task_id"] for r in observed]
    assert [r for r in log_b if r["event"] == "greso"] == greso_recs
    assert second.stream.state_dict() == first.stream.state_dict()

    # Resumed from step 2: the filter's state comes back from the checkpoint, the log is cut back and the
    # steps after it come out identical.
    resumed = train(cfg, resume=str(out / "checkpoint-2"))
    assert resumed.global_step == 6
    assert _records(out / "run_log.jsonl") == log
    assert resumed.stream.state_dict() == first.stream.state_dict()

    # Without `greso:` the same dataset is walked in plain epochs: nothing skipped.
    plain_cfg = _config(tiny_model, tmp_path / "c", tasks_file)
    plain_cfg["grpo"]["max_steps"] = 3
    plain = train(plain_cfg)
    assert plain.stream.skipped == 0 and plain.stream.observed == 6


def test_dataset_from_python(tiny_model, tmp_path):
    """`train(cfg, dataset=...)` takes a `datasets.Dataset` of task rows in place of the config's tasks."""
    datasets = pytest.importorskip("datasets")
    from taskforge.trainers import train

    rows = [t.to_dict() for t in taskforge.generate("arithmetic", 4, level=0, seed=2)]
    ds = datasets.Dataset.from_list(rows)
    cfg = {
        "model": str(tiny_model),
        "output_dir": str(tmp_path / "out"),
        "tasks": [{"family": "arithmetic"}],
        "grpo": {
            "max_steps": 1,
            "num_generations": 4,
            "per_device_train_batch_size": 8,
            "max_completion_length": 4,
        },
    }
    result = train(
        cfg,
        dataset=ds,
    )
    assert result.global_step == 1 and result.stream.observed == 2
    assert {t.id for t in result.stream.tasks} == {r["id"] for r in rows}


def test_an_exported_saturn_benchmark_is_a_dataset(tiny_model, tmp_path):
    """The README's `dataset:` takes "a folder of them (an exported benchmark)"; Saturn's own files (as
    `taskforge export saturn` and data/saturn write them) were refused as "task record lacks fields"
    while `taskforge eval --bench` read them. Now both go through one reader, with the same verifier."""
    from pathlib import Path

    from taskforge.generators.sat.records import record_to_task
    from taskforge.trainers.config import load_config, load_dataset

    bench = Path(__file__).resolve().parents[2] / "data" / "saturn" / "test"
    cfg = load_config(_config(tiny_model, tmp_path / "out", bench, greso={"enabled": True}))
    tasks = load_dataset(cfg)
    records = [json.loads(line) for f in sorted(bench.glob("*.jsonl")) for line in f.read_text().splitlines()]
    assert len(tasks) == len(records) == 100 and {t.family for t in tasks} == {"sat"}
    assert [t.id for t in tasks] == [record_to_task(r, strict=True).id for r in records]
    gold = taskforge.get_generator("sat").gold_response(tasks[0])
    assert verify_many([tasks[0]], [gold])[0].passed


def test_resume_refuses_options_that_change_the_saved_state(tiny_model, tasks_file, tmp_path):
    """A checkpoint's state belongs to its GRESO settings, length reward and dataset. Resumed with
    `greso: {enabled: false}` the plain filter took over the saved exploration rates and kept skipping;
    with another length-reward method the saved state was dropped without a word; another dataset would
    index the per-prompt arrays with the wrong prompts. Each is now one ConfigError before the model."""
    from taskforge.trainers import train
    from taskforge.trainers.config import ConfigError

    out = tmp_path / "out"
    cfg = _config(tiny_model, out, tasks_file, greso={"enabled": True}, length_reward={"method": "hapo"})
    cfg["grpo"].update(max_steps=2, per_device_train_batch_size=4)
    train(cfg)
    other = tmp_path / "other.jsonl"
    other.write_text(
        "".join(t.to_json() + "\n" for t in taskforge.generate("arithmetic", 6, level=0, seed=10))
    )
    for change, key in [
        ({"greso": {"enabled": False}}, "greso"),
        ({"greso": {"enabled": True, "p_min": 0.1}}, "greso"),
        ({"length_reward": {"method": "laser"}}, "length_reward"),
        ({"dataset": str(other)}, "dataset"),
    ]:
        changed = {**cfg, **change, "grpo": {**cfg["grpo"], "max_steps": 4}}
        with pytest.raises(ConfigError, match=f"other `{key}`"):
            train(changed, resume="latest")
    # the weight is not state: changing it resumes
    weight = {
        **cfg,
        "length_reward": {"method": "hapo", "weight": 0.5},
        "grpo": {**cfg["grpo"], "max_steps": 3},
    }
    assert train(weight, resume="latest").global_step == 3
