"""Several processes: `torchrun --nproc_per_node 2` on CPU (gloo) with the tiny model. One logical
curriculum: every prompt of the global batch proposed once and observed exactly once, whichever ranks
its completions landed on, and the same controller state on both ranks after every step."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

pytest.importorskip("trl")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun_train(cfg: dict, tmp_path) -> None:
    """`taskforge train` on 2 CPU ranks (gloo) with this config; fails the test with the ranks' stderr."""
    import yaml

    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    cmd += [
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        "-m",
        "taskforge",
        "train",
        str(path),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.slow
def test_two_cpu_ranks_one_curriculum(tmp_path):
    from taskforge.trainers.tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "model", seed=0)
    out = tmp_path / "run"
    steps, per_rank, group = (
        3,
        6,
        4,
    )  # 12 completions a step, 3 prompts: the 2nd prompt's group straddles the ranks
    cfg = {
        "model": str(model),
        "output_dir": str(out),
        "seed": 0,
        "tasks": [{"family": "arithmetic", "curriculum": True}],
        "controller": {"name": "adaptive"},
        "grpo": {
            "max_steps": steps,
            "num_generations": group,
            "per_device_train_batch_size": per_rank,
            "max_completion_length": 8,
            "learning_rate": 1e-3,
            "temperature": 1.0,
            "save_strategy": "steps",
            "save_steps": steps,
        },
        # LASER-D keeps every response's (length, correct) in its buckets: its state shows whether the
        # ranks share their rows (and the per-step digest covers it).
        "length_reward": {"method": "laser_d", "weight": 0.1, "window": 1024},
    }
    _torchrun_train(cfg, tmp_path)

    recs = [json.loads(line) for line in (out / "run_log.jsonl").read_text().splitlines()]
    proposed = {r["stream_index"] for r in recs if r["event"] == "propose"}
    observed = [r for r in recs if r["event"] == "observe"]
    prompts = steps * 2 * per_rank // group
    # One logical stream: the main process alone logs, and each proposal of the trained steps is observed
    # once, with its G rewards (gathered from both ranks), its cell and the step that trained on it.
    assert len(observed) == prompts
    assert sorted(r["stream_index"] for r in observed) == list(range(prompts))
    assert len({r["task_id"] for r in observed}) == prompts and proposed >= set(range(prompts))
    assert all(len(r["rewards"]) == group and r["cell"] for r in observed)
    assert [r["step"] for r in observed] == [s for s in range(1, steps + 1) for _ in range(prompts // steps)]
    # The same controller state on both ranks after every step (a hash per rank, gathered by the main one).
    digests = [r["state_digests"] for r in recs if r["event"] == "train_step" and "loss" in r]
    assert len(digests) == steps and all(len(d) == 2 and d[0] == d[1] for d in digests)
    assert len({d[0] for d in digests}) == steps  # and it moved with every step's observations
    saved = json.loads((out / f"checkpoint-{steps}" / "taskforge_state.json").read_text())
    assert saved["groups_routed"] == prompts and saved["stream"]["observed"] == prompts
    # Rank 0's checkpoint holds the length reward's state of the whole global batch, rank 1's rows too.
    shaping = json.loads((out / f"checkpoint-{steps}" / "taskforge_shaping.json").read_text())
    assert sum(len(rows) for rows in shaping["state"]["recent"].values()) == steps * 2 * per_rank


@pytest.mark.slow
def test_two_cpu_ranks_one_greso_filter(tmp_path):
    """A fixed dataset with GRESO on two ranks: every rank runs the same filter and observes every group
    (gathered), so the filters' states agree after every step and rank 0's log and checkpoint are whole."""

    import taskforge
    from taskforge.trainers.tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "model", seed=0)
    data = tmp_path / "train.jsonl"
    data.write_text("".join(t.to_json() + "\n" for t in taskforge.generate("arithmetic", 4, level=0, seed=1)))
    out = tmp_path / "run"
    steps, per_rank, group = 4, 6, 4
    cfg = {
        "model": str(model),
        "output_dir": str(out),
        "seed": 0,
        "dataset": str(data),
        "greso": {"enabled": True, "adapt_every": 3},
        "grpo": {
            "max_steps": steps,
            "num_generations": group,
            "per_device_train_batch_size": per_rank,
            "max_completion_length": 8,
            "save_strategy": "steps",
            "save_steps": steps,
        },
    }
    _torchrun_train(cfg, tmp_path)

    recs = [json.loads(line) for line in (out / "run_log.jsonl").read_text().splitlines()]
    prompts = steps * 2 * per_rank // group
    observed = [r for r in recs if r["event"] == "observe"]
    assert len(observed) == prompts and all(len(r["rewards"]) == group for r in observed)
    assert [r["observed"] for r in observed] == list(range(1, prompts + 1))  # each group once, in order
    assert [r for r in recs if r["event"] == "greso"]
    digests = [r["state_digests"] for r in recs if r["event"] == "train_step" and "loss" in r]
    assert len(digests) == steps and all(len(d) == 2 and d[0] == d[1] for d in digests)
    saved = json.loads((out / f"checkpoint-{steps}" / "taskforge_state.json").read_text())
    assert saved["source"] == "dataset" and saved["stream"]["observed"] == prompts
