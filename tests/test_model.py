"""The plant model and its loader: the demo plant is valid, and every kind of bad file gets
one message naming file, line and field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from andon.model.loader import ModelError, load_plant, parse_plant
from andon.model.plant import MachineType

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "plants" / "demo.yaml"

GOOD = """\
site:
  id: s
  calendar:
    shifts:
      - {name: day, start: "06:00", end: "14:00"}
  areas:
    - id: a
      lines:
        - id: l
          products: [{id: p}]
          machines:
            - id: m
              type: generic
              ideal_cycle_s: {p: 30}
              signals:
                - {id: power, type: power}
"""


def test_demo_plant_has_the_machines_the_issue_asks_for() -> None:
    plant = load_plant(DEMO)
    types = {m.type for _, _, m in plant.machines()}
    assert types >= {
        MachineType.MACHINING_CENTRE,
        MachineType.SURFACE_GRINDER,
        MachineType.FSW_CELL,
        MachineType.ROBOT_CELL,
        MachineType.INSPECTION_PACKING,
        MachineType.PROCESS_CHAMBER,
    }
    signal_types = {s.type for _, _, m in plant.machines() for s in m.signals}
    assert signal_types >= {
        "spindle_load",
        "vibration",
        "coolant_temperature",
        "tool_wear",
        "spindle_power",
        "wheel_wear",
        "dressing_count",
        "surface_roughness",
        "tool_rotation",
        "traverse_speed",
        "axial_force",
        "tool_temperature",
        "joint_torque",
        "joint_current",
        "power",
        "energy",
    }
    env = {s.type for a in plant.site.areas for s in a.sensors}
    assert env >= {"temperature", "humidity", "particle_count"}
    assert [mt.id for mt in plant.site.meters] == ["main"]
    # every machine has its own power meter
    assert all(any(s.type == "power" for s in m.signals) for _, _, m in plant.machines())
    # the YAML merge key '<<' works: MC-02 inherits MC-01's modes; its signals are MC-01's
    # and its controller's execution and program (text, issue 12: the MTConnect machine)
    mc1 = next(m for _, _, m in plant.machines() if m.id == "MC-01")
    mc2 = next(m for _, _, m in plant.machines() if m.id == "MC-02")
    assert mc2.name == "Machining centre 2" and mc2.sim == mc1.sim
    assert mc2.signals[: len(mc1.signals)] == mc1.signals
    assert [(s.id, s.kind) for s in mc2.signals[len(mc1.signals) :]] == [
        ("execution", "text"),
        ("program", "text"),
    ]
    # both kinds of failure (decision 0507): degrading modes on two machine types, and
    # memoryless ones
    kinds = {(m.type, fm.kind) for _, _, m in plant.machines() for fm in m.sim.failure_modes}
    assert len({t for t, k in kinds if k == "degrading"}) >= 2
    assert any(k == "memoryless" for _, k in kinds)
    paths = plant.signal_paths()
    assert "tc1/machining/L1/MC-01/spindle_load" in paths
    assert "tc1/cleanroom/particles" in paths and "tc1/main/energy" in paths
    assert len(paths) == len(set(paths))


def test_a_good_file_parses() -> None:
    plant = parse_plant(GOOD, "good.yaml")
    assert plant.tenant == "demo"
    assert plant.machines()[0][2].signals[0].unit == "kW"


def _error(text: str) -> ModelError:
    with pytest.raises(ModelError) as info:
        parse_plant(text, "plant.yaml")
    return info.value


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "words"),
    [
        (
            "type: power}",
            "type: powerr}",
            16,
            "site.areas[0].lines[0].machines[0].signals[0].type",
            "unknown signal type 'powerr'",
        ),
        (
            "type: power}",
            "type: power, unit: bar}",
            16,
            "site.areas[0].lines[0].machines[0].signals[0]",
            "does not fit signal type",
        ),
        (
            "ideal_cycle_s: {p: 30}",
            "ideal_cycle_s: {p: -3}",
            14,
            "site.areas[0].lines[0].machines[0].ideal_cycle_s.p",
            "greater than 0",
        ),
        (
            "ideal_cycle_s: {p: 30}",
            "ideal_cycle_s: {q: 30}",
            14,
            "site.areas[0].lines[0].machines[0].ideal_cycle_s",
            "no ideal cycle time for product 'p'",
        ),
        ("type: generic", "type: lathe", 13, "site.areas[0].lines[0].machines[0].type", "generic"),
        (
            "    - id: a\n",
            "    - id: a\n      colour: red\n",
            8,
            "site.areas[0].colour",
            "unknown field",
        ),
        ('start: "06:00"', 'start: "25:00"', 5, "site.calendar.shifts[0].start", "time"),
        (
            "  id: s\n",
            "  id: s\n  timezone: Mars/Olympus\n",
            3,
            "site.timezone",
            "unknown time zone",
        ),
        (
            "          products: [{id: p}]\n",
            "          products: [{id: p}]\n          buffers: [{id: b, capacity: 2, from: [m], "
            "to: [x]}]\n",
            11,
            "site.areas[0].lines[0].buffers[0].to[0]",
            "no machine 'x'",
        ),
    ],
)
def test_errors_name_file_line_and_field(
    old: str, new: str, line: int, field: str, words: str
) -> None:
    assert old in GOOD
    e = _error(GOOD.replace(old, new, 1))
    assert e.file == "plant.yaml"
    assert e.field == field
    assert e.line == line, str(e)
    assert words in e.message, str(e)
    assert str(e).startswith(f"plant.yaml:{line}:")
    assert "\n" not in str(e)


def test_yaml_syntax_error_has_a_line() -> None:
    e = _error(GOOD.replace("id: p}]", "id: p]"))
    assert e.line == 10 and "invalid YAML" in e.message


def test_duplicate_key_is_an_error_not_a_silent_override() -> None:
    e = _error(GOOD.replace("  id: s\n", "  id: s\n  id: t\n"))
    assert e.line == 3 and e.field == "site.id" and e.message == "duplicate key"


def test_missing_required_field() -> None:
    e = _error(GOOD.replace("              type: generic\n", ""))
    assert e.field == "site.areas[0].lines[0].machines[0].type"
    assert "required" in e.message and e.line == 12  # the mapping that lacks it


def test_empty_and_non_mapping_files() -> None:
    assert "empty" in _error("").message
    assert "mapping" in _error("- a\n- b\n").message


def test_missing_file() -> None:
    with pytest.raises(ModelError, match="no such file"):
        load_plant("/nonexistent/plant.yaml")


def test_duplicate_machine_ids_across_lines() -> None:
    doc = yaml.safe_load(GOOD)
    line2 = dict(doc["site"]["areas"][0]["lines"][0], id="l2")
    doc["site"]["areas"][0]["lines"].append(line2)
    e = _error(yaml.safe_dump(doc))
    assert "used on another line" in e.message
    assert e.field == "site.areas[0].lines[1].machines"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "andon.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_model_check_ok_and_bad(tmp_path: Path) -> None:
    ok = _cli("model", "check", str(DEMO))
    assert ok.returncode == 0, ok.stderr
    assert "7 machines" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("type: power}", "type: flux}"))
    r = _cli("model", "check", str(bad))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert f"{bad}:16:" in lines[0] and "signals[0].type" in lines[0] and "flux" in lines[0]
    missing = _cli("model", "check", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_cli_demo_with_a_bad_plant_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: [unclosed\n")
    r = _cli("demo", "--headless", "--hours", "1", "--plant", str(bad))
    assert r.returncode == 2
    assert "invalid YAML" in r.stderr and f"{bad}:" in r.stderr
    assert "Traceback" not in r.stderr


def test_control_characters_are_a_model_error_on_one_line() -> None:
    e = _error("site: \x07x\n")
    assert "invalid YAML" in e.message and "\n" not in str(e)
