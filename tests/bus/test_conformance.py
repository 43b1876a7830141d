"""One conformance suite for every ``LiveBus`` implementation (``andon.bus.base``): the
in-process bus always, NATS against the server on 127.0.0.1:4222 (``scripts/services.sh``
starts it; skipped, saying so, only when it cannot be reached)."""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import Awaitable, Callable

import pytest

from andon.bus import (
    AlertChanged,
    CodecError,
    InProcessBus,
    LiveBus,
    PartsCounted,
    Payload,
    SignalValue,
    StateChanged,
    ValuesChanged,
    decode,
    encode,
    open_bus,
    values_topic,
)

NATS_URL = "nats://127.0.0.1:4222"


def _reachable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


Body = Callable[[LiveBus], Awaitable[None]]


@pytest.fixture(params=["inprocess", "nats"])
def run(request: pytest.FixtureRequest) -> Callable[[Body], None]:
    """Runs a test body against a fresh bus of the parameter's kind (``asyncio.run``, as
    every suite here: no pytest-asyncio), closing it after."""
    kind = request.param
    if kind == "nats" and not _reachable(4222):
        pytest.skip("NATS is not reachable on 127.0.0.1:4222 (scripts/services.sh starts it)")

    def go(body: Body) -> None:
        async def main() -> None:
            b = await open_bus(kind, NATS_URL if kind == "nats" else None)
            try:
                await asyncio.wait_for(body(b), 20)
            finally:
                await b.close()

        asyncio.run(main())

    return go


EVENTS: list[Payload] = [
    ValuesChanged((SignalValue("s/a/l/m/t", 1_700_000_000_000_000, 21.5, 0),)),
    ValuesChanged((SignalValue("s/x", 1, math.nan, 2), SignalValue("s/y", 2, -3.0, 1))),
    StateChanged("s/a/l/m", 2, 1_700_000_000_000_000, "jam"),
    StateChanged("s/a/l/m", 0, 5, "", 9),
    PartsCounted("s/a/l/m", 7, 3, 1),
    AlertChanged("al_1", "acknowledged", 8, "s/a/l/m"),
    AlertChanged("al_2", "open", 8),
    b"\x00raw\xff",
]


