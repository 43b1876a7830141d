"""Browse an OPC UA server's address space: what ``andon edge browse opc.tcp://...`` shows.

Commissioning a machine starts with "what does it expose?". ``browse`` walks the hierarchy
from a node (``Objects`` by default) down to ``depth`` levels, following hierarchical
references forward, and returns every object and variable with its node id, browse name,
data type and path. Numeric scalar variables (not arrays) get a suggested signal path (the
browse path below the start node, lower-cased, under ``prefix``), so the result can be pasted as the
``nodes:`` of an ``opcua`` connector entry (``suggested_connector``) and then edited.

The standard ``Server`` object (diagnostics, capabilities: hundreds of nodes of no use as
signals) is skipped unless ``include_server``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, cast

from asyncua import ua
from asyncua.common.node import Node
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIdNames, ObjectIds
from asyncua.ua.uaerrors import UaStringParsingError

from andon.connect.base import within
from andon.connect.opcua.client import open_client

__all__ = ["BrowseTarget", "BrowsedNode", "browse", "signal_name", "suggested_connector"]

_NUMERIC = {
    "Boolean",
    "SByte",
    "Byte",
    "Int16",
    "UInt16",
    "Int32",
    "UInt32",
    "Int64",
    "UInt64",
    "Float",
    "Double",
    "Number",
    "Integer",
    "UInteger",
}
_SERVER = ua.NodeId(ua.Int32(ObjectIds.Server))


@dataclass(frozen=True)
class BrowseTarget:
    """The server to browse and how to reach it (the same fields as an ``opcua`` connector
    entry: a secured server is browsed with the same certificate and user)."""

    url: str
    timeout_s: float = 4.0
    security: Literal["None", "Basic256Sha256"] = "None"
    certificate: str | None = None
    private_key: str | None = None
    server_certificate: str | None = None
    application_uri: str | None = None
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class BrowsedNode:
    """One node found: ``path`` is the browse names from below the start node."""

    node_id: str
    browse_name: str
    node_class: str
    depth: int
    path: tuple[str, ...]
    data_type: str | None = None
    signal: str | None = None
    """Suggested signal path (numeric variables only)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "browse_name": self.browse_name,
            "node_class": self.node_class,
            "depth": self.depth,
            "path": "/".join(self.path),
            "data_type": self.data_type,
            "signal": self.signal,
        }


def signal_name(part: str) -> str:
    """A browse name as one signal path segment: lower case, runs of anything but letters,
    digits, ``_`` and ``-`` become ``_``.

    >>> signal_name("Spindle Speed (rpm)")
    'spindle_speed_rpm'
    >>> signal_name("VMC-01")
    'vmc-01'
    """
    return re.sub(r"[^a-z0-9_-]+", "_", part.lower()).strip("_") or "_"


async def browse(
    target: BrowseTarget,
    node: str | None = None,
    depth: int = 3,
    prefix: str = "",
    include_server: bool = False,
    max_nodes: int = 10_000,
) -> list[BrowsedNode]:
    """Every object and variable up to ``depth`` levels below ``node`` (default
    ``Objects``), breadth first. Raises ``ValueError`` for a bad start node or limits and
    the connection's errors (``OSError``, ``TimeoutError``, asyncua's ``UaError``) as they
    come: a browse is interactive, the caller reports them."""
    if depth < 1:
        raise ValueError("depth must be at least 1")
    if max_nodes < 1:
        raise ValueError("max_nodes must be at least 1")
    try:
        start_id = (
            ua.NodeId.from_string(node) if node else ua.NodeId(ua.Int32(ObjectIds.ObjectsFolder))
        )
    except (ValueError, UaStringParsingError) as exc:
        raise ValueError(f"node {node!r} is not an OPC UA node id: {exc}") from None
    client = await open_client(target)
    await client.connect()
    try:
        return await within(
            _walk(client.get_node(start_id), depth, prefix, include_server, max_nodes),
            max(target.timeout_s * 10, 30.0),
        )
    finally:
        await client.disconnect()


