"""`andon edge ...`: run the edge agent (``andon edge --config site.yaml``), show its
connection health (``andon edge status``), check a site file's devices before it runs
(``andon edge doctor site.yaml``) and browse an OPC UA server (``andon edge browse``)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

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


def _load(config: Path, need_key: bool = True) -> tuple[Any, list[Any]]:
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
        if need_key:
            cfg.uplink.resolved_key()
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
    from andon.edge.logs import configure_logging

    configure_logging()  # andon at INFO, protocol libraries at WARNING
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
    if up.get("last_error"):
        _out.print(f"uplink: {up['last_error']}", highlight=False, soft_wrap=True)
    if buf.get("dropped_disk_full_points"):
        _out.print(
            f"buffer: {buf['dropped_disk_full_points']} of the dropped points because the disk "
            "was full",
            highlight=False,
            soft_wrap=True,
        )
    if up.get("acks_ignored"):
        why = ", ".join(f"{k} {v}" for k, v in sorted(up["acks_ignored"].items()))
        _out.print(f"uplink: acknowledgements ignored: {why}", highlight=False, soft_wrap=True)
    t = Table()
    cols = ("connector", "device", "ok", "last success", "points", "text", "errors", "reconnects")
    for col in (*cols, "latency ms"):
        t.add_column(col)
    for c in doc["connectors"]:
        for d in c["devices"]:
            last = d["last_success_us"]
            t.add_row(
                c["connector"],
                d["device"],
                "yes" if d["connected"] else "no",
                "never" if last is None else f"{(time.time() * 1e6 - last) / 1e6:.1f} s ago",
                str(d.get("points", 0)),
                str(d.get("text_points", 0)),  # of the points, text values (decision 0202)
                str(d["errors"]),
                str(d["reconnects"]),
                "" if d["latency_ms"] is None else f"{d['latency_ms']:.1f}",
            )
    _out.print(t)
    for c in doc["connectors"]:  # what was refused or dropped, by reason, and the last problem
        for d in c["devices"]:
            if d.get("rejected"):
                why = ", ".join(f"{k} {v}" for k, v in sorted(d["rejected"].items()))
                _out.print(
                    f"{c['connector']} {d['device']}: not read: {why}",
                    highlight=False,
                    soft_wrap=True,
                )
            if d.get("last_error"):
                _out.print(
                    f"{c['connector']} {d['device']}: last error: {d['last_error']}",
                    highlight=False,
                    soft_wrap=True,
                )
    if up.get("short_sessions"):
        _out.print(
            f"uplink: {up['short_sessions']} sessions closed by the broker soon after they began"
            " (another edge with the same key?)",
            highlight=False,
            soft_wrap=True,
        )


@app.command("browse")
def browse_cmd(
    url: Annotated[str, typer.Argument(help="Server endpoint, e.g. opc.tcp://10.0.0.5:4840/")],
    node: Annotated[
        str | None, typer.Option(help="Start node id (default: Objects), e.g. 'ns=2;s=VMC-01'")
    ] = None,
    depth: Annotated[int, typer.Option(min=1, max=20, help="Levels below the start")] = 3,
    prefix: Annotated[
        str, typer.Option(help="Put suggested signal paths under this, e.g. 'site/area/line'")
    ] = "",
    security: Annotated[str, typer.Option(help="None or Basic256Sha256 (SignAndEncrypt)")] = "None",
    certificate: Annotated[Path | None, typer.Option(help="Client certificate (PEM/DER)")] = None,
    private_key: Annotated[Path | None, typer.Option(help="Client private key (PEM)")] = None,
    server_certificate: Annotated[
        Path | None, typer.Option(help="Pin the server's certificate")
    ] = None,
    username: Annotated[str | None, typer.Option(help="User name")] = None,
    password_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the password")
    ] = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds per request")] = 4.0,
    include_server: Annotated[
        bool, typer.Option(help="Also walk the standard Server object (diagnostics)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the nodes as JSON")] = False,
    as_yaml: Annotated[
        bool, typer.Option("--yaml", help="Print a connectors: entry for the site file")
    ] = False,
) -> None:
    """Walk an OPC UA server's address space: node ids, browse names, data types and a
    suggested signal mapping for every numeric variable."""
    import os

    from asyncua.ua.uaerrors import UaError

    from andon.connect.opcua.browse import BrowseTarget, browse, suggested_connector
    from andon.connect.opcua.client import describe_error

    if security not in ("None", "Basic256Sha256"):
        _fail(f"--security must be None or Basic256Sha256, not {security!r}")
    password = None
    if password_env is not None:
        password = os.environ.get(password_env)
        if password is None:
            _fail(f"environment variable {password_env} (--password-env) is not set")
    target = BrowseTarget(
        url,
        timeout,
        "Basic256Sha256" if security == "Basic256Sha256" else "None",
        None if certificate is None else str(certificate),
        None if private_key is None else str(private_key),
        None if server_certificate is None else str(server_certificate),
        None,
        username,
        password,
    )
    try:
        nodes = asyncio.run(browse(target, node, depth, prefix, include_server))
    except ValueError as exc:
        _fail(str(exc))
        return
    except (OSError, TimeoutError, UaError, ConnectionError) as exc:
        _fail(f"cannot browse {url}: {describe_error(exc)}")
        return
    if as_json:
        sys.stdout.write(json.dumps([n.as_dict() for n in nodes], indent=2) + "\n")
        return
    if as_yaml:
        import yaml

        entry = suggested_connector(nodes, target)
        sys.stdout.write(yaml.safe_dump({"connectors": [entry]}, sort_keys=False))
        return
    t = Table()
    for col in ("node id", "path", "class", "data type", "suggested signal"):
        t.add_column(col)
    for n in nodes:
        t.add_row(n.node_id, "/".join(n.path), n.node_class, n.data_type or "", n.signal or "")
    _out.print(t)
    mapped = sum(1 for n in nodes if n.signal)
    _out.print(f"{len(nodes)} nodes, {mapped} numeric variables mapped; --yaml prints the entry.")


@app.command("doctor")
def doctor_cmd(
    site: Annotated[Path, typer.Argument(help="Site file (YAML), as for --config")],
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for a connector's values")
    ] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON")] = False,
) -> None:
    """Connect to each device of the site file once and show, per signal, the value, type,
    quality and the exact problem; exit 1 if any signal has one (2: the file is invalid)."""
    from andon.edge.doctor import check_connectors

    cfg, _ = _load(site, need_key=False)  # validates every connector entry, names the line
    checks = asyncio.run(check_connectors(cfg.connectors, timeout))
    bad = [c for c in checks if not c.ok]
    if as_json:
        sys.stdout.write(json.dumps([c.as_dict() for c in checks], indent=2) + "\n")
    else:
        t = Table()
        for col in ("connector", "device", "signal", "value", "type", "quality", "problem"):
            t.add_column(col, overflow="fold")
        for c in checks:
            value = (
                ""
                if c.value is None
                else (f"{c.value:g}" if isinstance(c.value, float) else c.value)
            )
            cells = (c.connector, c.device, c.signal, value, c.type, c.quality)
            problem = Text(c.problem, style="red") if c.problem else Text("ok", style="green")
            t.add_row(*(Text(x) for x in cells), problem)  # Text: no markup in device data
        _out.print(t)
        _out.print(
            f"{len(checks)} signals, {len(bad)} with a problem"
            + ("" if bad else ": ready to run the agent"),
            highlight=False,
        )
    if bad:
        raise typer.Exit(1)
