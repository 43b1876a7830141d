"""``andon edge``: a bad site file gets one located error; ``status`` shows connection health."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

from typer.testing import CliRunner

from andon.cli import app
from andon.connect.registry import build_connector
from andon.edge.agent import EdgeAgent, read_status
from andon.edge.config import parse_edge_config
from tests.edge.broker import Broker
from tests.edge.helpers import KEY, Platform, signals, until

runner = CliRunner()


def test_bad_site_file_names_file_line_and_field(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        "edge: {id: e1}\n"
        f"data_dir: {tmp_path}\n"
        f"uplink: {{key: {KEY}}}\n"
        "connectors:\n"
        "  - type: modbus\n"
        "    name: m\n"
        "    devices:\n"
        "      - name: d\n"
        "        points:\n"
        "          - {signal: s/x, address: 70000}\n",
        encoding="utf-8",
    )
    r = runner.invoke(app, ["edge", "--config", str(site)])
    assert r.exit_code == 2
    assert "site.yaml:10" in r.output and "connectors[0].devices[0].points[0].address" in r.output
    site.write_text("edge: {id: e1}\ndata_dir: x\nuplink: {port: 1883}\n", encoding="utf-8")
    r = runner.invoke(app, ["edge", "--config", str(site)])
    assert r.exit_code == 2 and "exactly one of 'key' and 'key_env'" in r.output
    # the old in-code edge token is refused with what replaces it
    site.write_text("edge: {id: e1, token: t}\ndata_dir: x\nuplink: {key_env: K}\n")
    r = runner.invoke(app, ["edge", "--config", str(site)])
    assert r.exit_code == 2 and "the per-edge token is gone" in r.output, r.output
    site.write_text("edge: {id: e1}\ndata_dir: x\nuplink: {key: not-a-key}\n")
    r = runner.invoke(app, ["edge", "--config", str(site)])
    assert r.exit_code == 2 and "not a platform edge key" in r.output, r.output
    site.write_text(
        f"edge: {{id: e1}}\ndata_dir: x\nuplink: {{key: {KEY}}}\nconnectors: [{{type: nope}}]\n"
    )
    r = runner.invoke(app, ["edge", "--config", str(site)])
    assert r.exit_code == 2 and "unknown connector type 'nope'" in r.output


def test_status_shows_health_of_a_running_agent(tmp_path: Path, broker: Broker) -> None:
    names = signals(2)
    cfg = parse_edge_config(
        json.dumps(
            {
                "edge": {"id": "edge-1"},
                "data_dir": str(tmp_path / "edge"),
                "status_interval_s": 0.05,
                "uplink": {"port": broker.port, "key": KEY},
            }
        )
    )
    conn = build_connector(
        {
            "type": "synthetic",
            "name": "gen",
            "signals": names,
            "batch_points": 10,
            "total_points": 100,
        }
    )

    async def go() -> None:
        platform = Platform(tmp_path, broker.port, names)
        platform.start()
        agent = EdgeAgent(cfg, [conn])
        task = asyncio.create_task(agent.run())

        def acked() -> bool:
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                return bool(read_status(cfg.data_dir)["buffer"]["acked_points"] == 100)
            return False

        try:
            await until(acked, 20, "the agent's status to show every point acknowledged")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await platform.close()

    asyncio.run(go())
    r = runner.invoke(app, ["edge", "status", "--data-dir", str(cfg.data_dir)])
    assert r.exit_code == 0, r.output
    assert "edge edge-1" in r.output and "100 acked" in r.output and "gen" in r.output
    r = runner.invoke(app, ["edge", "status", "--data-dir", str(cfg.data_dir), "--json"])
    doc = json.loads(r.output)
    assert doc["connectors"][0]["devices"][0]["points"] == 100
    r = runner.invoke(app, ["edge", "status", "--data-dir", str(tmp_path / "none")])
    assert r.exit_code == 2 and "no status" in r.output
