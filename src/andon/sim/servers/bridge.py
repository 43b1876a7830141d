"""The virtual factory behind real protocol servers, and the edge connectors that read it.

``FactoryServers(plant)`` assigns every signal of the plant to a protocol, as a real plant
would have them:

* machining centres and the grinder → OPC UA (one object per machine), except the last
  machining centre, which is an MTConnect machine tool;
* robot cells and the areas' environment sensors → Sparkplug B over MQTT (one device each);
* every other machine (legacy: inspection, FSW, generic) and the energy meters → Modbus TCP
  (one unit id each, float32 holding registers at ``2 * k``).

Text signals (execution, program… decision 0202) are served where the protocol has text:
the MTConnect machine's as events. On OPC UA, Sparkplug and Modbus machines they are not
served, and listed in ``Assignment.unserved``.

``publish(batch)`` writes the newest value of each signal in a ``SampleBatch`` (a factory
window's samples) into its server; ``connectors()`` returns the ``connectors:`` entries of an
edge site file that map every address back onto the plant's signal paths.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from andon.connect.sparkplug.payload import DOUBLE
from andon.model.plant import MachineType, Plant
from andon.model.types import SampleBatch
from andon.sim.servers.modbus import ModbusImage, ModbusSimServer
from andon.sim.servers.mtconnect import MTConnectAgent, data_item
from andon.sim.servers.opcua import OpcUaSimServer
from andon.sim.servers.sparkplug import SparkplugEdgeNode

__all__ = ["Assignment", "FactoryServers"]

_OPCUA = {MachineType.MACHINING_CENTRE, MachineType.SURFACE_GRINDER}


@dataclass
class Assignment:
    """Where each signal path is served."""

    opcua: dict[str, tuple[str, str]] = field(default_factory=dict)  # path → (machine, signal)
    mtconnect: dict[str, str] = field(default_factory=dict)  # path → data item id
    modbus: dict[str, tuple[int, int]] = field(default_factory=dict)  # path → (unit, address)
    sparkplug: dict[str, tuple[str, str]] = field(default_factory=dict)  # path → (device, metric)
    unserved: list[str] = field(default_factory=list)  # text signals off MTConnect


def assign(plant: Plant) -> Assignment:
    """Which protocol serves which signal (see the module docstring)."""
    a = Assignment()
    machines = plant.machines()
    mcs = [m for _, _, m in machines if m.type == MachineType.MACHINING_CENTRE]
    mt_id = mcs[-1].id if len(mcs) > 1 else None
    unit = 1
    for area, line, m in machines:
        base = plant.machine_path(area, line, m)
        if m.id == mt_id:
            for s in m.signals:
                a.mtconnect[f"{base}/{s.id}"] = f"{m.id}.{s.id}"
            continue
        a.unserved += [f"{base}/{s.id}" for s in m.signals if s.kind == "text"]
        numeric = [s for s in m.signals if s.kind != "text"]
        if m.type in _OPCUA:
            for s in numeric:
                a.opcua[f"{base}/{s.id}"] = (m.id, s.id)
        elif m.type == MachineType.ROBOT_CELL:
            for s in numeric:
                a.sparkplug[f"{base}/{s.id}"] = (m.id, s.id)
        else:
            for k, s in enumerate(numeric):
                a.modbus[f"{base}/{s.id}"] = (unit, 2 * k)
            unit += 1
    for area in plant.site.areas:
        for s in area.sensors:
            a.sparkplug[f"{plant.site.id}/{area.id}/{s.id}"] = (f"env-{area.id}", s.id)
    for meter in plant.site.meters:
        for k, s in enumerate(meter.signals):
            a.modbus[f"{plant.site.id}/{meter.id}/{s.id}"] = (unit, 2 * k)
        unit += 1
    return a


class FactoryServers:
    """Starts the four servers for a plant; ``mqtt_host:mqtt_port`` is a running broker's.

    The Sparkplug node is born on the first ``publish``, not at ``start``: a node born
    before the factory drew anything would publish placeholder zeros as data."""

    def __init__(
        self, plant: Plant, mqtt_port: int, period_s: float = 0.2, mqtt_host: str = "127.0.0.1"
    ) -> None:
        self.plant = plant
        self.assignment = a = assign(plant)
        opc_machines: dict[str, list[str]] = {}
        for m, s in a.opcua.values():
            opc_machines.setdefault(m, []).append(s)
        self.opcua = OpcUaSimServer(opc_machines)
        units = {u for u, _ in a.modbus.values()}
        size = 2 * max((addr for _, addr in a.modbus.values()), default=0) + 8
        self.images = {u: ModbusImage(size) for u in units}
        self.modbus = ModbusSimServer(self.images)
        kinds = {f"{m.id}.{s.id}": s for _, _, m in plant.machines() for s in m.signals}
        items = [
            data_item(i, i.split(".", 1)[1], kinds[i].type, kinds[i].unit)
            for i in a.mtconnect.values()
        ]
        self.mtconnect = MTConnectAgent("machine-tool", items)
        self.latest: dict[tuple[str, str], float] = {}
        devices: dict[str, list[tuple[str, int]]] = {}
        for d, m in a.sparkplug.values():
            devices.setdefault(d, []).append((m, DOUBLE))

        def value(device: str, metric: str, t: float) -> float:
            return self.latest.get((device, metric), 0.0)

        self.node = SparkplugEdgeNode(
            plant.site.id,
            "cell",
            devices,
            value,
            host=mqtt_host,
            port=mqtt_port,
            period_s=period_s,
        )
        self.mqtt_host = mqtt_host
        self.mqtt_port = mqtt_port
        self._node_task: asyncio.Task[None] | None = None
        self._started = False

    async def start(self) -> None:
        await self.opcua.start()
        await self.modbus.start()
        await self.mtconnect.start()
        self._started = True

    async def stop(self) -> None:
        if self._node_task is not None:
            self._node_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._node_task
            self._node_task = None
        await self.mtconnect.stop()
        await self.modbus.stop()
        await self.opcua.stop()
        self._started = False

    async def publish(self, batch: SampleBatch) -> None:
        """Serve the newest value of every signal in ``batch`` (its text values: every
        change, as MTConnect events)."""
        a = self.assignment
        text = batch.text
        if text is not None:
            for i in np.argsort(text.ts, kind="stable"):
                path = text.names[int(text.index[i])]
                if path in a.mtconnect:
                    self.mtconnect.observe(
                        a.mtconnect[path], text.value[i], float(text.ts[i]) / 1e6
                    )
        if not len(batch):
            return
        order = np.lexsort((batch.ts, batch.index))
        last = order[np.r_[batch.index[order][1:] != batch.index[order][:-1], True]]
        for i in last:
            path, v, ts = batch.names[int(batch.index[i])], float(batch.value[i]), batch.ts[i]
            if path in a.opcua:
                await self.opcua.set(*a.opcua[path], v, source_us=int(ts))
            elif path in a.modbus:
                unit, addr = a.modbus[path]
                self.images[unit].set("holding", addr, v, "float32")
            elif path in a.sparkplug:
                self.latest[a.sparkplug[path]] = v
            elif path in a.mtconnect:
                self.mtconnect.observe(a.mtconnect[path], v, float(ts) / 1e6)
        if self._started and self._node_task is None and a.sparkplug:
            self._node_task = asyncio.create_task(self.node.run())

    def connectors(self, poll_s: float = 0.2) -> list[dict[str, Any]]:
        """``connectors:`` entries of an edge site file reading this plant."""
        a = self.assignment
        out: list[dict[str, Any]] = []
        if a.opcua:
            out.append(
                {
                    "type": "opcua",
                    "name": "opcua",
                    "url": self.opcua.url,
                    "nodes": [
                        {"node_id": self.opcua.node_id(m, s), "signal": p}
                        for p, (m, s) in a.opcua.items()
                    ],
                }
            )
        if a.modbus:
            by_unit: dict[int, list[dict[str, Any]]] = {}
            for p, (u, addr) in a.modbus.items():
                by_unit.setdefault(u, []).append(
                    {"signal": p, "table": "holding", "address": addr, "type": "float32"}
                )
            out.append(
                {
                    "type": "modbus",
                    "name": "modbus",
                    "devices": [
                        {
                            "name": f"unit-{u}",
                            "port": self.modbus.port,
                            "unit": u,
                            "poll_s": poll_s,
                            "points": pts,
                        }
                        for u, pts in sorted(by_unit.items())
                    ],
                }
            )
        if a.sparkplug:
            out.append(
                {
                    "type": "sparkplug",
                    "name": "sparkplug",
                    "host": self.mqtt_host,
                    "port": self.mqtt_port,
                    "group": self.plant.site.id,
                    "prefix": f"{self.plant.site.id}/unmapped",
                    "signals": {f"cell/{d}/{m}": p for p, (d, m) in a.sparkplug.items()},
                }
            )
        if a.mtconnect:
            out.append(
                {
                    "type": "mtconnect",
                    "name": "mtconnect",
                    "url": f"http://127.0.0.1:{self.mtconnect.port}",
                    "items": {i: p for p, i in a.mtconnect.items()},
                    "poll_s": poll_s,
                }
            )
        return out
