"""Conformance suite for ``AppSink`` implementations (``andon.apps.sinks``).

Every test runs against every implementation through the ``impl`` fixture: ``MemorySink``
(the local runner and the test harness) and ``SqlAppRepository`` on SQLite and on
PostgreSQL (the platform; PostgreSQL on 127.0.0.1:5432, unreachable means failure). To check
another sink, add one entry to ``IMPLEMENTATIONS``: an async context manager yielding a
``Harness``, which besides the sink knows the read side each implementation has of its own
(``listed``: the findings kept for a site; ``orders``: the work orders; ``decide``: a
person's verdict as the findings inbox gives it).

The contract checked beyond ``sinks.py``'s docstrings: a finding or work order about a site
not in the grant is refused with ``Invalid`` (nothing kept); a state key must be 1..200
characters (``Invalid``) and a value JSON text (``ValueError``); the state cap counts keys
and values (``state_size``), an overwrite counts the new value only, and a refused write
leaves the old value; feedback comes back oldest first from ``since_us`` on (inclusive),
only the instance's own.

The metadata database is made and migrated once per backend for the module; each test has
its own tenants, sites and installations in it. Each test runs one coroutine with
``asyncio.run`` (no pytest-asyncio).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from sqlalchemy import insert

from andon.apps.grant import AppGrant
from andon.apps.repository import SqlAppRepository
from andon.apps.sinks import AppSink, MemorySink, StateLimitExceeded, state_size
from andon.platform import Database
from andon.platform.service import Invalid
from andon.platform.tables import app_installations, sites, tenants
from andon.sdk import Feedback, Finding, WorkOrder
from tests.platform.dbs import database_url

T0 = 1_700_000_000_000_000
MIN = 60_000_000
_ids = itertools.count()

VerdictT = Literal["confirmed", "rejected"]


@dataclass
class Harness:
    """One implementation under test, with the read side the protocol does not have."""

    sink: AppSink
    install: Callable[[str, tuple[str, ...]], Awaitable[AppGrant]]
    """A new installation: (tenant, its sites) → its grant (tenant and sites made as needed)."""
    listed: Callable[[str, str], Awaitable[list[dict[str, Any]]]]
    """(tenant, site) → the findings kept for it: id, instance_id, app_id, at_us, finding."""
    orders: Callable[[str, str], Awaitable[list[dict[str, Any]]]]
    """(tenant, site) → the work orders kept for it: id, instance_id, at_us, order."""
    decide: Callable[[AppGrant, str, str, VerdictT, str, int], Awaitable[None]]
    """(grant, site, finding id, verdict, comment, at_us): a person's verdict."""


def _grant(tenant: str, site_ids: tuple[str, ...]) -> AppGrant:
    return AppGrant(
        tenant,
        f"inst{next(_ids)}",
        "probe",
        "0.1.0",
        frozenset(site_ids),
        frozenset({"findings:write", "workorders:propose", "feedback:read"}),
    )


@contextlib.asynccontextmanager
async def _memory(_url: str | None) -> AsyncIterator[Harness]:
    sink = MemorySink()

    async def install(tenant: str, site_ids: tuple[str, ...]) -> AppGrant:
        return _grant(tenant, site_ids)

    async def listed(tenant: str, site: str) -> list[dict[str, Any]]:
        return [
            {
                "id": f.id,
                "instance_id": f.instance_id,
                "app_id": f.app_id,
                "at_us": f.at_us,
                "finding": f.finding,
            }
            for f in sink.findings
            if f.tenant_id == tenant and f.finding.site == site
        ]

    async def orders(tenant: str, site: str) -> list[dict[str, Any]]:
        return [
            {"id": w.id, "instance_id": w.instance_id, "at_us": w.at_us, "order": w.order}
            for w in sink.work_orders
            if w.tenant_id == tenant and w.order.site == site
        ]

    async def decide(
        g: AppGrant, site: str, fid: str, verdict: VerdictT, comment: str, at_us: int
    ) -> None:
        sink.add_feedback(g.instance_id, Feedback(fid, verdict, comment, "user:1", at_us))

    yield Harness(sink, install, listed, orders, decide)


