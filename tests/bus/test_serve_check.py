"""``andon serve --check`` validates the ``bus`` section and reaches a NATS bus once."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from andon.cli import app as cli


def _check(tmp_path: Path, bus: str) -> tuple[int, str]:
    f = tmp_path / "serve.yaml"
    f.write_text(f"database_url: sqlite:///{tmp_path / 'm.db'}\nbus:\n{bus}", encoding="utf-8")
    result = CliRunner().invoke(cli, ["serve", "--config", str(f), "--check"])
    return result.exit_code, result.output


def test_in_process_bus_is_the_default(tmp_path: Path) -> None:
    code, out = _check(tmp_path, "  max_queue: 50\n")
    assert code == 0, out
    assert "live bus in process" in out


def test_a_reachable_nats_bus_is_checked(tmp_path: Path) -> None:
    try:
        socket.create_connection(("127.0.0.1", 4222), timeout=0.5).close()
    except OSError:
        pytest.skip("NATS is not reachable on 127.0.0.1:4222 (scripts/services.sh starts it)")
    code, out = _check(tmp_path, "  kind: nats\n  url: nats://127.0.0.1:4222\n")
    assert code == 0, out
    assert "live bus on nats://127.0.0.1:4222" in out


def test_an_unreachable_nats_bus_fails_the_check(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out = _check(tmp_path, f"  kind: nats\n  url: nats://127.0.0.1:{port}\n")
    assert code == 2
    assert f"bus: live bus: cannot reach NATS at nats://127.0.0.1:{port}" in out


@pytest.mark.parametrize(
    ("bus", "field"),
    [
        ("  kind: redis\n", "bus.kind"),
        ("  max_queue: 0\n", "bus.max_queue"),
        ("  url: x\n", "bus.url"),
    ],
)
def test_a_bad_bus_section_names_the_field(tmp_path: Path, bus: str, field: str) -> None:
    code, out = _check(tmp_path, bus)
    assert code == 2
    assert field in out
