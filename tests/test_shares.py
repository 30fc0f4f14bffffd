"""Realised temperature shares: what run.json records and when the analyzer calls a mix off."""

from __future__ import annotations

from hotncold.config import TemperatureConfig
from hotncold.experiment.shares import differs, pooled, realised_tag, temperature_shares
from hotncold.search.temperature import TemperaturePlan

MULTI = TemperatureConfig(values=[0.4, 0.8, 1.2])


def record(sampled: dict[str, int], allocations: int, steps=((0.4,),)) -> dict:
    extra = {"sampled_temperatures": sampled, "allocations": allocations}
    return {
        "completions": [{"extra": extra, "step_temperatures": list(s)} for s in steps],
    }


def test_shares_sum_the_records():
    shares = temperature_shares(
        [record({"0.4": 3, "0.8": 3, "1.2": 2}, 1, [(0.4, 0.8), (1.2,)]), record({"0.4": 2}, 1)],
        MULTI,
    )
    assert shares["sampled"]["counts"] == {"0.4": 5, "0.8": 3, "1.2": 2}
    assert shares["sampled"]["shares"] == {"0.4": 0.5, "0.8": 0.3, "1.2": 0.2}
    assert shares["completion_steps"]["counts"] == {"0.4": 2, "0.8": 1, "1.2": 1}
    assert shares["allocations"] == 2
    ratio = temperature_shares([], TemperatureConfig(values=[0.4, 1.2], ratios=[0.75, 0.25]))
    assert ratio["nominal"] == {"0.4": 0.75, "1.2": 0.25}


def best_of_n_like(problems: int, n: int, seed: int) -> list[dict]:
    """What hotncold's Best-of-N samples: one allocation of n per problem, rotated."""
    plan = TemperaturePlan.from_config(MULTI)
    out = []
    for p in range(problems):
        counts = plan.counts(n, plan.rotation(seed, f"u{p}"))
        out.append(record({f"{v:g}": c for v, c in zip(plan.values, counts)}, 1))
    return out


def test_exact_allocation_with_rotation_never_differs():
    for seed in range(20):
        for problems, n in ((10, 8), (10, 4), (3, 4), (500, 8)):
            assert not differs(temperature_shares(best_of_n_like(problems, n, seed), MULTI))


def test_the_old_per_beam_split_differs():
    # before results version 2: beam search n=8, m=4 over three values sampled every beam
    # 0.4, 0.8, 1.2, 0.4: half of every step after the first at 0.4
    iterations = [record({"0.4": 3, "0.8": 3, "1.2": 2}, 1)]  # depth 0: the prompt's 8
    iterations += [record({"0.4": 4, "0.8": 2, "1.2": 2}, 1)] * 5
    one_problem = temperature_shares(iterations, MULTI)
    assert not differs(one_problem)  # one problem of 6 iterations: too few to tell
    many = pooled([one_problem] * 10)  # 10 problems
    assert differs(many)
    assert realised_tag(many) == "_real0.479-0.271-0.25"


def test_nothing_recorded_never_differs():
    assert not differs(temperature_shares([{"completions": [{"step_temperatures": [0.4]}]}], MULTI))
