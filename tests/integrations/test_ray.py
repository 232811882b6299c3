"""Generation and verification on a local Ray cluster (2 CPUs): same bytes as a local run, a worker
killed mid-block is retried, a killed driver resumes with its finished blocks kept."""

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import taskforge
from taskforge.errors import GenerationError
from taskforge.io import DatasetComplete, DatasetError, DatasetSpec, write_dataset
from taskforge.registry import get_generator

pytest.importorskip("ray", reason="Ray is not installed (pip install 'taskforge[ray]')")
import ray  # noqa: E402

from taskforge.api import verify_many  # noqa: E402
from taskforge.integrations import ray as tf_ray  # noqa: E402
from taskforge.integrations.ray import VerifierPool, generate_ray  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# Ray workers unpickle the specs below by value: they cannot import this test module.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@dataclasses.dataclass(frozen=True)
class DyingSpec(DatasetSpec):
    """Kills its Ray worker process the first time any block starts there (a lost worker)."""

    marker: str = ""
    driver: int = 0

    def sampler_many(self, family):
        flag = Path(self.marker)
        if os.getpid() != self.driver and not flag.exists():
            flag.write_text(str(os.getpid()))
            os._exit(1)
        return DatasetSpec.sampler_many(self, family)


@dataclasses.dataclass(frozen=True)
class FailingSpec(DatasetSpec):
    """Valid in the driver, impossible on the workers (as a level with too few distinct problems is)."""

    driver: int = 0

    def sampler_many(self, family):
        if os.getpid() != self.driver:
            raise GenerationError("too few distinct problems to fill split 'train'")
        return DatasetSpec.sampler_many(self, family)


@dataclasses.dataclass(frozen=True)
class SlowSpec(DatasetSpec):
    """Each block takes `delay` seconds more, so a driver can be killed halfway."""

    delay: float = 0.0

    def sampler_many(self, family):
        time.sleep(self.delay)
        return DatasetSpec.sampler_many(self, family)


def test_same_bytes_as_a_local_run(ray_cluster, tmp_path, monkeypatch):
    # Small Parquet parts so the merge has to cut row groups across block boundaries, as a local run does.
    monkeypatch.setattr("taskforge.io.PARQUET_PART_ROWS", 100)
    spec = DatasetSpec(n=300, mix={"arithmetic": 1, "sat": 1}, level=1, seed=5)
    for ext in (".jsonl", ".parquet"):
        write_dataset(spec, tmp_path / f"local{ext}")
        seen = []
        assert generate_ray(spec, tmp_path / f"ray{ext}", block_rows=64, progress=seen.append) == 300
        assert (tmp_path / f"ray{ext}").read_bytes() == (tmp_path / f"local{ext}").read_bytes()
        assert sum(seen) == 300 and len(seen) == 1 + 5  # the resumed count, then one step per block
        assert not tf_ray.parts_dir(tmp_path / f"ray{ext}").exists()


def test_a_killed_worker_is_retried(ray_cluster, tmp_path):
    marker = tmp_path / "died"
    spec = DyingSpec(n=120, family="arithmetic", level=3, seed=1, marker=str(marker), driver=os.getpid())
    assert generate_ray(spec, tmp_path / "ray.jsonl", block_rows=40) == 120
    assert marker.exists(), "the fault was never injected"
    write_dataset(DatasetSpec(n=120, family="arithmetic", level=3, seed=1), tmp_path / "local.jsonl")
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()


def test_a_block_that_cannot_work_fails_like_a_local_run(ray_cluster, tmp_path):
    spec = FailingSpec(n=20, family="arithmetic", level=1, driver=os.getpid())
    with pytest.raises(GenerationError, match="too few distinct problems"):
        generate_ray(spec, tmp_path / "ray.jsonl", block_rows=5)
    assert not tf_ray.parts_dir(tmp_path / "ray.jsonl").exists() and not (tmp_path / "ray.jsonl").exists()


DRIVER = """
import sys
sys.path.insert(0, {root!r})
import ray
from tests.integrations.test_ray import SlowSpec
from taskforge.integrations.ray import generate_ray
ray.init(address={address!r}, log_to_driver=False)
generate_ray(SlowSpec(n=48, family="arithmetic", level=1, seed=3, delay=0.3), {out!r}, block_rows=4)
"""


def test_resume_after_a_killed_driver(ray_cluster, tmp_path):
    out = tmp_path / "ray.parquet"
    parts = tf_ray.parts_dir(out)
    script = DRIVER.format(root=str(ROOT), address=ray_cluster, out=str(out))
    driver = subprocess.Popen(
        [sys.executable, "-c", script], start_new_session=True, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while len(list(parts.glob("block-*.parquet"))) < 2:
            assert driver.poll() is None, "the driver ended before it could be killed"
            assert time.monotonic() < deadline, "no block finished in 60 s"
            time.sleep(0.05)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    kept = len(list(parts.glob("block-*.parquet")))
    assert 2 <= kept < 12 and not out.exists()
    spec = SlowSpec(n=48, family="arithmetic", level=1, seed=3, delay=0.3)
    with pytest.raises(DatasetError, match="different settings"):
        generate_ray(dataclasses.replace(spec, seed=4), out, block_rows=4, resume=True)
    assert generate_ray(spec, out, block_rows=4, resume=True) == 48 - 4 * kept
    write_dataset(DatasetSpec(n=48, family="arithmetic", level=1, seed=3), tmp_path / "local.parquet")
    assert out.read_bytes() == (tmp_path / "local.parquet").read_bytes()
    with pytest.raises(DatasetComplete, match="already complete"):
        generate_ray(spec, out, block_rows=4, resume=True)


def test_verifier_pool_gives_the_local_verdicts(ray_cluster):
    code = list(taskforge.generate("code", 3, level=1, seed=2))
    sql = list(taskforge.generate("sql", 1, level=0, seed=2))
    tasks, responses = [], []
    for t in code + sql:
        gen = get_generator(t.family)
        tasks += [t, t, t]
        responses += [
            gen.gold_response(t),
            gen.corrupt_answer(t, __import__("random").Random(0)),
            "no answer here",
        ]
    hostile = "```python\nimport os\nos._exit(0)\n```"
    tasks.append(code[0])
    responses.append(hostile)
    with VerifierPool(2) as pool:
        assert len(set(pool.pids)) == 2 and os.getpid() not in pool.pids
        remote = verify_many(tasks, responses, pool=pool)
    local = verify_many(tasks, responses)
    assert [v.reason for v in remote] == [v.reason for v in local]
    assert [v.passed for v in remote[:12:3]] == [True] * 4
    assert not any(v.passed for i, v in enumerate(remote) if i % 3)


def test_cli_generate_on_ray(ray_cluster, tmp_path):
    from typer.testing import CliRunner

    from taskforge.cli import app

    args = ["generate", "arithmetic", "-n", "50", "--level", "2", "--seed", "6"]
    runner = CliRunner()
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "ray.jsonl"), "--ray"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, [*args, "-o", str(tmp_path / "local.jsonl")]).exit_code == 0
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "ray.jsonl"), "--ray", "--resume"])
    assert result.exit_code == 0 and "already complete" in result.output
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "ray.txt"), "--ray"])
    assert result.exit_code == 2 and "must end in .jsonl or .parquet" in result.output
