"""Text values over the API (decision 0202): the JSON ingest body carries them beside samples,
a value of the wrong kind for its signal is refused and counted (``wrong_kind``), and
``telemetry/values`` serves them, each signal's newest with ``last=true``."""

from __future__ import annotations

from typing import Any

from andon.model.loader import parse_plant
from tests.api.world import World, site_yaml

ANCHOR = "                - {id: spindle_load, type: spindle_load, nominal: 62}\n"


def _text_site(w: World) -> tuple[str, str]:
    """A new site of tenant B: the demo plant with an execution and a program signal on its
    first machine; returns (site id, that machine's path)."""
    key = w.unique("txt")
    yaml = site_yaml(key)
    assert ANCHOR in yaml
    yaml = yaml.replace(
        ANCHOR,
        ANCHOR
        + "                - {id: execution, type: execution}\n"
        + "                - {id: program, type: program}\n",
        1,
    )
    r = w.call("POST", "/sites", w.b.admin, {"model_yaml": yaml})
    assert r.status_code == 201, r.text
    plant = parse_plant(yaml)
    return r.json()["id"], plant.machine_path(*plant.machines()[0])


def test_text_values_through_the_json_ingest_route_and_back(world: World) -> None:
    w, b = world, world.b
    site, m = _text_site(w)
    exe, prg, load = f"{m}/execution", f"{m}/program", f"{m}/spindle_load"
    t0 = w.start - 7_200_000_000  # before the data other tests read
    body: dict[str, Any] = {
        "texts": {
            "names": [exe, prg, load, f"{m}/unknown"],
            "index": [0, 0, 1, 2, 3, 0],
            "ts": [t0, t0 + 2, t0, t0, t0, t0 + 1],
            "value": ["READY", "ACTIVE", "O1234 — Ø12", "HIGH", "?", "STOPPED"],
            "quality": [0, 0, 0, 0, 0, 1],
            "code": [1, 2, None, None, None, 3],
        },
        "samples": {
            "names": [exe, load],
            "index": [0, 1],
            "ts": [t0, t0],
            "value": [1.0, 55.5],
            "quality": [0, 0],
        },
    }
    r = w.call("POST", f"/sites/{site}/ingest", b.edge, body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["accepted"], out["texts"], out["texts_duplicate"]) == (1, 4, 0)
    # a number for the text signal, text for the numeric one: refused by kind, counted
    assert out["rejected"] == {"wrong_kind": 2, "unknown_signal": 1}
    again = w.call("POST", f"/sites/{site}/ingest", b.edge, {"texts": body["texts"]}).json()
    assert (again["texts"], again["texts_duplicate"]) == (0, 4)

    url = f"/sites/{site}/telemetry/values"
    rng = w.call("GET", url, b.app, signal=[exe, prg], start=t0, end=t0 + 10).json()
    assert rng["signals"] == [exe, prg]
    assert rng["value"] == ["READY", "STOPPED", "ACTIVE", "O1234 — Ø12"]
    assert rng["code"] == [1.0, 3.0, 2.0, None] and rng["quality"] == [0, 1, 0, 0]
    last = w.call("GET", url, b.app, signal=[exe, prg], last="true").json()
    assert list(zip(last["index"], last["ts"], last["value"], strict=True)) == [
        (0, t0 + 2, "ACTIVE"),
        (1, t0, "O1234 — Ø12"),
    ]
    # the last value before an end: what the signal said then
    then = w.call("GET", url, b.app, signal=exe, last="true", end=t0 + 2).json()
    assert then["value"] == ["STOPPED"] and then["ts"] == [t0 + 1]
    assert w.call("GET", url, b.app, signal=exe, start=t0).status_code == 422
    ragged = {"texts": {**body["texts"], "value": ["x"]}}
    assert w.call("POST", f"/sites/{site}/ingest", b.edge, ragged).status_code == 422
    numbers = {"texts": {**body["texts"], "value": [1, 2, 3, 4, 5, 6]}}
    assert w.call("POST", f"/sites/{site}/ingest", b.edge, numbers).status_code == 422
