"""The app manifest, ``andon-app.yaml`` (decision 0900): what an app is, what it reads,
what it asks for, what it claims, and how it starts.

Read with the bounded YAML loader of the plant model; every problem is one ``ModelError``
line ``file:line:col: field: what`` (``andon.model.loader``). Settings are declared as a
small JSON schema (an object of typed properties) and checked with pydantic.

>>> m = parse_manifest(EXAMPLE, "andon-app.yaml")
>>> m.id, m.permissions, m.settings_defaults()
('hello', ('telemetry:read', 'findings:write'), {'window_h': 1.0})
>>> parse_manifest(EXAMPLE.replace("version: 0.1.0", "version: v1.0"), "andon-app.yaml")
Traceback (most recent call last):
...
andon.model.loader.ModelError: andon-app.yaml:4:10: version: version 'v1.0' is not MAJOR.MINOR.PATCH
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
)

from andon.apps.grant import APP_PERMISSIONS
from andon.model.loader import Loc, ModelError, read_yaml, validation_error
from andon.model.plant import MachineType
from andon.model.signals import SIGNAL_TYPES

__all__ = [
    "CATEGORIES",
    "CLAIM_METRICS",
    "EXAMPLE",
    "LOSS_TERMS",
    "MANIFEST_FILE",
    "AppManifest",
    "Claim",
    "FindingType",
    "Limits",
    "Price",
    "load_manifest",
    "parse_manifest",
]

MANIFEST_FILE: Final = "andon-app.yaml"

CATEGORIES: Final = ("energy", "maintenance", "quality", "production", "environment", "logistics")

LOSS_TERMS: Final = (
    # ISO 22400-2 time model and the six big losses (as andon.kpi.oee's waterfall names them)
    "breakdown",
    "setup",
    "minor_stop",
    "idle",
    "speed_loss",
    "startup_reject",
    "production_reject",
    "no_data",
    # energy
    "idle_energy",
    "standby_energy",
    "peak_demand",
    "energy_per_part",
    "carbon",
    # quality
    "scrap",
    "rework",
    "process_drift",
    "out_of_spec",
    # maintenance
    "unplanned_downtime",
    "tool_wear",
)
"""The losses an app may say it addresses: the catalog matches them to a plant's losses."""

CLAIM_METRICS: Final = ("saving_kwh", "saving_cost", "precision", "recall", "lead_time_s")
"""What a claim may measure; the test harness measures each against the virtual factory's
ground truth (docs/apps.md, "Claims")."""

_ID = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$")
_ENTRY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")

_SETTING_TYPES: dict[str, Any] = {"number": float, "integer": int, "string": str, "boolean": bool}

