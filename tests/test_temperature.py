from __future__ import annotations

import itertools

import pytest

from hotncold.config import TemperatureConfig
from hotncold.search.temperature import TemperaturePlan, allocate, interleave


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
    # the m expansions of a beam: candidate j gets values[j % k]
    values = [0.1 * (i + 1) for i in range(k)]
    plan = TemperaturePlan.from_config(TemperatureConfig(values=values))
    assert [plan.temperature(j, m) for j in range(m)] == [round(values[j % k], 6) for j in range(m)]


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
    assert [plan.temperature(j, 4, depth=0) for j in range(4)] == [0.5, 1.0, 0.5, 1.0]
    assert [plan.temperature(j, 4, depth=1) for j in range(4)] == [0.375, 0.75, 0.375, 0.75]
    assert [plan.temperature(j, 4, depth=5) for j in range(4)] == [0.25, 0.5, 0.25, 0.5]
    greedy = TemperaturePlan.from_config(
        TemperatureConfig(values=[0.0, 1.0], schedule="switch", start=2.0, end=0.5)
    )
    assert greedy.temperature(0, 2, depth=0) == 0.0  # greedy stays greedy


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
