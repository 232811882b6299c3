"""How each SAT scoring mode agrees with Saturn's reward over every answer shape of every released record.

    python benchmarks/saturn_agreement.py     # writes benchmarks/results/saturn_agreement.json

The shapes and the literal reading of Saturn's rule are those of tests/generators/test_saturn_reward.py
(every shape on every record here; the test samples them to stay fast). `saturn_reward` must disagree
on 0 responses; strict and lenient disagree by design (what a pass means differs).
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from taskforge.generators.sat import saturn_reward  # noqa: E402
from taskforge.generators.sat.records import record_to_task  # noqa: E402
from taskforge.registry import get_generator  # noqa: E402
from tests.generators.test_saturn_reward import RECORDS, oracle, shapes  # noqa: E402


def main() -> None:
    gen = get_generator("sat")
    rng = random.Random(0)
    counts = {"responses": 0, "saturn_reward": 0, "lenient": 0, "strict": 0}
    start = time.process_time()
    for rec in RECORDS:
        strict, lenient = record_to_task(rec, strict=True), record_to_task(rec, strict=False)
        for _, response in shapes(rec, rng):
            expected = oracle(response, rec["clause"])
            counts["responses"] += 1
            counts["saturn_reward"] += saturn_reward(response, rec["clause"]) != expected
            counts["lenient"] += gen.verify(lenient, response).passed != (expected == 1.0)
            counts["strict"] += gen.verify(strict, response).passed != (expected == 1.0)
    out = {"records": len(RECORDS), "disagreements": counts, "cpu_s": round(time.process_time() - start, 1)}
    path = REPO / "benchmarks" / "results" / "saturn_agreement.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
