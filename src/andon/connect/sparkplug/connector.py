"""The Sparkplug B host application as a connector: subscribes to a group over MQTT, keeps
the host state (``SparkplugHost``), publishes its STATE and rebirth requests."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

import aiomqtt
from pydantic import BaseModel, ConfigDict, Field

from andon.connect.base import Health, Manifest
from andon.connect.sparkplug.host import NAMESPACE, SparkplugHost
from andon.model.types import SampleBatch
from andon.wire.net import Backoff, describe_connect_error, mqtt_client, tls_context

__all__ = ["MANIFEST", "SparkplugConfig", "SparkplugConnector"]

log = logging.getLogger("andon.connect.sparkplug")

MANIFEST = Manifest(
    domain="sparkplug",
    name="MQTT Sparkplug B host application",
    protocol="mqtt-sparkplug-b",
    requirements=("aiomqtt>=2.3",),
    iot_class="local_push",
)


class SparkplugConfig(BaseModel):
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
    group: str = Field(min_length=1)
    host_id: str = Field("andon", min_length=1)
    prefix: str = Field(min_length=1)
    signals: dict[str, str] = Field(default_factory=dict)


class SparkplugConnector:
    """Yields the samples of every NBIRTH/DBIRTH/NDATA/DDATA/NDEATH/DDEATH of its group."""

    manifest = MANIFEST

    def __init__(self, config: SparkplugConfig) -> None:
        self.config = config
        self.name = config.name
        self.health = Health(config.name)
        self.host = SparkplugHost(config.group, config.prefix, config.signals)
        self.tls = (
            tls_context(config.ca_file, config.cert_file, config.key_file) if config.tls else None
        )

    def _state(self, online: bool) -> bytes:
        return json.dumps({"online": online, "timestamp": int(time.time() * 1000)}).encode()

    async def batches(self, cursor: str | None) -> AsyncIterator[tuple[SampleBatch, str | None]]:
        cfg = self.config
        state_topic = f"{NAMESPACE}/STATE/{cfg.host_id}"
        backoff = Backoff()
        connected_before = False
        device = f"{cfg.host}:{cfg.port}"
        while True:
            try:
                async with mqtt_client(
                    cfg.host,
                    cfg.port,
                    identifier=f"andon-spb-{cfg.host_id}-{cfg.name}",
                    username=cfg.username,
                    password=cfg.password,
                    tls_context=self.tls,
                    clean_session=True,
                    keepalive=10,
                    will=aiomqtt.Will(state_topic, self._state(False), qos=1, retain=True),
                ) as client:
                    if connected_before:
                        self.health.reconnected(device)
                    connected_before = True
                    backoff.reset()
                    await client.subscribe(f"{NAMESPACE}/{cfg.group}/#", qos=1)
                    await client.publish(state_topic, self._state(True), qos=1, retain=True)
                    self.health.device(device).connected = True
                    async for message in client.messages:
                        t0 = time.monotonic()
                        payload = message.payload
                        data = payload if isinstance(payload, bytes) else b""
                        batch, commands = self.host.handle(
                            str(message.topic), data, time.time_ns() // 1000
                        )
                        for cmd in commands:
                            await client.publish(cmd.topic, cmd.payload, qos=0)
                        self.health.success(
                            device,
                            len(batch) + batch.text_points,
                            time.monotonic() - t0,
                            batch.text_points,
                        )
                        self.health.device(device).rejected = dict(self.host.rejected)
                        if len(batch) or batch.text is not None:
                            yield batch, None
            except (aiomqtt.MqttError, OSError) as exc:
                why = describe_connect_error(exc)
                self.health.error(device, why)
                log.warning("sparkplug %s: %s", cfg.name, why)
            await asyncio.sleep(backoff.next())
