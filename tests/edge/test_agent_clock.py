"""The edge agent stamps its status with its injected clock (as the platform's services do),
so a test or the demo's plant clock, not the host's wall clock, says when it reported."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

from andon.connect.registry import build_connector
from andon.edge.agent import EdgeAgent, read_status
from andon.edge.config import parse_edge_config
from andon.model.types import Micros
from tests.edge.broker import Broker
from tests.edge.helpers import KEY, signals, until

T0: Micros = 1_000_000_000_000_000  # 2001-09-09: far from any wall clock a test runs on


def test_status_carries_the_injected_clock(tmp_path: Path, broker: Broker) -> None:
    cfg = parse_edge_config(
        json.dumps(
            {
                "edge": {"id": "edge-clock"},
                "data_dir": str(tmp_path / "edge"),
                "status_interval_s": 0.05,
                "uplink": {"port": broker.port, "key": KEY},
            }
        )
    )
    conn = build_connector(
        {"type": "synthetic", "name": "gen", "signals": signals(2), "total_points": 10}
    )
    now = [T0]

    def clock() -> Micros:
        now[0] += 1_000_000
        return now[0]

    async def go() -> list[int]:
        agent = EdgeAgent(cfg, [conn], clock=clock)
        task = asyncio.create_task(agent.run())
        stamps: list[int] = []

        def two_reports() -> bool:
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                t = int(read_status(cfg.data_dir)["time_us"])
                if not stamps or stamps[-1] != t:
                    stamps.append(t)
            return len(stamps) >= 2

        try:
            await until(two_reports, 20, "two status reports from the agent")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return stamps

    stamps = asyncio.run(go())
    assert all(T0 < t <= now[0] for t in stamps), stamps
    assert stamps == sorted(stamps) and (stamps[1] - stamps[0]) % 1_000_000 == 0
