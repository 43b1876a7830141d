"""`andon kpi` on bad input: one clear line naming the option or file, exit 2, never a
traceback; an empty range is said on stderr (exit 1); local times that a DST change skips
or repeats are refused, not shifted (issue 18 item 10)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner, Result

from andon.commands.kpi import app as kpi_app
from andon.model.types import PartBatch, StateBatch, to_micros
from tests.kpi.data_dir import write_data_dir
from tests.plants import one_machine

S = 1_000_000
ZONE = "Europe/Berlin"
M = "s/a/l/m"
T0 = to_micros(datetime(2026, 3, 28, 8, 0, tzinfo=ZoneInfo(ZONE)))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One machine in a DST zone, running 08:00-11:00 local on Sat 2026-03-28, 150 parts."""
    ts = [T0 + (k + 1) * 70 * S for k in range(150)]
    return write_data_dir(
        tmp_path_factory.mktemp("kpi_cli"),
        one_machine(timezone=ZONE),
        StateBatch.build([M], [0], [T0], [T0 + 3 * 3600 * S], [0]),
        PartBatch.build([M], [0] * 150, ts, ["p"] * 150, [1] * 150, [0] * 150),
    )


def _kpi(
    d: Path, *args: str, start: str = "2026-03-28T08:00", end: str = "2026-03-28T11:00"
) -> Result:
    common = ["--from", start, "--to", end, "--data-dir", str(d), "--plant", str(d / "plant.yaml")]
    return CliRunner().invoke(kpi_app, [*args, *common])


def _one_error_line(r: Result, code: int, *words: str) -> None:
    assert r.exit_code == code, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_the_data_in_range_gives_figures(data_dir: Path) -> None:
    r = _kpi(data_dir, "oee", "--json")
    assert r.exit_code == 0, r.output


def test_a_corrupt_store_is_named(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "telemetry.duckdb").write_bytes(b"not a database " * 400)
    (tmp_path / "plant.yaml").write_text((data_dir / "plant.yaml").read_text())
    for cmd in ("oee", "downtime", "energy", "losses"):
        _one_error_line(_kpi(tmp_path, cmd), 2, "telemetry.duckdb", "cannot be opened")


def test_bad_numbers_name_their_option(data_dir: Path, tmp_path: Path) -> None:
    _one_error_line(_kpi(data_dir, "oee", "--micro-stop-s", "-5"), 2, "--micro-stop-s", "-5")
    _one_error_line(_kpi(data_dir, "oee", "--micro-stop-s", "nan"), 2, "--micro-stop-s")
    r = CliRunner().invoke(
        kpi_app,
        [
            "report",
            "--last-days",
            "0",
            "--out",
            str(tmp_path / "r.xlsx"),
            "--data-dir",
            str(data_dir),
        ],
    )
    _one_error_line(r, 2, "--last-days")


def test_an_unwritable_out_is_named(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    for out in (tmp_path / "a-file" / "report.xlsx", tmp_path / "a-file" / "csv"):
        r = _kpi(data_dir, "report", "--out", str(out))
        _one_error_line(r, 2, "--out", str(out))


def test_an_empty_range_says_so(data_dir: Path) -> None:
    for cmd in ("oee", "downtime", "energy", "losses", "report"):
        extra = ["--out", str(data_dir / "never")] if cmd == "report" else []
        r = _kpi(data_dir, cmd, *extra, start="2026-03-27T08:00", end="2026-03-27T11:00")
        _one_error_line(r, 1, "no data", "2026-03-27T08:00+01:00")
        assert r.stdout == ""
    assert not (data_dir / "never").exists()


def test_local_times_skipped_or_repeated_by_dst_are_refused(data_dir: Path) -> None:
    # Europe/Berlin: 02:00-03:00 on 2026-03-29 does not exist; 02:00-03:00 on 2026-10-25 twice
    r = _kpi(data_dir, "oee", start="2026-03-29T02:30", end="2026-03-29T04:00")
    _one_error_line(r, 2, "--from", "does not exist", ZONE)
    r = _kpi(data_dir, "oee", start="2026-10-25T00:00", end="2026-10-25T02:30")
    _one_error_line(r, 2, "--to", "ambiguous", "+02:00", "+01:00")
    # with an offset the same wall time is accepted (no data then: exit 1, not 2)
    r = _kpi(data_dir, "oee", start="2026-10-25T00:00", end="2026-10-25T02:30+01:00")
    assert r.exit_code == 1, r.output
