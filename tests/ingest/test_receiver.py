"""The gateway's MQTT receiver stops at once when cancelled, even while the broker does not
answer (how ``andon serve`` shuts down, and how tests cut the platform)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from andon.connect.base import within
from andon.ingest import Ingestor
from andon.ingest.gateway import IngestGateway, StaticKeys, StaticSites
from andon.ingest.mqtt import MqttReceiver, ReceiverConfig
from andon.store.duckdb_store import DuckDBStore
from tests.edge.broker import Broker


def test_a_receiver_stops_at_once_when_the_broker_hangs(tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    broker.start()

    async def go() -> None:
        store = DuckDBStore.open(None)
        gateway = IngestGateway(Ingestor(store), StaticKeys({}), StaticSites({}))
        receiver = MqttReceiver(gateway, ReceiverConfig(port=broker.port, workers=2))
        task = asyncio.create_task(receiver.run())
        try:
            await within(receiver.connected.wait(), 10)
            assert broker.proc is not None
            broker.proc.send_signal(signal.SIGSTOP)  # connected, but nobody answers
            task.cancel()
            await within(asyncio.gather(task, return_exceptions=True), 5)
            assert task.cancelled()
        finally:
            assert broker.proc is not None
            broker.proc.send_signal(signal.SIGCONT)
            await store.close()

    try:
        asyncio.run(go())
    finally:
        broker.close()
