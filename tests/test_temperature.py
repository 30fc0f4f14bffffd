from __future__ import annotations

import itertools
import math

import pytest

from hotncold.config import TemperatureConfig
from hotncold.search.beam_search import expansion_counts
from hotncold.search.temperature import TemperaturePlan, allocate, deal, interleave


@pytest.mark.parametrize(
    ("total", "ratios", "expected"),
    [
        (12, [0.33, 0.34, 0.33], [4, 4, 4]),  # the multi-temperature fork gives 3/6/3 here
        (12, [1 / 3] * 3, [4, 4, 4]),
        (10, [1 / 3] * 3, [4, 3, 3]),  # remainder ties go to the earlier value
        (8, [0.5, 0.25, 0.25], [4, 2, 2]),
        (7, [0.5, 0.5], [4, 3]),
        (5, [0.1, 0.9], [1, 4]),  # 0.5 / 4.5: the tie in remainders goes to the first
        (4, [0.05, 0.95], [0, 4]),
        (1, [1.0], [1]),
        (3, [0.2, 0.3, 0.5], [1, 1, 1]),
    ],
)
def test_allocate_is_exact_largest_remainder(total, ratios, expected):
    assert allocate(total, ratios) == expected
    assert sum(allocate(total, ratios)) == total


def test_remainder_ties_go_around_from_first():
    assert [allocate(10, [1 / 3] * 3, first) for first in range(3)] == [
        [4, 3, 3],
        [3, 4, 3],
        [3, 3, 4],
    ]
    assert [allocate(8, [1 / 3] * 3, first) for first in range(3)] == [
        [3, 3, 2],
        [2, 3, 3],
        [3, 2, 3],
    ]
    # only ties rotate: a larger remainder still wins (0.5 / 4.5 / 0: the first entry)
    assert allocate(5, [0.1, 0.9], 1) == [0, 5] and allocate(4, [0.4, 0.6], 1) == [2, 2]


@pytest.mark.parametrize("total", range(1, 40))
@pytest.mark.parametrize(
    "ratios", [[1 / 3] * 3, [0.5, 0.25, 0.25], [0.7, 0.3], [0.1, 0.2, 0.3, 0.4]]
)
def test_every_prefix_is_within_one_of_its_share(total, ratios):
    counts = allocate(total, ratios)
    order = interleave(counts)
    assert sorted(order) == sorted(
        itertools.chain.from_iterable([i] * c for i, c in enumerate(counts))
    )
    for p in range(1, total + 1):
        prefix = order[:p]
        for i, c in enumerate(counts):
            assert abs(prefix.count(i) - p * c / total) < 1 + 1e-9


