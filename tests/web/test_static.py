"""The dashboard's static files, without a browser: the page and its modules are served with
the web content policy, every module an ES ``import`` names exists, and the translation files
agree (same keys, no empty values, every key the code asks for is present)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from andon.api.middleware import WEB_CSP
from andon.commands.platform import platform_app
from andon.kpi.reasons import ReasonTree
from andon.platform.config import Settings
from andon.web import STATIC_DIR

JS = STATIC_DIR / "js"
I18N = STATIC_DIR / "i18n"
_IMPORT = re.compile(
    r"""(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]"""
)
_KEY = re.compile(r"""\bt\(\s*'([A-Za-z0-9_.-]+)'""")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    """The app ``andon serve`` runs, without its lifespan (no ``with``): static files need no
    database or store."""
    db = tmp_path_factory.mktemp("web") / "m.db"
    return TestClient(platform_app(Settings(database_url=f"sqlite:///{db}")))


def _modules() -> list[Path]:
    return sorted(JS.rglob("*.js"))


def test_index_is_served_with_the_web_policy(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/js/app.js">' in r.text
    csp = r.headers["content-security-policy"]
    assert csp == WEB_CSP
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert r.headers["x-frame-options"] == "DENY"


def test_static_assets_and_api_keep_their_own_policies(client: TestClient) -> None:
    js = client.get("/static/js/app.js")
    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]
    assert js.headers["content-security-policy"] == WEB_CSP
    api = client.get("/api/v1/health")
    assert api.headers["content-security-policy"].startswith("default-src 'none'")
    assert api.headers["cache-control"] == "no-store"
    assert client.get("/static/nope.js").status_code == 404


def test_the_web_app_can_be_switched_off(tmp_path: Path) -> None:
    app = platform_app(Settings(database_url=f"sqlite:///{tmp_path / 'm.db'}", web=False))
    c = TestClient(app)
    assert c.get("/").status_code == 404
    assert c.get("/static/js/app.js").status_code == 404


def test_no_inline_script_or_style_in_the_page() -> None:
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None, "inline <script>"
    assert "<style" not in html and " style=" not in html
    for path in _modules():
        text = path.read_text(encoding="utf-8")
        # CSP blocks style attributes: styles go through the CSSOM (el.style.x = ...)
        assert "setAttribute('style'" not in text, path
        assert ".innerHTML" not in text, path


def test_every_imported_module_exists(client: TestClient) -> None:
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    refs = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert refs
    for ref in refs:
        assert (STATIC_DIR / ref.removeprefix("/static/")).is_file(), ref
    for path in _modules():
        for a, b in _IMPORT.findall(path.read_text(encoding="utf-8")):
            spec = a or b
            assert spec.startswith("./") or spec.startswith("../"), f"{path}: {spec} (bare)"
            target = (path.parent / spec).resolve()
            assert target.is_file(), f"{path.relative_to(STATIC_DIR)} imports {spec}"
            url = "/static/" + target.relative_to(STATIC_DIR.resolve()).as_posix()
            assert client.get(url).status_code == 200, url


def _lang(code: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((I18N / f"{code}.json").read_text(encoding="utf-8"))
    return data


def test_translations_agree() -> None:
    index = json.loads((I18N / "index.json").read_text(encoding="utf-8"))
    codes = [x["code"] for x in index["languages"]]
    assert {"en", "zh-TW"} <= set(codes)
    en = _lang("en")
    for code in codes:
        other = _lang(code)
        assert set(other) == set(en), (
            f"{code}.json: missing {sorted(set(en) - set(other))[:5]}, "
            f"extra {sorted(set(other) - set(en))[:5]}"
        )
        empty = [k for k, v in other.items() if not isinstance(v, str) or not v.strip()]
        assert empty == [], f"{code}.json: empty values {empty[:5]}"
        for k, v in other.items():
            # the same placeholders as English: {n} in one and not the other breaks a sentence
            assert set(re.findall(r"\{(\w+)\}", v)) == set(re.findall(r"\{(\w+)\}", en[k])), (
                f"{code}.json: {k}"
            )


def test_every_key_the_code_uses_is_translated() -> None:
    en = _lang("en")
    used = {k for p in _modules() for k in _KEY.findall(p.read_text(encoding="utf-8"))}
    used.discard("key")  # the doc comment of t()
    assert used, "no t('...') calls found"
    missing = sorted(used - set(en))
    assert missing == [], f"keys used but not in en.json: {missing}"


def test_zh_tw_is_traditional() -> None:
    """Simplified-only characters that a Taiwanese reader would notice at once."""
    simplified = set("这个们说为设备数据时间运动产线机开关录资讯网络质让错误")
    bad = {k: v for k, v in _lang("zh-TW").items() if simplified & set(v)}
    assert bad == {}


def test_the_default_reason_tree_is_translated_by_id() -> None:
    """Default categories and reasons have stable ids (andon.kpi.reasons): every one of them
    has a key (``reasoncat.<category>``, ``reasons.<category>.<reason>``); the pages fall
    back to the server's label only for a plant's own reasons."""
    en = _lang("en")
    tree = ReasonTree.default().categories
    missing = [f"reasoncat.{c}" for c in tree if f"reasoncat.{c}" not in en]
    missing += [
        f"reasons.{c}.{r}" for c, rs in tree.items() for r in rs if f"reasons.{c}.{r}" not in en
    ]
    assert missing == []
    stale = [k for k in en if k.count(".") == 2 and k.startswith("reasons.")]
    stale = [k for k in stale if k.split(".")[2] not in tree.get(k.split(".")[1], {})]
    assert stale == [], f"keys of reasons the default tree no longer has: {stale}"


def test_pages_load_on_demand() -> None:
    """app.js imports no page module statically (each loads with import() on first visit),
    so the board's first render does not wait for the twin's or the line page's code."""
    app = (JS / "app.js").read_text(encoding="utf-8")
    static = [a for a, _ in _IMPORT.findall(app) if a]
    assert not [m for m in static if "/pages/" in m], static
    dynamic = {b for _, b in _IMPORT.findall(app) if b}
    assert {f"./pages/{p.stem}.js" for p in (JS / "pages").glob("*.js")} - {
        "./pages/common.js"
    } <= dynamic
