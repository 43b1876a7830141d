"""The line page's flow diagram: each buffer's level over the API equals the virtual
factory's true level at the end of the world's two plant hours (within one part), with where
it is counted from."""

from __future__ import annotations

from andon.demo.run import default_start
from andon.model.loader import parse_plant
from andon.sim.factory import VirtualFactory
from tests.api.world import World, demo_yaml


def test_flow_shows_each_buffers_level_near_the_true_one(world: World) -> None:
    plant = parse_plant(demo_yaml()).model_copy(update={"tenant": "ta"})
    # the world's store holds this run: same plant, seed, start and windows (run_headless)
    truth = VirtualFactory(plant, 7, default_start(plant), window_s=600.0)
    truth.advance((world.end - world.start) / 1e6)
    seen = 0
    for a, ln in plant.lines():
        path = f"{plant.site.id}/{a.id}/{ln.id}"
        r = world.call("GET", f"/sites/{world.a.site_id}/lines/flow", world.a.app, line=path)
        assert r.status_code == 200, r.text
        for b in r.json()["buffers"]:
            true = len(truth.model.buffers[b["buffer"]].items)
            assert b["level"] is not None, b
            assert 0 <= b["level"] <= b["capacity"]
            assert abs(b["level"] - true) <= 1, (b, true)
            assert b["level_source"] in ("empty", "full")
            assert b["level_at"] == world.end
            seen += 1
    assert seen == sum(len(ln.buffers) for _, ln in plant.lines()) == 3
