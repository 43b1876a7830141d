"""A small MTConnect agent for one simulated machine tool: ``/probe``, ``/current`` and
``/sample?from=&count=`` over HTTP/1.1, with a bounded ring buffer of observations and
sequence numbers, as a real agent has (so a reader that falls behind sees a gap).

``observe(item_id, value)`` records an observation (``None`` = ``UNAVAILABLE``): a number for
a ``SAMPLE``, text for an ``EVENT`` (``ACTIVE``), a level for a ``CONDITION`` (``NORMAL``,
``WARNING``, ``FAULT``). Every document validates against the official MTConnect 2.0 XSDs
(tested with the schemas under tests/data/mtconnect/); error documents carry no sequence
numbers, as real agents' do.

``data_item(id, name, signal_type, unit)`` gives each of andon's signal types a standard
MTConnect DataItem (category, type, and where the standard has no closer type a ``x:``
subType, the extension form the schemas allow for subTypes and units): no observation is an
element outside the schemas.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

__all__ = ["DataItem", "MTConnectAgent", "data_item"]

NS = "urn:mtconnect.org:MTConnectStreams:2.0"
NS_DEV = "urn:mtconnect.org:MTConnectDevices:2.0"
NS_ERR = "urn:mtconnect.org:MTConnectError:2.0"
NS_EXT = "urn:andon.dev:sim"
"""SubTypes and units written ``x:NAME`` are extensions in this namespace."""
_GROUP = {"SAMPLE": "Samples", "EVENT": "Events", "CONDITION": "Condition"}


class DataItem(NamedTuple):
    """One served data item; a plain ``(id, name, category, type)`` tuple is one too."""

    id: str
    name: str
    category: str
    type: str
    sub_type: str | None = None
    units: str | None = None


# andon signal type -> MTConnect (category, type, subType): each an element of the 2.0 XSDs
_TYPES: dict[str, tuple[str, str, str | None]] = {
    "spindle_load": ("SAMPLE", "LOAD", None),
    "spindle_speed": ("SAMPLE", "ROTARY_VELOCITY", None),
    "spindle_power": ("SAMPLE", "WATTAGE", None),
    "vibration": ("SAMPLE", "VELOCITY", None),
    "coolant_temperature": ("SAMPLE", "TEMPERATURE", None),
    "tool_wear": ("SAMPLE", "LENGTH", "x:TOOL_WEAR"),
    "wheel_wear": ("SAMPLE", "LENGTH", "x:WHEEL_WEAR"),
    "dressing_count": ("EVENT", "CYCLE_COUNT", None),
    "surface_roughness": ("SAMPLE", "LENGTH", "x:ROUGHNESS_RA"),
    # band energies (mean square of the band's velocity): no MTConnect type measures one
    "vibration_low": ("SAMPLE", "VELOCITY", "x:BAND_ENERGY_LOW"),
    "vibration_mid": ("SAMPLE", "VELOCITY", "x:BAND_ENERGY_MID"),
    "vibration_high": ("SAMPLE", "VELOCITY", "x:BAND_ENERGY_HIGH"),
    "bearing_temperature": ("SAMPLE", "TEMPERATURE", "x:BEARING"),
    "motor_current": ("SAMPLE", "AMPERAGE_AC", None),
    "tool_rotation": ("SAMPLE", "ROTARY_VELOCITY", None),
    "traverse_speed": ("SAMPLE", "PATH_FEEDRATE", None),
    "axial_force": ("SAMPLE", "LINEAR_FORCE", None),
    "tool_temperature": ("SAMPLE", "TEMPERATURE", "x:TOOL"),
    "joint_torque": ("SAMPLE", "TORQUE", None),
    "joint_current": ("SAMPLE", "AMPERAGE_AC", None),
    "power": ("SAMPLE", "WATTAGE", None),
    "energy": ("SAMPLE", "ELECTRICAL_ENERGY", None),
    "part_count": ("EVENT", "PART_COUNT", None),
    "cycle_time": ("SAMPLE", "PROCESS_TIMER", None),
    "temperature": ("SAMPLE", "TEMPERATURE", None),
    "humidity": ("SAMPLE", "HUMIDITY_RELATIVE", None),
    "particle_count": ("SAMPLE", "CONCENTRATION", "x:PARTICLES"),
    "pressure": ("SAMPLE", "PRESSURE", None),
    "gas_flow": ("SAMPLE", "FLOW", None),
    "rf_power": ("SAMPLE", "WATTAGE", "x:RF_FORWARD"),
    "reject_rate": ("EVENT", "VARIABLE", "x:REJECT_RATE"),
    "execution": ("EVENT", "EXECUTION", None),
    "availability": ("EVENT", "AVAILABILITY", None),
    "controller_mode": ("EVENT", "CONTROLLER_MODE", None),
    "program": ("EVENT", "PROGRAM", None),
    "text": ("EVENT", "MESSAGE", None),
}
_OTHER = ("EVENT", "VARIABLE", None)
"""A type outside the catalogue: a Variable event (numbers stay numbers, text is text)."""
# andon units with an MTConnect name for exactly that unit (others are left out: optional)
_UNITS = {
    "%": "PERCENT",
    "rpm": "REVOLUTION/MINUTE",
    "mm/s": "MILLIMETER/SECOND",
    "°C": "CELSIUS",
    "degC": "CELSIUS",
    "A": "AMPERE",
    "W": "WATT",
    "Pa": "PASCAL",
    "s": "SECOND",
    "count": "COUNT",
    "N·m": "NEWTON_METER",
    "Nm": "NEWTON_METER",
    "%RH": "PERCENT",
}


def data_item(item_id: str, name: str, signal_type: str, unit: str | None = None) -> DataItem:
    """The MTConnect DataItem serving a signal of ``signal_type`` measured in ``unit``."""
    category, typ, sub = _TYPES.get(signal_type, _OTHER)
    units = _UNITS.get(unit or "") if category == "SAMPLE" else None
    return DataItem(item_id, name, category, typ, sub, units)


class MTConnectAgent:
    """Serves one device with ``items``: ``[DataItem]`` or ``[(id, name, category, type)]``."""

    def __init__(
        self,
        device: str,
        items: Sequence[DataItem | tuple[str, str, str, str]],
        buffer_size: int = 1024,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.device = device
        self.items: list[DataItem | tuple[str, str, str, str]] = list(items)
        self.buffer: deque[tuple[int, str, float, str]] = deque(maxlen=buffer_size)
        self.started = time.time()
        self.next_seq = 1
        self.instance_id = int(time.time())
        self.host, self.port = host, port
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._current: dict[str, tuple[int, float, str]] = {}

    def observe(self, item_id: str, value: float | str | None, ts: float | None = None) -> int:
        """Record an observation; returns its sequence number."""
        seq = self.next_seq
        self.next_seq += 1
        when = ts if ts is not None else time.time()
        if value is None:
            text = "UNAVAILABLE"
        elif isinstance(value, str):
            text = value
        elif float(value).is_integer():
            text = str(int(value))  # counts (PartCount) are integers in the XSDs
        else:
            text = repr(float(value))
        self.buffer.append((seq, item_id, when, text))
        self._current[item_id] = (seq, when, text)
        return seq

    def restart(self) -> None:
        """Lose the buffer and start a new instance, as an agent restart does."""
        self.buffer.clear()
        self._current.clear()
        self.instance_id += 1
        self.next_seq = 1

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    # -- documents -----------------------------------------------------------------------------

    def _header(
        self, next_seq: int | None = None, sequences: bool = True, errors: bool = False
    ) -> str:
        first = self.buffer[0][0] if self.buffer else self.next_seq
        seqs = (
            f'firstSequence="{first}" lastSequence="{self.next_seq - 1}" '
            f'nextSequence="{self.next_seq if next_seq is None else next_seq}" '
            if sequences
            else ""
        )
        # error documents have no deviceModelChangeTime (MTConnectError 2.0 XSD)
        change = f'deviceModelChangeTime="{_iso(self.started)}" ' if errors is False else ""
        return (
            f'<Header creationTime="{_iso(time.time(), 0)}" sender="sim" '
            f'instanceId="{self.instance_id}" version="2.0.0" '
            f"{change}"
            f'bufferSize="{self.buffer.maxlen}" {seqs}/>'
        )

    def probe(self) -> str:
        items = "".join(
            f'<DataItem id="{d.id}" name="{escape(d.name)}" category="{d.category}" '
            f'type="{d.type}"{_attr("subType", d.sub_type)}{_attr("units", d.units)}/>'
            for d in self._items()
        )
        header = self._header(sequences=False).replace(
            ' sender="sim"', ' sender="sim" assetBufferSize="1024" assetCount="0"'
        )
        return (
            f'<?xml version="1.0"?><MTConnectDevices xmlns="{NS_DEV}" xmlns:x="{NS_EXT}">'
            f"{header}"
            f'<Devices><Device id="{self.device}" name="{self.device}" '
            f'uuid="{self.device}-uuid"><DataItems>{items}'
            "</DataItems></Device></Devices></MTConnectDevices>"
        )

    def streams(self, obs: list[tuple[int, str, float, str]], next_seq: int) -> str:
        names = {d.id: d for d in self._items()}
        groups: dict[str, list[str]] = {}
        for s, i, w, v in obs:
            if i not in names:
                continue
            _, name, cat, typ, sub, _ = names[i]
            attrs = (
                f'dataItemId="{i}" name="{escape(name)}" sequence="{s}" timestamp="{_iso(w)}"'
                f"{_attr('subType', sub)}"
            )
            if cat == "CONDITION":
                level = "Unavailable" if v == "UNAVAILABLE" else v.capitalize()
                el = f'<{level} {attrs} type="{typ}"/>'
            else:
                el = f"<{_tag(typ)} {attrs}>{escape(v)}</{_tag(typ)}>"
            groups.setdefault(_GROUP.get(cat, "Samples"), []).append(el)
        body = "".join(
            f"<{g}>{''.join(groups[g])}</{g}>"
            for g in ("Samples", "Events", "Condition")
            if g in groups
        )
        return (
            f'<?xml version="1.0"?><MTConnectStreams xmlns="{NS}" xmlns:x="{NS_EXT}">'
            f"{self._header(next_seq)}"
            f'<Streams><DeviceStream name="{self.device}" uuid="{self.device}-uuid">'
            f'<ComponentStream component="Device" componentId="{self.device}">'
            f"{body}</ComponentStream></DeviceStream></Streams></MTConnectStreams>"
        )

    def _items(self) -> list[DataItem]:
        return [DataItem(*d) for d in self.items]

    def _error(self, code: str, text: str) -> str:
        return (
            f'<?xml version="1.0"?><MTConnectError xmlns="{NS_ERR}">'
            f'{self._header(sequences=False, errors=True)}<Errors><Error errorCode="{code}">'
            f"{escape(text)}</Error></Errors></MTConnectError>"
        )

    def respond(self, target: str) -> tuple[int, str]:
        url = urlsplit(target)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = url.path.rstrip("/").rsplit("/", 1)[-1]
        if path == "probe":
            return 200, self.probe()
        if path == "current":
            obs = sorted((s, i, w, v) for i, (s, w, v) in self._current.items())
            return 200, self.streams(obs, self.next_seq)
        if path == "sample":
            first = self.buffer[0][0] if self.buffer else self.next_seq
            start = int(q.get("from", first))
            count = int(q.get("count", 100))
            if start < first or start > self.next_seq:
                return 400, self._error("OUT_OF_RANGE", f"from {start} is outside the buffer")
            obs = [o for o in self.buffer if o[0] >= start][:count]
            nxt = obs[-1][0] + 1 if obs else start
            return 200, self.streams(obs, nxt)
        return 404, self._error("UNSUPPORTED", f"no {url.path}")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.decode("latin-1").split()
            self.requests += 1
            status, body = self.respond(parts[1] if len(parts) > 1 else "/")
            data = body.encode()
            writer.write(
                f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
                f"Content-Type: application/xml\r\nContent-Length: {len(data)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
        except (ConnectionError, ValueError):
            pass
        finally:
            writer.close()


def _attr(name: str, value: str | None) -> str:
    return f' {name}="{escape(value)}"' if value else ""


def _tag(kind: str) -> str:
    prefix, _, kind = kind.rpartition(":")
    name = "".join(p if p in ("AC", "DC") else p.capitalize() for p in kind.split("_"))
    return f"{prefix}:{name}" if prefix else name


def _iso(t: float, digits: int = 6) -> str:
    text = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return (text[: len(text) - 6 + digits].rstrip(".")) + "Z"