EXAMPLE: Final = """\
id: hello
name: {en: Hello, zh-TW: 你好}
vendor: Example Ltd
version: 0.1.0
licence: Apache-2.0
category: production
losses: [idle]
inputs: {signals: [power], machines: [any]}
permissions:
  - telemetry:read
  - findings:write
settings:
  type: object
  properties:
    window_h: {type: number, default: 1.0, minimum: 0.1}
finding_types:
  - {id: hello, name: {en: Hello, zh-TW: 你好}}
price: {model: free}
entry: hello.app:main
"""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Names(_Strict):
    """A name in English and Traditional Chinese."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    en: Annotated[str, Field(min_length=1, max_length=120)]
    zh_tw: Annotated[str, Field(min_length=1, max_length=120, alias="zh-TW")]


class Texts(Names):
    """A longer text in English and Traditional Chinese."""

    en: Annotated[str, Field(min_length=1, max_length=2000)]
    zh_tw: Annotated[str, Field(min_length=1, max_length=2000, alias="zh-TW")]


def _signal_type(s: str) -> str:
    if s not in SIGNAL_TYPES:
        raise ValueError(f"unknown signal type {s!r}; known: {', '.join(SIGNAL_TYPES)}")
    return s


_MACHINE_TYPES = ("any", *(t.value for t in MachineType))


def _machine_type(m: str) -> str:
    if m not in _MACHINE_TYPES:
        raise ValueError(f"unknown machine type {m!r}; known: {', '.join(_MACHINE_TYPES)}")
    return m


def _loss(loss: str) -> str:
    if loss not in LOSS_TERMS:
        raise ValueError(f"unknown loss {loss!r}; expected some of {', '.join(LOSS_TERMS)}")
    return loss


class Inputs(_Strict):
    signals: tuple[Annotated[str, AfterValidator(_signal_type)], ...] = ()
    """Signal types the app reads (``andon.model.signals``)."""
    machines: tuple[Annotated[str, AfterValidator(_machine_type)], ...] = ("any",)
    """Machine types it works on, or ``any``."""


class Limits(_Strict):
    """What one instance may use; the supervisor enforces them, the gateway the rate."""

    cpu_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    """CPU seconds per run (per start of the process)."""
    memory_mb: Annotated[int, Field(ge=16, le=8192)] = 256
    files: Annotated[int, Field(ge=8, le=4096)] = 64
    """Open file descriptors."""
    processes: Annotated[int, Field(ge=1, le=256)] = 8
    findings_per_min: Annotated[int, Field(ge=1, le=10_000)] = 60


class FindingType(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,39}$")]
    name: Names
    description: str = ""


class Price(_Strict):
    model: Literal["free", "subscription", "per_site", "per_machine", "usage"]
    amount: Annotated[float, Field(ge=0)] | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None
    period: Literal["month", "year"] | None = None

    @field_validator("amount")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and v != v:
            raise ValueError("amount is not a number")
        return v


class Claim(_Strict):
    """What the vendor says the app achieves, measured by ``andon app test``: ``metric``
    of the findings of ``finding_type`` (each finding's share in ``evidence[evidence_key]``
    for the sums), within ``tolerance_pct`` of the truth (or at least ``target`` for
    precision, recall and lead time)."""

    metric: str
    finding_type: str
    evidence_key: str | None = None
    target: float | None = None
    tolerance_pct: Annotated[float, Field(gt=0, le=100)] | None = None
    description: str = ""

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        if v not in CLAIM_METRICS:
            raise ValueError(
                f"unknown claim metric {v!r}; expected one of {', '.join(CLAIM_METRICS)}"
            )
        return v


class AppManifest(_Strict):
    """An app's manifest (see the module and docs/apps.md)."""

    id: str
    name: Names
    description: Texts | None = None
    vendor: Annotated[str, Field(min_length=1, max_length=120)]
    version: str
    licence: Annotated[str, Field(min_length=1, max_length=60)]
    category: str
    losses: tuple[Annotated[str, AfterValidator(_loss)], ...] = ()
    inputs: Inputs = Inputs()
    permissions: tuple[str, ...] = ()
    limits: Limits = Limits()
    settings: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    finding_types: tuple[FindingType, ...] = ()
    claims: tuple[Claim, ...] = ()
    price: Price
    entry: str

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError(
                "an app id is 2-40 lowercase letters, digits and '_', starting with a letter"
            )
        return v

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        if not _SEMVER.match(v):
            raise ValueError(f"version {v!r} is not MAJOR.MINOR.PATCH")
        return v

    @field_validator("category")
    @classmethod
    def _category(cls, v: str) -> str:
        if v not in CATEGORIES:
            raise ValueError(f"unknown category {v!r}; expected one of {', '.join(CATEGORIES)}")
        return v

    @field_validator("entry")
    @classmethod
    def _entry(cls, v: str) -> str:
        if not _ENTRY.match(v):
            raise ValueError(f"entry {v!r}: expected 'package.module:function'")
        return v

    @property
    def finding_type_ids(self) -> frozenset[str]:
        return frozenset(t.id for t in self.finding_types)

    @property
    def package(self) -> str:
        """The top-level package the entry lives in."""
        return self.entry.split(":", 1)[0].split(".", 1)[0]

    def settings_model(self) -> type[BaseModel]:
        """A pydantic model of the settings schema (unknown settings refused)."""
        props = self.settings.get("properties", {})
        required = set(self.settings.get("required", ()))
        fields: dict[str, Any] = {}
        for name, spec in props.items():
            py = _SETTING_TYPES[spec["type"]]
            if "enum" in spec:
                py = Literal[tuple(spec["enum"])]
            bounds = {
                k: spec[v]
                for k, v in (("ge", "minimum"), ("le", "maximum"), ("max_length", "maxLength"))
                if v in spec
            }
            if name in required or "default" not in spec:
                fields[name] = (py, Field(..., **bounds))
            else:
                fields[name] = (py, Field(spec["default"], **bounds))
        model: type[BaseModel] = create_model(
            f"{self.id}_settings", __config__=ConfigDict(extra="forbid", strict=False), **fields
        )
        return model

    def settings_defaults(self) -> dict[str, Any]:
        props = self.settings.get("properties", {})
        return {k: spec["default"] for k, spec in props.items() if "default" in spec}

    def validate_settings(self, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` checked against the schema, defaults filled in; ``ValueError`` with
        one line per problem otherwise (``setting 'x': ...``)."""
        try:
            return self.settings_model().model_validate(values).model_dump()
        except ValidationError as exc:
            lines = [
                f"setting {'.'.join(str(p) for p in e['loc']) or '(all)'!r}: {e['msg']}"
                for e in exc.errors(include_url=False)
            ]
            raise ValueError("; ".join(lines)) from None


def _schema_problems(schema: Any) -> list[tuple[Loc, str]]:
    """The settings schema's shape: an object of typed properties with fitting defaults."""
    base: Loc = ("settings",)
    if not isinstance(schema, dict):
        return [(base, "settings is a JSON schema object")]
    out: list[tuple[Loc, str]] = []
    extra = sorted(set(schema) - {"type", "properties", "required", "title", "description"})
    if extra:
        out.append(((*base, extra[0]), "unknown schema keyword (check the spelling)"))
    if schema.get("type", "object") != "object":
        out.append(((*base, "type"), "the settings schema's type must be 'object'"))
    props = schema.get("properties", {})
    if not isinstance(props, dict):
        return [*out, ((*base, "properties"), "properties is a mapping of setting names")]
    for name, spec in props.items():
        loc: Loc = (*base, "properties", name)
        if not isinstance(spec, dict):
            out.append((loc, "a setting is a mapping with a type"))
            continue
        allowed = {"type", "default", "minimum", "maximum", "maxLength", "enum", "title",
                   "description"}  # fmt: skip
        bad = sorted(set(spec) - allowed)
        if bad:
            out.append(
                ((*loc, bad[0]), f"unknown schema keyword; allowed: {', '.join(sorted(allowed))}")
            )
        kind = spec.get("type")
        if kind not in _SETTING_TYPES:
            out.append(((*loc, "type"), f"type must be one of {', '.join(_SETTING_TYPES)}"))
            continue
        if "default" in spec and not _fits(spec["default"], kind):
            out.append(((*loc, "default"), f"default {spec['default']!r} is not a {kind}"))
    req = schema.get("required", [])
    if not isinstance(req, list) or any(r not in props for r in req):
        out.append(((*base, "required"), "required lists names of declared properties"))
    return out


def _fits(value: Any, kind: str) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int)
    if kind == "number":
        return isinstance(value, int | float)
    return isinstance(value, str)


def _cross_problems(m: AppManifest) -> list[tuple[Loc, str]]:
    out: list[tuple[Loc, str]] = []
    seen: set[str] = set()
    for i, p in enumerate(m.permissions):
        if p not in APP_PERMISSIONS:
            out.append(
                (
                    ("permissions", i),
                    f"unknown permission {p!r}; expected one of {', '.join(APP_PERMISSIONS)}",
                )
            )
        elif p in seen:
            out.append((("permissions", i), f"permission {p!r} is listed twice"))
        seen.add(p)
    types: set[str] = set()
    for i, ft in enumerate(m.finding_types):
        if ft.id in types:
            out.append((("finding_types", i, "id"), f"finding type {ft.id!r} is declared twice"))
        types.add(ft.id)
    if m.finding_types and "findings:write" not in m.permissions:
        out.append((("finding_types",), "declares finding types but not 'findings:write'"))
    for i, c in enumerate(m.claims):
        if c.finding_type not in types:
            out.append(
                (("claims", i, "finding_type"), f"no finding type {c.finding_type!r} declared")
            )
        if c.metric in ("saving_kwh", "saving_cost"):
            if c.evidence_key is None:
                out.append((("claims", i), f"a {c.metric} claim names its evidence_key"))
            if c.tolerance_pct is None:
                out.append((("claims", i), f"a {c.metric} claim states its tolerance_pct"))
        elif c.target is None:
            out.append((("claims", i), f"a {c.metric} claim states its target"))
    return out


def parse_manifest(text: str, file: str = MANIFEST_FILE) -> AppManifest:
    """Parse and check a manifest; ``ModelError`` (one line, file:line) on the first problem."""
    marks: dict[Loc, tuple[int, int]] = {}
    data = read_yaml(text, file, marks)
    if not isinstance(data, dict):
        raise ModelError(file, 1, 1, "", "a manifest is a mapping (id, name, version, ...)")
    problems = _schema_problems(data.get("settings", {"type": "object"}))
    try:
        manifest = AppManifest.model_validate(data)
    except ValidationError as exc:
        if problems:  # the schema's own problem is the clearer one
            raise _at(file, marks, *problems[0], len(problems) - 1) from None
        raise validation_error(exc, file, marks) from None
    problems += _cross_problems(manifest)
    if problems:
        raise _at(file, marks, *problems[0], len(problems) - 1)
    return manifest


def _at(file: str, marks: dict[Loc, tuple[int, int]], loc: Loc, msg: str, more: int) -> ModelError:
    from andon.model.loader import _at as at  # one placement rule for every YAML input

    return at(file, loc, marks, msg, more)


def load_manifest(path: str | Path) -> AppManifest:
    """Read the manifest at ``path`` (the file, or an app directory holding
    ``andon-app.yaml``). For a directory, the entry's package must be in it."""
    p = Path(path)
    file = p / MANIFEST_FILE if p.is_dir() else p
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(str(file), None, None, "", "no such file") from None
    except UnicodeDecodeError as exc:
        raise ModelError(str(file), None, None, "", f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ModelError(str(file), None, None, "", exc.strerror or str(exc)) from None
    manifest = parse_manifest(text, str(file))
    module = manifest.entry.split(":", 1)[0].replace(".", "/")
    root = file.parent
    if not ((root / f"{module}.py").is_file() or (root / module / "__init__.py").is_file()):
        marks: dict[Loc, tuple[int, int]] = {}
        read_yaml(text, str(file), marks)
        raise _at(str(file), marks, ("entry",), f"no module {module}.py in {root}", 0)
    return manifest
