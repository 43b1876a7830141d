"""`andon demo`'s live factory reaches an open live feed through the live bus: after the
feed's first snapshot, values keep arriving between its ticks (interval 60 s), which only the
bus can bring."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from andon.demo.web import DemoOptions, builtin_plant_yaml, demo_server


def test_the_live_factory_pushes_values_to_an_open_feed(tmp_path: Path) -> None:
    options = DemoOptions(builtin_plant_yaml(), tmp_path / "d", speed=60.0, prefill_h=0.5)
    with demo_server(options) as demo:
        site = demo.site
        email = site.email("engineer")
        # no byte for 10 s (the feed ticks every 60 s) fails the read: only pushes keep it going
        with httpx.Client(base_url=f"{demo.url}/api/v1", timeout=10) as c:
            r = c.post("/auth/login", json={"email": email, "password": site.passwords[email]})
            r.raise_for_status()
            headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
            snapshot: dict[str, int] = {}
            pushed: list[dict[str, int | str]] = []
            deadline = time.monotonic() + 20
            with c.stream(
                "GET",
                f"/sites/{site.site_id}/live",
                headers=headers,
                params={"interval_s": 60, "max_ticks": 2},
            ) as feed:
                event = ""
                for line in feed.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event == "values":
                        rows = json.loads(line[6:])
                        if not snapshot:
                            snapshot = {v["signal"]: v["ts"] for v in rows}
                            assert snapshot, "the first event is the store's snapshot"
                            continue
                        pushed.extend(rows)
                        if len(pushed) >= 5:
                            break
                    assert time.monotonic() < deadline, f"only {len(pushed)} values pushed"
    assert all(int(v["ts"]) > snapshot.get(str(v["signal"]), 0) for v in pushed)
