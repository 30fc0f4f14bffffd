"""One progress bar per run, in generated tokens, that moves while the engine works.

A batch is one engine call (Best-of-N) or one call per search step, and its samples all run
at once: counting finished problems, or even finished samples, would leave the bar still until
the longest sample of the batch stops. So the bar counts the tokens the engine has generated,
read from it twice a second (`Engine.generated_so_far`: vLLM's own token counter, live during a
call), against a budget of `n x max_tokens` per problem left. Samples that stop early hand their
unused budget back when their batch ends, so the bar ends full, and until then the time left it
shows (tqdm's, from the token rate) is an upper bound. A step-level search can outgrow that
budget (pruned candidates, lookahead): the total then grows with the count.
"""

from __future__ import annotations

import threading
from types import TracebackType

from tqdm import tqdm

from hotncold.engine.requests import Engine

TICK_S = 0.5
"""How often the bar reads the engine's token count."""


class RunProgress:
    """The bar of one run: `with RunProgress(...) as p: ... p.batch_done(k)`."""

    def __init__(
        self, engine: Engine, label: str, problems: int, done: int, budget_per_problem: int
    ) -> None:
        self.engine = engine
        self.problems, self.done = problems, done
        self.budget = budget_per_problem
        self.start = engine.generated_so_far()
        self.bar = tqdm(
            total=max(1, (problems - done) * budget_per_problem),
            desc=label,
            unit="tok",
            unit_scale=True,
            dynamic_ncols=True,
            smoothing=0.1,
            postfix=self._postfix(),
        )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)

    def __enter__(self) -> RunProgress:
        self._ticker.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._ticker.join()
        self.bar.close()

    @property
    def tokens(self) -> int:
        """Tokens generated since the bar started (this session's share of the run)."""
        return self.engine.generated_so_far() - self.start

    def batch_done(self, problems: int) -> None:
        """A batch finished: count its problems and drop what its samples left of the budget."""
        with self._lock:
            self.done += problems
            count = max(self.bar.n, self.tokens)
            self.bar.total = max(1, count + (self.problems - self.done) * self.budget)
            self.bar.n = count
            self.bar.set_postfix_str(self._postfix(), refresh=False)
            self.bar.refresh()

    def _postfix(self) -> str:
        return f"{self.done}/{self.problems} problems"

    def _tick(self) -> None:
        while not self._stop.wait(TICK_S):
            with self._lock:
                count = self.tokens
                if count <= self.bar.n:
                    continue  # nothing new (or a count read between two engine calls)
                self.bar.total = max(self.bar.total, count)
                self.bar.update(count - self.bar.n)
