"""The package layering of ``docs/layering.md``, checked on the source: every module under
``src/andon`` is parsed with ``ast`` (nothing is imported), each import of another andon module
is mapped to both modules' layers, and an import of a higher layer fails, as does an import
of another package in the same layer unless the doc allows that pair. A second test fails on
any cycle between modules. Imports inside functions and under ``TYPE_CHECKING`` count: they
are dependencies all the same.

What remains of today's exceptions is in ``ALLOWED`` below, each with why and its issue; a
third test fails when an entry is no longer needed, so the list only shrinks."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = SRC / "andon"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("model", "sdk", "pdm"),
    ("wire",),
    ("connect", "store", "bus"),
    ("edge", "ingest", "kpi", "twin"),
    ("floor", "platform", "apps", "sim"),
    ("api", "web"),
    ("demo", "commands"),
    ("cli",),
)
"""Bottom to top (``docs/layering.md``). ``andon`` itself (the package root) is layer 0."""

SIDEWAYS: frozenset[tuple[str, str]] = frozenset(
    {
        ("twin", "kpi"),  # the twin calibrates from and reports in the KPI definitions
        ("commands", "demo"),  # ``andon demo`` is the command line of the demo package
        ("floor", "platform"),  # floor records live in the platform's metadata database
        ("apps", "platform"),  # one authorisation code; installs live in the metadata DB (0900)
    }
)
"""Imports between two packages of one layer that the doc allows (importer, imported)."""

STANDALONE: frozenset[str] = frozenset({"sdk", "pdm"})
"""Packages that import no other andon package at all: ``andon.sdk`` ships to app vendors
as its own wheel (decision 0900); ``andon.pdm`` is mounted beside it in the app sandbox
(decision 0903)."""

ONLY_FOR: dict[str, frozenset[str]] = {
    "sim": frozenset({"demo"}),  # the virtual factory is no production code path's
}
"""Packages that only the listed packages may import, whatever their layers."""

ALLOWED: dict[tuple[str, str], str] = {
    # (importing module, imported module): why it is still there, and the issue that removes it
}
"""Today's exceptions, keyed by the exact import; each must still be needed."""

CYCLES_ALLOWED: dict[frozenset[str], str] = {}
"""Module cycles tolerated today (the modules of the cycle): none."""


def _layer_of(package: str) -> int:
    if package == "andon":
        return 0
    for i, names in enumerate(LAYERS):
        if package in names:
            return i
    raise AssertionError(
        f"package andon.{package} has no layer: add it to LAYERS here and to docs/layering.md"
    )


@cache
def modules() -> dict[str, Path]:
    """Every module under src/andon by dotted name (packages by their own name)."""
    found: dict[str, Path] = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def package(module: str) -> str:
    """The top-level package (``andon.api.routes`` -> ``api``; ``andon.cli`` -> ``cli``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "andon"


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The andon modules an import statement depends on."""
    known = modules()
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: resolve against the importing module's package
            here = module.split(".")
            if modules()[module].name != "__init__.py":
                here.pop()
            here = here[: len(here) - (node.level - 1)]
            base = ".".join(here + ([base] if base else []))
        # ``from pkg import sub`` depends on the submodule when there is one
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    for name in names:
        if not name.startswith("andon"):
            continue
        while name not in known and "." in name:  # ``import andon.x.Y`` of a name: its module
            name = name.rsplit(".", 1)[0]
        if module == name or module.startswith(name + "."):
            continue  # a module's own packages are imported with it anyway
        yield name


