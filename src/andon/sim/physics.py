"""Physical signal models of the virtual factory, vectorised over a window of samples.

A signal's value at a sample time depends on the machine's state at that time, the
condition of its consumable (0 new … 1 worn out) and the signal type:

* *Levels* (spindle load, force, torque, vibration, RF power…): ``nominal`` while running,
  scaled up by wear (``power_gain`` for load-like signals, ``vibration_gain`` for vibration),
  a type-specific fraction of it while idle or stopped, plus Gaussian noise.
* *Temperatures* follow a first-order lag towards a state-dependent target (coolant is slow,
  a friction-stir tool is fast), so a stop shows as a cooling curve, not a step.
* *Per-part values* (wear %, roughness Ra, last cycle time, reject rate, part count,
  dressing count) are piecewise constant between part completions.
* *Health* (decision 0507): on a machine with degrading failure modes, with ``d = 1 - h``
  (``h`` the lowest health of its degrading modes) and ``ρ`` the regime factor of the
  product running (1 when no cycle runs), a level's noise-free value is multiplied by
  ``(1 + k·d^p)·ρ^γ`` (``HEALTH_EFFECTS``: vibration RMS ×3.5 at ``d = 1``, the high band
  rising first and most, load and current a little), and the bearing temperature's running
  target rises by ``25·d^1.5 + 5·(ρ - 1)`` °C. The noise stays what it is: a sick machine's
  signals stand out of it more and more.
* *Text values* (decision 0202) follow the state timeline and are emitted on change only,
  as events: ``execution`` ACTIVE while running, READY while idle (starved, blocked, a
  break), INTERRUPTED during a failure or a setup (changeover, tool or wheel change,
  dressing, maintenance), STOPPED while offline; ``availability`` AVAILABLE (UNAVAILABLE
  while offline); ``controller_mode`` AUTOMATIC (MANUAL during a setup or a repair);
  ``program`` the product being made, or the last one (``TEXT_TYPES``, ``text_value``).
* *Power* follows the state (the machine's ``power`` block) and rises with wear while running;
  *energy* is the exact integral of the noise-free power, so a meter reading always agrees
  with the state timeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from andon.model.calendar import MAINTENANCE
from andon.model.types import F64, MachineState

__all__ = [
    "AMBIENT_C",
    "HEALTH_EFFECTS",
    "LAG_TYPES",
    "LEVEL_TYPES",
    "SETUP_REASONS",
    "TEXT_TYPES",
    "Level",
    "lag_filter",
    "text_value",
]

AMBIENT_C = 22.0

_RUN = MachineState.RUNNING


@dataclass(frozen=True, slots=True)
class Level:
    nominal: float
    """Default running level when the signal gives none."""
    idle: float
    """Share of nominal while idle (starved, blocked, planned stop)."""
    stopped: float
    """Share of nominal while down or offline."""
    noise: float
    """Noise standard deviation as a share of nominal."""
    wear: str | None
    """Which wear gain scales it while running: 'power', 'vibration' or None."""
    cyclic: bool = False
    """Varies with the motion inside each cycle (robot joints)."""


LEVEL_TYPES: dict[str, Level] = {
    "spindle_load": Level(60.0, 0.05, 0.0, 0.04, "power"),
    "spindle_speed": Level(8000.0, 0.0, 0.0, 0.005, None),
    "spindle_power": Level(7.5, 0.08, 0.0, 0.04, "power"),
    "vibration": Level(1.5, 0.15, 0.03, 0.08, "vibration"),
    "tool_rotation": Level(1200.0, 0.0, 0.0, 0.005, None),
    "traverse_speed": Level(300.0, 0.0, 0.0, 0.01, None),
    "axial_force": Level(9.0, 0.0, 0.0, 0.03, "power"),
    "joint_torque": Level(200.0, 0.3, 0.0, 0.03, "power", cyclic=True),
    "joint_current": Level(8.0, 0.25, 0.0, 0.03, "power", cyclic=True),
    "rf_power": Level(1500.0, 0.0, 0.0, 0.01, None),
    "gas_flow": Level(50.0, 0.1, 0.0, 0.01, None),
    "pressure": Level(5.0, 0.05, 0.05, 0.02, None),
    "vibration_low": Level(1.0, 0.15, 0.03, 0.10, "vibration"),
    "vibration_mid": Level(0.5, 0.15, 0.03, 0.10, "vibration"),
    "vibration_high": Level(0.2, 0.15, 0.03, 0.10, None),
    "motor_current": Level(12.0, 0.2, 0.0, 0.03, "power"),
}

HEALTH_EFFECTS: dict[str, tuple[float, float, float]] = {
    # type: (k, p, γ) in (1 + k·d^p)·ρ^γ
    "vibration": (2.5, 1.5, 0.5),
    "vibration_low": (0.6, 2.0, 0.5),
    "vibration_mid": (2.5, 1.5, 0.5),
    "vibration_high": (10.0, 1.0, 0.5),
    "spindle_load": (0.25, 2.0, 1.0),
    "spindle_power": (0.25, 2.0, 1.0),
    "motor_current": (0.3, 2.0, 0.8),
}

LAG_TYPES: dict[str, tuple[float, float]] = {
    # type: (default nominal °C while running, time constant s)
    "coolant_temperature": (24.0, 900.0),
    "tool_temperature": (450.0, 40.0),
    "temperature": (180.0, 600.0),
    "bearing_temperature": (45.0, 600.0),
}


def lag_filter(target: F64, dt: float, tau: float, x0: float) -> F64:
    """First-order lag ``x[k] = a·x[k-1] + (1-a)·target[k]`` with ``a = exp(-dt/tau)``."""
    from scipy.signal import lfilter

    a = float(np.exp(-dt / tau))
    out, _ = lfilter([1.0 - a], [1.0, -a], target, zi=[a * x0])
    return np.asarray(out, dtype=np.float64)


def state_share(states: np.ndarray, level: Level) -> F64:
    """Share of nominal per sample from the machine state."""
    share = np.full(len(states), level.idle)
    share[states == _RUN] = 1.0
    stopped = (states == MachineState.DOWN) | (states == MachineState.OFFLINE)
    share[stopped] = level.stopped
    return share


TEXT_TYPES = frozenset({"execution", "availability", "controller_mode", "program", "text"})
"""Signal types of kind text the sim models from the machine's state."""

SETUP_REASONS = frozenset({"changeover", "tool_change", "wheel_change", "dressing", MAINTENANCE})
"""Planned-stop reasons during which someone works on the machine (a setup)."""


def text_value(typ: str, state: int, reason: str, product: str | None) -> str:
    """A text signal's value while the machine is in ``state`` for ``reason``, making (or
    last made) ``product``."""
    setup = state == MachineState.PLANNED_STOP and reason in SETUP_REASONS
    if typ == "execution":
        if state == _RUN:
            return "ACTIVE"
        if state == MachineState.OFFLINE:
            return "STOPPED"
        if state == MachineState.DOWN or setup:
            return "INTERRUPTED"
        return "READY"
    if typ == "availability":
        return "UNAVAILABLE" if state == MachineState.OFFLINE else "AVAILABLE"
    if typ == "controller_mode":
        return "MANUAL" if state == MachineState.DOWN or setup else "AUTOMATIC"
    if typ == "program":
        return product or ""
    if typ == "text":
        return MachineState(state).label.upper()
    raise ValueError(f"no physical model for text signal type {typ!r}")
