"""A third-party family: repeat a random word. Installed on its own, found through the entry point."""

import random

from taskforge import Generator, Knob, Task, Verdict, extract_answer

WORDS = ("amber", "basalt", "cobalt", "dune", "ember", "fjord", "garnet", "heron", "iris", "jade")


class EchoWord(Generator):
    family = "echo_word"
    version = "1"
    description = "Repeat the given words in reverse order."
    knobs = (Knob("words", int, 2, low=1, high=50),)
    levels = ({"words": 1}, {"words": 3}, {"words": 8})

    def difficulty(self, params):
        return float(params["words"])

    def generate(self, params, rng: random.Random) -> Task:
        words = [rng.choice(WORDS) + str(rng.randrange(1000)) for _ in range(params["words"])]
        answer = " ".join(reversed(words))
        prompt = f"Write these words in reverse order: {' '.join(words)}. Answer inside <answer></answer>."
        return self.make_task(params, prompt=prompt, answer=answer, check={"expected": answer})

    def verify(self, task: Task, response: str) -> Verdict:
        text = extract_answer(response)
        if text is None:
            return Verdict.fail("no_answer")
        got = " ".join(text.split())
        return Verdict.ok(got) if got == task.check["expected"] else Verdict.fail("wrong", got)

    def corrupt_answer(self, task, rng):
        return f"<answer>{task.answer} extra</answer>"
