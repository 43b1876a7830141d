"""App manifests: the repository's apps and the example read; each bad manifest is one
error line ``file:line:col: field: what`` at the place of the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from andon.apps.manifest import (
    EXAMPLE,
    MANIFEST_FILE,
    AppManifest,
    load_manifest,
    parse_manifest,
)
from andon.model.loader import ModelError

ROOT = Path(__file__).resolve().parents[2]
APPS = sorted(p.parent for p in (ROOT / "apps").glob(f"*/{MANIFEST_FILE}"))


@pytest.mark.parametrize("app_dir", APPS, ids=[p.name for p in APPS])
def test_the_repository_apps_read(app_dir: Path) -> None:
    m = load_manifest(app_dir)
    assert m.id == app_dir.name
    assert m.finding_types and m.claims
    assert m.validate_settings(m.settings_defaults()) == m.settings_defaults()


def test_energy_idle_declares_what_it_reads_and_claims() -> None:
    m = load_manifest(ROOT / "apps" / "energy_idle")
    assert set(m.permissions) >= {"states:read", "telemetry:read", "findings:write"}
    assert m.inputs.signals == ("energy", "power")
    claim = m.claims[0]
    assert (claim.metric, claim.finding_type, claim.evidence_key) == (
        "saving_kwh",
        "idle_energy",
        "saving_kwh",
    )
    assert m.name.zh_tw == "閒置耗能" and m.package == "energy_idle"


def test_the_example_reads_and_its_settings_are_checked() -> None:
    m = parse_manifest(EXAMPLE)
    assert isinstance(m, AppManifest)
    assert m.validate_settings({}) == {"window_h": 1.0}
    assert m.validate_settings({"window_h": 3}) == {"window_h": 3.0}
    with pytest.raises(ValueError, match=r"setting 'window_h': Input should be greater"):
        m.validate_settings({"window_h": 0})
    with pytest.raises(ValueError, match=r"setting 'colour': Extra inputs"):
        m.validate_settings({"colour": "red"})


def _swap(old: str, new: str) -> str:
    assert old in EXAMPLE, old
    return EXAMPLE.replace(old, new)


def _add(line: str) -> str:
    """The example with one more top-level line (before ``price``, line 18)."""
    return _swap("price:", f"{line}\nprice:")


BAD: list[tuple[str, str, str]] = [
    ("bad id", _swap("id: hello", "id: Hello World"), "m.yaml:1:5: id: an app id is"),
    ("version", _swap("version: 0.1.0", "version: 1.0"), "m.yaml:4:10: version: Input should be"),
    ("licence missing", _swap("licence: Apache-2.0\n", ""), "licence: required field is missing"),
    ("category", _swap("category: production", "category: fun"), "m.yaml:6:11: category: unknown"),
    (
        "loss",
        _swap("losses: [idle]", "losses: [idle, boredom]"),
        "m.yaml:7:16: losses[1]: unknown loss 'boredom'",
    ),
    (
        "signal type",
        _swap("signals: [power]", "signals: [powr]"),
        "inputs.signals[0]: unknown signal type 'powr'",
    ),
    (
        "machine type",
        _swap("machines: [any]", "machines: [toaster]"),
        "inputs.machines[0]: unknown machine type",
    ),
    (
        "permission",
        _swap("  - telemetry:read", "  - telemetry:write"),
        "m.yaml:10:5: permissions[0]: unknown permission 'telemetry:write'",
    ),
    (
        "permission twice",
        _swap("  - findings:write", "  - findings:write\n  - findings:write"),
        "m.yaml:12:5: permissions[2]: permission 'findings:write' is listed twice",
    ),
    (
        "no findings permission",
        _swap("  - findings:write\n", ""),
        "finding_types: declares finding types but not 'findings:write'",
    ),
    (
        "setting type",
        _swap("{type: number, default: 1.0", "{type: float, default: 1.0"),
        "m.yaml:15:22: settings.properties.window_h.type: type must be one of",
    ),
    (
        "setting default",
        _swap("default: 1.0", "default: soon"),
        "settings.properties.window_h.default: default 'soon' is not a number",
    ),
    (
        "schema keyword",
        _swap("minimum: 0.1}", "minimum: 0.1, pattern: x}"),
        "settings.properties.window_h.pattern: unknown schema keyword",
    ),
    (
        "limit",
        _add("limits: {memory_mb: 1}"),
        "limits.memory_mb: Input should be greater than or equal to 16",
    ),
    ("unknown field", _add("colour: red"), "m.yaml:18:9: colour: unknown field"),
    ("price model", _swap("{model: free}", "{model: gratis}"), "price.model: Input should be"),
    (
        "entry",
        _swap("entry: hello.app:main", "entry: hello/app.py"),
        "entry: entry 'hello/app.py': expected 'package.module:function'",
    ),
    (
        "claim type",
        _add("claims: [{metric: recall, finding_type: nope, target: 0.5}]"),
        "claims[0].finding_type: no finding type 'nope' declared",
    ),
    (
        "claim target",
        _add("claims: [{metric: recall, finding_type: hello}]"),
        "claims[0]: a recall claim states its target",
    ),
    (
        "claim metric",
        _add("claims: [{metric: joy, finding_type: hello, target: 1}]"),
        "claims[0].metric: unknown claim metric 'joy'",
    ),
    (
        "finding type twice",
        _swap("finding_types:\n", "finding_types:\n  - {id: hello, name: {en: A, zh-TW: B}}\n"),
        "finding_types[1].id: finding type 'hello' is declared twice",
    ),
    (
        "zh-TW name",
        _swap("name: {en: Hello, zh-TW: 你好}", "name: {en: Hello}"),
        "m.yaml:2:7: name.zh-TW: required field is missing",
    ),
    ("not a mapping", "- a\n- b\n", "m.yaml:1:1: a manifest is a mapping"),
    ("bad YAML", "id: [", "m.yaml:1:6: invalid YAML"),
    ("empty", "", "m.yaml: the file is empty"),
]


@pytest.mark.parametrize(("text", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_manifest_is_one_line_at_its_place(text: str, expected: str) -> None:
    with pytest.raises(ModelError) as got:
        parse_manifest(text, "m.yaml")
    message = str(got.value)
    assert "\n" not in message
    assert message.startswith("m.yaml"), message
    assert expected in message, message


def test_an_app_directory_must_hold_its_entry(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_FILE).write_text(EXAMPLE, encoding="utf-8")
    with pytest.raises(ModelError, match=r"andon-app.yaml:19:8: entry: no module hello/app.py"):
        load_manifest(tmp_path)
    (tmp_path / "hello").mkdir()
    (tmp_path / "hello" / "app.py").write_text("async def main(ctx): ...\n", encoding="utf-8")
    assert load_manifest(tmp_path).entry == "hello.app:main"
    assert load_manifest(tmp_path / MANIFEST_FILE).id == "hello"


def test_a_missing_or_binary_manifest_says_so(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"andon-app.yaml: no such file"):
        load_manifest(tmp_path)
    (tmp_path / MANIFEST_FILE).write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ModelError, match=r"not UTF-8"):
        load_manifest(tmp_path)
