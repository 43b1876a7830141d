"""Text signals of the virtual factory (issue 12, decision 0202): execution, availability,
controller mode and program follow the machine's state timeline, change only when it
changes, are the same for the same seed, reach the store in a headless demo run and are
served by the MTConnect machine tool as events."""

from __future__ import annotations

import asyncio
from datetime import datetime
from importlib.resources import files
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from lxml import etree

from andon.connect.mtconnect import parse_streams
from andon.demo.run import default_start, run_headless
from andon.model.loader import parse_plant
from andon.model.plant import Plant
from andon.model.types import MachineState, SampleBatch, TextBatch, to_micros
from andon.sim.factory import VirtualFactory
from andon.sim.physics import text_value
from andon.sim.servers.bridge import FactoryServers
from andon.store.duckdb_store import DuckDBStore

DEMO_TEXT = (files("andon.sim") / "plants" / "demo.yaml").read_text(encoding="utf-8")
MC2 = "tc1/machining/L1/MC-02"
TEXT_TYPES = ("execution", "availability", "controller_mode", "program")
XSD = Path(__file__).parent.parent / "data" / "mtconnect"


def _plant_with_every_text_type() -> Plant:
    """The demo plant with all four text types on MC-02 (the demo declares two)."""
    doc = yaml.safe_load(DEMO_TEXT)
    mc2 = doc["site"]["areas"][0]["lines"][0]["machines"][1]
    assert mc2["id"] == "MC-02"
    have = {s["type"] for s in mc2["signals"]}
    mc2["signals"] += [{"id": t, "type": t} for t in TEXT_TYPES if t not in have]
    return parse_plant(yaml.safe_dump(doc, allow_unicode=True))


def _run(
    plant: Plant, seed: int, hours: float, window_s: float = 600.0
) -> tuple[VirtualFactory, TextBatch, list[Any]]:
    f = VirtualFactory(plant, seed, default_start(plant), window_s=window_s)
    flushes = [*f.advance(hours * 3600.0), f.finish()]
    texts = [x.samples.text for x in flushes if x.samples.text is not None]
    return f, TextBatch.concat(texts), flushes


def _series(t: TextBatch, path: str) -> list[tuple[int, str]]:
    return [(int(t.ts[i]), t.value[i]) for i in range(len(t)) if t.signal_at(i) == path]


def test_same_seed_same_text_values_whatever_the_window() -> None:
    plant = _plant_with_every_text_type()
    _, a, _ = _run(plant, 3, 12)
    _, b, _ = _run(plant, 3, 12)
    _, c, _ = _run(plant, 3, 12, window_s=60.0)
    _, d, _ = _run(plant, 4, 12)
    for t in TEXT_TYPES:
        path = f"{MC2}/{t}"
        assert _series(a, path) == _series(b, path) == _series(c, path)
        assert _series(a, path), path
    assert _series(a, f"{MC2}/execution") != _series(d, f"{MC2}/execution")


def test_execution_follows_the_ground_truth_state_timeline_exactly() -> None:
    plant = _plant_with_every_text_type()
    f, text, flushes = _run(plant, 11, 30)
    # the ground truth's state changes of MC-02; several at one instant count as the last
    at: dict[int, tuple[str, str]] = {}
    for g in f.ground_truth:
        if g["kind"] == "state" and g["machine"] == MC2:
            at[to_micros(datetime.fromisoformat(g["t"]))] = (g["state"], g["reason"])
    states = {s.label: s for s in MachineState}
    for typ in TEXT_TYPES[:3]:
        expected: list[tuple[int, str]] = []
        for ts, (label, reason) in sorted(at.items()):
            v = text_value(typ, states[label], reason, None)
            if not expected or expected[-1][1] != v:
                expected.append((ts, v))
        got = _series(text, f"{MC2}/{typ}")
        assert got == expected, typ
        # on change only: no value repeats its predecessor
        assert all(x[1] != y[1] for x, y in pairwise(got))
    execution = {v for _, v in _series(text, f"{MC2}/execution")}
    assert {"ACTIVE", "READY", "INTERRUPTED", "STOPPED"} <= execution  # 30 h span nights
    assert {v for _, v in _series(text, f"{MC2}/availability")} == {"AVAILABLE", "UNAVAILABLE"}
    assert {v for _, v in _series(text, f"{MC2}/controller_mode")} == {"AUTOMATIC", "MANUAL"}
    # program: each part MC-02 made was made under its product's program
    prog = _series(text, f"{MC2}/program")
    p_ts = np.array([ts for ts, _ in prog])
    made = 0
    for x in flushes:
        parts = x.parts
        for i in range(len(parts)):
            if parts.names[int(parts.index[i])] != MC2:
                continue
            k = int(np.searchsorted(p_ts, parts.ts[i], side="left")) - 1
            assert prog[k][1] == parts.product[i]
            made += 1
    assert made > 100 and {v for _, v in prog} == {"A-100", "B-200"}