@contextlib.asynccontextmanager
async def _sql(url: str | None) -> AsyncIterator[Harness]:
    assert url is not None
    db = Database(url)
    now = [T0]
    repo = SqlAppRepository(db, lambda: now[0])
    made: set[str] = set()

    async def install(tenant: str, site_ids: tuple[str, ...]) -> AppGrant:
        g = _grant(tenant, site_ids)
        async with db.begin() as conn:
            if tenant not in made:
                await conn.execute(insert(tenants).values(id=tenant, name=tenant, created_at=T0))
                made.add(tenant)
            for s in site_ids:
                if s not in made:
                    await conn.execute(
                        insert(sites).values(
                            id=s,
                            tenant_id=tenant,
                            key=s,
                            name=s,
                            model_yaml="",
                            created_at=T0,
                            updated_at=T0,
                        )
                    )
                    made.add(s)
            await conn.execute(
                insert(app_installations).values(
                    id=g.instance_id,
                    tenant_id=tenant,
                    app_id=g.app_id,
                    version=g.app_version,
                    site_ids=json.dumps(sorted(site_ids)),
                    settings="{}",
                    permissions=json.dumps(sorted(g.permissions)),
                    state="running",
                    installed_by="test",
                    installed_at=T0,
                    updated_at=T0,
                )
            )
        return g

    async def listed(tenant: str, site: str) -> list[dict[str, Any]]:
        rows = await repo.findings(tenant, site, limit=1000)
        return [
            {
                "id": r["id"],
                "instance_id": r["installation_id"],
                "app_id": r["app_id"],
                "at_us": r["created_at"],
                "finding": Finding(
                    type=r["type"],
                    site=r["site_id"],
                    machine=r["machine"],
                    start_us=r["start_us"],
                    end_us=r["end_us"],
                    score=r["score"],
                    title=r["title"],
                    explanation=r["explanation"],
                    signals=tuple(r["signals"]),
                    evidence=r["evidence"],
                ),
            }
            for r in rows
        ]

    async def orders(tenant: str, site: str) -> list[dict[str, Any]]:
        return [
            {
                "id": r["id"],
                "instance_id": r["installation_id"],
                "at_us": r["created_at"],
                "order": WorkOrder(
                    r["site_id"], r["machine"], r["title"], r["detail"], r["due_us"]
                ),
            }
            for r in await repo.work_orders(tenant, site)
        ]

    async def decide(
        g: AppGrant, site: str, fid: str, verdict: VerdictT, comment: str, at_us: int
    ) -> None:
        now[0] = at_us
        await repo.add_feedback(g.tenant_id, site, fid, verdict, comment, "user:1")

    try:
        yield Harness(repo, install, listed, orders, decide)
    finally:
        await db.close()


Factory = Callable[[str | None], contextlib.AbstractAsyncContextManager[Harness]]
IMPLEMENTATIONS: dict[str, tuple[Factory, str | None]] = {
    "memory": (_memory, None),
    "sql-sqlite": (_sql, "sqlite"),
    "sql-postgresql": (_sql, "postgresql"),
}


@dataclass(frozen=True)
class Impl:
    name: str
    factory: Factory
    url: str | None


