"""The catalogue of signal types: what each measures and the units it may be given in.

A plant file names one of these types for every signal; an unknown type or a unit the type
does not accept is a model error. The virtual factory has a physical model for each type.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SIGNAL_TYPES", "SignalType"]


@dataclass(frozen=True, slots=True)
class SignalType:
    name: str
    units: tuple[str, ...]
    """Accepted units; the first is the default."""
    description: str
    counter: bool = False
    """A monotonically increasing total (energy, part count), not a level."""
    kind: str = "numeric"
    """``numeric``: samples; ``text``: strings, enumeration labels and events, stored and
    served as text values (decision 0202; booleans stay numeric 0/1)."""


_TYPES = [
    SignalType("spindle_load", ("%",), "spindle load relative to rated torque"),
    SignalType("spindle_speed", ("rpm",), "spindle rotational speed"),
    SignalType("spindle_power", ("kW",), "spindle motor power"),
    SignalType("vibration", ("mm/s", "g"), "vibration velocity RMS"),
    SignalType("coolant_temperature", ("°C", "degC"), "coolant temperature"),
    SignalType("tool_wear", ("%",), "tool wear as share of tool life"),
    SignalType("wheel_wear", ("%", "µm", "um"), "grinding-wheel wear"),
    SignalType(
        "dressing_count", ("count",), "wheel dressing cycles since wheel change", counter=True
    ),
    SignalType("surface_roughness", ("µm", "um"), "surface roughness Ra of the last part"),
    SignalType("vibration_low", ("(mm/s)²", "g²"), "vibration energy, low band (10 Hz–1 kHz)"),
    SignalType("vibration_mid", ("(mm/s)²", "g²"), "vibration energy, mid band (1–5 kHz)"),
    SignalType("vibration_high", ("(mm/s)²", "g²"), "vibration energy, high band (5–20 kHz)"),
    SignalType("bearing_temperature", ("°C", "degC"), "bearing or motor winding temperature"),
    SignalType("motor_current", ("A",), "drive motor current (RMS)"),
    SignalType("tool_rotation", ("rpm",), "friction-stir tool rotation speed"),
    SignalType("traverse_speed", ("mm/min",), "welding traverse speed"),
    SignalType("axial_force", ("kN",), "axial (plunge) force"),
    SignalType("tool_temperature", ("°C", "degC"), "tool/shoulder temperature"),
    SignalType("joint_torque", ("N·m", "Nm"), "robot joint torque"),
    SignalType("joint_current", ("A",), "robot joint motor current"),
    SignalType("power", ("kW",), "active electrical power"),
    SignalType("energy", ("kWh",), "active energy meter reading", counter=True),
    SignalType("part_count", ("count",), "parts finished", counter=True),
    SignalType("cycle_time", ("s",), "duration of the last cycle"),
    SignalType("temperature", ("°C", "degC"), "air or process temperature"),
    SignalType("humidity", ("%RH",), "relative humidity"),
    SignalType("particle_count", ("particles/m³", "particles/ft³"), "airborne particles ≥0.5 µm"),
    SignalType("pressure", ("Pa", "kPa", "mbar", "mTorr"), "pressure"),
    SignalType("gas_flow", ("sccm", "slm"), "process gas mass flow"),
    SignalType("rf_power", ("W",), "RF generator forward power"),
    SignalType("reject_rate", ("%",), "share of inspected parts rejected (rolling)"),
    SignalType(
        "execution", ("",), "what the controller does (ACTIVE, READY, STOPPED...)", kind="text"
    ),
    SignalType("availability", ("",), "whether the device reports data", kind="text"),
    SignalType("controller_mode", ("",), "AUTOMATIC, MANUAL, MDI, EDIT...", kind="text"),
    SignalType("program", ("",), "the running program's name", kind="text"),
    SignalType("text", ("",), "any other text value: a state, a message", kind="text"),
]

SIGNAL_TYPES: dict[str, SignalType] = {t.name: t for t in _TYPES}
