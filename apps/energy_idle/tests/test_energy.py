"""The arithmetic of energy_idle, without a platform: ``pytest apps/energy_idle/tests``."""

from __future__ import annotations

import pytest
from energy_idle.energy import (
    US_PER_H,
    analyse,
    cumulative_from_power,
    cumulative_from_register,
    energy_between,
    idle_stretches,
)

from andon.sdk import State

MIN = 60_000_000


def test_a_register_reset_counts_the_new_reading_and_nan_is_skipped() -> None:
    ts, cum = cumulative_from_register([0, 1, 2, 3, 4], [10.0, 12.0, float("nan"), 1.0, 3.0])
    assert ts == [0, 1, 3, 4]
    assert cum == [0.0, 2.0, 3.0, 5.0]


def test_power_is_held_until_the_next_sample() -> None:
    ts, cum = cumulative_from_power([0, US_PER_H // 2, US_PER_H], [4.0, 2.0, 9.0])
    assert cum == [0.0, 2.0, 3.0]
    assert energy_between(ts, cum, US_PER_H // 4, US_PER_H) == pytest.approx(2.0)
    assert energy_between([], [], 0, 10) == 0.0


def test_back_to_back_waits_are_one_stretch() -> None:
    states = [
        State("m", 0, 6 * MIN, "starved", ""),
        State("m", 6 * MIN, 11 * MIN, "blocked", ""),
        State("m", 11 * MIN, 20 * MIN, "planned_stop", "break"),
        State("m", 20 * MIN, 29 * MIN, "starved", ""),
    ]
    assert idle_stretches(states, 10 * MIN) == [(0, 11 * MIN)]


def test_saving_is_the_long_waits_above_measured_standby() -> None:
    """3 kW while waiting, 0.5 kW offline: a 1 h wait saves 2.5 kWh, a 5 min one nothing."""
    h = US_PER_H
    states = [
        State("m", 0, h, "offline", "not_scheduled"),
        State("m", h, 2 * h, "starved", ""),
        State("m", 2 * h, 3 * h, "running", ""),
        State("m", 3 * h, 3 * h + 5 * MIN, "blocked", ""),
    ]
    ts, cum = cumulative_from_power(
        [0, h, 2 * h, 3 * h, 3 * h + 5 * MIN], [0.5, 3.0, 10.0, 3.0, 3.0]
    )
    r = analyse(states, ts, cum, min_idle_us=10 * MIN, standby_share=0.1)
    assert r.idle_kwh == pytest.approx(3.0 + 0.25)
    assert r.standby_basis == "measured" and r.standby_kw == pytest.approx(0.5)
    assert r.saving_kwh == pytest.approx(2.5)
    assert [(a, b) for a, b, _ in r.stretches] == [(h, 2 * h)]
    assert (r.first_us, r.last_us) == (h, 3 * h + 5 * MIN)


def test_without_an_offline_period_standby_is_a_share_of_idle_power() -> None:
    h = US_PER_H
    states = [State("m", 0, h, "starved", "")]
    ts, cum = cumulative_from_power([0, h], [2.0, 2.0])
    r = analyse(states, ts, cum, min_idle_us=10 * MIN, standby_share=0.25)
    assert r.standby_basis == "assumed" and r.standby_kw == pytest.approx(0.5)
    assert r.saving_kwh == pytest.approx(1.5)
