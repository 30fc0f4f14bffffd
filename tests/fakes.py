"""Test doubles: a scripted engine for exact algorithm tests (the real path is tested too)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hotncold.engine.requests import EngineStats, Generation, GenerationRequest

Script = Callable[[GenerationRequest, int], Generation | str]


class ScriptedEngine:
    """Answers each request with `script(request, sample_index)`; records every call.

    With `honor_stops`, a text the script returns is cut as vLLM cuts it: right after the first
    of the request's stop strings it holds (kept), finish `stop` with that `stop_reason`, one
    token a word of what is left (`continuing` writes scripts for it)."""

    def __init__(self, script: Script, honor_stops: bool = False) -> None:
        self.script = script
        self.honor_stops = honor_stops
        self.in_flight: list[tuple[int, list[Generation]]] = []
        """Submitted requests not yet polled, oldest first (`submit`)."""
        self.tickets = 0
        self.poll_size = 1
        """How many submitted requests one `poll` finishes (oldest first)."""
        self.submitted: list[list[GenerationRequest]] = []
        """Every `submit` call's requests."""
        self.stats = EngineStats()
        self.calls: list[list[GenerationRequest]] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Generation]]:
        assert not self.in_flight, "generate while submitted requests are unfinished"
        self.calls.append(list(requests))
        return self._answer(requests)

    def _answer(self, requests: Sequence[GenerationRequest]) -> list[list[Generation]]:
        self.stats.calls += 1
        self.stats.requests += len(requests)
        out = []
        for request in requests:
            samples = []
            for i in range(request.n):
                g = self.script(request, i)
                if isinstance(g, str):
                    g = _cut(g, request) if self.honor_stops else _whole(g)
                samples.append(g)
                # no prefix cache here: every sample computes its whole prompt, one token a word
                self.stats.charge(request.account, len(request.prompt.split()), 0, g.num_tokens)
            self.stats.sequences += len(samples)
            out.append(samples)
        return out

    def submit(self, requests: Sequence[GenerationRequest]) -> list[int]:
        """Streaming, deterministically: the script answers at once (`generate`'s counts), and
        `poll` hands the answers back `poll_size` requests at a time, oldest first, so that
        problems advance at different paces."""
        self.submitted.append(list(requests))
        tickets = []
        for generations in self._answer(requests):
            self.tickets += 1
            self.in_flight.append((self.tickets, generations))
            tickets.append(self.tickets)
        return tickets

    def poll(self) -> list[tuple[int, list[Generation]]]:
        done, self.in_flight = self.in_flight[: self.poll_size], self.in_flight[self.poll_size :]
        return done

    def abort(self) -> None:
        self.in_flight = []

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


def _whole(text: str) -> Generation:
    return Generation(text=text, num_tokens=len(text.split()), finish_reason="stop")


def _cut(text: str, request: GenerationRequest) -> Generation:
    found = [(text.find(s) + len(s), s) for s in request.stop if s in text]
    overrun = ""
    if found:  # a word is a token: the rest of the word the stop string ended in is overrun
        end, stop = min(found)
        rest = text[end:]
        if rest and not rest[0].isspace() and not text[end - 1].isspace():
            overrun = rest.split(maxsplit=1)[0]
        text = text[:end]
    words = text.split()
    if len(words) > request.max_tokens:  # the token limit, one token a word
        cut = text.index(words[request.max_tokens - 1]) + len(words[request.max_tokens - 1])
        return Generation(text=text[:cut], num_tokens=request.max_tokens, finish_reason="length")
    if found:
        return Generation(text, max(1, len(words)), "stop", stop_reason=stop, overrun=overrun)
    return Generation(text, max(1, len(words)), "stop")


def continuing(full_text: Callable[[str, GenerationRequest, int], str]) -> Script:
    """A script for `honor_stops`: each sample writes `full_text(written, request, i)` over as
    many requests as it takes, where `written` is the part already in the prompt (a continued
    sample, a search's next step), and gets the rest of it."""

    def script(request: GenerationRequest, i: int) -> str:
        written = request.prompt.split("<assistant>", 1)[1]
        full = full_text(written, request, i)
        assert full.startswith(written), (full, written)
        return full[len(written) :]

    return script


def one_of(texts: list[str]) -> Callable[[str, GenerationRequest, int], str]:
    """For `continuing`: sample i writes texts[i]; a continued one the text it began."""

    def full_text(written: str, request: GenerationRequest, i: int) -> str:
        if not written:
            return texts[i % len(texts)]
        return next(t for t in texts if t.startswith(written))

    return full_text


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
