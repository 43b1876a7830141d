"""``run_via_protocols``: the demo plant read through OPC UA, Modbus TCP, Sparkplug B and
MTConnect by an edge agent, forwarded over the MQTT uplink and stored. Every stored value is
one the factory drew; OPC UA and MTConnect keep the factory's timestamps too."""

from __future__ import annotations

import asyncio
from importlib.resources import as_file, files
from pathlib import Path

import numpy as np
import pytest

from andon.demo.protocols import ProtocolDemo, run_via_protocols
from andon.model.loader import load_plant
from andon.model.types import SampleBatch
from andon.sim.servers.bridge import assign
from andon.store.duckdb_store import DuckDBStore
from tests.edge.broker import Broker


@pytest.mark.slow
def test_demo_reads_the_plant_through_real_protocols(tmp_path: Path, broker: Broker) -> None:
    with as_file(files("andon.sim") / "plants" / "demo.yaml") as p:
        plant = load_plant(p)
    ticks: list[ProtocolDemo] = []

    async def go() -> None:
        store = DuckDBStore.open(tmp_path / "t.duckdb")
        try:
            summary = await run_via_protocols(
                plant,
                store,
                7,
                tmp_path / "demo",
                duration_s=6.0,
                mqtt_port=broker.port,
                poll_s=0.1,
                keep_drawn=True,
                on_tick=lambda d: ticks.append(d) if not ticks else None,
            )
            assert summary["drained"], summary
            assert summary["ingest"]["rejected"] == {}, summary["ingest"]
            assert summary["buffer"]["pending_points"] == 0
            acked = summary["buffer"]["acked_points"]
            assert summary["service"]["points_acknowledged"] == acked > 0
            demo = ticks[0]
            drawn = SampleBatch.concat(demo.drawn)
            a = assign(plant)
            stored = await store.read(plant.tenant, list(plant.signal_paths()), 0, 2**62)
            checked = {"opcua": 0, "modbus": 0, "sparkplug": 0, "mtconnect": 0}
            for proto, paths in (
                ("opcua", list(a.opcua)),
                ("modbus", list(a.modbus)),
                ("sparkplug", list(a.sparkplug)),
                ("mtconnect", list(a.mtconnect)),
            ):
                for path in paths[:: max(1, len(paths) // 4)]:
                    d = drawn.take(drawn.index == drawn.names.index(path))
                    s = stored.take(stored.index == stored.names.index(path))
                    assert len(s) > 0, (proto, path)
                    dv = d.value[np.argsort(d.ts, kind="stable")]
                    sv = s.value[np.argsort(s.ts, kind="stable")]
                    if proto == "modbus":  # float32 registers
                        dv = dv.astype(np.float32).astype(np.float64)
                    assert set(sv.tolist()) <= set(dv.tolist()), (proto, path)
                    assert sv[-1] == dv[-1], (proto, path, sv[-1], dv[-1])
                    if proto in ("opcua", "mtconnect"):  # the factory's own timestamps
                        pairs = set(zip(d.ts.tolist(), d.value.tolist(), strict=True))
                        assert set(zip(s.ts.tolist(), s.value.tolist(), strict=True)) <= pairs
                    checked[proto] += 1
            assert min(checked.values()) >= 1, checked
        finally:
            await store.close()

    asyncio.run(go())
