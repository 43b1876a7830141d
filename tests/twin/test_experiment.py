"""Experiments: paired comparison with common random numbers and a priced difference,
MSER-5 warm-up, buffer allocation, scenario files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from andon.twin.experiment import (
    Change,
    apply_scenario,
    compare,
    load_scenario,
    mser5,
    optimise_buffers,
    per_part_value,
    scheduled_hours_per_month,
    warmup_hours,
)
from andon.twin.reference import reference_plant, serial_plant


def test_bigger_buffer_is_compared_with_common_random_numbers_and_priced() -> None:
    base = reference_plant()
    bigger = apply_scenario(base, "L", [Change(buffer="B3", capacity=10)])
    value = per_part_value(per_hour=3600.0, cycle_s=72.0)  # 72 money units a part
    c = compare(base, bigger, "L", 500.0, 10, seed=41, value_per_part=value)
    assert c.difference.low > 0  # a bigger buffer never hurts this line
    # pairing pays: the paired interval is far narrower than two independent ones
    assert c.difference.half_width < 0.5 * math.hypot(c.base.half_width, c.scenario.half_width)
    assert c.relative.mean == pytest.approx(c.difference.mean / c.base.mean * 100)
    assert scheduled_hours_per_month(base) == pytest.approx(24 * 30.44)
    assert c.value_per_month is not None
    assert c.value_per_month.mean == pytest.approx(c.difference.mean * 24 * 30.44 * 72.0)
    assert set(c.as_dict()) >= {"difference_per_h", "difference_pct", "value_per_month"}


def test_mser5_finds_an_initial_transient() -> None:
    rng = np.random.default_rng(42)
    t = np.arange(2000)
    series = 10.0 - 8.0 * np.exp(-t / 60.0) + rng.normal(0, 1.0, len(t))
    d = mser5(series)
    assert 100 <= d <= 500
    assert mser5(rng.normal(0, 1, 2000)) < 200  # a stationary series keeps (almost) all


def test_warmup_of_a_line_starting_empty_is_short_but_positive() -> None:
    plant = serial_plant([60.0, 60.0, 60.0], [50, 50], cycle_dist="exponential")
    w = warmup_hours(plant, "L", 400.0, reps=10, seed=43)
    assert 0.0 <= w < 100.0


def test_buffer_allocation_puts_places_around_the_unreliable_machine() -> None:
    # reliable machines with constant cycle times need no buffer between them; the places
    # belong around the unreliable M2
    plant = serial_plant(
        [60.0, 40.0, 60.0, 60.0],
        [2, 2, 2],
        cycle_dist="deterministic",
        mtbf_h=[None, 0.25, None, None],
        mttr_min=[None, 15.0, None, None],
    )
    alloc, est = optimise_buffers(plant, "L", 12, 300.0, 6, seed=44)
    assert sum(alloc.values()) == 12 and min(alloc.values()) >= 1
    assert alloc["B3"] == 1
    even = apply_scenario(plant, "L", [Change(buffer=b, capacity=4) for b in alloc])
    c = compare(
        even,
        apply_scenario(plant, "L", [Change(buffer=b, capacity=n) for b, n in alloc.items()]),
        "L",
        300.0,
        6,
        seed=44,
    )
    assert c.difference.low > 0
    assert est.mean == pytest.approx(c.scenario.mean)


def test_scenario_files_load_and_apply(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(
        "name: faster M2\nline: L\nchanges:\n"
        "  - {machine: M2, speed: 1.1}\n  - {machine: M1, mtbf_factor: 2, mttr_factor: 0.5}\n",
        encoding="utf-8",
    )
    s = load_scenario(f)
    p = apply_scenario(reference_plant(), "L", s)
    m1, m2 = p.site.areas[0].lines[0].machines[:2]
    assert m2.ideal_cycle_s["p"] == pytest.approx(66.0 / 1.1)
    assert m1.sim.failure_modes[0].mtbf_h == pytest.approx(200 / 60)
    assert m1.sim.failure_modes[0].mttr_min == pytest.approx(2.5)
    with pytest.raises(KeyError, match="no buffer"):
        apply_scenario(p, "L", [Change(buffer="nope", capacity=3)])
