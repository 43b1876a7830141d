"""``AppSink``: where the gateway puts what an app writes, and reads back what people said
(decision 0900). ``MemorySink`` keeps it in memory (the local runner, the test harness);
``andon.apps.repository.SqlAppRepository`` in the metadata database.

>>> import asyncio
>>> from andon.apps.grant import AppGrant
>>> from andon.sdk import Finding
>>> sink = MemorySink()
>>> g = AppGrant("t", "i", "a", "1", frozenset({"s"}), frozenset({"findings:write"}))
>>> f = Finding(type="x", site="s", start_us=0, end_us=1, score=0.5, title="t")
>>> asyncio.run(sink.add_finding(g, f, 5))
'f1'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

from andon.apps.grant import AppGrant
from andon.model.types import Micros
from andon.platform.service import Invalid
from andon.sdk import Feedback, Finding, WorkOrder

__all__ = [
    "STATE_KEY_MAX",
    "STATE_LIMIT_BYTES",
    "AppSink",
    "MemorySink",
    "StateLimitExceeded",
    "StoredFinding",
    "StoredWorkOrder",
    "state_size",
]

STATE_LIMIT_BYTES: Final = 1024 * 1024
"""An instance's state, all keys together: key lengths plus their JSON values' lengths."""
STATE_KEY_MAX: Final = 200
"""Characters of one state key at most."""


class StateLimitExceeded(Exception):
    """A ``set_state`` that would take the instance's state over its limit (not stored)."""


def state_size(values: dict[str, str]) -> int:
    """Bytes an instance's state counts for: UTF-8 keys and JSON texts."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in values.items())


@dataclass(frozen=True, slots=True)
class StoredFinding:
    id: str
    tenant_id: str
    instance_id: str
    app_id: str
    app_version: str
    at_us: Micros
    finding: Finding


@dataclass(frozen=True, slots=True)
class StoredWorkOrder:
    id: str
    tenant_id: str
    instance_id: str
    app_id: str
    at_us: Micros
    order: WorkOrder


@runtime_checkable
class AppSink(Protocol):
    """What the gateway writes to and reads from. Values of ``state`` are JSON texts."""

    async def add_finding(self, grant: AppGrant, finding: Finding, at_us: Micros) -> str:
        """Keep a finding (already checked by the gateway); its id. ``Invalid`` (nothing
        kept) when its site is not one of the grant's."""
        ...

    async def add_work_order(self, grant: AppGrant, order: WorkOrder, at_us: Micros) -> str:
        """Keep a work-order proposal (already checked by the gateway); its id. ``Invalid``
        (nothing kept) when its site is not one of the grant's."""
        ...

    async def get_state(self, instance_id: str, key: str) -> str | None:
        """The JSON text stored under ``key``, or ``None``."""
        ...

    async def set_state(self, instance_id: str, key: str, value: str, limit_bytes: int) -> None:
        """Store ``value`` (JSON text; ``ValueError`` if not) under ``key`` (1 to 200
        characters; ``Invalid`` if not); ``StateLimitExceeded`` (and nothing stored) when the
        instance's state would exceed ``limit_bytes`` (``state_size``)."""
        ...

    async def feedback_since(self, instance_id: str, since_us: Micros) -> list[Feedback]:
        """People's verdicts on the instance's findings given at or after ``since_us``,
        oldest first."""
        ...


def _own_site(grant: AppGrant, site: str) -> None:
    if site not in grant.site_ids:
        raise Invalid(f"site: {site!r:.80} is not one of the installation's sites")


def _state_key(key: str) -> None:
    if not key:
        raise Invalid("key: must not be empty")
    if len(key) > STATE_KEY_MAX:
        raise Invalid(f"key: {len(key):,} characters, over the limit of {STATE_KEY_MAX:,}")


@dataclass
class MemorySink:
    """An ``AppSink`` in memory. ``add_feedback`` stands in for the findings inbox."""

    findings: list[StoredFinding] = field(default_factory=list)
    work_orders: list[StoredWorkOrder] = field(default_factory=list)
    state: dict[str, dict[str, str]] = field(default_factory=dict)
    feedback: dict[str, list[tuple[str, Feedback]]] = field(default_factory=dict)
    """Per instance: (finding id, feedback) in the order given."""

    async def add_finding(self, grant: AppGrant, finding: Finding, at_us: Micros) -> str:
        _own_site(grant, finding.site)
        fid = f"f{len(self.findings) + 1}"
        self.findings.append(
            StoredFinding(
                fid,
                grant.tenant_id,
                grant.instance_id,
                grant.app_id,
                grant.app_version,
                at_us,
                finding,
            )
        )
        return fid

    async def add_work_order(self, grant: AppGrant, order: WorkOrder, at_us: Micros) -> str:
        _own_site(grant, order.site)
        wid = f"w{len(self.work_orders) + 1}"
        self.work_orders.append(
            StoredWorkOrder(wid, grant.tenant_id, grant.instance_id, grant.app_id, at_us, order)
        )
        return wid

    async def get_state(self, instance_id: str, key: str) -> str | None:
        return self.state.get(instance_id, {}).get(key)

    async def set_state(self, instance_id: str, key: str, value: str, limit_bytes: int) -> None:
        _state_key(key)
        json.loads(value)  # the gateway sends JSON; anything else is a bug worth seeing
        current = self.state.get(instance_id, {})
        after = {**current, key: value}
        if state_size(after) > limit_bytes:
            raise StateLimitExceeded(
                f"state would be {state_size(after):,} bytes, over {limit_bytes:,}"
            )
        self.state[instance_id] = after

    async def feedback_since(self, instance_id: str, since_us: Micros) -> list[Feedback]:
        rows = [fb for _, fb in self.feedback.get(instance_id, []) if fb.at_us >= since_us]
        return sorted(rows, key=lambda fb: fb.at_us)

    def add_feedback(self, instance_id: str, feedback: Feedback) -> None:
        """Record a person's verdict (the inbox's part, in memory)."""
        known = {f.id for f in self.findings if f.instance_id == instance_id}
        if feedback.finding_id not in known:
            raise KeyError(f"no finding {feedback.finding_id!r} of instance {instance_id!r}")
        self.feedback.setdefault(instance_id, []).append((feedback.finding_id, feedback))

    def findings_of(self, instance_id: str) -> list[Finding]:
        return [f.finding for f in self.findings if f.instance_id == instance_id]

    def as_json(self) -> dict[str, Any]:
        """Everything kept, as JSON (for reports)."""
        return {
            "findings": [
                {"id": f.id, "instance_id": f.instance_id, "at_us": f.at_us, **f.finding.to_json()}
                for f in self.findings
            ],
            "work_orders": [
                {"id": w.id, "instance_id": w.instance_id, "at_us": w.at_us, **w.order.to_json()}
                for w in self.work_orders
            ],
        }
