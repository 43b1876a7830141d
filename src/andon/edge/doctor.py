"""``andon edge doctor site.yaml``: connect to each device of a site file once and say, per
signal, what it reads — value, type, quality — and exactly what is wrong, before the agent
runs (issue 12).

Each protocol is asked in its own terms, through the connector's own pieces (its config
model, read planning, decoding and error texts), one request per signal so that one wrong
address cannot hide its neighbours:

* ``modbus``: each point read alone; an exception response names the code and the
  addresses (``illegal data address at holding 9–10``);
* ``opcua``: every node's value attribute read in one request; an unknown node or namespace,
  a bad status, arrays and byte strings are named with the OPC UA status;
* ``mtconnect``: the agent's ``/current`` document; an item the agent does not report, an
  ``UNAVAILABLE`` observation and an observation the reader refuses are named;
* any other connector type: its ``batches`` are read until every signal it names has a
  value or ``timeout_s`` passes.

A device that cannot be reached gives every one of its signals that problem.

>>> SignalCheck("c", "d", "s/a/l/m/x", 1.5, "float32", "good").ok
True
>>> SignalCheck("c", "d", "s/a/l/m/x", None, "uint16", "bad", "illegal data address").ok
False
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel

from andon.connect.base import within
from andon.connect.registry import build_connector, connector_types
from andon.model.types import Quality, SampleBatch

__all__ = ["SignalCheck", "check_connector", "check_connectors"]

_QUALITY = {Quality.GOOD: "good", Quality.UNCERTAIN: "uncertain", Quality.BAD: "bad"}


@dataclass(frozen=True)
class SignalCheck:
    """What one signal read, once. ``quality`` is ``good``, ``uncertain``, ``bad`` or
    ``none`` (nothing read); ``problem`` is empty when there is none."""

    connector: str
    device: str
    signal: str
    value: float | str | None
    type: str
    quality: str
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if isinstance(self.value, float) and not math.isfinite(self.value):
            out["value"] = None
        out["ok"] = self.ok
        return out


async def check_connectors(
    entries: Iterable[dict[str, Any]], timeout_s: float = 5.0
) -> list[SignalCheck]:
    """Every signal of every ``connectors:`` entry of a site file, checked once (the
    connectors one after another, so their messages do not interleave)."""
    out: list[SignalCheck] = []
    for entry in entries:
        out += await check_connector(entry, timeout_s)
    return out


async def check_connector(entry: dict[str, Any], timeout_s: float = 5.0) -> list[SignalCheck]:
    """The signals of one ``connectors:`` entry. Raises ``KeyError`` for an unknown type and
    pydantic's ``ValidationError`` for bad options (as ``build_connector`` does)."""
    kind = entry.get("type")
    types = connector_types()
    if kind not in types:
        raise KeyError(f"unknown connector type {kind!r} (known: {', '.join(sorted(types))})")
    cfg = types[kind].config.model_validate({k: v for k, v in entry.items() if k != "type"})
    if kind == "modbus":
        return await _modbus(cfg)
    if kind == "opcua":
        return await _opcua(cfg, timeout_s)
    if kind == "mtconnect":
        return await _mtconnect(cfg)
    return await _generic(entry, cfg, timeout_s)


def _value(x: float) -> float | None:
    return x if math.isfinite(x) else None


# ---------------------------------------------------------------------------------------------
# Modbus TCP
# ---------------------------------------------------------------------------------------------


async def _modbus(cfg: Any) -> list[SignalCheck]:
    from pymodbus.client import AsyncModbusTcpClient
    from pymodbus.exceptions import ModbusException

    from andon.connect.modbus import ModbusConfig, decode, scaled
    from andon.connect.modbus.client import DeviceException, ModbusConnector
    from andon.connect.modbus.plan import Point, Read

    assert isinstance(cfg, ModbusConfig)
    out: list[SignalCheck] = []
    for dev in cfg.devices:
        client = AsyncModbusTcpClient(
            dev.host, port=dev.port, timeout=dev.timeout_s, retries=dev.retries, reconnect_delay=0
        )
        limit = dev.timeout_s * (dev.retries + 1) + 0.5
        try:
            connected = await within(client.connect(), limit)
        except (OSError, TimeoutError, ModbusException):
            connected = False
        try:
            for p in dev.points:
                point = Point(
                    p.signal,
                    p.table,
                    p.address,
                    p.type,
                    p.byte_order,
                    p.word_order,
                    p.scale,
                    p.offset,
                )
                kind = p.table if p.table in ("coil", "discrete") else f"{p.type} ({p.table})"
                head = (cfg.name, dev.name, p.signal)
                if not connected:
                    why = f"cannot connect to {dev.host}:{dev.port}"
                    out.append(SignalCheck(*head, None, kind, "none", why))
                    continue
                read = Read(p.table, p.address, point.width, (point,))
                try:
                    regs = await within(ModbusConnector._read(client, read, dev.unit), limit)
                except DeviceException as exc:
                    why = exc.describe(merged=False).split(" (")[0]
                    out.append(SignalCheck(*head, None, kind, "bad", why))
                    continue
                except (ModbusException, OSError, ValueError, TimeoutError) as exc:
                    why = f"no answer from unit {dev.unit}: {exc or type(exc).__name__}"
                    out.append(SignalCheck(*head, None, kind, "bad", why))
                    continue
                raw = decode(regs, point.dtype, point.byte_order, point.word_order)
                value = scaled(raw, point.scale, point.offset)
                out.append(SignalCheck(*head, value, kind, "good"))
        finally:
            client.close()
    return out


