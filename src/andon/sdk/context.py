"""``Context``: what an app's ``main`` is given. Every method is one request to the app
gateway, which checks it against the installation's grant; what the grant does not cover
raises ``Forbidden`` (never an empty answer).

    async def main(ctx: Context) -> None:
        for site in ctx.sites:
            now = await ctx.now()
            table = await ctx.telemetry(site, ["tc1/machining/L1/MC-01/power"],
                                        now - 3_600_000_000, now)
            await ctx.log("info", f"{table.num_rows} samples")
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.ipc

from andon.sdk.client import Client, EventStream
from andon.sdk.finding import Feedback, Finding, WorkOrder

__all__ = ["Context", "Machine", "Part", "Site", "State"]


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    name: str
    key: str
    """The plant's site id: the first part of every signal and machine path of the site."""


@dataclass(frozen=True, slots=True)
class Machine:
    path: str
    """``site/area/line/machine``: how states, parts and findings name it."""
    id: str
    name: str
    type: str
    signals: dict[str, str]
    """Signal path → signal type (``power``, ``energy``, ``vibration`` ...)."""

    def signal_of_type(self, kind: str) -> str | None:
        """The first signal of type ``kind``, or ``None``."""
        return next((p for p, t in self.signals.items() if t == kind), None)


@dataclass(frozen=True, slots=True)
class State:
    """A machine-state interval ``[start_us, end_us)``; ``state`` is running, starved,
    blocked, down, planned_stop or offline."""

    machine: str
    start_us: int
    end_us: int
    state: str
    reason: str


@dataclass(frozen=True, slots=True)
class Part:
    machine: str
    ts_us: int
    product: str
    good: int
    scrap: int


class Context:
    """The app's view of andon (see the module). Built by ``andon.sdk.run`` from the
    socket in ``ANDON_APP_SOCKET``; tests may build one on any connected ``Client``."""

    def __init__(self, client: Client) -> None:
        self.client = client
        g = client.grant
        self.tenant: str = str(g.get("tenant", ""))
        self.instance_id: str = str(g.get("instance_id", ""))
        self.app_id: str = str(g.get("app_id", ""))
        self.sites: tuple[str, ...] = tuple(g.get("sites", ()))
        """The site ids this installation may read and write."""
        self.permissions: frozenset[str] = frozenset(g.get("permissions", ()))
        self.settings: dict[str, Any] = dict(g.get("settings", {}))
        """The installation's settings at hello (``get_settings`` asks again)."""
        self.once: bool = bool(g.get("once", False))
        """True when the app should analyse what is there up to ``now()`` and return
        (a local run, a test run); False when it should keep following new data."""

    async def _result(self, method: str, params: dict[str, Any] | None = None) -> Any:
        result, _ = await self.client.call(method, params)
        return result

    async def now(self) -> int:
        """The platform's time, µs since the epoch (a replay's time in a test run)."""
        return int((await self._result("time.now"))["now_us"])

    async def list_sites(self) -> list[Site]:
        rows = await self._result("sites.list")
        return [Site(r["id"], r["name"], r["key"]) for r in rows]

    async def machines(self, site: str) -> list[Machine]:
        rows = await self._result("machines.list", {"site": site})
        return [Machine(r["path"], r["id"], r["name"], r["type"], dict(r["signals"])) for r in rows]

    async def telemetry(
        self, site: str, signals: Sequence[str], start_us: int, end_us: int
    ) -> pa.Table:
        """Samples in ``[start_us, end_us)`` as a table ``signal`` (string), ``ts`` (int64
        µs), ``value`` (float64), ``quality`` (uint8: 0 good, 1 uncertain, 2 bad), ordered
        by signal (in request order) and time."""
        params = {"site": site, "signals": list(signals), "start_us": start_us, "end_us": end_us}
        _, blob = await self.client.call("telemetry.read", params)
        if blob is None:
            raise ValueError("telemetry.read answered without its Arrow stream")
        with pa.ipc.open_stream(io.BytesIO(blob)) as reader:
            return reader.read_all()

    async def states(
        self, site: str, start_us: int, end_us: int, machine: str | None = None
    ) -> list[State]:
        """State intervals overlapping the range, clipped to it, by machine and start."""
        params = {"site": site, "machine": machine, "start_us": start_us, "end_us": end_us}
        rows = await self._result("states.read", params)
        return [
            State(r["machine"], r["start_us"], r["end_us"], r["state"], r["reason"]) for r in rows
        ]

    async def parts(
        self, site: str, start_us: int, end_us: int, machine: str | None = None
    ) -> list[Part]:
        params = {"site": site, "machine": machine, "start_us": start_us, "end_us": end_us}
        rows = await self._result("parts.read", params)
        return [Part(r["machine"], r["ts_us"], r["product"], r["good"], r["scrap"]) for r in rows]

    async def kpi(self, site: str, start_us: int, end_us: int) -> dict[str, Any]:
        """The site's KPI summary (OEE, losses, energy per machine) for the range."""
        result: dict[str, Any] = await self._result(
            "kpi.read", {"site": site, "start_us": start_us, "end_us": end_us}
        )
        return result

    @asynccontextmanager
    async def live(self, site: str, max_queue: int = 1000) -> AsyncIterator[EventStream]:
        """The site's live events (values, states, parts, alerts) while the block runs."""
        stream = await self.client.subscribe(site, max_queue)
        try:
            yield stream
        finally:
            await self.client.unsubscribe(stream)

    async def emit(self, finding: Finding) -> str:
        """Publish a finding; returns its id. ``RateLimited`` over the manifest's limit."""
        return str((await self._result("findings.emit", finding.to_json()))["finding_id"])

    async def propose_work_order(
        self, site: str, machine: str, title: str, detail: str = "", due_us: int | None = None
    ) -> str:
        order = WorkOrder(site, machine, title, detail, due_us)
        return str((await self._result("workorders.propose", order.to_json()))["work_order_id"])

    async def get_state(self, key: str, default: Any = None) -> Any:
        """The JSON value the app stored under ``key`` (``default`` when none)."""
        got = await self._result("state.get", {"key": key})
        return got["value"] if got["found"] else default

    async def set_state(self, key: str, value: Any) -> None:
        """Store a JSON value (all keys of an instance together: at most 1 MiB)."""
        await self._result("state.set", {"key": key, "value": value})

    async def get_settings(self) -> dict[str, Any]:
        got: dict[str, Any] = await self._result("settings.get")
        self.settings = dict(got)
        return got

    async def feedback(self, since_us: int = 0) -> list[Feedback]:
        """What people said about this app's findings since ``since_us``."""
        rows = await self._result("feedback.list", {"since_us": since_us})
        return [Feedback.from_json(r) for r in rows]

    async def log(self, level: str, message: str) -> None:
        """A line in the instance's log (debug, info, warning or error)."""
        await self._result("log", {"level": level, "message": message})
