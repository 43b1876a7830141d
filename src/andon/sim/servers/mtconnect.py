"""A small MTConnect agent for one simulated machine tool: ``/probe``, ``/current`` and
``/sample?from=&count=`` over HTTP/1.1, with a bounded ring buffer of observations and
sequence numbers, as a real agent has (so a reader that falls behind sees a gap).

``observe(item_id, value)`` records an observation (``None`` = ``UNAVAILABLE``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

__all__ = ["MTConnectAgent"]

NS = "urn:mtconnect.org:MTConnectStreams:2.0"
NS_DEV = "urn:mtconnect.org:MTConnectDevices:2.0"


class MTConnectAgent:
    """Serves one device with numeric ``items``: ``[(id, name, category, type)]``."""

    def __init__(
        self,
        device: str,
        items: Sequence[tuple[str, str, str, str]],
        buffer_size: int = 1024,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.device = device
        self.items = list(items)
        self.buffer: deque[tuple[int, str, float, str]] = deque(maxlen=buffer_size)
        self.next_seq = 1
        self.instance_id = int(time.time())
        self.host, self.port = host, port
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._current: dict[str, tuple[int, float, str]] = {}

    def observe(self, item_id: str, value: float | None, ts: float | None = None) -> int:
        """Record an observation; returns its sequence number."""
        seq = self.next_seq
        self.next_seq += 1
        when = ts if ts is not None else time.time()
        text = "UNAVAILABLE" if value is None else repr(float(value))
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

    def _header(self) -> str:
        first = self.buffer[0][0] if self.buffer else self.next_seq
        return (
            f'<Header creationTime="{_iso(time.time())}" instanceId="{self.instance_id}" '
            f'bufferSize="{self.buffer.maxlen}" firstSequence="{first}" '
            f'lastSequence="{self.next_seq - 1}" nextSequence="{self.next_seq}" sender="sim"/>'
        )

    def probe(self) -> str:
        items = "".join(
            f'<DataItem id="{i}" name="{escape(n)}" category="{c}" type="{t}"/>'
            for i, n, c, t in self.items
        )
        return (
            f'<?xml version="1.0"?><MTConnectDevices xmlns="{NS_DEV}">{self._header()}'
            f'<Devices><Device id="{self.device}" name="{self.device}"><DataItems>{items}'
            "</DataItems></Device></Devices></MTConnectDevices>"
        )

    def streams(self, obs: list[tuple[int, str, float, str]], next_seq: int) -> str:
        names = {i: (n, c, t) for i, n, c, t in self.items}
        samples = "".join(
            f'<{_tag(names[i][2])} dataItemId="{i}" name="{escape(names[i][0])}" '
            f'sequence="{s}" timestamp="{_iso(w)}">{v}</{_tag(names[i][2])}>'
            for s, i, w, v in obs
            if i in names
        )
        header = self._header().replace(
            f'nextSequence="{self.next_seq}"', f'nextSequence="{next_seq}"'
        )
        return (
            f'<?xml version="1.0"?><MTConnectStreams xmlns="{NS}">{header}<Streams>'
            f'<DeviceStream name="{self.device}"><ComponentStream component="Device">'
            f"<Samples>{samples}</Samples></ComponentStream></DeviceStream></Streams>"
            "</MTConnectStreams>"
        )

    def _error(self, code: str, text: str) -> str:
        return (
            f'<?xml version="1.0"?><MTConnectError xmlns="{NS}">{self._header()}'
            f'<Errors><Error errorCode="{code}">{escape(text)}</Error></Errors></MTConnectError>'
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


def _tag(kind: str) -> str:
    return "".join(p.capitalize() for p in kind.lower().split("_"))


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
