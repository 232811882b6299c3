"""SQL generation gives the same bytes as before issue 16's speed-up.

The digests below were computed from the unchanged generator (main at 51e880c, before any change of
issue 16) with `case_digest`, and are asserted as they were: the generation path may change, the tasks
may not. If the tasks ever change on purpose (a new family version or BUILDER_VERSION), recompute them
from the generator of that change and say so in the commit."""

from __future__ import annotations

import hashlib

import pytest

import taskforge

# (seed, level, params override, split, n): every level on two seeds in train, the two held-out splits
# (each item there is the first of about 16 draws its split owns, so the draws past rejections count
# too), and the knobs' extremes (five instances, 200 base rows, eight tables; four base rows).
CASES = [
    *[(seed, level, None, "train", 5) for seed in (0, 5) for level in range(8)],
    *[(seed, level, None, split, 1) for seed, split in ((0, "val"), (5, "test")) for level in range(8)],
    (2, 7, {"instances": 5, "rows": 200}, "train", 3),
    (3, 3, {"rows": 4, "instances": 3}, "train", 4),
    (4, 6, {"tables": 8, "max_rows": 1000}, "train", 3),
]


def case_digest(seed: int, level: int, params: dict | None, split: str, n: int) -> str:
    tasks = taskforge.generate("sql", n, level=level, params=params, seed=seed, split=split)
    h = hashlib.blake2b(digest_size=8)
    for t in tasks:
        h.update(t.to_json().encode() + b"\n")
    return h.hexdigest()


EXPECTED: dict[int, str] = {
    0: "44564d16e712a745",
    1: "fd11d5d5b801302a",
    2: "2cf988fe51c74f34",
    3: "27a26a61ea8cc023",
    4: "cd38ffdb7a8d0227",
    5: "cdbd33299226c307",
    6: "8c6e4200ae68b301",
    7: "724b2dc8a5b64668",
    8: "3dcd9d43fb7b497a",
    9: "9b8774279d9520d9",
    10: "3032d1e6a4761b49",
    11: "1764e37a1c691680",
    12: "3a8981e6563f8e93",
    13: "694eae8cb6ac9b10",
    14: "6c5dd70648aec1ae",
    15: "d429acafb5c0c337",
    16: "6616745ded27141b",
    17: "649e7e28216f1c60",
    18: "d207e26c42b4e48f",
    19: "82faabea09cc1094",
    20: "1c69b38126ea2127",
    21: "a7936b294b326136",
    22: "a438948258dc3eb8",
    23: "4e71a78fbc86bdfc",
    24: "cf984edeefe926f6",
    25: "7f3af6f6b135f359",
    26: "26664453bc8e6ad0",
    27: "3004a944fdc268fc",
    28: "a9d9274508360a4d",
    29: "2a881c7fc2503813",
    30: "0cdd58782218132f",
    31: "b6f1cc26dbab6341",
    32: "af081ac8d1c96688",
    33: "de6d6eb1b8319c0d",
    34: "0fd1bae66bdfdc97",
}


@pytest.mark.parametrize("k", range(len(CASES)))
def test_sql_generation_bytes_unchanged(k: int) -> None:
    assert case_digest(*CASES[k]) == EXPECTED[k]


if __name__ == "__main__":  # prints EXPECTED, for a deliberate change of the tasks only
    print({k: case_digest(*c) for k, c in enumerate(CASES)})
