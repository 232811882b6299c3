"""The fast paths of the core give the same bytes as their plain spellings.

Seeding, ids and split buckets are part of every dataset's identity: a shortcut that changed one byte
would silently change every dataset ever generated. Each shortcut is checked against the obvious code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random

import pytest

import taskforge
from taskforge.generator import SPLIT_BUCKETS, TRAIN_BUCKET, split_owns
from taskforge.registry import get_generator
from taskforge.seeding import hash_unit, item_seed
from taskforge.task import Task, canonical_json


def plain_canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def plain_sample(gen, params, seed, split, index):
    """`Generator.sample` as first written: params normalised through JSON, a fresh key, replace()."""
    canon = json.loads(plain_canonical_json(params))
    key = plain_canonical_json([gen.family, gen.version, canon, seed, split, index]).encode()
    rng = random.Random(int.from_bytes(hashlib.blake2b(key, digest_size=16).digest(), "little"))
    while True:
        task = gen.generate(params, rng)
        low, high = SPLIT_BUCKETS.get(split, TRAIN_BUCKET)
        digest = hashlib.blake2b(plain_canonical_json(["split", task.id]).encode(), digest_size=8).digest()
        if low <= int.from_bytes(digest, "little") / 2**64 < high:
            return dataclasses.replace(task, seed=seed, split=split, index=index)


VALUES = [
    {"b": 1, "a": [1, 2.5, None, True], "é": "ünïcødé ×", "q": 'quote " and \\ backslash'},
    ("tuple", 3),
    "plain",
    "\u2028 line separator and \x00 nul",
    [{"z": {"y": 1, "x": 2}}],
    -0.0,
    10**30,
]


@pytest.mark.parametrize("value", VALUES)
def test_canonical_json_is_the_plain_json_spelling(value):
    assert canonical_json(value) == plain_canonical_json(value)


def test_nan_is_still_refused():
    with pytest.raises(ValueError):
        canonical_json(float("nan"))


def test_item_seed_hashes_the_canonical_six_part_key():
    params = {"op": "mul", "digits": 3, "shape": (1, 2)}
    for index in (0, 7, 10**12):
        key = plain_canonical_json(["fam", "2", {"op": "mul", "digits": 3, "shape": [1, 2]}, 5, "val", index])
        expected = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=16).digest(), "little")
        assert item_seed("fam", "2", params, 5, "val", index) == expected


@pytest.mark.parametrize("task_id", ["0123abcd", 'we"ird\\id', "ünï", ""])
def test_split_owns_uses_the_hash_unit_bucket(task_id):
    for split in ("train", "val", "test", "other"):
        low, high = SPLIT_BUCKETS.get(split, TRAIN_BUCKET)
        assert split_owns(split, task_id) == (low <= hash_unit("split", task_id) < high)


def test_placed_equals_dataclasses_replace():
    task = taskforge.get_generator("arithmetic").sample(
        {**taskforge.get_generator("arithmetic").resolve_params(3)}, 1, "train", 4
    )
    placed = task.placed(9, "test", 33)
    assert placed == dataclasses.replace(task, seed=9, split="test", index=33)
    assert placed.to_json() == dataclasses.replace(task, seed=9, split="test", index=33).to_json()
    assert (task.seed, task.split, task.index) == (1, "train", 4)  # the original is untouched


# The sampling path is the same code for every family: cheap families cover it (a SQL or code build
# would add a minute and test nothing more).
@pytest.mark.parametrize("family", ["arithmetic", "sat", "json_schema"])
def test_sample_and_sampler_give_the_plain_bytes(family):
    gen = get_generator(family)
    for level in sorted({0, len(gen.levels) // 2, len(gen.levels) - 1}):
        params = gen.resolve_params(level)
        for split in ("train", "val", "test"):
            sampler = gen.sampler(params, 3, split)
            for index in range(6):
                expected = plain_sample(gen, params, 3, split, index).to_json()
                assert gen.sample(params, 3, split, index).to_json() == expected
                assert sampler(index).to_json() == expected
        via_api = [t.to_json() for t in taskforge.generate(family, 4, level=level, seed=3, start=2)]
        assert via_api == [plain_sample(gen, params, 3, "train", i).to_json() for i in range(2, 6)]


def test_task_json_is_the_plain_spelling_and_round_trips():
    task = next(taskforge.generate("arithmetic", 1, params={"negative": True}))
    row = {f.name: getattr(task, f.name) for f in dataclasses.fields(Task)}
    assert task.to_json() == json.dumps(row, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    assert Task.from_json(task.to_json()) == task
