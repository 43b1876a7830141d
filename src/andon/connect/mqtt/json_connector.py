"""The MQTT JSON connector (see the package docstring)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Literal

import aiomqtt
from pydantic import BaseModel, ConfigDict, Field

from andon.connect.base import Health, Manifest
from andon.model.clock import wall_clock
from andon.model.types import Micros, Quality, SampleBatch, TextBatch, to_micros
from andon.wire.net import Backoff, describe_connect_error, mqtt_client, tls_context

__all__ = ["MANIFEST", "MqttJsonConfig", "MqttJsonConnector", "TopicMap", "extract"]

log = logging.getLogger("andon.connect.mqtt")

MANIFEST = Manifest(
    domain="mqtt_json",
    name="MQTT (JSON)",
    protocol="mqtt",
    requirements=("aiomqtt>=2.3",),
    iot_class="local_push",
)

_MAX_PAST_US = 366 * 86_400 * 1_000_000
_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1}


class TopicMap(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    filter: str = Field(min_length=1)
    signal: str = Field(min_length=1)
    value: str = "value"
    timestamp: str | None = None
    timestamp_unit: Literal["s", "ms", "us", "iso"] = "ms"
    kind: Literal["auto", "number", "text"] = Field(
        "auto",
        description="auto: numbers (booleans as 0/1) are samples, strings text values; "
        "number: a string is refused (wrong_type); text: strings and numbers are text values "
        "(decision 0202)",
    )


class MqttJsonConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    host: str = "127.0.0.1"
    port: int = Field(1883, gt=0, lt=65536)
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = Field(None, description="CA to verify the broker (default: system)")
    cert_file: str | None = None
    key_file: str | None = None
    topics: list[TopicMap] = Field(min_length=1)
    future_tolerance_s: float = Field(
        43_200.0,
        ge=0,
        description="refuse a device timestamp this far ahead of the edge's clock (a wrong "
        "unit, not a slow edge clock: the platform bounds the future by its own clock)",
    )


class _Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def extract(doc: object, path: str) -> object:
    """The value at a dotted ``path`` (list indices as numbers).

    >>> extract({"data": {"v": [1, 2.5]}}, "data.v.1")
    2.5
    """
    cur = doc
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise _Refused("missing_field", f"no {path!r} in the document")
    return cur


def _matches(filt: str, topic: str) -> bool:
    f, t = filt.split("/"), topic.split("/")
    for i, part in enumerate(f):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(f) == len(t)


class MqttJsonConnector:
    manifest = MANIFEST

    def __init__(self, config: MqttJsonConfig, clock: Callable[[], Micros] = wall_clock) -> None:
        self.config = config
        self.clock = clock
        """The edge's clock (µs): the stamp of a sample without its own timestamp."""
        self.name = config.name
        self.health = Health(config.name)
        self.tls = (
            tls_context(config.ca_file, config.cert_file, config.key_file) if config.tls else None
        )

    def sample(
        self, m: TopicMap, topic: str, data: bytes, now_us: int
    ) -> tuple[str, int, float | str]:
        """``(signal, ts, value)`` of one message, ``value`` a ``str`` for a text value;
        raises ``_Refused`` with a reason."""
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, ValueError):
            raise _Refused("malformed_json", f"{topic}: not JSON") from None
        raw = extract(doc, m.value)
        value: float | str
        if isinstance(raw, str) and m.kind != "number":
            value = raw
        elif m.kind == "text" and isinstance(raw, int | float) and not isinstance(raw, bool):
            value = json.dumps(raw)  # the number's JSON text, as the device wrote it
        elif isinstance(raw, bool) and m.kind == "auto":
            value = float(raw)
        elif isinstance(raw, bool) or not isinstance(raw, int | float) or m.kind == "text":
            raise _Refused("wrong_type", f"{topic}: {m.value} is {type(raw).__name__}")
        else:
            value = float(raw)
            if not math.isfinite(value):
                raise _Refused("non_finite_value", f"{topic}: {raw!r}")
        ts = now_us
        if m.timestamp is not None:
            t = extract(doc, m.timestamp)
            try:
                if m.timestamp_unit == "iso":
                    ts = to_micros(datetime.fromisoformat(str(t)))
                elif isinstance(t, int | float) and not isinstance(t, bool):
                    ts = int(t * _UNIT[m.timestamp_unit])
                else:
                    raise ValueError(t)
            except (ValueError, OverflowError):
                raise _Refused("bad_timestamp", f"{topic}: {t!r}") from None
            ahead_us = int(self.config.future_tolerance_s * 1e6)
            if not now_us - _MAX_PAST_US <= ts <= now_us + ahead_us:
                raise _Refused("bad_timestamp", f"{topic}: {t!r} is too far from now")
        levels = topic.split("/")
        try:
            signal = m.signal.format(*levels)
        except (IndexError, KeyError, ValueError):
            raise _Refused("bad_topic", f"{topic} does not fill {m.signal!r}") from None
        return signal, ts, value

    async def batches(self, cursor: str | None) -> AsyncIterator[tuple[SampleBatch, str | None]]:
        cfg = self.config
        device = f"{cfg.host}:{cfg.port}"
        backoff = Backoff()
        connected_before = False
        tls = self.tls
        while True:
            try:
                async with mqtt_client(
                    cfg.host,
                    cfg.port,
                    username=cfg.username,
                    password=cfg.password,
                    tls_context=tls,
                    keepalive=10,
                ) as client:
                    if connected_before:
                        self.health.reconnected(device)
                    connected_before = True
                    backoff.reset()
                    for m in cfg.topics:
                        await client.subscribe(m.filter, qos=1)
                    self.health.device(device).connected = True
                    async for message in client.messages:
                        batch = self._handle(device, message)
                        if batch is not None:
                            yield batch, None
            except (aiomqtt.MqttError, OSError) as exc:
                why = describe_connect_error(exc)
                self.health.error(device, why)
                log.warning("mqtt %s: %s", cfg.name, why)
            await asyncio.sleep(backoff.next())

    def _handle(self, device: str, message: aiomqtt.Message) -> SampleBatch | None:
        t0 = time.monotonic()
        topic = str(message.topic)
        data = message.payload if isinstance(message.payload, bytes) else b""
        for m in self.config.topics:
            if not _matches(m.filter, topic):
                continue
            try:
                signal, ts, value = self.sample(m, topic, data, self.clock())
            except _Refused as exc:
                self.health.reject(device, exc.reason)
                log.warning("mqtt %s: %s: %s", self.name, exc.reason, exc)
                return None
            if isinstance(value, str):
                self.health.success(device, 1, time.monotonic() - t0, text_points=1)
                text = TextBatch.build([signal], [0], [ts], [value], [Quality.GOOD])
                return SampleBatch.build([], [], [], [], text=text)
            self.health.success(device, 1, time.monotonic() - t0)
            return SampleBatch.build([signal], [0], [ts], [value], [Quality.GOOD])
        return None
