"""``andon pdm rul fit → predict → evaluate`` on synthetic C-MAPSS files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from typer.testing import CliRunner

from andon.cli import app as cli
from andon.pdm.cmapss import write_cmapss
from andon.pdm.synthetic import simulate_fleet, truncated_fleet


def test_fit_predict_evaluate_round_trip(tmp_path: Path) -> None:
    train, test, rul, model = (tmp_path / n for n in ("train.txt.gz", "test.txt", "RUL.txt", "m"))
    write_cmapss(train, simulate_fleet(units=16, regimes=6, seed=21))
    fleet, truth = truncated_fleet(units=6, regimes=6, seed=22)
    write_cmapss(test, fleet)
    rul.write_text("".join(f"{int(t)}\n" for t in truth))
    runner = CliRunner()

    r = runner.invoke(
        cli,
        [
            "pdm",
            "rul",
            "fit",
            "--cmapss",
            str(train),
            "--out",
            str(model),
            "--seeds",
            "1",
            "--trees",
            "40",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "6 operating regime(s)" in r.output
    assert model.exists()

    r = runner.invoke(cli, ["pdm", "rul", "predict", str(model), "--cmapss", str(test), "--csv"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [int(row["unit"]) for row in rows] == list(range(1, 7))
    for row in rows:
        assert float(row["p10"]) <= float(row["rul"]) <= float(row["p90"])

    r = runner.invoke(
        cli,
        [
            "pdm",
            "rul",
            "evaluate",
            str(model),
            "--cmapss",
            str(test),
            "--truth",
            str(rul),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert got["units"] == 6
    assert 0 < got["rmse"] < 40
    assert got["score"] > 0

    rul.write_text("10\n20\n")
    r = runner.invoke(
        cli, ["pdm", "rul", "evaluate", str(model), "--cmapss", str(test), "--truth", str(rul)]
    )
    assert r.exit_code == 2
    assert "2 true values for 6 units" in r.output


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("1 1 0 0 100\n")
    runner = CliRunner()
    r = runner.invoke(
        cli, ["pdm", "rul", "fit", "--cmapss", str(bad), "--out", str(tmp_path / "m")]
    )
    assert r.exit_code == 2
    assert "bad.txt:1: expected 26 columns" in r.output
    r = runner.invoke(cli, ["pdm", "rul", "predict", str(bad), "--cmapss", str(bad)])
    assert r.exit_code == 2
    assert "not an andon RUL model" in r.output
