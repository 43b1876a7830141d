"""The arithmetic of pdm_anomaly, without a platform: ``pytest apps/pdm_anomaly/tests``."""

from __future__ import annotations

import numpy as np
from pdm_anomaly.detect import episodes, grid_mean, product_at, running_mask

from andon.sdk import Part, State

S = 1_000_000


def test_grid_mean_averages_each_step_skips_nan_and_leaves_empty_steps_missing() -> None:
    ts = [0, 5 * S, 10 * S, 12 * S, 35 * S, 40 * S]
    vs = [1.0, 3.0, 10.0, float("nan"), 7.0, 99.0]
    got = grid_mean(ts, vs, 0, 10 * S, 4)  # steps [0,10) [10,20) [20,30) [30,40)
    assert got[0] == 2.0 and got[1] == 10.0 and np.isnan(got[2]) and got[3] == 7.0


def test_running_mask_and_product_are_what_was_known_at_each_step() -> None:
    states = [State("m", 0, 25 * S, "running", ""), State("m", 25 * S, 60 * S, "down", "X")]
    assert running_mask(states, 0, 10 * S, 4).tolist() == [True, True, False, False]
    parts = [Part("m", 15 * S, "B", 1, 0), Part("m", 5 * S, "A", 1, 0)]
    # step 0 ends at 10 s: A is the last part; step 1 (to 20 s) has seen B
    assert product_at(parts, 0, 10 * S, 3) == ["A", "B", "B"]
    assert product_at([], 0, 10 * S, 2) == ["", ""]


def test_episodes_join_close_flags_and_drop_short_ones() -> None:
    flag = np.array([1, 0, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 0, 1], dtype=bool)
    assert episodes(flag, max_gap=1, min_steps=2) == [(4, 8)]
    assert episodes(flag, max_gap=0, min_steps=1) == [(0, 0), (4, 5), (7, 8), (13, 13)]
    assert episodes(np.zeros(5, dtype=bool), max_gap=3, min_steps=1) == []
