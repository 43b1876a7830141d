"""The Sparkplug B host application's state machine, free of I/O.

``SparkplugHost.handle(topic, payload, now_us)`` takes one MQTT message and returns the samples
it carries and the commands to publish (rebirth requests). It tracks, per edge node:

* the birth certificate: metric names, aliases and datatypes of the node and each device
  (NBIRTH / DBIRTH); data messages may name metrics by alias only;
* ``bdSeq`` from NBIRTH, so that a late NDEATH of an older session is ignored;
* ``seq`` (0–255, wrapping): a gap, a data message before any birth, or an unknown alias
  makes the node *stale* and asks for a rebirth (NCMD ``Node Control/Rebirth``) until a new
  NBIRTH arrives; data from a stale node is refused and counted;
* NDEATH / DDEATH: every metric of the node (or device) gets a ``BAD`` sample. An NDEATH is
  judged by its ``bdSeq`` alone; it is stamped at the later of its payload timestamp and its
  arrival, because the broker publishes the node's *will*, whose timestamp is the time the
  node registered it (before all its data) — stamped that way the death would hide behind the
  last good value;
* data by alias without a datatype takes the datatype of the birth certificate, so a signed
  integer (sent as two's complement) keeps its sign; DateTime metrics are milliseconds since
  the epoch, stored as numbers; String and Text metrics (and any string value) travel as
  text values (decision 0202), Booleans as numbers 0/1; a death gives text metrics a BAD
  empty text;
* compressed payloads (``uuid`` ``SPBV1.0_COMPRESSED``, ``algorithm`` ``DEFLATE`` or
  ``GZIP``) are inflated (at most 16 MiB); any other algorithm is refused and counted
  (``unsupported_compression``) and the next ``seq`` is accepted as is, not taken for a gap.

Every refused message or metric is counted by reason in ``rejected`` and logged; none stops
the stream.
"""

from __future__ import annotations

import gzip
import io as _io
import logging
import math
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from andon.connect.sparkplug.payload import (
    BOOLEAN,
    INT8,
    INT16,
    INT32,
    INT64,
    STRING,
    TEXT,
    Metric,
    Payload,
    PayloadError,
    decode_payload,
    encode_payload,
)
from andon.model.types import Quality, SampleBatch, TextBatch

__all__ = ["NAMESPACE", "Command", "SparkplugHost", "rebirth_payload"]

log = logging.getLogger("andon.connect.sparkplug")

NAMESPACE: Final = "spBv1.0"
_MAX_PAST_US: Final = 366 * 86_400 * 1_000_000
_MAX_FUTURE_US: Final = 300 * 1_000_000
_TEXT_TYPES: Final = (STRING, TEXT)
_SIGNED_BITS: Final = {INT8: 8, INT16: 16, INT32: 32, INT64: 64}
COMPRESSED_UUID: Final = "SPBV1.0_COMPRESSED"
_MAX_INFLATED: Final = 16 << 20


@dataclass(frozen=True)
class Command:
    topic: str
    payload: bytes


@dataclass
class _Device:
    names: dict[int, str] = field(default_factory=dict)  # alias -> name
    types: dict[str, int] = field(default_factory=dict)  # name -> datatype
    alive: bool = False


@dataclass
class _Node:
    bd_seq: int | None = None
    seq: int | None = None
    resync: bool = False  # a refused compressed message hid one seq: take the next as is
    stale: bool = True
    rebirth_asked: bool = False
    node: _Device = field(default_factory=_Device)
    devices: dict[str, _Device] = field(default_factory=dict)


def rebirth_payload(now_ms: int) -> bytes:
    """The NCMD that asks an edge node to publish its births again."""
    return encode_payload(
        Payload(
            timestamp=now_ms,
            metrics=[Metric(name="Node Control/Rebirth", datatype=BOOLEAN, value=True)],
        )
    )


def _signed(n: int, bits: int) -> int:
    n &= (1 << bits) - 1
    return n - (1 << bits) if n >> (bits - 1) else n


