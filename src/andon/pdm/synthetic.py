"""A small degradation simulator that writes C-MAPSS-shaped fleets (for tests and examples).

Each unit has a life L (cycles to failure) and a hidden damage that grows from 0 at its
onset (110 to 180 cycles before failure) to 1 at failure as a power 1 to 2 of the time since
(a degradation path with varying onset and rate per unit, as in the C-MAPSS simulation).
Every cycle runs in one of ``regimes`` operating points (the three settings, with a little
noise), each shifting every sensor by its own large offset and scaling its
noise and its response to damage by its own factor (0.3 to 3), as in FD002/FD004.
Sensors 1-14 respond to damage (each with its own sign and gain), sensors 15-18 are
noise only and sensors 19-21 are constant. Each unit starts with its own small wear offset.

>>> fleet = simulate_fleet(units=2, regimes=6, seed=3)
>>> fleet.sensors.shape[1], sorted(set(fleet.unit.tolist()))
(21, [1, 2])
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from andon.pdm.cmapss import N_SENSORS, Fleet

__all__ = ["REGIME_SETTINGS", "simulate_fleet", "truncated_fleet"]

REGIME_SETTINGS = np.asarray(
    [
        [0.0, 0.0, 100.0],
        [10.0, 0.25, 100.0],
        [20.0, 0.7, 100.0],
        [25.0, 0.62, 60.0],
        [35.0, 0.84, 100.0],
        [42.0, 0.84, 100.0],
    ]
)
"""The six operating points of FD002/FD004 (altitude kft, Mach, throttle resolver angle)."""

_RESPONDING = 14
_NOISE_ONLY = 4


def _unit_rows(
    rng: np.random.Generator,
    life: int,
    cycles: int,
    regimes: int,
    gains: npt.NDArray[np.float64],
    offsets: npt.NDArray[np.float64],
    scales: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    t = np.arange(1, cycles + 1, dtype=np.float64)
    onset = life - rng.uniform(110.0, 180.0)  # damage grows from its onset to 1 at failure
    damage = np.clip((t - onset) / (life - onset), 0.0, None) ** rng.uniform(1.0, 2.0)
    regime = rng.integers(regimes, size=cycles) if regimes > 1 else np.zeros(cycles, dtype=int)
    settings = REGIME_SETTINGS[regime] + rng.normal(0, [0.002, 0.0003, 0.0], size=(cycles, 3))
    wear = rng.normal(0, 0.3, size=N_SENSORS)
    spread = scales[regime]  # each operating point has its own sensitivity and noise
    sensors = offsets[regime] + rng.normal(0, 1.0, size=(cycles, N_SENSORS)) * spread
    effect = (damage[:, None] * 3.0 + wear[None, :_RESPONDING]) * gains
    sensors[:, :_RESPONDING] += effect * spread[:, :_RESPONDING]
    sensors[:, _RESPONDING + _NOISE_ONLY :] = 100.0
    return settings, sensors


def simulate_fleet(
    units: int, regimes: int = 1, seed: int = 0, *, cycles: tuple[int, int] = (130, 260)
) -> Fleet:
    """A run-to-failure fleet: every unit runs until its failure (its last cycle)."""
    return _simulate(units, regimes, seed, cycles, truncate=False)[0]


def truncated_fleet(
    units: int, regimes: int = 1, seed: int = 0, *, cycles: tuple[int, int] = (130, 260)
) -> tuple[Fleet, npt.NDArray[np.float64]]:
    """A test fleet: every unit is cut before its failure; returns it and each unit's true
    remaining cycles after its last row."""
    return _simulate(units, regimes, seed, cycles, truncate=True)


def _simulate(
    units: int, regimes: int, seed: int, cycles: tuple[int, int], truncate: bool
) -> tuple[Fleet, npt.NDArray[np.float64]]:
    if not 1 <= regimes <= len(REGIME_SETTINGS):
        raise ValueError(f"regimes: 1 to {len(REGIME_SETTINGS)}")
    fixed = np.random.default_rng(12345)  # the engine type: the same for every fleet
    gains = fixed.choice([-1.0, 1.0], size=_RESPONDING) * fixed.uniform(0.5, 2.0, _RESPONDING)
    offsets = fixed.normal(0, 20.0, size=(len(REGIME_SETTINGS), N_SENSORS))
    scales = fixed.uniform(0.3, 3.0, size=(len(REGIME_SETTINGS), N_SENSORS))
    rng = np.random.default_rng(seed)
    unit_ids: list[npt.NDArray[np.int64]] = []
    cycle_ids: list[npt.NDArray[np.int64]] = []
    settings: list[npt.NDArray[np.float64]] = []
    sensors: list[npt.NDArray[np.float64]] = []
    remaining: list[float] = []
    for u in range(1, units + 1):
        life = int(rng.integers(cycles[0], cycles[1] + 1))
        n = int(rng.integers(30, life - 5)) if truncate else life
        s, x = _unit_rows(rng, life, n, regimes, gains, offsets, scales)
        unit_ids.append(np.full(n, u, dtype=np.int64))
        cycle_ids.append(np.arange(1, n + 1, dtype=np.int64))
        settings.append(s)
        sensors.append(x)
        remaining.append(float(life - n))
    fleet = Fleet(
        unit=np.concatenate(unit_ids),
        cycle=np.concatenate(cycle_ids),
        settings=np.vstack(settings),
        sensors=np.vstack(sensors),
        source=f"<synthetic units={units} regimes={regimes} seed={seed}>",
    )
    return fleet, np.asarray(remaining)