def test_text_values_map_the_state_as_the_brief_says() -> None:
    run, idle, down = MachineState.RUNNING, MachineState.STARVED, MachineState.DOWN
    assert text_value("execution", run, "", "A") == "ACTIVE"
    assert text_value("execution", MachineState.BLOCKED, "", "A") == "READY"
    assert text_value("execution", MachineState.PLANNED_STOP, "break", "A") == "READY"
    assert text_value("execution", MachineState.PLANNED_STOP, "changeover", "A") == "INTERRUPTED"
    assert text_value("execution", down, "TOOL_BREAK", "A") == "INTERRUPTED"
    assert text_value("execution", MachineState.OFFLINE, "not_scheduled", "A") == "STOPPED"
    assert text_value("controller_mode", down, "X", None) == "MANUAL"
    assert text_value("controller_mode", idle, "", None) == "AUTOMATIC"
    assert text_value("availability", MachineState.OFFLINE, "", None) == "UNAVAILABLE"
    assert text_value("program", idle, "", "B-200") == "B-200"


def test_a_headless_demo_run_stores_the_text_values(tmp_path: Path) -> None:
    plant = parse_plant(DEMO_TEXT)
    names = [f"{MC2}/execution", f"{MC2}/program"]

    async def go() -> TextBatch:
        store = DuckDBStore.open(tmp_path / "t.duckdb")
        try:
            s = await run_headless(plant, store, seed=5, hours=6)
            return await store.read_text(plant.tenant, names, s.start, s.end + 1)
        finally:
            await store.close()

    stored = asyncio.run(go())
    _, drawn, _ = _run(plant, 5, 6)
    for n in names:
        assert _series(stored, n) == _series(drawn, n) != []


def test_the_mtconnect_machine_tool_serves_them_as_events() -> None:
    plant = parse_plant(DEMO_TEXT)
    bridge = FactoryServers(plant, mqtt_port=1)
    assert {"MC-02.execution", "MC-02.program"} <= set(bridge.assignment.mtconnect.values())
    assert bridge.assignment.unserved == []
    _, text, _ = _run(plant, 2, 3)

    async def publish() -> None:
        await bridge.publish(SampleBatch.build((), [], [], [], text=text))

    asyncio.run(publish())
    agent = bridge.mtconnect
    doc = agent.respond("/sample?from=1&count=1000")[1]
    schema = etree.XMLSchema(etree.parse(str(XSD / "MTConnectStreams_2.0_1.0.xsd")))
    assert schema.validate(etree.fromstring(doc.encode())), schema.error_log
    probe = etree.XMLSchema(etree.parse(str(XSD / "MTConnectDevices_2.0_1.0.xsd")))
    assert probe.validate(etree.fromstring(agent.probe().encode())), probe.error_log
    obs = parse_streams(doc.encode()).observations
    served: dict[str, list[str | None]] = {o.item: [] for o in obs}
    for o in sorted(obs, key=lambda o: o.sequence):
        served[o.item].append(o.text)
    assert served["MC-02.execution"] == [v for _, v in _series(text, f"{MC2}/execution")]
    assert served["MC-02.program"] == [v for _, v in _series(text, f"{MC2}/program")]
