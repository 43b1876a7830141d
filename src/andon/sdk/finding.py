"""What an app writes and reads back: findings, work-order proposals and people's feedback.

Each type checks itself on creation (``ValueError`` naming the field) and has a JSON form
(``to_json`` / ``from_json``) that is the protocol's; the gateway checks it once more.

>>> f = Finding(type="idle_energy", site="tc1", start_us=0, end_us=3_600_000_000,
...             score=0.8, title="MC-01 idle 1 h at 3.5 kW")
>>> Finding.from_json(f.to_json()) == f
True
>>> Finding(type="x", site="tc1", start_us=5, end_us=1, score=0.5, title="t")
Traceback (most recent call last):
...
ValueError: finding end_us: 1 is before start_us 5
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Final, Literal

__all__ = [
    "MAX_EVIDENCE_BYTES",
    "MAX_SIGNALS",
    "MAX_TEXT",
    "MAX_TITLE",
    "Feedback",
    "Finding",
    "WorkOrder",
]

MAX_TITLE: Final = 200
MAX_TEXT: Final = 4000
MAX_SIGNALS: Final = 50
MAX_EVIDENCE_BYTES: Final = 64 * 1024
"""Bytes of a finding's ``evidence`` as compact JSON."""


def _str(what: str, value: Any, limit: int, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected a string, got {type(value).__name__}")
    if not empty and not value.strip():
        raise ValueError(f"{what}: must not be empty")
    if len(value) > limit:
        raise ValueError(f"{what}: {len(value):,} characters, at most {limit:,}")
    return value


def _us(what: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{what}: expected an integer (µs since the epoch), got {value!r:.40}")
    return value


def _opt_str(what: str, value: Any, limit: int) -> str | None:
    return None if value is None else _str(what, value, limit)


@dataclass(frozen=True, slots=True)
class Finding:
    """One finding: of a ``type`` declared in the manifest, about ``site`` (and ``machine``,
    a machine path, when it is about one) over ``[start_us, end_us]``, with a ``score`` in
    0..1, a short ``title``, an ``explanation`` a person can follow, the ``signals`` (paths)
    to draw as evidence and a small JSON ``evidence`` object (at most 64 KiB)."""

    type: str
    site: str
    start_us: int
    end_us: int
    score: float
    title: str
    explanation: str = ""
    machine: str | None = None
    signals: tuple[str, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _str("finding type", self.type, 100)
        _str("finding site", self.site, 200)
        _opt_str("finding machine", self.machine, 500)
        _us("finding start_us", self.start_us)
        _us("finding end_us", self.end_us)
        if self.end_us < self.start_us:
            raise ValueError(f"finding end_us: {self.end_us} is before start_us {self.start_us}")
        score = self.score
        if not isinstance(score, int | float) or isinstance(score, bool):
            raise ValueError(f"finding score: expected a number, got {score!r:.40}")
        if not (math.isfinite(score) and 0.0 <= score <= 1.0):
            raise ValueError(f"finding score: {score!r} is not within 0..1")
        _str("finding title", self.title, MAX_TITLE)
        _str("finding explanation", self.explanation, MAX_TEXT, empty=True)
        if isinstance(self.signals, str) or not isinstance(self.signals, tuple | list):
            raise ValueError("finding signals: expected a list of signal paths")
        if len(self.signals) > MAX_SIGNALS:
            raise ValueError(f"finding signals: {len(self.signals)}, at most {MAX_SIGNALS}")
        for i, s in enumerate(self.signals):
            _str(f"finding signals[{i}]", s, 500)
        object.__setattr__(self, "signals", tuple(self.signals))
        if not isinstance(self.evidence, dict):
            raise ValueError("finding evidence: expected a JSON object")
        try:
            size = len(json.dumps(self.evidence, separators=(",", ":"), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"finding evidence: not JSON ({exc})") from None
        if size > MAX_EVIDENCE_BYTES:
            raise ValueError(f"finding evidence: {size:,} bytes, at most {MAX_EVIDENCE_BYTES:,}")

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "site": self.site,
            "machine": self.machine,
            "start_us": self.start_us,
            "end_us": self.end_us,
            "score": float(self.score),
            "title": self.title,
            "explanation": self.explanation,
            "signals": list(self.signals),
            "evidence": self.evidence,
        }

    @classmethod
    def from_json(cls, obj: Any) -> Finding:
        """The finding of a JSON object; ``ValueError`` naming the field that is wrong."""
        if not isinstance(obj, dict):
            raise ValueError("finding: expected a JSON object")
        known = {
            "type", "site", "machine", "start_us", "end_us", "score", "title",
            "explanation", "signals", "evidence",
        }  # fmt: skip
        extra = sorted(set(obj) - known)
        if extra:
            raise ValueError(f"finding: unknown field {extra[0]!r}")
        for key in ("type", "site", "start_us", "end_us", "score", "title"):
            if key not in obj:
                raise ValueError(f"finding {key}: required field is missing")
        signals = obj.get("signals", [])
        if not isinstance(signals, list):
            raise ValueError("finding signals: expected a list of signal paths")
        return cls(
            type=obj["type"],
            site=obj["site"],
            machine=obj.get("machine"),
            start_us=obj["start_us"],
            end_us=obj["end_us"],
            score=obj["score"],
            title=obj["title"],
            explanation=obj.get("explanation", ""),
            signals=tuple(signals),
            evidence=obj.get("evidence", {}),
        )


@dataclass(frozen=True, slots=True)
class WorkOrder:
    """A proposed work order for a machine; people decide whether it is raised."""

    site: str
    machine: str
    title: str
    detail: str = ""
    due_us: int | None = None

    def __post_init__(self) -> None:
        _str("work order site", self.site, 200)
        _str("work order machine", self.machine, 500)
        _str("work order title", self.title, MAX_TITLE)
        _str("work order detail", self.detail, MAX_TEXT, empty=True)
        if self.due_us is not None:
            _us("work order due_us", self.due_us)

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "machine": self.machine,
            "title": self.title,
            "detail": self.detail,
            "due_us": self.due_us,
        }

    @classmethod
    def from_json(cls, obj: Any) -> WorkOrder:
        if not isinstance(obj, dict):
            raise ValueError("work order: expected a JSON object")
        extra = sorted(set(obj) - {"site", "machine", "title", "detail", "due_us"})
        if extra:
            raise ValueError(f"work order: unknown field {extra[0]!r}")
        for key in ("site", "machine", "title"):
            if key not in obj:
                raise ValueError(f"work order {key}: required field is missing")
        return cls(
            obj["site"], obj["machine"], obj["title"], obj.get("detail", ""), obj.get("due_us")
        )


Verdict = Literal["confirmed", "rejected"]


@dataclass(frozen=True, slots=True)
class Feedback:
    """What a person said about one of the app's findings."""

    finding_id: str
    verdict: Verdict
    comment: str
    by: str
    at_us: int

    def __post_init__(self) -> None:
        if self.verdict not in ("confirmed", "rejected"):
            raise ValueError(f"feedback verdict: {self.verdict!r} is not confirmed or rejected")

    def to_json(self) -> dict[str, Any]:
        return {
            "finding_id": self.finding_id,
            "verdict": self.verdict,
            "comment": self.comment,
            "by": self.by,
            "at_us": self.at_us,
        }

    @classmethod
    def from_json(cls, obj: Any) -> Feedback:
        if not isinstance(obj, dict):
            raise ValueError("feedback: expected a JSON object")
        try:
            return cls(
                str(obj["finding_id"]),
                obj["verdict"],
                str(obj.get("comment", "")),
                str(obj.get("by", "")),
                _us("feedback at_us", obj["at_us"]),
            )
        except KeyError as exc:
            raise ValueError(f"feedback {exc.args[0]}: required field is missing") from None
