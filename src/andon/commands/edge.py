"""`andon edge ...`: run the edge agent (``andon edge --config site.yaml``) and show its
connection health (``andon edge status``)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

__all__ = ["app"]

app = typer.Typer(
    help="The edge agent: connectors, durable buffer, uplink.", invoke_without_command=True
)
_out = Console()
_err = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="Site file (YAML)")]


def _fail(message: str) -> None:
    _err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _load(config: Path) -> tuple[Any, list[Any]]:
    from andon.connect.registry import build_connector
    from andon.edge.config import load_edge_config
    from andon.model.loader import ModelError, validation_error

    try:
        cfg, marks = load_edge_config(config)
        connectors = []
        for i, options in enumerate(cfg.connectors):
            try:
                connectors.append(build_connector(options))
            except ValidationError as exc:
                raise validation_error(exc, str(config), marks, ("connectors", i)) from None
            except KeyError as exc:
                raise validation_error_type(str(config), i, marks, str(exc.args[0])) from None
        cfg.edge.resolved_token()
    except (ModelError, ValueError) as exc:
        _fail(str(exc))
        raise  # pragma: no cover
    return cfg, connectors


def validation_error_type(file: str, i: int, marks: dict[Any, Any], msg: str) -> Exception:
    from andon.model.loader import _at

    return _at(file, ("connectors", i, "type"), marks, msg, 0)


@app.callback()
def main(ctx: typer.Context, config: ConfigOpt = None) -> None:
    """Run the edge agent with ``--config site.yaml`` (until Ctrl-C or SIGTERM)."""
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        _out.print(ctx.get_help())
        raise typer.Exit(0)
    from andon.edge.agent import EdgeAgent

    cfg, connectors = _load(config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(EdgeAgent(cfg, connectors).run())
    except KeyboardInterrupt:
        _out.print("stopped.")


@app.command("status")
def status(
    config: ConfigOpt = None,
    data_dir: Annotated[Path | None, typer.Option(help="The agent's data directory")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Connection health per connector and device, buffer and uplink, as the agent last wrote."""
    from andon.edge.agent import read_status

    if data_dir is None:
        if config is None:
            _fail("give --config or --data-dir")
            return
        data_dir = _load(config)[0].data_dir
    try:
        doc = read_status(data_dir)
    except FileNotFoundError:
        _fail(f"no status in {data_dir}: has the agent run there?")
        return
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    age = (time.time() * 1e6 - doc["time_us"]) / 1e6
    up, buf = doc["uplink"], doc["buffer"]
    _out.print(
        f"edge {doc['edge']} (pid {doc['pid']}, status {age:.0f} s old): uplink "
        f"{'connected' if up['connected'] else 'DISCONNECTED'}, {up['connects']} connects, "
        f"{up['frames_sent']} frames sent; buffer {buf['pending_points']} points pending "
        f"({buf['pending_bytes']} / {buf['max_bytes']} bytes), {buf['acked_points']} acked, "
        f"{buf['dropped_points']} dropped",
        highlight=False,
        soft_wrap=True,
    )
    t = Table()
    for col in ("connector", "device", "ok", "last success", "errors", "reconnects", "latency ms"):
        t.add_column(col)
    for c in doc["connectors"]:
        for d in c["devices"]:
            last = d["last_success_us"]
            t.add_row(
                c["connector"],
                d["device"],
                "yes" if d["connected"] else "no",
                "never" if last is None else f"{(time.time() * 1e6 - last) / 1e6:.1f} s ago",
                str(d["errors"]),
                str(d["reconnects"]),
                "" if d["latency_ms"] is None else f"{d['latency_ms']:.1f}",
            )
    _out.print(t)
