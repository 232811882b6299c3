"""Deliberately broken generators: the conformance suite must catch each defect."""

import random
import time

from taskforge.task import Verdict
from tests.stubs import StubGenerator


class NonDeterministic(StubGenerator):
    family = "broken-nondeterministic"

    def generate(self, params, rng: random.Random):
        value = str(time.perf_counter_ns())  # ignores rng: differs on every call
        return self.make_task(params, prompt=f"say {value}", answer=value, check={"v": value})

    def verify(self, task, response):
        return Verdict.ok() if task.check["v"] in str(response) else Verdict.fail("wrong")


class WrongGold(StubGenerator):
    family = "broken-wrong-gold"

    def generate(self, params, rng: random.Random):
        x = rng.randrange(10**9)
        return self.make_task(params, prompt=f"x={x}", answer=str(x + 1), check={"x": x})

    def verify(self, task, response):
        return Verdict.ok() if response == f"<answer>{task.check['x']}</answer>" else Verdict.fail("wrong")