async def _walk(
    start: Node, depth: int, prefix: str, include_server: bool, max_nodes: int
) -> list[BrowsedNode]:
    out: list[BrowsedNode] = []
    seen = {start.nodeid}
    level: list[tuple[Node, tuple[str, ...]]] = [(start, ())]
    # a bit mask of node classes, typed as one class by asyncua
    mask = cast("ua.NodeClass", ua.NodeClass.Object | ua.NodeClass.Variable)
    for d in range(1, depth + 1):
        nxt: list[tuple[Node, tuple[str, ...]]] = []
        found: list[tuple[ua.ReferenceDescription, tuple[str, ...]]] = []
        for parent, path in level:
            refs = await parent.get_references(
                refs=ObjectIds.HierarchicalReferences,
                direction=ua.BrowseDirection.Forward,
                nodeclassmask=mask,
            )
            for r in refs:
                nid = r.NodeId
                if nid in seen or (nid == _SERVER and not include_server):
                    continue
                seen.add(nid)
                found.append((r, (*path, r.BrowseName.Name or str(nid.Identifier))))
                if len(out) + len(found) >= max_nodes:
                    break
        variables = [r.NodeId for r, _ in found if r.NodeClass == ua.NodeClass.Variable]
        types, arrays = await _data_types(start, variables)
        for r, path in found:
            nid = r.NodeId
            dtype = types.get(nid) if r.NodeClass == ua.NodeClass.Variable else None
            signal = None
            if dtype in _NUMERIC and nid not in arrays:
                segs = [signal_name(p) for p in path]
                signal = "/".join([prefix.strip("/"), *segs] if prefix.strip("/") else segs)
            out.append(
                BrowsedNode(
                    nid.to_string(),
                    r.BrowseName.Name or "",
                    r.NodeClass.name,
                    d,
                    path,
                    dtype,
                    signal,
                )
            )
            nxt.append((Node(start.session, nid), path))
        if len(out) >= max_nodes:
            break
        level = nxt
    return out


async def _data_types(
    anchor: Node, ids: list[ua.NodeId]
) -> tuple[dict[ua.NodeId, str], set[ua.NodeId]]:
    """Data type names of variables, and those that may hold arrays (value rank other than
    scalar), read in one request."""
    if not ids:
        return {}, set()
    params = ua.ReadParameters()
    for attr in (AttributeIds.DataType, AttributeIds.ValueRank):
        for nid in ids:
            rv = ua.ReadValueId()
            rv.NodeId = nid
            rv.AttributeId = attr
            params.NodesToRead.append(rv)
    results = await anchor.session.read(params)
    ranks = results[len(ids) :]
    arrays = {
        nid
        for nid, dv in zip(ids, ranks, strict=True)
        if dv.Value is not None and dv.Value.Value not in (None, -1)  # -1: scalar
    }
    out: dict[ua.NodeId, str] = {}
    for nid, dv in zip(ids, results[: len(ids)], strict=True):
        dt = dv.Value.Value if dv.Value is not None else None
        if isinstance(dt, ua.NodeId):
            ident = dt.Identifier
            name = (
                ObjectIdNames.get(ident)
                if isinstance(ident, int) and not dt.NamespaceIndex
                else None
            )
            out[nid] = name or dt.to_string()
    return out, arrays


def suggested_connector(
    nodes: list[BrowsedNode], target: BrowseTarget, name: str = "opcua"
) -> dict[str, Any]:
    """A ``connectors:`` entry reading every node that got a suggested signal."""
    entry: dict[str, Any] = {"type": "opcua", "name": name, "url": target.url}
    if target.security != "None":
        entry.update(
            security=target.security,
            certificate=target.certificate,
            private_key=target.private_key,
        )
    if target.username is not None:
        entry["username"] = target.username
    entry["nodes"] = [{"node_id": n.node_id, "signal": n.signal} for n in nodes if n.signal]
    return entry
