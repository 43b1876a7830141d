"""The ingest gateway on its own (no broker): who is authenticated, which site and tenant a
frame may write, who gets an answer, and that a resent frame is stored once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from andon.connect.counting import DEFAULT_START, counter_batch
from andon.ingest import Ingestor
from andon.ingest.gateway import (
    EdgeIdentity,
    IngestGateway,
    OutsideSite,
    Refusal,
    SiteRef,
    StaticKeys,
    StaticSites,
)
from andon.model.types import SampleBatch
from andon.store.duckdb_store import DuckDBStore
from andon.wire.frames import encode_frame

A_ID, B_ID, C_ID = "a" * 32, "b" * 32, "c" * 32
KEY_A = f"andon_{A_ID}_secret-a"  # tenant t1, site s1 only
KEY_B = f"andon_{B_ID}_secret-b"  # tenant t2, every site
KEY_C = f"andon_{C_ID}_secret-c"  # tenant t1, every site
S1 = tuple(f"s1/area/line/m/x{i}" for i in range(3))
S2 = tuple(f"s2/area/line/m/x{i}" for i in range(3))


class World:
    def __init__(self) -> None:
        self.store = DuckDBStore.open(None)
        self.ingestor = Ingestor(self.store)
        self.ingestor.register("t1", S1 + S2, [])
        self.ingestor.register("t2", S1, [])
        self.keys = StaticKeys(
            {
                KEY_A: EdgeIdentity(A_ID, "t1", frozenset({"site-1"})),
                KEY_B: EdgeIdentity(B_ID, "t2"),
                KEY_C: EdgeIdentity(C_ID, "t1"),
            }
        )
        sites = StaticSites({"t1": {"s1": "site-1", "s2": "site-2"}, "t2": {"s9": "site-9"}})
        self.now = 0.0
        self.gateway = IngestGateway(
            self.ingestor, self.keys, sites, key_cache_s=2.0, monotonic=lambda: self.now
        )
        self.refusals: list[Refusal] = []

        async def note(r: Refusal) -> None:
            self.refusals.append(r)

        self.gateway.on_refused = note


@pytest.fixture
def w() -> Iterator[World]:
    world = World()
    yield world
    asyncio.run(world.store.close())


def frame(key: str, names: tuple[str, ...], seq: int = 1, historical: bool = False) -> bytes:
    batch = counter_batch(names, 0, 30, DEFAULT_START, 1000)
    return encode_frame("edge-1", key, "gen", seq, DEFAULT_START, historical, batch)


def test_a_frame_is_stored_once_and_acknowledged_on_its_keys_topic(w: World) -> None:
    async def go() -> None:
        f = frame(KEY_A, S1, historical=True)
        first = await w.gateway.frames([(A_ID, f)])
        assert (first.accepted, first.duplicates, first.refused) == (30, 0, [])
        assert [(a.seq, a.status) for a in first.acks[A_ID]] == [(1, "ok")]
        # resent after a lost acknowledgement: acknowledged again, stored once (0308)
        again = await w.gateway.frames([(A_ID, f), (A_ID, f)])
        assert (again.accepted, again.duplicates) == (0, 60)
        assert [a.status for a in again.acks[A_ID]] == ["ok", "ok"]
        got = await w.store.read("t1", list(S1), 0, 2**62)
        assert len(got) == 30
        assert w.gateway.stats.points_historical == 90

    asyncio.run(go())


@pytest.mark.parametrize(
    ("topic", "key", "reason", "answered"),
    [
        (A_ID, f"andon_{A_ID}_wrong", "bad_secret", False),
        ("d" * 32, f"andon_{'d' * 32}_x", "unknown_key", False),
        (A_ID, "a-static-token", "not_a_platform_key", False),
        (C_ID, KEY_A, "topic_mismatch", False),  # the right key on another edge's topic
    ],
)
def test_who_proves_nothing_gets_no_answer(
    w: World, topic: str, key: str, reason: str, answered: bool
) -> None:
    async def go() -> None:
        res = await w.gateway.frames([(topic, frame(key, S1))])
        assert res.refused == [reason] and res.acks == {} and res.accepted == 0
        assert w.ingestor.stats.rejected[reason] == 30
        assert w.refusals == []
        assert len(await w.store.read("t1", list(S1), 0, 2**62)) == 0

    asyncio.run(go())


def test_another_site_or_tenant_is_refused_answered_and_reported(w: World) -> None:
    async def go() -> None:
        # key A may write site 1 only
        res = await w.gateway.frames([(A_ID, frame(KEY_A, S2))])
        assert res.refused == ["site_not_permitted"]
        assert [(a.status, a.reason) for a in res.acks[A_ID]] == [("refused", "site_not_permitted")]
        # key B's tenant has no site s1: t1's site is not reachable from t2
        res = await w.gateway.frames([(B_ID, frame(KEY_B, S1))])
        assert res.refused == ["unknown_site"] and res.acks[B_ID][0].status == "refused"
        # names of two sites in one frame
        mixed = SampleBatch.concat(
            [counter_batch(S1, 0, 3, DEFAULT_START, 1), counter_batch(S2, 0, 3, DEFAULT_START, 1)]
        )
        raw = encode_frame("edge-1", KEY_C, "gen", 2, 0, False, mixed)
        res = await w.gateway.frames([(C_ID, raw)])
        assert res.refused == ["names_outside_site"]
        assert [(r.tenant, r.key_id, r.reason) for r in w.refusals] == [
            ("t1", A_ID, "site_not_permitted"),
            ("t2", B_ID, "unknown_site"),
            ("t1", C_ID, "names_outside_site"),
        ]
        assert len(await w.store.read("t1", list(S1 + S2), 0, 2**62)) == 0
        assert len(await w.store.read("t2", list(S1), 0, 2**62)) == 0

    asyncio.run(go())


def test_a_revoked_key_is_refused_once_its_cached_check_expires(w: World) -> None:
    async def go() -> None:
        assert (await w.gateway.frames([(A_ID, frame(KEY_A, S1, 1))])).accepted == 30
        w.keys.revoke(A_ID)
        w.now = 1.0  # within key_cache_s: the cached check still holds
        assert (await w.gateway.frames([(A_ID, frame(KEY_A, S1, 2))])).refused == []
        w.now = 2.5
        res = await w.gateway.frames([(A_ID, frame(KEY_A, S1, 3))])
        assert res.refused == ["revoked_key"]
        assert [(a.seq, a.status) for a in res.acks[A_ID]] == [(3, "refused")]
        assert w.refusals[-1].reason == "revoked_key"

    asyncio.run(go())


def test_garbage_and_empty_frames(w: World) -> None:
    async def go() -> None:
        res = await w.gateway.frames([(A_ID, b"\x00garbage")])
        assert res.refused == ["malformed_frame"] and res.acks == {}
        empty = encode_frame("edge-1", KEY_A, "gen", 5, 0, False, SampleBatch.build([], [], [], []))
        res = await w.gateway.frames([(A_ID, empty)])
        assert res.refused == [] and [a.status for a in res.acks[A_ID]] == ["ok"]

    asyncio.run(go())


def test_columns_outside_the_site_store_nothing(w: World) -> None:
    async def go() -> None:
        site = SiteRef("site-1", "s1")
        good = counter_batch(S1, 0, 6, DEFAULT_START, 1000)
        bad = counter_batch(S2, 0, 6, DEFAULT_START, 1000)
        res = await w.gateway.columns("t1", site, samples=good)
        assert res.accepted == 6
        with pytest.raises(OutsideSite, match="s2/area"):
            await w.gateway.columns("t1", site, samples=bad)
        assert len(await w.store.read("t1", list(S2), 0, 2**62)) == 0

    asyncio.run(go())


def test_mqtt_frames_over_the_tenants_rate_limit_wait_for_their_resend(w: World) -> None:
    async def go() -> None:
        budget = {"t1": 40}

        def admit(tenant: str, points: int) -> float:
            if budget[tenant] < points:
                return 1.0
            budget[tenant] -= points
            return 0.0

        w.gateway.admit = admit
        f1, f2 = frame(KEY_A, S1, 1), frame(KEY_A, S1, 2)
        res = await w.gateway.frames([(A_ID, f1), (A_ID, f2)])
        # the first fits; the second gets no answer, so the edge sends it again later
        assert res.refused == ["rate_limited"] and [a.seq for a in res.acks[A_ID]] == [1]
        budget["t1"] = 30
        res = await w.gateway.frames([(A_ID, f2)])
        assert res.refused == [] and [a.seq for a in res.acks[A_ID]] == [2]
        # over HTTPS the API applies the limit itself (before the gateway)
        budget["t1"] = 0
        res = await w.gateway.frames([(None, f1)], bearer=EdgeIdentity(A_ID, "t1"))
        assert res.refused == []

    asyncio.run(go())