@pytest.fixture(scope="module")
def _databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One migrated metadata database per backend, for the whole module."""
    tmp = tmp_path_factory.mktemp("sinks")
    with contextlib.ExitStack() as stack:
        urls: dict[str, str] = {}
        for backend in ("sqlite", "postgresql"):
            url = stack.enter_context(database_url(backend, tmp))

            async def migrate(u: str = url) -> None:
                db = Database(u)
                try:
                    await db.migrate()
                finally:
                    await db.close()

            asyncio.run(migrate())
            urls[backend] = url
        yield urls


@pytest.fixture(params=list(IMPLEMENTATIONS))
def impl(request: pytest.FixtureRequest) -> Impl:
    factory, backend = IMPLEMENTATIONS[request.param]
    url = None if backend is None else request.getfixturevalue("_databases")[backend]
    return Impl(request.param, factory, url)


def run(impl: Impl, scenario: Callable[[Harness], Awaitable[None]]) -> None:
    async def go() -> None:
        async with impl.factory(impl.url) as h:
            await scenario(h)

    asyncio.run(go())


def _tenant() -> str:
    return f"t{next(_ids)}"


def _site() -> str:
    return f"s{next(_ids)}"


def _finding(site: str, n: int = 0, **kw: Any) -> Finding:
    fields: dict[str, Any] = {
        "type": "idle_energy",
        "site": site,
        "machine": f"{site}/a/l1/m{n}",
        "start_us": T0 + n * MIN,
        "end_us": T0 + (n + 10) * MIN,
        "score": 0.25 + n / 100,
        "title": f"Finding {n}",
        "explanation": "Idle 3.2 kWh, 1.1 kWh avoidable — 閒置",
        "signals": (f"{site}/a/l1/m{n}/power",),
        "evidence": {"idle_kwh": 3.2, "n": n, "waits": [[1, 2, 0.5]], "note": "ü"},
    }
    fields.update(kw)
    return Finding(**fields)


# -- findings ---------------------------------------------------------------------------------


def test_findings_are_kept_whole_and_listed_per_site(impl: Impl) -> None:
    async def scenario(h: Harness) -> None:
        t, s1, s2 = _tenant(), _site(), _site()
        g = await h.install(t, (s1, s2))
        ids = [await h.sink.add_finding(g, _finding(s1, n), T0 + n) for n in range(3)]
        other = await h.sink.add_finding(g, _finding(s2, 7, machine=None, signals=()), T0 + 9)
        assert len({*ids, other}) == 4 and all(isinstance(i, str) and i for i in ids)
        got = {r["id"]: r for r in await h.listed(t, s1)}
        assert sorted(got) == sorted(ids)
        for n, fid in enumerate(ids):
            r = got[fid]
            assert r["finding"] == _finding(s1, n)
            assert (r["instance_id"], r["app_id"], r["at_us"]) == (g.instance_id, "probe", T0 + n)
        [r2] = await h.listed(t, s2)
        assert r2["id"] == other and r2["finding"] == _finding(s2, 7, machine=None, signals=())

    run(impl, scenario)


def test_findings_of_a_site_outside_the_grant_are_refused(impl: Impl) -> None:
    async def scenario(h: Harness) -> None:
        t, mine, theirs = _tenant(), _site(), _site()
        g = await h.install(t, (mine,))
        other = await h.install(t, (theirs,))  # a site of the same tenant, not granted to g
        with pytest.raises(Invalid, match="site"):
            await h.sink.add_finding(g, _finding(theirs), T0)
        with pytest.raises(Invalid, match="site"):
            await h.sink.add_work_order(g, WorkOrder(theirs, f"{theirs}/m", "x"), T0)
        assert await h.listed(t, theirs) == [] and await h.orders(t, theirs) == []
        assert other.site_ids == {theirs}

    run(impl, scenario)


def test_findings_of_tenants_and_instances_stay_apart(impl: Impl) -> None:
    async def scenario(h: Harness) -> None:
        ta, tb, sa, sb = _tenant(), _tenant(), _site(), _site()
        a1 = await h.install(ta, (sa,))
        a2 = await h.install(ta, (sa,))
        b = await h.install(tb, (sb,))
        f1 = await h.sink.add_finding(a1, _finding(sa, 1), T0)
        f2 = await h.sink.add_finding(a2, _finding(sa, 2), T0)
        fb = await h.sink.add_finding(b, _finding(sb, 3), T0)
        mine = {r["id"]: r["instance_id"] for r in await h.listed(ta, sa)}
        assert mine == {f1: a1.instance_id, f2: a2.instance_id}
        assert [r["id"] for r in await h.listed(tb, sb)] == [fb]
        assert await h.listed(tb, sa) == [] and await h.listed(ta, sb) == []

    run(impl, scenario)


# -- work orders ------------------------------------------------------------------------------


def test_work_orders_are_kept_per_site_and_tenant(impl: Impl) -> None:
    async def scenario(h: Harness) -> None:
        ta, tb, s1, s2 = _tenant(), _tenant(), _site(), _site()
        g = await h.install(ta, (s1,))
        gb = await h.install(tb, (s2,))
        w1 = WorkOrder(s1, f"{s1}/a/l1/m1", "Set auto-standby", "after 10 min idle", T0 + 5 * MIN)
        w2 = WorkOrder(s1, f"{s1}/a/l1/m2", "Check the bearing")
        i1 = await h.sink.add_work_order(g, w1, T0 + 1)
        i2 = await h.sink.add_work_order(g, w2, T0 + 2)
        ib = await h.sink.add_work_order(gb, WorkOrder(s2, f"{s2}/m", "Theirs"), T0 + 3)
        assert i1 != i2
        got = {r["id"]: r for r in await h.orders(ta, s1)}
        assert sorted(got) == sorted([i1, i2])
        assert (got[i1]["order"], got[i1]["instance_id"], got[i1]["at_us"]) == (
            w1,
            g.instance_id,
            T0 + 1,
        )
        assert got[i2]["order"] == w2
        assert [r["id"] for r in await h.orders(tb, s2)] == [ib]
        assert await h.orders(tb, s1) == []

    run(impl, scenario)


# -- state ------------------------------------------------------------------------------------


def test_state_round_trips_and_overwrites(impl: Impl) -> None:
    async def scenario(h: Harness) -> None:
        g = await h.install(_tenant(), (_site(),))
        i = g.instance_id
        assert await h.sink.get_state(i, "cursor") is None
        await h.sink.set_state(i, "cursor", "1700000000", 1000)
        await h.sink.set_state(i, "seen", '{"m1": [1, 2], "名": "值"}', 1000)
        assert await h.sink.get_state(i, "cursor") == "1700000000"
        assert json.loads(await h.sink.get_state(i, "seen") or "") == {"m1": [1, 2], "名": "值"}
        await h.sink.set_state(i, "cursor", "1700000099", 1000)
        assert await h.sink.get_state(i, "cursor") == "1700000099"
        await h.sink.set_state(i, "cursor", "null", 1000)
        assert await h.sink.get_state(i, "cursor") == "null"  # JSON null is a value, not absence

    run(impl, scenario)


def test_state_cap_counts_keys_and_values_and_refuses_whole(impl: Impl) -> None:
    async def scenario(h: Harness) -> None:
        g = await h.install(_tenant(), (_site(),))
        i = g.instance_id
        a = '"' + "x" * 40 + '"'  # 42 bytes, key "a" 1: 43
        b = '"' + "é" * 20 + '"'  # 42 bytes in UTF-8, key "b" 1: 43
        limit = state_size({"a": a, "b": b})
        assert limit == 86
        await h.sink.set_state(i, "a", a, limit)
        await h.sink.set_state(i, "b", b, limit)  # exactly at the cap
        with pytest.raises(StateLimitExceeded, match="over 86"):
            await h.sink.set_state(i, "c", "1", limit)
        assert await h.sink.get_state(i, "c") is None
        longer = '"' + "y" * 41 + '"'
        with pytest.raises(StateLimitExceeded):
            await h.sink.set_state(i, "a", longer, limit)
        assert await h.sink.get_state(i, "a") == a  # the refused write left the old value
        # an overwrite counts the new value only: a shorter one frees room for a new key
        await h.sink.set_state(i, "a", '"' + "x" * 38 + '"', limit)
        await h.sink.set_state(i, "c", "1", limit)
        assert await h.sink.get_state(i, "c") == "1"
        # another instance has its own cap
        g2 = await h.install(g.tenant_id, tuple(g.site_ids))
        await h.sink.set_state(g2.instance_id, "a", longer, limit)

    run(impl, scenario)


def test_state_of_instances_and_tenants_stays_apart(impl: Impl) -> None:
    async def scenario(h: Harness) -> None:
        s = _site()
        a = await h.install(_tenant(), (s,))
        b = await h.install(a.tenant_id, (s,))
        c = await h.install(_tenant(), (_site(),))
        await h.sink.set_state(a.instance_id, "k", '"a"', 100)
        await h.sink.set_state(b.instance_id, "k", '"b"', 100)
        assert await h.sink.get_state(a.instance_id, "k") == '"a"'
        assert await h.sink.get_state(b.instance_id, "k") == '"b"'
        assert await h.sink.get_state(c.instance_id, "k") is None

    run(impl, scenario)


def test_bad_state_input_is_refused_saying_what(impl: Impl) -> None:
    async def scenario(h: Harness) -> None:
        i = (await h.install(_tenant(), (_site(),))).instance_id
        with pytest.raises(json.JSONDecodeError, match="Expecting value"):
            await h.sink.set_state(i, "k", "not json", 1000)
        with pytest.raises(Invalid, match="key: must not be empty"):
            await h.sink.set_state(i, "", "1", 1000)
        with pytest.raises(Invalid, match="key: 201 characters"):
            await h.sink.set_state(i, "k" * 201, "1", 1000)
        await h.sink.set_state(i, "k" * 200, "1", 1000)
        assert await h.sink.get_state(i, "k") is None

    run(impl, scenario)


# -- feedback ---------------------------------------------------------------------------------


def test_feedback_oldest_first_from_since_and_only_the_instances(impl: Impl) -> None:
    async def scenario(h: Harness) -> None:
        t, s = _tenant(), _site()
        g = await h.install(t, (s,))
        other = await h.install(t, (s,))
        f1 = await h.sink.add_finding(g, _finding(s, 1), T0)
        f2 = await h.sink.add_finding(g, _finding(s, 2), T0)
        fo = await h.sink.add_finding(other, _finding(s, 3), T0)
        assert await h.sink.feedback_since(g.instance_id, 0) == []
        # given out of time order: the answer is by time
        await h.decide(g, s, f2, "rejected", "not idle: a planned test", T0 + 30)
        await h.decide(g, s, f1, "confirmed", "", T0 + 10)
        await h.decide(g, s, f1, "rejected", "changed my mind — 改", T0 + 20)
        await h.decide(other, s, fo, "confirmed", "theirs", T0 + 15)
        got = await h.sink.feedback_since(g.instance_id, 0)
        assert [(fb.finding_id, fb.verdict, fb.at_us) for fb in got] == [
            (f1, "confirmed", T0 + 10),
            (f1, "rejected", T0 + 20),
            (f2, "rejected", T0 + 30),
        ]
        assert got[1].comment == "changed my mind — 改" and got[1].by == "user:1"
        # the bound is inclusive
        since = await h.sink.feedback_since(g.instance_id, T0 + 20)
        assert [fb.at_us for fb in since] == [T0 + 20, T0 + 30]
        assert await h.sink.feedback_since(g.instance_id, T0 + 31) == []
        assert [fb.finding_id for fb in await h.sink.feedback_since(other.instance_id, 0)] == [fo]

    run(impl, scenario)


def test_feedback_of_an_unknown_instance_is_empty(impl: Impl) -> None:
    async def scenario(h: Harness) -> None:
        assert await h.sink.feedback_since("no-such-instance", 0) == []
        assert await h.sink.get_state("no-such-instance", "k") is None

    run(impl, scenario)


def test_every_implementation_is_an_app_sink() -> None:
    """The suite covers every method of the protocol (a new one needs a test here)."""
    covered = {"add_finding", "add_work_order", "get_state", "set_state", "feedback_since"}
    methods = {n for n in vars(AppSink) if not n.startswith("_") and callable(vars(AppSink)[n])}
    assert methods == covered
    assert isinstance(MemorySink(), AppSink)
    assert issubclass(SqlAppRepository, AppSink)
