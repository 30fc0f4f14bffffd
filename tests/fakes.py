"""Test doubles: a scripted engine for exact algorithm tests (the real path is tested too)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hotncold.engine.requests import EngineStats, Generation, GenerationRequest

Script = Callable[[GenerationRequest, int], Generation | str]


class ScriptedEngine:
    """Answers each request with `script(request, sample_index)`; records every call."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.stats = EngineStats()
        self.calls: list[list[GenerationRequest]] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Generation]]:
        self.calls.append(list(requests))
        self.stats.calls += 1
        self.stats.requests += len(requests)
        out = []
        for request in requests:
            samples = []
            for i in range(request.n):
                g = self.script(request, i)
                if isinstance(g, str):
                    g = Generation(text=g, num_tokens=len(g.split()), finish_reason="stop")
                samples.append(g)
                # no prefix cache here: every sample computes its whole prompt, one token a word
                self.stats.charge(request.account, len(request.prompt.split()), 0, g.num_tokens)
            self.stats.sequences += len(samples)
            out.append(samples)
        return out

    def generated_so_far(self) -> int:
        return self.stats.generated_tokens

    def format_chat(
        self,
        messages: list[dict[str, str]],
        chat_template: str | None = None,
        date_string: str | None = None,
        add_special_tokens: bool = False,
    ) -> str:
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"


def problem_of(prompt: str) -> str:
    """The user message inside a ScriptedEngine prompt."""
    return prompt.split("<user>", 1)[1].split("<assistant>", 1)[0]


def half_right(answers: dict[str, str]) -> Script:
    """A script whose even samples solve the problem (`answers`: problem -> answer) and whose
    odd ones claim a false equation and a wrong answer."""

    def solve(request: GenerationRequest, i: int) -> str:
        answer = answers[problem_of(request.prompt)]
        if i % 2 == 0:
            return f"{answer} + 0 = {answer}\nThe answer is {answer}."
        return f"1 + 1 = 3\nThe answer is {int(answer) + 1}."

    return solve
