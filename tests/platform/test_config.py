"""Settings from YAML and environment; bad settings give one message and exit code 2."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from andon.cli import app as cli
from andon.platform import Database, Platform
from andon.platform.config import ConfigError, load_settings


def test_yaml_then_environment(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    f.write_text("port: 9000\nlimits:\n  api_rps: 7\n", encoding="utf-8")
    s = load_settings(f, env={"ANDON_PORT": "9100", "ANDON_LIMITS__API_BURST": "12"})
    assert (s.port, s.limits.api_rps, s.limits.api_burst) == (9100, 7.0, 12.0)
    pg = load_settings(None, env={"ANDON_DATABASE_URL": "postgresql://u@127.0.0.1/db"})
    assert pg.mode == "server"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("port: [1]\n", "port"),
        ("limits:\n  api_rps: -1\n", "limits.api_rps"),
        ("limits:\n  typo: 1\n", "limits.typo"),
        ("unknown_key: 1\n", "unknown_key"),
        ("database_url: mysql://x\n", "unsupported database scheme"),
        ("cors_origins: ['*']\n", "cors_origins"),
        ("host: 0.0.0.0\n", "needs tls.certfile"),
        ("tls:\n  certfile: /nope.pem\n  keyfile: /nope.key\n", "file not found"),
        ("port: 1\n  bad indent: [\n", "invalid YAML"),
        ("- a list\n", "must be a mapping"),
    ],
)
def test_bad_settings_are_one_clear_message(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(f, env={})
    assert str(info.value).startswith(str(f))
    result = CliRunner().invoke(cli, ["serve", "--config", str(f), "--check"])
    assert result.exit_code == 2
    assert "error:" in result.output and message.split()[0] in result.output


def test_check_accepts_a_good_file(tmp_path: Path) -> None:
    f = tmp_path / "good.yaml"
    f.write_text(f"database_url: sqlite:///{tmp_path / 'm.db'}\nport: 8123\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["serve", "--config", str(f), "--check"])
    assert result.exit_code == 0, result.output
    assert "embedded mode" in result.output and ":8123" in result.output


def test_admin_create_makes_a_platform_admin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    url = f"sqlite:///{tmp_path / 'm.db'}"
    f = tmp_path / "a.yaml"
    f.write_text(f"database_url: {url}\n", encoding="utf-8")
    monkeypatch.setenv("ANDON_ADMIN_PASSWORD", "a long admin password")
    runner = CliRunner()
    first = runner.invoke(cli, ["admin", "create", "ops@alliance.example", "--config", str(f)])
    assert first.exit_code == 0, first.output
    again = runner.invoke(cli, ["admin", "create", "ops@alliance.example", "--config", str(f)])
    assert again.exit_code == 2 and "already exists" in again.output

    async def check() -> list[str]:
        db = Database(url)
        try:
            pf = Platform(db, lambda: 0)
            await pf.start()
            _, uid, _ = await pf.login("ops@alliance.example", "a long admin password")
            user = await pf.get_user("platform", uid)
            return [g["role"] for g in user["grants"]]
        finally:
            await db.close()

    assert asyncio.run(check()) == ["platform-admin"]