def test_power_of_two_prefixes_of_an_equal_mix_are_balanced():
    order = interleave(allocate(16, [0.25] * 4))
    for p in (4, 8, 16):
        assert [order[:p].count(i) for i in range(4)] == [p // 4] * 4
    # three temperatures: prefixes of 1, 2, 4, 8 never hold one value twice more than another
    order = interleave(allocate(12, [1 / 3] * 3))
    assert order[:3] == [0, 1, 2] and order[3:6] == [0, 1, 2]


def test_plan_slots_and_tag():
    plan = TemperaturePlan.from_config(TemperatureConfig(values=[0.4, 0.8, 1.2]))
    assert plan.for_slots(6) == [0.4, 0.8, 1.2, 0.4, 0.8, 1.2]
    assert plan.tag() == "T0.4-0.8-1.2"
    skewed = TemperaturePlan.from_config(TemperatureConfig(values=[0.4, 1.2], ratios=[0.75, 0.25]))
    # 3:1, interleaved so that every prefix holds each value in proportion (within one)
    assert skewed.for_slots(4) == [0.4, 0.4, 1.2, 0.4]
    assert skewed.for_slots(8) == [0.4, 0.4, 1.2, 0.4] * 2
    assert skewed.tag() == "T0.4-1.2_r0.75-0.25"


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("m", range(1, 13))
def test_equal_shares_cycle_through_the_values(k, m):
    # one parent's m expansions: candidate j gets values[(j + first) % k]
    values = [0.1 * (i + 1) for i in range(k)]
    plan = TemperaturePlan.from_config(TemperatureConfig(values=values))
    for first in range(k):
        assert plan.deal([m], first=first)[0] == [
            round(values[(j + first) % k], 6) for j in range(m)
        ]


def schedule(**kw) -> TemperaturePlan:
    return TemperaturePlan.from_config(TemperatureConfig(values=[1.0], **kw))


def test_schedules_move_the_factor_from_start_to_end():
    linear = schedule(schedule="linear", start=1.2, end=0.4, horizon=4)
    assert [linear.factor(d) for d in range(7)] == pytest.approx(
        [1.2, 1.0, 0.8, 0.6, 0.4, 0.4, 0.4]
    )
    cosine = schedule(schedule="cosine", start=1.2, end=0.4, horizon=4)
    assert cosine.factor(0) == pytest.approx(1.2) and cosine.factor(4) == pytest.approx(0.4)
    assert cosine.factor(2) == pytest.approx(0.8) and cosine.factor(9) == pytest.approx(0.4)
    # a half cosine stays near `start` longer than a line does, then drops faster
    assert cosine.factor(1) > linear.factor(1) and cosine.factor(3) < linear.factor(3)
    switch = schedule(schedule="switch", start=1.2, end=0.4, switch_at=2)
    assert [switch.factor(d) for d in range(4)] == [1.2, 1.2, 0.4, 0.4]
    assert schedule().factor(5) == 1.0 and schedule().constant and not linear.constant


def test_schedules_multiply_every_value_of_a_mix():
    plan = TemperaturePlan.from_config(
        TemperatureConfig(values=[0.5, 1.0], schedule="linear", start=1.0, end=0.5, horizon=2)
    )
    assert plan.deal([4], depth=0) == [[0.5, 1.0, 0.5, 1.0]]
    assert plan.deal([4], depth=1) == [[0.375, 0.75, 0.375, 0.75]]
    assert plan.deal([2, 2], depth=5) == [[0.25, 0.5], [0.25, 0.5]]
    greedy = TemperaturePlan.from_config(
        TemperatureConfig(values=[0.0, 1.0], schedule="switch", start=2.0, end=0.5)
    )
    assert greedy.deal([2], depth=0) == [[0.0, 2.0]]  # greedy stays greedy


def test_schedule_tags_name_the_schedule():
    assert schedule(schedule="linear", start=1.2, end=0.4, horizon=8).tag() == "T1_lin1.2-0.4h8"
    assert schedule(schedule="cosine", start=1.2, end=0.4).tag() == "T1_cos1.2-0.4h8"
    assert schedule(schedule="switch", start=0.4, end=1.2, switch_at=3).tag() == "T1_sw0.4-1.2at3"
    assert schedule().tag() == "T1"
    mixed = TemperaturePlan.from_config(
        TemperatureConfig(values=[0.4, 1.2], ratios=[0.75, 0.25], schedule="linear", end=0.5)
    )
    assert mixed.tag() == "T0.4-1.2_r0.75-0.25_lin1-0.5h8"


def test_an_empty_value_list_leaves_the_refusal_to_validate():
    # run names are resolved before validate(); they must not crash on what validate refuses
    plan = TemperaturePlan.from_config(TemperatureConfig(values=[]))
    assert plan.ratios == () and plan.tag() == "T"


# --------------------------------------------------------------- dealing one iteration's samples

RATIOS = [
    [1 / 3] * 3,
    [0.5, 0.25, 0.25],
    [0.7, 0.3],
    [0.1, 0.2, 0.3, 0.4],
    [0.5, 0.3, 0.2],
    [0.33, 0.34, 0.33],
    [0.2] * 5,
    [0.45, 0.45, 0.1],
    [1.0],
]


def shapes():
    """Every shape the searches deal: DVTS's and full beam search's equal parents, the
    prompt's n, and beam search's survivors sharing n (sizes q and q + 1)."""
    for parents in range(1, 9):
        for size in range(1, 13):
            yield [size] * parents
    for n in range(1, 25):
        for beams in range(1, n + 1):
            yield expansion_counts(n, beams)
    for n in (32, 64):
        for beams in range(1, 17):
            yield expansion_counts(n, beams)


@pytest.mark.parametrize("ratios", RATIOS, ids=lambda r: "-".join(f"{x:g}" for x in r))
def test_deal_is_exact_overall_and_within_one_per_parent(ratios):
    k, w = len(ratios), sum(ratios)
    for sizes in shapes():
        total = sum(sizes)
        for first in range(k):
            rows = deal(sizes, ratios, first)
            assert [len(r) for r in rows] == sizes
            counts = [[r.count(v) for v in range(k)] for r in rows]
            overall = [sum(c[v] for c in counts) for v in range(k)]
            # the iteration: within one of every exact share, summing to the total
            assert sum(overall) == total
            for v in range(k):
                assert abs(overall[v] - total * ratios[v] / w) < 1, (sizes, first)
            assert overall == allocate(total, ratios, first)
            # every parent: floor or ceiling of its own share
            for size, c in zip(sizes, counts):
                for v in range(k):
                    share = size * ratios[v] / w
                    assert math.floor(share + 1e-9) <= c[v] <= math.ceil(share - 1e-9)


@pytest.mark.parametrize(
    ("parents", "m", "k"), [(2, 4, 3), (4, 4, 3), (3, 5, 3), (2, 5, 4), (8, 2, 3)]
)
def test_extra_samples_rotate_across_parents_and_depths(parents, m, k):
    """Equal shares, m not a multiple of k: over k consecutive depths (first = r + depth) the
    totals are exactly equal, and every parent (the best-ranked beam too) gets the same
    number of each value: no value, depth or beam is systematically favoured."""
    ratios = [1 / k] * k
    for r in range(k):
        totals = [0] * k
        per_parent = [[0] * k for _ in range(parents)]
        for depth in range(k):
            for b, row in enumerate(deal([m] * parents, ratios, (r + depth) % k)):
                for v in row:
                    totals[v] += 1
                    per_parent[b][v] += 1
        assert totals == [parents * m] * k
        for counts in per_parent:
            assert counts == [m] * k


def test_deal_with_one_parent_is_one_allocation():
    for first in range(3):
        assert deal([8], [1 / 3] * 3, first) == [interleave(allocate(8, [1 / 3] * 3, first), first)]