# ---------------------------------------------------------------------------------------------
# OPC UA
# ---------------------------------------------------------------------------------------------


async def _opcua(cfg: Any, timeout_s: float) -> list[SignalCheck]:
    from asyncua import ua
    from asyncua.ua.uaerrors import UaError

    from andon.connect.opcua.client import OpcUaConfig, describe_error, open_client, quality_of

    assert isinstance(cfg, OpcUaConfig)
    device = cfg.url

    def row(spec: Any, value: float | str | None, kind: str, q: str, why: str = "") -> SignalCheck:
        return SignalCheck(cfg.name, device, spec.signal, value, kind, q, why)

    client = None
    try:
        client = await within(open_client(cfg), timeout_s + 1.0)
        await within(client.connect(), timeout_s + 1.0)
    except (OSError, TimeoutError, UaError, ConnectionError, ValueError) as exc:
        if client is not None:
            client.disconnect_socket()
        why = f"cannot connect: {describe_error(exc)}"
        return [row(spec, None, "", "none", why) for spec in cfg.nodes]
    out: list[SignalCheck] = []
    try:
        namespaces: list[str] | None = None
        wanted: list[tuple[Any, Any]] = []
        for spec in cfg.nodes:
            nid = ua.NodeId.from_string(spec.node_id)
            uri = getattr(nid, "NamespaceUri", None)
            if uri:
                if namespaces is None:
                    namespaces = list(await client.get_namespace_array())
                if uri not in namespaces:
                    why = f"namespace {uri!r} unknown (the server has {', '.join(namespaces)})"
                    out.append(row(spec, None, "", "none", why))
                    continue
                nid = ua.NodeId(nid.Identifier, ua.Int16(namespaces.index(uri)), nid.NodeIdType)
            else:
                nid = ua.NodeId(nid.Identifier, nid.NamespaceIndex, nid.NodeIdType)
            wanted.append((spec, client.get_node(nid)))
        dvs = await within(client.read_attributes([n for _, n in wanted]), timeout_s)
        for (spec, _), dv in zip(wanted, dvs, strict=True):
            out.append(_opcua_row(cfg.name, device, spec, dv, quality_of))
    except (OSError, TimeoutError, UaError, ConnectionError) as exc:
        done = {c.signal for c in out}
        why = f"connection lost: {describe_error(exc)}"
        out += [row(s, None, "", "none", why) for s in cfg.nodes if s.signal not in done]
    finally:
        try:
            await within(client.disconnect(), 1.0)
        except Exception:  # the session is gone anyway
            client.disconnect_socket()
    order = {s.signal: i for i, s in enumerate(cfg.nodes)}
    return sorted(out, key=lambda c: order[c.signal])


def _opcua_row(name: str, device: str, spec: Any, dv: Any, quality_of: Any) -> SignalCheck:
    from asyncua import ua

    status = dv.StatusCode
    code = status.value if status is not None else 0
    status_name = ua.StatusCode(ua.UInt32(code)).name
    variant = dv.Value
    raw = variant.Value if variant is not None else None
    kind = variant.VariantType.name if variant is not None else ""
    q = _QUALITY[quality_of(status)]
    node = spec.node_id

    def row(value: float | str | None, problem: str = "", quality: str = q) -> SignalCheck:
        return SignalCheck(name, device, spec.signal, value, kind, quality, problem)

    if status_name in ("BadNodeIdUnknown", "BadNodeIdInvalid"):
        return row(None, f"node {node} unknown ({status_name})", "none")
    if status_name == "BadAttributeIdInvalid":
        return row(None, f"node {node} is not a variable ({status_name})", "none")
    if isinstance(raw, list | tuple) or (variant is not None and variant.is_array):
        return row(None, f"node {node} holds an array (not read: one value per signal)")
    if isinstance(raw, bytes):
        return row(None, f"node {node} holds a byte string (not read)")
    if q != "good":
        return row(None, f"node {node} answers {status_name}")
    if isinstance(raw, str):
        return row(raw)
    if isinstance(raw, ua.LocalizedText):
        return row(raw.Text or "")
    if isinstance(raw, bool | int | float):
        return row(float(raw))
    return row(None, f"node {node} holds a {type(raw).__name__} (not a number or text)")


# ---------------------------------------------------------------------------------------------
# MTConnect
# ---------------------------------------------------------------------------------------------


