from __future__ import annotations

import itertools

import pytest

from hotncold.config import TemperatureConfig
from hotncold.temperature import TemperaturePlan, allocate, interleave


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
    assert skewed.for_slots(4) == [0.4, 0.4, 1.2, 0.4] or skewed.for_slots(4).count(1.2) == 1
    assert skewed.tag() == "T0.4-1.2_r0.75-0.25"