async def _next(sub, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    msg = await sub.next(timeout)
    assert msg is not None, f"nothing arrived within {timeout} s"
    return msg


def _same(a: object, b: object) -> bool:
    if isinstance(a, ValuesChanged) and isinstance(b, ValuesChanged):
        return len(a.values) == len(b.values) and all(
            x.signal == y.signal
            and x.ts == y.ts
            and x.quality == y.quality
            and (x.value == y.value or (math.isnan(x.value) and math.isnan(y.value)))
            for x, y in zip(a.values, b.values, strict=True)
        )
    return a == b


def test_every_event_arrives_in_order_and_intact(run: Callable[[Body], None]) -> None:
    async def body(bus: LiveBus) -> None:
        async with bus.subscribe("t1", ("site", "*", ">")) as sub:
            for i, ev in enumerate(EVENTS):
                await bus.publish("t1", ("site", "k", f"e{i}"), ev)
            for i, ev in enumerate(EVENTS):
                msg = await _next(sub)
                assert msg.tenant == "t1"
                assert msg.topic == ("site", "k", f"e{i}")
                assert _same(msg.payload, ev), (msg.payload, ev)
        assert bus.stats().published >= len(EVENTS)

    run(body)


def test_patterns_select_topics(run: Callable[[Body], None]) -> None:
    async def body(bus: LiveBus) -> None:
        async with (
            bus.subscribe("t1", values_topic("s.1")) as exact,
            bus.subscribe("t1", ("site", "*", "states")) as star,
        ):
            await bus.publish("t1", values_topic("s.2"), b"other site")
            await bus.publish("t1", ("site", "s.1", "states"), b"state")
            await bus.publish("t1", values_topic("s.1"), b"mine")
            assert (await _next(exact)).payload == b"mine"
            assert (await _next(star)).payload == b"state"
            # nothing else was queued for either (the later message arrived, the earlier did not)
            assert exact.pending() == 0 and star.pending() == 0

    run(body)


def test_a_tenant_never_receives_another_tenants_messages(run: Callable[[Body], None]) -> None:
    async def body(bus: LiveBus) -> None:
        # names that would be wildcards or separators on a broker are names, not patterns
        async with (
            bus.subscribe("t1", (">",)) as t1,
            bus.subscribe("t1.x", (">",)) as dotted,
            bus.subscribe("*", (">",)) as star,
        ):
            for tenant in ("t2", "t1.x", "*", ">", "t1%2Ex"):
                await bus.publish(tenant, ("site", "k", "values"), tenant.encode())
            await bus.publish("t1", ("site", "k", "values"), b"t1")
            assert (await _next(t1)).payload == b"t1"
            assert (await _next(dotted)).payload == b"t1.x"
            assert (await _next(star)).payload == b"*"
            # the last message of t1 arrived after every other tenant's: none of those came
            assert t1.pending() == 0
            assert dotted.pending() == 0
            assert star.pending() == 0
            assert t1.stats.received == 1 and dotted.stats.received == 1

    run(body)


def test_a_slow_subscriber_drops_its_oldest_counted_publisher_never_waits(
    run: Callable[[Body], None],
) -> None:
    async def body(bus: LiveBus) -> None:
        async with (
            bus.subscribe("t1", (">",), max_queue=3) as slow,
            bus.subscribe("t1", (">",)) as fast,
        ):
            for i in range(10):  # nobody reads: publish must not wait
                await asyncio.wait_for(bus.publish("t1", ("n",), str(i).encode()), 2.0)
            got_fast = [(await _next(fast)).payload for _ in range(10)]
            assert got_fast == [str(i).encode() for i in range(10)]
            # every message reached the slow one's queue (the fast one saw the last), which
            # kept the newest three and counted the seven it dropped
            # a broker delivers to each subscription on its own: wait for all ten to arrive
            deadline = asyncio.get_running_loop().time() + 5
            while slow.stats.received < 10 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            got = [(await _next(slow)).payload for _ in range(3)]
            assert got == [b"7", b"8", b"9"]
            assert slow.stats.dropped == 7 and slow.stats.received == 10
            assert fast.stats.dropped == 0
            stats = bus.stats()
            assert stats.dropped >= 7
            mine = [s for s in stats.subscribers if s is slow.stats]
            assert mine and mine[0].dropped == 7

    run(body)


def test_close_ends_subscriptions(run: Callable[[Body], None]) -> None:
    async def body(bus: LiveBus) -> None:
        async with bus.subscribe("t1", (">",)) as sub:
            await bus.publish("t1", ("a",), b"last")
            assert (await _next(sub)).payload == b"last"
            await bus.close()
            assert await asyncio.wait_for(sub.next(), 2.0) is None
            assert [m async for m in sub] == []
        with pytest.raises(RuntimeError, match="closed"):
            await bus.publish("t1", ("a",), b"x")

    run(body)


def test_unsubscribed_gets_nothing_and_leaves_the_stats(run: Callable[[Body], None]) -> None:
    async def body(bus: LiveBus) -> None:
        async with bus.subscribe("t1", (">",)) as sub:
            assert any(s is sub.stats for s in bus.stats().subscribers)
        assert not any(s is sub.stats for s in bus.stats().subscribers)
        await bus.publish("t1", ("a",), b"x")
        assert sub.pending() == 0

    run(body)


@pytest.mark.parametrize(
    ("topic", "match"),
    [((), "empty"), (("a", ""), "token 1"), (("a", "*"), "wildcard"), (("a", ">"), "wildcard")],
)
def test_bad_topics_are_refused_naming_the_token(
    run: Callable[[Body], None], topic: tuple[str, ...], match: str
) -> None:
    async def body(bus: LiveBus) -> None:
        with pytest.raises(ValueError, match=match):
            await bus.publish("t1", topic, b"x")

    run(body)


def test_bad_patterns_and_tenants_are_refused(run: Callable[[Body], None]) -> None:
    async def body(bus: LiveBus) -> None:
        with pytest.raises(ValueError, match="last token"):
            async with bus.subscribe("t1", (">", "a")):
                pass
        with pytest.raises(ValueError, match="tenant"):
            async with bus.subscribe("", (">",)):
                pass
        with pytest.raises(ValueError, match="tenant"):
            await bus.publish("", ("a",), b"x")

    run(body)


def test_two_connections_share_one_broker_bus() -> None:
    asyncio.run(_two_connections())


async def _two_connections() -> None:
    """Broker-backed only: a second process (here: connection) sees the first's events."""
    if not _reachable(4222):
        pytest.skip("NATS is not reachable on 127.0.0.1:4222 (scripts/services.sh starts it)")
    a = await open_bus("nats", NATS_URL)
    b = await open_bus("nats", NATS_URL)
    try:
        async with b.subscribe("t1", values_topic("k")) as sub:
            ev = ValuesChanged((SignalValue("k/s", 5, 1.0, 0),))
            await a.publish("t1", values_topic("k"), ev)
            assert (await _next(sub)).payload == ev
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"nope", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"v": 2, "type": "values"}', "version"),
        (b'{"v": 1, "type": "zap"}', "type 'zap'"),
        (b'{"v": 1, "type": "values", "values": [[1, 2, 3, 4]]}', "bad row"),
        (b'{"v": 1, "type": "state", "machine": "m", "state": "x"}', "'state'"),
        (b'{"v": 1, "type": "bytes", "b64": "!!"}', "b64"),
    ],
)
def test_codec_refuses_what_it_does_not_write(data: bytes, match: str) -> None:
    with pytest.raises(CodecError, match=match):
        decode(data)


def test_codec_round_trips_every_event() -> None:
    for ev in EVENTS:
        assert _same(decode(encode(ev)), ev)


def test_in_process_bus_refuses_other_payloads() -> None:
    with pytest.raises(TypeError, match="not a bus payload"):
        asyncio.run(InProcessBus().publish("t", ("a",), {"a": 1}))  # type: ignore[arg-type]
