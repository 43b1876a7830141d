"""The cross-tenant matrix for app credentials (issue 14 acceptance): an instance's grant,
as the catalog makes it from an installation, reaches exactly its tenant and its sites
through the gateway the platform runs it with (``SupervisedRunner``'s), with forged ids
refused ``forbidden``; what it writes lands in its own tenant's inbox only, and it reads
back only the verdicts on its own findings."""

from __future__ import annotations

from pathlib import Path

import pytest

from andon.apps.gateway import AppGateway, platform_sites
from andon.sdk import Finding, Forbidden
from andon.sdk.runner import connect
from tests.api import appworld
from tests.api.world import World


def test_an_instance_reaches_exactly_its_tenant_and_sites(world: World, tmp_path: Path) -> None:
    a, b = world.a, world.b
    svc = world.app.state.services
    cat = appworld.catalog(world)
    ia = appworld.install(world, a)["id"]
    ib = appworld.install(world, b)["id"]
    fa = appworld.add_finding(world, a, ia)
    world.call(
        "POST",
        f"/sites/{a.site_id}/findings/{fa}/feedback",
        a.admin,
        {"verdict": "confirmed", "comment": "A's verdict"},
    )
    sock = tmp_path / "g.sock"
    signal = appworld.SIGNAL

    async def as_b() -> None:
        grant = await cat.grant(b.id, ib)
        assert grant.site_ids == frozenset({b.site_id}) and grant.tenant_id == b.id
        gw = AppGateway(
            grant,
            svc.store,
            svc.bus,
            appworld.repository(world),
            world.clock,
            sites=platform_sites(svc.platform),
        )
        await gw.serve(sock)
        ctx = await connect(str(sock), "probe", "0.1.0")
        try:
            assert ctx.sites == (b.site_id,)
            mine = await ctx.telemetry(b.site_id, [signal], world.start, world.end)
            assert mine.num_rows == 0  # B's site has the same signal names, not A's data
            for site in (a.site_id, "no-such-site"):
                with pytest.raises(Forbidden):
                    await ctx.telemetry(site, [signal], world.start, world.end)
                with pytest.raises(Forbidden):
                    await ctx.emit(
                        Finding(
                            type="spindle_wear",
                            site=site,
                            start_us=0,
                            end_us=1,
                            score=0.5,
                            title="forged",
                        )
                    )
            fid = await ctx.emit(
                Finding(
                    type="spindle_wear",
                    site=b.site_id,
                    start_us=world.start,
                    end_us=world.end,
                    score=0.5,
                    title="B's own",
                )
            )
            await ctx.set_state("k", "B")
            assert await ctx.feedback(0) == []  # A's verdicts are on A's findings
            assert gw.stats()["forbidden"] >= 4
        finally:
            await ctx.client.close()
            await gw.close()
        # the write is B's: in B's inbox, not in A's
        assert (await appworld.repository(world).finding(b.id, b.site_id, fid))["title"]
        inbox_a = await appworld.repository(world).findings(a.id, a.site_id, limit=1000)
        assert fid not in [f["id"] for f in inbox_a]
        assert await appworld.repository(world).get_state(ia, "k") is None

    world.run(as_b)
    # A's own instance reads A's data and A's verdict
    assert [x.comment for x in world.run(appworld.repository(world).feedback_since, ia, 0)] == [
        "A's verdict"
    ]
