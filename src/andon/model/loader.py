"""Load a plant file: YAML → pydantic ``Plant``, with every error pointing at a file, a line
and a field.

PyYAML's composer keeps the position of every node; we build the Python data ourselves from
the node tree and remember the line of each path, so that a pydantic error location such as
``('site', 'areas', 0, 'lines', 1, 'machines', 2, 'signals', 0, 'type')`` is reported as
``plant.yaml:41:17: site.areas[0].lines[1].machines[2].signals[0].type: ...``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from andon.model.plant import Plant

__all__ = [
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_YAML_CHARS",
    "BoundedLoader",
    "ModelError",
    "load_plant",
    "parse_plant",
    "read_yaml",
    "safe_load",
    "validation_error",
]

MAX_ALIASES = 1_000
"""Alias uses (``*name``) per document; a plant file needs a handful, a "billion laughs"
body needs them by the hundred."""
MAX_DEPTH = 64
"""Nesting of mappings and sequences; a plant file is about ten deep."""
MAX_NODES = 100_000
"""Nodes after aliases are expanded (the demo plant has about 800)."""
MAX_YAML_CHARS = 4_000_000
"""Characters of one YAML text."""

Loc = tuple[str | int, ...]
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class ModelError(Exception):
    """A plant file that cannot be used. ``str()`` is one line: ``file:line:col: field: why``."""

    def __init__(
        self,
        file: str,
        line: int | None,
        column: int | None,
        field: str,
        message: str,
        more: int = 0,
    ) -> None:
        self.file, self.line, self.column, self.field = file, line, column, field
        self.message, self.more = message, more
        where = file if line is None else f"{file}:{line}:{column or 1}"
        text = f"{where}: {field + ': ' if field else ''}{message}"
        if more:
            text += f" (and {more} more error{'s' if more > 1 else ''})"
        super().__init__(text)

    def __reduce__(self) -> tuple[Any, ...]:  # raised in a parser process, re-raised here
        args = (self.file, self.line, self.column, self.field, self.message, self.more)
        return (ModelError, args)


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with bounds, for every YAML andon reads (plant models through the
    API, edge and serve configs): at most ``MAX_ALIASES`` alias uses and ``MAX_DEPTH`` levels
    of nesting while composing, at most ``MAX_NODES`` nodes once aliases are expanded (see
    ``read_yaml``), no recursive aliases, no NUL or lone surrogate in a string. Each
    breach is a ``yaml.MarkedYAMLError`` at the place it happens."""

    def __init__(self, stream: str) -> None:
        if len(stream) > MAX_YAML_CHARS:
            raise yaml.YAMLError(f"longer than {MAX_YAML_CHARS:,} characters")
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(
                    None, None, f"more than {MAX_ALIASES} aliases", mark
                )
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """A scalar whose value cannot be built (a 100,000-digit integer, the year 99999)
        or a string with a NUL or a lone surrogate (no database stores those) is refused
        at its place."""
        try:
            value = super().construct_object(node, deep=deep)
        except (ValueError, ArithmeticError, TypeError, AttributeError) as exc:
            why = " ".join(str(exc).split())[:80]
            if isinstance(exc, TypeError | AttributeError):  # e.g. !!timestamp 99999-01-01
                why = f"not a valid {str(node.tag).rsplit(':', 1)[-1]}"
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this value ({why})", node.start_mark
            ) from None
        if isinstance(value, str) and (bad := _UNSTORABLE.search(value)) is not None:
            what = "NUL characters" if bad.group() == "\x00" else "UTF-16 surrogates"
            raise yaml.constructor.ConstructorError(
                None, None, f"{what} are not accepted in text", node.start_mark
            )
        return value


def safe_load(text: str, file: str = "<string>") -> Any:
    """``yaml.safe_load`` with the bounds of ``BoundedLoader`` and ``read_yaml``: any YAML
    that is not a plant model or a located config (``ModelError`` on every problem)."""
    return read_yaml(text, file, {}, allow_empty=True)


def _build(
    node: yaml.Node,
    loc: Loc,
    marks: dict[Loc, tuple[int, int]],
    loader: BoundedLoader,
    file: str,
    active: set[int] | None = None,
) -> Any:
    loader._nodes += 1
    if loader._nodes > MAX_NODES:
        raise yaml.composer.ComposerError(
            None,
            None,
            f"more than {MAX_NODES:,} values once aliases are expanded",
            node.start_mark,
        )
    marks[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.CollectionNode):
        active = set() if active is None else active
        if id(node) in active:
            raise yaml.composer.ComposerError(
                None, None, "an alias refers to a node that contains it", node.start_mark
            )
        active.add(id(node))
        try:
            return _build_collection(node, loc, marks, loader, file, active)
        finally:
            active.discard(id(node))
    return loader.construct_object(node, deep=True)