def _import_statements(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth (functions, classes, ``if``, ``try``), visiting
    statements only: imports are never inside expressions (twice as fast as ``ast.walk``)."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
            continue
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            stack.extend(getattr(node, name, ()))


@cache
def imports() -> dict[str, frozenset[str]]:
    """For each module, the andon modules it imports (anywhere in its body)."""
    graph: dict[str, frozenset[str]] = {}
    for module, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        got = {t for node in _import_statements(tree) for t in _targets(module, node)}
        graph[module] = frozenset(got)
    return graph


def violation(importer: str, imported: str) -> str | None:
    """Why ``importer`` may not import ``imported`` under the layering, or None."""
    a, b = package(importer), package(imported)
    if a == b:
        return None
    la, lb = _layer_of(a), _layer_of(b)
    if b in ONLY_FOR and a not in ONLY_FOR[b]:
        only = sorted(ONLY_FOR[b])
        return f"module {importer} ({a}) imports {imported} ({b}), which only {only} may"
    if lb < la or (lb == la and (a, b) in SIDEWAYS):
        return None
    kind = "a higher layer" if lb > la else "a package of its own layer"
    return f"module {importer} (layer {la}: {a}) imports {imported} (layer {lb}: {b}), {kind}"


def violations() -> dict[tuple[str, str], str]:
    return {
        (m, t): why
        for m, targets in imports().items()
        for t in sorted(targets)
        if (why := violation(m, t)) is not None
    }


def cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    graph = imports()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:  # the graph is a few hundred modules: recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_package_has_a_layer() -> None:
    for module in modules():
        _layer_of(package(module))


def test_no_upward_or_sideways_import() -> None:
    bad = [why for key, why in violations().items() if key not in ALLOWED]
    assert not bad, "imports against docs/layering.md:\n" + "\n".join(bad)


def test_every_allowed_exception_is_still_needed() -> None:
    found = violations()
    stale = [f"{a} -> {b}" for a, b in ALLOWED if (a, b) not in found]
    assert not stale, "no longer needed, remove from ALLOWED:\n" + "\n".join(stale)


def test_standalone_packages_import_only_themselves() -> None:
    """``andon.sdk`` imports the standard library and pyarrow, nothing of andon."""
    bad = [
        f"{m} imports {t}"
        for m, targets in imports().items()
        if package(m) in STANDALONE
        for t in sorted(targets)
        if package(t) != package(m)
    ]
    assert not bad, "a standalone package imports andon:\n" + "\n".join(bad)
    assert all(any(package(m) == p for m in modules()) for p in STANDALONE)


def test_no_module_cycle() -> None:
    found = {frozenset(c): c for c in cycles()}
    bad = [" -> ".join(c) for key, c in found.items() if key not in CYCLES_ALLOWED]
    assert not bad, "module import cycles:\n" + "\n".join(bad)
    stale = [sorted(k) for k in CYCLES_ALLOWED if k not in found]
    assert not stale, f"no longer cycles, remove from CYCLES_ALLOWED: {stale}"


def test_the_doc_states_the_same_layers() -> None:
    """docs/layering.md's "Layer order" line is LAYERS, so the picture and the check agree."""
    doc = (SRC.parent / "docs" / "layering.md").read_text(encoding="utf-8").splitlines()
    at = doc.index("Layer order, bottom to top (the test reads this line):")
    stated = tuple(
        tuple(name.strip() for name in layer.split(",")) for layer in doc[at + 1].split("<")
    )
    assert stated == LAYERS


def test_the_check_sees_an_upward_import() -> None:
    """The rules themselves: an upward, a sideways and an allowed import."""
    assert violation("andon.model.plant", "andon.api.app") == (
        "module andon.model.plant (layer 0: model) imports andon.api.app (layer 5: api), "
        "a higher layer"
    )
    assert violation("andon.api.app", "andon.web") is not None
    assert violation("andon.ingest.gateway", "andon.edge.uplink") is not None
    assert violation("andon.ingest.gateway", "andon.wire.frames") is None
    assert violation("andon.twin.jobs", "andon.kpi.ranges") is None
    assert violation("andon.demo.web", "andon.api") is None
    assert violation("andon.cli", "andon.commands.demo") is None
    assert violation("andon.api.routes", "andon.sim.factory") == (
        "module andon.api.routes (api) imports andon.sim.factory (sim), which only ['demo'] may"
    )
    assert violation("andon.demo.run", "andon.sim.factory") is None