def _part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "_"


class SparkplugHost:
    """Host-application state for one Sparkplug group.

    ``prefix`` and the node/device/metric names make each signal path
    (``prefix/<device or node>/<metric>``, unsafe characters replaced by ``_``); ``signals``
    overrides it for chosen ``"node/device/metric"`` keys (``"node//metric"`` for a node
    metric).
    """

    def __init__(self, group: str, prefix: str, signals: dict[str, str] | None = None) -> None:
        self.group = group
        self.prefix = prefix.rstrip("/")
        self.overrides = dict(signals or {})
        self.nodes: dict[str, _Node] = {}
        self.rejected: Counter[str] = Counter()
        self.messages = 0
        self.historical = 0

    # -- naming --------------------------------------------------------------------------------

    def signal(self, node: str, device: str | None, metric: str) -> str:
        key = f"{node}/{device or ''}/{metric}"
        if key in self.overrides:
            return self.overrides[key]
        parts = [_part(p) for p in metric.split("/")]
        return "/".join([self.prefix, _part(device or node), *parts])

    def _reject(self, reason: str, n: int, detail: str) -> None:
        self.rejected[reason] += n
        log.warning("sparkplug: %s (%d): %s", reason, n, detail)

    # -- messages ------------------------------------------------------------------------------

    def handle(self, topic: str, data: bytes, now_us: int) -> tuple[SampleBatch, list[Command]]:
        """Samples and commands for one message."""
        self.messages += 1
        parts = topic.split("/")
        if len(parts) < 4 or parts[0] != NAMESPACE or parts[1] != self.group:
            if not (len(parts) >= 2 and parts[1] == "STATE"):
                self._reject("bad_topic", 1, topic)
            return SampleBatch.empty(), []
        kind, node_id = parts[2], parts[3]
        device = parts[4] if len(parts) > 4 else None
        if kind in ("NCMD", "DCMD"):
            return SampleBatch.empty(), []
        try:
            payload = decode_payload(data)
        except PayloadError as exc:
            self._reject(exc.reason, 1, f"{topic}: {exc}")
            return SampleBatch.empty(), self._on_gap(node_id, now_us, ask=kind != "NDEATH")
        node = self.nodes.setdefault(node_id, _Node())
        if payload.uuid == COMPRESSED_UUID:
            inflated = self._inflate(topic, payload)
            if inflated is None:
                node.resync = True
                return SampleBatch.empty(), []
            payload = inflated
        if kind == "NBIRTH":
            return self._nbirth(node_id, node, payload, now_us), []
        if kind == "NDEATH":
            return self._ndeath(node_id, node, payload, now_us), []
        if node.stale:
            self._reject("before_birth", len(payload.metrics), f"{topic}: node has no valid birth")
            return SampleBatch.empty(), self._on_gap(node_id, now_us)
        if payload.seq is None:
            self._reject("missing_seq", len(payload.metrics), f"{topic}: no seq in {kind}")
            node.stale = True
            return SampleBatch.empty(), self._on_gap(node_id, now_us)
        if not self._seq_ok(node, payload):
            self._reject("seq_gap", len(payload.metrics), f"{topic}: seq {payload.seq}")
            node.stale = True
            return SampleBatch.empty(), self._on_gap(node_id, now_us)
        if kind == "DBIRTH" and device is not None:
            dev = _Device(alive=True)
            node.devices[device] = dev
            self._learn(dev, payload)
            return self._samples(node_id, device, dev, payload, now_us), []
        if kind == "DDEATH" and device is not None:
            dev = node.devices.get(device, _Device())
            dev.alive = False
            return self._death(node_id, device, dev, payload.timestamp, now_us), []
        if kind == "NDATA":
            return self._samples(node_id, None, node.node, payload, now_us), []
        if kind == "DDATA" and device is not None:
            dev_or_none = node.devices.get(device)
            if dev_or_none is None or not dev_or_none.alive:
                self._reject("before_birth", len(payload.metrics), f"{topic}: device not born")
                node.stale = True
                return SampleBatch.empty(), self._on_gap(node_id, now_us)
            return self._samples(node_id, device, dev_or_none, payload, now_us), []
        self._reject("bad_topic", 1, topic)
        return SampleBatch.empty(), []

    def _seq_ok(self, node: _Node, payload: Payload) -> bool:
        if payload.seq is None or not 0 <= payload.seq <= 255:
            return False
        expected = 0 if node.seq is None else (node.seq + 1) % 256
        node.seq = payload.seq
        if node.resync:
            node.resync = False
            return True
        return payload.seq == expected

    def _inflate(self, topic: str, payload: Payload) -> Payload | None:
        """The payload inside a compressed one, or None (counted) when it cannot be read."""
        algo = next((m.value for m in payload.metrics if m.name == "algorithm"), "DEFLATE")
        algo = str(algo).upper()
        if algo not in ("DEFLATE", "GZIP"):
            self._reject("unsupported_compression", 1, f"{topic}: algorithm {algo!r}")
            return None
        try:
            if algo == "GZIP":
                with gzip.GzipFile(fileobj=_io.BytesIO(payload.body or b"")) as f:
                    raw = f.read(_MAX_INFLATED + 1)
            else:
                d = zlib.decompressobj()
                raw = d.decompress(payload.body or b"", _MAX_INFLATED + 1)
            if len(raw) > _MAX_INFLATED:
                self._reject("compressed_too_large", 1, f"{topic}: over {_MAX_INFLATED} bytes")
                return None
            return decode_payload(raw)
        except (OSError, EOFError, zlib.error) as exc:
            self._reject("bad_compression", 1, f"{topic}: {algo}: {exc}")
        except PayloadError as exc:
            self._reject(exc.reason, 1, f"{topic} (inside {algo}): {exc}")
        return None

    def _on_gap(self, node_id: str, now_us: int, ask: bool = True) -> list[Command]:
        node = self.nodes.setdefault(node_id, _Node())
        node.stale = True
        if not ask or node.rebirth_asked:
            return []
        node.rebirth_asked = True
        topic = f"{NAMESPACE}/{self.group}/NCMD/{node_id}"
        return [Command(topic, rebirth_payload(now_us // 1000))]

    def _learn(self, dev: _Device, payload: Payload) -> None:
        for m in payload.metrics:
            if m.name is None:
                continue
            if m.alias is not None:
                dev.names[m.alias] = m.name
            if m.datatype is not None:
                dev.types[m.name] = m.datatype

    def _nbirth(self, node_id: str, node: _Node, payload: Payload, now_us: int) -> SampleBatch:
        bd = next((m.value for m in payload.metrics if m.name == "bdSeq"), None)
        if payload.seq != 0 or not isinstance(bd, int):
            self._reject("bad_birth", 1, f"NBIRTH of {node_id}: seq {payload.seq}, bdSeq {bd!r}")
            return SampleBatch.empty()
        node.bd_seq, node.seq, node.stale, node.rebirth_asked = bd, 0, False, False
        node.node = _Device(alive=True)
        node.devices = {}
        self._learn(node.node, payload)
        metrics = [m for m in payload.metrics if m.name != "bdSeq"]
        return self._samples(node_id, None, node.node, Payload(payload.timestamp, metrics), now_us)

    def _ndeath(self, node_id: str, node: _Node, payload: Payload, now_us: int) -> SampleBatch:
        bd = next((m.value for m in payload.metrics if m.name == "bdSeq"), None)
        if node.bd_seq is None or bd != node.bd_seq:
            self._reject("stale_death", 1, f"NDEATH of {node_id} with bdSeq {bd!r}")
            return SampleBatch.empty()
        node.stale = True
        # the will's timestamp is when it was registered: never earlier than the arrival
        ts_ms = max(payload.timestamp or 0, now_us // 1000)
        batches = [self._death(node_id, None, node.node, ts_ms, now_us)]
        for name, dev in node.devices.items():
            batches.append(self._death(node_id, name, dev, ts_ms, now_us))
            dev.alive = False
        return SampleBatch.concat(batches)

    def _death(
        self, node_id: str, device: str | None, dev: _Device, ts_ms: int | None, now_us: int
    ) -> SampleBatch:
        names: list[str] = []
        texts: list[str] = []
        for n, t in dev.types.items():
            if n != "bdSeq" and not n.startswith("Node Control/"):
                (texts if t in _TEXT_TYPES else names).append(self.signal(node_id, device, n))
        ts = now_us if ts_ms is None else ts_ms * 1000
        k, j = len(names), len(texts)
        text = TextBatch.build(texts, range(j), [ts] * j, [""] * j, [Quality.BAD] * j)
        return SampleBatch.build(
            names,
            np.arange(k),
            np.full(k, ts),
            np.full(k, math.nan),
            np.full(k, Quality.BAD),
            text=text,
        )

    def _samples(
        self, node_id: str, device: str | None, dev: _Device, payload: Payload, now_us: int
    ) -> SampleBatch:
        names: dict[str, int] = {}
        idx: list[int] = []
        ts: list[int] = []
        val: list[float] = []
        qual: list[int] = []
        t_names: dict[str, int] = {}
        t_rows: list[tuple[int, int, str, int]] = []  # (name code, ts, text, quality)
        for m in payload.metrics:
            name = m.name if m.name is not None else dev.names.get(m.alias or -1)
            if name is None:
                self._reject("unknown_alias", 1, f"{node_id}/{device}: alias {m.alias}")
                continue
            if name.startswith("Node Control/") or name.startswith("Properties/"):
                continue
            dtype = m.datatype if m.datatype is not None else dev.types.get(name)
            is_text = dtype in _TEXT_TYPES or isinstance(m.value, str)
            if isinstance(m.value, bytes):
                self._reject("unsupported_type", 1, f"{name!r}: datatype {dtype}")
                continue
            bits = _SIGNED_BITS.get(dtype or 0)
            if bits and m.datatype is None and type(m.value) is int:
                # by alias only: the decoder did not know the type; the birth does
                m.value = _signed(m.value, bits)
            t_ms = m.timestamp if m.timestamp is not None else payload.timestamp
            t_us = now_us if t_ms is None else t_ms * 1000
            if not now_us - _MAX_PAST_US <= t_us <= now_us + _MAX_FUTURE_US:
                self._reject("bad_timestamp", 1, f"{name}: {t_ms} ms")
                continue
            if is_text:
                text = m.value if isinstance(m.value, str) else None
                if m.is_historical:
                    self.historical += 1
                code = t_names.setdefault(self.signal(node_id, device, name), len(t_names))
                if text is None and not (m.is_null or m.value is None):
                    self._reject("wrong_type", 1, f"{name!r}: {type(m.value).__name__} as text")
                    continue
                t_rows.append(
                    (code, t_us, text or "", Quality.BAD if text is None else Quality.GOOD)
                )
                continue
            if m.is_null or m.value is None:
                v, q = math.nan, Quality.BAD
            else:
                v = float(m.value)
                q = Quality.GOOD
                if not math.isfinite(v):
                    self._reject("non_finite_value", 1, f"{name}: {v!r}")
                    continue
            if m.is_historical:
                self.historical += 1
            idx.append(names.setdefault(self.signal(node_id, device, name), len(names)))
            ts.append(t_us)
            val.append(v)
            qual.append(q)
        texts = None
        if t_rows:
            c, t, v_, q_ = zip(*t_rows, strict=True)
            texts = TextBatch.build(list(t_names), c, t, v_, q_)
        if not idx and texts is None:
            return SampleBatch.empty()
        return SampleBatch.build(list(names), idx, ts, val, qual, text=texts)