def _build_collection(
    node: yaml.CollectionNode,
    loc: Loc,
    marks: dict[Loc, tuple[int, int]],
    loader: BoundedLoader,
    file: str,
    active: set[int],
) -> Any:
    if isinstance(node, yaml.MappingNode):
        explicit = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
        loader.flatten_mapping(node)
        merged = len(node.value) - explicit  # pairs from '<<' merges come first
        out: dict[Any, Any] = {}
        explicit_keys: set[Any] = set()
        for i, (key_node, value_node) in enumerate(node.value):
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int):
                raise ModelError(
                    file,
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                    _fmt(loc),
                    "mapping keys must be strings",
                )
            if i >= merged:
                if key in explicit_keys:
                    raise ModelError(
                        file,
                        key_node.start_mark.line + 1,
                        key_node.start_mark.column + 1,
                        _fmt((*loc, key)),
                        "duplicate key",
                    )
                explicit_keys.add(key)
            out[key] = _build(value_node, (*loc, key), marks, loader, file, active)
        return out
    return [_build(v, (*loc, i), marks, loader, file, active) for i, v in enumerate(node.value)]


def _fmt(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _locate(loc: Loc, marks: dict[Loc, tuple[int, int]]) -> tuple[int, int] | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in marks:
            return marks[loc[:n]]
    return None


def read_yaml(
    text: str, file: str, marks: dict[Loc, tuple[int, int]], *, allow_empty: bool = False
) -> Any:
    """Parse YAML keeping the (line, column) of every path in ``marks``; duplicate keys,
    syntax errors and breaches of ``BoundedLoader``'s bounds raise ``ModelError``. Shared by
    every YAML input of andon. CPU-bound: async callers run it in a thread."""
    try:
        loader = BoundedLoader(text)
    except yaml.YAMLError as exc:  # e.g. control characters rejected by the reader
        raise ModelError(
            file, None, None, "", "invalid YAML: " + " ".join(str(exc).split())
        ) from None
    try:
        node = loader.get_single_node()
        if node is None:
            if allow_empty:
                return None
            raise ModelError(file, None, None, "", "the file is empty")
        return _build(node, (), marks, loader, file)
    except RecursionError:  # e.g. a '<<' merge of a mapping into itself
        raise ModelError(file, None, None, "", "invalid YAML: nested too deep") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        raise ModelError(file, line, col, "", f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ModelError(file, None, None, "", f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()


def validation_error(
    exc: ValidationError,
    file: str,
    marks: dict[Loc, tuple[int, int]],
    prefix: Loc = (),
) -> ModelError:
    """The first pydantic error as one ``ModelError`` placed at its YAML position."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = (*prefix, *(p for p in first["loc"] if not (isinstance(p, str) and "[" in p)))
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown field (check the spelling)"
    elif first["type"] == "missing":
        msg = "required field is missing"
    return _at(file, loc, marks, msg, len(errors) - 1)


def parse_plant(text: str, file: str = "<string>") -> Plant:
    """Parse and validate a plant from YAML text; raise ``ModelError`` on the first problem."""
    marks: dict[Loc, tuple[int, int]] = {}
    data = read_yaml(text, file, marks)
    if not isinstance(data, dict):
        raise ModelError(file, 1, 1, "", "a plant file is a mapping with a 'site' key")
    # Pydantic reads the YAML key 'from' through the alias; locations then say 'from'.
    try:
        plant = Plant.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, file, marks) from None
    problems = list(_reference_problems(plant))
    if problems:
        loc, msg = problems[0]
        raise _at(file, loc, marks, msg, len(problems) - 1)
    return plant


def _at(file: str, loc: Loc, marks: dict[Loc, tuple[int, int]], msg: str, more: int) -> ModelError:
    """The error for ``loc``, placed at the nearest position the YAML file has for it."""
    pos = _locate(loc, marks)
    return ModelError(
        file, pos[0] if pos else None, pos[1] if pos else None, _fmt(loc), msg, more=more
    )


def load_plant(path: str | Path) -> Plant:
    """Read and validate a plant file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(str(path), None, None, "", "no such file") from None
    except IsADirectoryError:
        raise ModelError(str(path), None, None, "", "is a directory, not a plant file") from None
    except UnicodeDecodeError as exc:
        raise ModelError(str(path), None, None, "", f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ModelError(str(path), None, None, "", exc.strerror or str(exc)) from None
    return parse_plant(text, str(path))


def _dupes(ids: Iterable[str]) -> list[str]:
    return [k for k, n in Counter(ids).items() if n > 1]


def _reference_problems(plant: Plant) -> Iterable[tuple[Loc, str]]:
    """Checks across objects: unique ids, buffer ends, products, meters, maintenance."""
    site = plant.site
    base: Loc = ("site",)
    all_machines: set[str] = set()
    for d in _dupes(a.id for a in site.areas):
        yield (*base, "areas"), f"duplicate area id {d!r}"
    for ai, area in enumerate(site.areas):
        aloc: Loc = (*base, "areas", ai)
        for d in _dupes(ln.id for ln in area.lines):
            yield (*aloc, "lines"), f"duplicate line id {d!r}"
        for d in _dupes(s.id for s in area.sensors):
            yield (*aloc, "sensors"), f"duplicate sensor id {d!r}"
        for li, line in enumerate(area.lines):
            lloc: Loc = (*aloc, "lines", li)
            ids = [m.id for m in line.machines]
            for d in _dupes(ids):
                yield (*lloc, "machines"), f"duplicate machine id {d!r}"
            for d in _dupes(b.id for b in line.buffers):
                yield (*lloc, "buffers"), f"duplicate buffer id {d!r}"
            for d in _dupes(p.id for p in line.products):
                yield (*lloc, "products"), f"duplicate product id {d!r}"
            for d in set(ids) & all_machines:
                yield (*lloc, "machines"), f"machine id {d!r} is used on another line"
            all_machines |= set(ids)
            products = {p.id for p in line.products}
            for mi, m in enumerate(line.machines):
                mloc: Loc = (*lloc, "machines", mi)
                for missing in sorted(products - set(m.ideal_cycle_s)):
                    yield (
                        (*mloc, "ideal_cycle_s"),
                        (f"no ideal cycle time for product {missing!r} made on line {line.id!r}"),
                    )
                for d in _dupes(s.id for s in m.signals):
                    yield (*mloc, "signals"), f"duplicate signal id {d!r}"
                for fi, fm in enumerate(m.sim.failure_modes):
                    if fm.degradation is None:
                        continue
                    floc: Loc = (*mloc, "sim", "failure_modes", fi, "degradation")
                    if m.sim.failure_basis == "calendar":
                        yield (
                            floc,
                            "a degrading mode wears in operating time; "
                            "it needs failure_basis: operating",
                        )
                    for p in fm.degradation.regimes:
                        if p not in products:
                            yield (*floc, "regimes", p), f"no product {p!r} on line {line.id!r}"
                if (
                    m.sim.wear is not None
                    and m.sim.wear.dress_every_parts is not None
                    and m.sim.wear.kind != "wheel"
                ):
                    yield (
                        (*mloc, "sim", "wear", "dress_every_parts"),
                        "only a wheel is dressed (set kind: wheel)",
                    )
            feeds: dict[str, str] = {}
            takes: dict[str, str] = {}
            for bi, b in enumerate(line.buffers):
                bloc: Loc = (*lloc, "buffers", bi)
                if b.initial > b.capacity:
                    yield (*bloc, "initial"), f"initial {b.initial} exceeds capacity {b.capacity}"
                for key, ends, seen in (("from", b.from_, feeds), ("to", b.to, takes)):
                    for ei, mid in enumerate(ends):
                        if mid not in ids:
                            yield (*bloc, key, ei), f"no machine {mid!r} on line {line.id!r}"
                        elif mid in seen:
                            yield (
                                (*bloc, key, ei),
                                (f"machine {mid!r} is already connected to buffer {seen[mid]!r}"),
                            )
                        else:
                            seen[mid] = b.id
                for mid in set(b.from_) & set(b.to):
                    yield (*bloc, "to"), f"machine {mid!r} would feed itself"
    for d in _dupes(mt.id for mt in site.meters):
        yield (*base, "meters"), f"duplicate meter id {d!r}"
    for d in {mt.id for mt in site.meters} & {a.id for a in site.areas}:
        yield (*base, "meters"), f"meter id {d!r} is also an area id"
    for mi, mt in enumerate(site.meters):
        for ci, mid in enumerate(mt.covers):
            if mid not in all_machines:
                yield (*base, "meters", mi, "covers", ci), f"no machine {mid!r} in the plant"
    for wi, w in enumerate(site.calendar.maintenance):
        for ci, mid in enumerate(w.machines):
            if mid not in all_machines:
                yield (
                    (*base, "calendar", "maintenance", wi, "machines", ci),
                    f"no machine {mid!r} in the plant",
                )
