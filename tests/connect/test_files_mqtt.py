"""CSV/Parquet import and the MQTT JSON mapping: values, refusals with reasons, resume."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from andon.connect.files import FileConfig, FileConnector
from andon.connect.mqtt import MqttJsonConfig, MqttJsonConnector, TopicMap
from andon.connect.mqtt.json_connector import _Refused
from andon.model.types import SampleBatch


def _collect(c: FileConnector, cursor: str | None) -> list[tuple[SampleBatch, str | None]]:
    async def go() -> list[tuple[SampleBatch, str | None]]:
        return [x async for x in c.batches(cursor)]

    return asyncio.run(go())


def test_csv_wide_with_refusals_and_resume(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(
        "time,T,P\n"
        "2026-01-01T00:00:00,20.5,1.0\n"
        "2026-01-01T00:00:01,x,2.0\n"
        "not-a-time,21.0,3.0\n"
        "2026-01-01T00:00:03,22.0,nan\n",
        encoding="utf-8",
    )
    (tmp_path / "b.csv").write_text("time,T,P\n2026-01-01T00:00:04,23.0,4.0\n", encoding="utf-8")
    cfg = FileConfig(
        name="hist",
        path=str(tmp_path / "*.csv"),
        timestamp="time",
        columns={"T": "s/a/t", "P": "s/a/p"},
        batch_rows=2,
    )
    c = FileConnector(cfg)
    out = _collect(c, None)
    merged = SampleBatch.concat([b for b, _ in out])
    rows = sorted(
        (merged.signal_at(i), int(merged.ts[i]), float(merged.value[i])) for i in range(len(merged))
    )
    t0 = 1_767_225_600_000_000
    assert rows == [
        ("s/a/p", t0, 1.0),
        ("s/a/p", t0 + 1_000_000, 2.0),
        ("s/a/p", t0 + 4_000_000, 4.0),
        ("s/a/t", t0, 20.5),
        ("s/a/t", t0 + 3_000_000, 22.0),
        ("s/a/t", t0 + 4_000_000, 23.0),
    ]
    rejected = c.health.device(str(tmp_path / "a.csv")).rejected
    assert rejected == {"bad_timestamp": 1, "not_a_number": 2}
    # resume from the cursor after the first batch: only the rest comes again
    first_cursor = out[0][1]
    assert first_cursor == f"{tmp_path / 'a.csv'}:2"
    again = SampleBatch.concat([b for b, _ in _collect(FileConnector(cfg), first_cursor)])
    assert len(again) == len(merged) - len(out[0][0])


def test_parquet_long_format(tmp_path: Path) -> None:
    pq.write_table(
        pa.table(
            {
                "ts": pa.array([1_767_225_600_000, 1_767_225_601_000, 1_767_225_602_000]),
                "tag": ["TT-101", "PT-7", "TT-101"],
                "value": [80.5, 2.0, 81.0],
            }
        ),
        tmp_path / "h.parquet",
    )
    c = FileConnector(
        FileConfig(
            name="hist",
            path=str(tmp_path / "*.parquet"),
            timestamp="ts",
            timestamp_unit="ms",
            signal_column="tag",
            value_column="value",
            signals={"TT-101": "s/oven/temp"},
        )
    )
    ((b, cursor),) = _collect(c, None)
    assert b.names == ("s/oven/temp",) and b.value.tolist() == [80.5, 81.0]
    assert cursor == f"{tmp_path / 'h.parquet'}:3"
    assert c.health.device(str(tmp_path / "h.parquet")).rejected == {"unknown_tag": 1}


def test_file_config_needs_one_layout() -> None:
    with pytest.raises(ValueError, match="either"):
        FileConfig(name="x", path="*.csv", timestamp="t")


NOW = 1_796_301_080_383_000  # fixed, so test ids are the same in every collection


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b'{"other": 1}', "missing_field"),
        (b'{"data": {"c": {"x": 1}}}', "wrong_type"),
        (b'{"data": {"c": [1]}}', "wrong_type"),
        (b'{"data": {"c": null}}', "wrong_type"),
        (b'{"data": {"c": NaN}}', "non_finite_value"),
        (json.dumps({"data": {"c": 1}, "ts": NOW // 1000 + 86_400_000}).encode(), "bad_timestamp"),
        (json.dumps({"data": {"c": 1}, "ts": 1000}).encode(), "bad_timestamp"),
        (json.dumps({"data": {"c": 1}, "ts": "yesterday"}).encode(), "bad_timestamp"),
    ],
)
def test_mqtt_json_refusals(payload: bytes, reason: str) -> None:
    m = TopicMap(filter="f/+/t", signal="s/{1}/t", value="data.c", timestamp="ts")
    c = MqttJsonConnector(MqttJsonConfig(name="j", topics=[m]))
    with pytest.raises(_Refused) as info:
        c.sample(m, "f/m1/t", payload, NOW)
    assert info.value.reason == reason


def test_mqtt_json_mapping() -> None:
    m = TopicMap(filter="f/+/t", signal="s/{1}/t", value="data.c", timestamp="ts")
    c = MqttJsonConnector(MqttJsonConfig(name="j", topics=[m]))
    ts_ms = NOW // 1000 - 5000
    got = c.sample(m, "f/m1/t", json.dumps({"data": {"c": 21.5}, "ts": ts_ms}).encode(), NOW)
    assert got == ("s/m1/t", ts_ms * 1000, 21.5)
    m2 = TopicMap(filter="g/#", signal="s/g", value="v")
    assert c.sample(m2, "g/x/y", b'{"v": 3}', NOW) == ("s/g", NOW, 3.0)


@pytest.mark.parametrize(
    ("kind", "raw", "want"),
    [
        ("auto", "ACTIVE — Ø12 ✓", "ACTIVE — Ø12 ✓"),  # a string travels as text, unchanged
        ("auto", "", ""),
        ("auto", True, 1.0),  # booleans are numbers 0/1
        ("auto", 2.5, 2.5),
        ("text", "READY", "READY"),
        ("text", 12, "12"),  # a number read as text: its JSON text
        ("number", 3, 3.0),
    ],
)
def test_mqtt_json_kinds(kind: str, raw: object, want: float | str) -> None:
    m = TopicMap.model_validate({"filter": "f/+/t", "signal": "s/{1}/t", "kind": kind})
    c = MqttJsonConnector(MqttJsonConfig(name="j", topics=[m]))
    assert c.sample(m, "f/m1/t", json.dumps({"value": raw}).encode(), NOW) == ("s/m1/t", NOW, want)


@pytest.mark.parametrize(("kind", "raw"), [("number", "hot"), ("number", True), ("text", False)])
def test_mqtt_json_kind_refusals(kind: str, raw: object) -> None:
    m = TopicMap.model_validate({"filter": "f/+/t", "signal": "s/{1}/t", "kind": kind})
    c = MqttJsonConnector(MqttJsonConfig(name="j", topics=[m]))
    with pytest.raises(_Refused) as info:
        c.sample(m, "f/m1/t", json.dumps({"value": raw}).encode(), NOW)
    assert info.value.reason == "wrong_type"


def test_mqtt_json_text_through_mosquitto(tmp_path: Path) -> None:
    """A string published on a real broker arrives as a text value, unchanged and counted."""
    import aiomqtt

    from tests.edge.broker import Broker

    broker = Broker(tmp_path)
    broker.start()
    m = TopicMap(filter="plant/+/program", signal="s/{1}/program")
    c = MqttJsonConnector(MqttJsonConfig(name="j", port=broker.port, topics=[m]))
    device = f"127.0.0.1:{broker.port}"

    async def go() -> list[tuple[str, str]]:
        got: list[tuple[str, str]] = []

        async def read() -> None:
            async for b, _ in c.batches(None):
                assert b.text is not None and len(b) == 0
                got.extend((b.text.signal_at(i), b.text.value[i]) for i in range(len(b.text)))

        async def until(what: str, pred: Callable[[], bool]) -> None:
            deadline = time.monotonic() + 10
            while not pred():
                assert time.monotonic() < deadline, what
                await asyncio.sleep(0.02)

        reader = asyncio.create_task(read())
        try:
            await until("the connector connects", lambda: c.health.device(device).connected)
            async with aiomqtt.Client("127.0.0.1", broker.port) as pub:
                for v in ("O1234 (ROUGH) Ø12", "O5678"):
                    await pub.publish("plant/m1/program", json.dumps({"value": v}), qos=1)
                await pub.publish("plant/m1/program", b'{"value": {"no": 1}}', qos=1)
            await until("two text values", lambda: len(got) >= 2)
            await until("the refusal counted", lambda: bool(c.health.device(device).rejected))
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        return got

    try:
        got = asyncio.run(go())
    finally:
        broker.close()
    assert got == [("s/m1/program", "O1234 (ROUGH) Ø12"), ("s/m1/program", "O5678")]
    d = c.health.device(device)
    assert (d.text_points, d.rejected) == (2, {"wrong_type": 1})
