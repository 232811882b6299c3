"""The batch path (`Generator.generate_many`, used by the dataset writer and `taskforge.generate`) gives the
same bytes as the item-at-a-time path (`Generator.sample`), for every family and split."""

from __future__ import annotations

import pytest

import taskforge
from taskforge.io import DatasetSpec, iter_task_lines
from taskforge.registry import families, generator_class, get_generator
from taskforge.seeding import block_seeds, key_seed, stream_key

# Generation of these families costs milliseconds a task (a database, a sandboxed reference run): a few
# items each keep the test to seconds; arithmetic gets many, since its batch path is its own code.
FEW = {"sql": 2, "code": 2, "json_schema": 4, "sat": 6}


def _jsons(tasks: list) -> list[str]:
    return [t.to_json() for t in tasks]


def test_block_seeds_equal_item_seeds() -> None:
    prefix = stream_key("arithmetic", "1", {"digits": 3}, 7, "val")
    assert block_seeds(prefix, 95, 10) == [key_seed(prefix + f"{i}]") for i in range(95, 105)]


@pytest.mark.parametrize("family", sorted(families()))
def test_generate_many_equals_sample_every_family(family: str) -> None:
    gen = get_generator(family)
    cls = generator_class(family)
    n = FEW.get(family, 40)
    for level in sorted({0, len(cls.levels) - 1}) if family not in FEW else [0]:
        params = gen.resolve_params(level)
        for split in ("train", "test"):
            one = [gen.sample(params, 5, split, i) for i in range(3, 3 + n)]
            assert _jsons(gen.generate_many(params, 5, split, 3, n)) == _jsons(one)


@pytest.mark.parametrize(
    "params",
    [
        {"digits": 1, "digits_b": 1},  # few distinct problems: the val/test buckets reject most draws
        {"digits": 7, "digits_b": 3},
        {"digits": 25, "digits_b": 0, "negative": True},
        {"digits": 2, "negative": True},
        {"digits": 4, "min_carries": 3},  # carry bounds take the generic path
        {"op": "sum", "terms": 4, "digits": 5, "negative": True},
    ],
)
def test_arithmetic_batch_path_bytes(params: dict) -> None:
    gen = get_generator("arithmetic")
    resolved = gen.resolve_params(None, params)
    for split in ("train", "val", "test"):
        one = [gen.sample(resolved, 11, split, i) for i in range(200)]
        many = gen.generate_many(resolved, 11, split, 0, 120) + gen.generate_many(
            resolved, 11, split, 120, 80
        )
        assert _jsons(many) == _jsons(one)
        # Equal records, not only equal JSON: the assembled Task compares equal and hashes its fields alike.
        assert many == one
        assert {t.split for t in many} == {split}


def test_arithmetic_batch_path_is_its_own_code() -> None:
    """The plain-product fast path is not the generic loop (otherwise the byte test above proves nothing
    about it): it never calls `generate`."""
    gen = get_generator("arithmetic")
    params = gen.resolve_params(3)
    calls = []
    original = type(gen).generate
    type(gen).generate = lambda self, p, rng: calls.append(1) or original(self, p, rng)  # type: ignore[method-assign]
    try:
        gen.generate_many(params, 0, "train", 0, 10)
    finally:
        type(gen).generate = original  # type: ignore[method-assign]
    assert calls == []


def test_api_and_writer_use_the_same_bytes() -> None:
    gen = get_generator("arithmetic")
    params = gen.resolve_params(4)
    expect = _jsons([gen.sample(params, 3, "train", i) for i in range(1000, 1700)])
    assert _jsons(taskforge.generate("arithmetic", 700, level=4, seed=3, start=1000)) == expect
    endless = taskforge.generate("arithmetic", None, level=4, seed=3, start=1000)
    assert [next(endless).to_json() for _ in range(700)] == expect
    spec = DatasetSpec(n=1700, family="arithmetic", level=4, seed=3)
    lines = [line for chunk in iter_task_lines(spec, workers=1) for line in chunk]
    assert lines[1000:] == expect


def test_mixture_writer_matches_item_path() -> None:
    spec = DatasetSpec(n=300, mix={"arithmetic": 3.0, "sat": 1.0}, level=1, seed=9, split="val")
    lines = [line for chunk in iter_task_lines(spec, workers=1) for line in chunk]
    assert lines == [spec.task(i).to_json() for i in range(300)]
    assert {line.split('"family":"')[1].split('"')[0] for line in lines} == {"arithmetic", "sat"}


def test_conformance_catches_a_batch_path_with_other_bytes():
    from taskforge.conformance import Probe, check_determinism
    from taskforge.generators.arithmetic import Arithmetic

    class Shifted(Arithmetic):
        family = "arithmetic_shifted_batch"

        def sampler_many(self, params, seed, split):
            plain = super().sampler_many(params, seed, split)
            return lambda start, n: plain(start + 1, n)  # off by one index

    assert check_determinism(Probe(Arithmetic, samples=3, cross_process=False)) is None
    problem = check_determinism(Probe(Shifted, samples=3, cross_process=False))
    assert problem is not None and "generate_many" in problem
