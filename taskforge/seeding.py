"""Per-item seeds: a hash of everything that names the item, never `seed + index`.

`seed + index` makes base seed 2 repeat base seed 1 shifted by one item (reasoning-gym's defect).
Hashing (family, version, params, base seed, split, index) gives independent streams for every item,
the same in every process (no use of Python's salted `hash`).
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from taskforge.task import canonical_json


def item_seed(family: str, version: str, params: dict[str, Any], seed: int, split: str, index: int) -> int:
    key = canonical_json([family, version, params, seed, split, index]).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=16).digest(), "little")


def item_rng(family: str, version: str, params: dict[str, Any], seed: int, split: str, index: int) -> random.Random:
    """A `random.Random` for one item. Generators needing numpy do `np.random.default_rng(rng.getrandbits(128))`."""
    return random.Random(item_seed(family, version, params, seed, split, index))


def hash_unit(*parts: Any) -> float:
    """A deterministic number in [0, 1) from any JSON-able parts (used for mixtures and split buckets)."""
    digest = hashlib.blake2b(canonical_json(list(parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64