async def _mtconnect(cfg: Any) -> list[SignalCheck]:
    import httpx

    from andon.connect.mtconnect import MTConnectConfig
    from andon.connect.mtconnect.reader import parse_streams
    from andon.wire.net import tls_context

    assert isinstance(cfg, MTConnectConfig)
    tls = tls_context(cfg.ca_file) if cfg.url.startswith("https://") else None
    url = cfg.url.rstrip("/") + "/current"

    def row(item: str, value: float | str | None, kind: str, q: str, why: str = "") -> SignalCheck:
        return SignalCheck(cfg.name, cfg.url, cfg.items[item], value, kind, q, why)

    try:
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(cfg.timeout_s), verify=tls if tls is not None else True
        ) as client:
            r = await client.get(url)
        if r.status_code != 200:
            raise ValueError(f"GET {url} answered {r.status_code}")
        doc = parse_streams(r.content)
        if doc.error is not None:
            raise ValueError(f"GET {url} answered the error {doc.error}")
    except (httpx.HTTPError, ValueError) as exc:
        why = f"cannot read the agent: {exc}" if str(exc) else f"cannot read the agent: {exc!r}"
        return [row(item, None, "", "none", why) for item in cfg.items]
    latest: dict[str, list[Any]] = {}
    for o in doc.observations:  # sorted by sequence: the last one wins
        seen = latest.setdefault(o.item, [])
        if seen and seen[-1].sequence != o.sequence:
            seen.clear()
        seen.append(o)
    refused = {item: (reason, detail) for item, reason, detail in doc.refused}
    out: list[SignalCheck] = []
    for item in cfg.items:
        obs = latest.get(item)
        if item in refused and not obs:
            reason, detail = refused[item]
            out.append(row(item, None, "", "bad", f"data item {item}: {reason} ({detail})"))
        elif not obs:
            out.append(row(item, None, "", "none", f"data item {item} not in the agent's data"))
        elif obs[0].text is not None:
            out.append(row(item, obs[0].text, "text", "good"))
        elif obs[0].value is None:
            out.append(row(item, None, "", "bad", f"MTConnect data item {item} UNAVAILABLE"))
        elif len(obs) > 1:
            vec = ", ".join(f"{o.component}={o.value:g}" for o in obs)
            out.append(row(item, vec, f"vector ({len(obs)})", "good"))
        else:
            out.append(row(item, obs[0].value, "event" if obs[0].event else "number", "good"))
    return out


# ---------------------------------------------------------------------------------------------
# any other connector: read its batches for a while
# ---------------------------------------------------------------------------------------------


def _named_signals(cfg: BaseModel) -> list[str]:
    """The signal paths a connector's config names outright (the rest it finds as it reads)."""
    data = cfg.model_dump()
    out: list[str] = []
    for key in ("signals", "columns"):
        v = data.get(key)
        if isinstance(v, list):
            out += [s for s in v if isinstance(s, str)]
        elif isinstance(v, dict):
            out += [s for s in v.values() if isinstance(s, str)]
    return list(dict.fromkeys(out))


async def _generic(entry: dict[str, Any], cfg: BaseModel, timeout_s: float) -> list[SignalCheck]:
    connector = build_connector(entry)
    name = connector.name
    wanted = _named_signals(cfg)
    seen: dict[str, SignalCheck] = {}

    async def read() -> None:
        gen = connector.batches(None)
        try:
            async for batch, _ in gen:
                for c in _rows(name, batch):
                    seen[c.signal] = c
                if wanted and all(s in seen for s in wanted):
                    return
        finally:
            with contextlib.suppress(Exception):
                await gen.aclose()  # type: ignore[attr-defined]

    with contextlib.suppress(TimeoutError):
        await within(read(), timeout_s)
    health = list(connector.health.devices.values())
    last = "; ".join(f"{d.device}: {d.last_error}" for d in health if d.last_error)
    out = list(seen.values())
    for s in wanted:
        if s not in seen:
            why = f"no value within {timeout_s:g} s" + (f" ({last})" if last else "")
            out.append(SignalCheck(name, "", s, None, "", "none", why))
    if not out:
        why = f"no value within {timeout_s:g} s" + (f" ({last})" if last else "")
        out.append(SignalCheck(name, "", "(any)", None, "", "none", why))
    return out


def _rows(name: str, batch: SampleBatch) -> Iterable[SignalCheck]:
    for k in range(len(batch)):
        q = _QUALITY[Quality(int(batch.quality[k]))]
        v = float(batch.value[k])
        why = "" if q == "good" else f"read with {q} quality"
        yield SignalCheck(name, "", batch.signal_at(k), _value(v), "number", q, why)
    t = batch.text
    if t is not None:
        for k in range(len(t)):
            q = _QUALITY[Quality(int(t.quality[k]))]
            why = "" if q == "good" else f"read with {q} quality"
            yield SignalCheck(name, "", t.signal_at(k), t.value[k], "text", q, why)
