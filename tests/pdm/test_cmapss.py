"""The C-MAPSS reader, the capped target and the evaluation, against hand-computed values."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from andon.pdm.cmapss import (
    CmapssError,
    Fleet,
    evaluate,
    read_cmapss,
    read_rul,
    rul_targets,
    score,
    write_cmapss,
)
from andon.pdm.synthetic import simulate_fleet


def _row(unit: int, cycle: int, fill: str = "1.5") -> str:
    return " ".join([str(unit), str(cycle), *([fill] * 24)]) + "  \n"


def _write(tmp_path: Path, text: str, name: str = "f.txt") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="ascii")
    return p


def test_reads_rows_in_order_and_counts_blank_lines(tmp_path: Path) -> None:
    p = _write(tmp_path, _row(1, 1) + _row(1, 2) + "\n" + _row(7, 1))
    f = read_cmapss(p)
    assert len(f) == 3
    assert f.units.tolist() == [1, 7]
    assert f.cycle.tolist() == [1, 2, 1]
    assert f.settings.shape == (3, 3)
    assert f.sensors.shape == (3, 21)
    assert f.blank_lines == 1
    assert f.last_rows().tolist() == [1, 2]


def test_reads_gzip_and_round_trips_what_it_writes(tmp_path: Path) -> None:
    fleet = simulate_fleet(units=3, regimes=6, seed=4)
    p = tmp_path / "train.txt.gz"
    write_cmapss(p, fleet)
    with gzip.open(p, "rt") as f:
        assert len(f.read().splitlines()) == len(fleet)
    back = read_cmapss(p)
    assert back.unit.tolist() == fleet.unit.tolist()
    assert back.cycle.tolist() == fleet.cycle.tolist()
    np.testing.assert_allclose(back.sensors, fleet.sensors, rtol=1e-5)
    np.testing.assert_allclose(back.settings, fleet.settings, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            _row(1, 1) + "1 2 3\n",
            "f.txt:2: expected 26 columns (unit, cycle, 3 settings, 21 sensors), got 3",
        ),
        (_row(1, 1) + _row(1, 2, fill="x1"), "f.txt:2: 'x1' is not a number"),
        (_row(1, 1, fill="nan"), "f.txt:1: a value is not finite"),
        (_row(0, 1), "f.txt:1: unit and cycle must be positive integers"),
        (_row(1, 1) + _row(1, 2) + _row(1, 2), "f.txt:3: unit 1 cycle 2 does not follow cycle 2"),
        (_row(1, 1) + _row(2, 1) + _row(1, 2), "f.txt:3: unit 1 appears again after other units"),
        ("\n\n", "f.txt: no rows"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(CmapssError) as e:
        read_cmapss(p)
    assert str(e.value) == f"{tmp_path}/{message}"


def test_a_missing_file_is_a_cmapss_error(tmp_path: Path) -> None:
    with pytest.raises(CmapssError, match=r"nope\.txt: No such file"):
        read_cmapss(tmp_path / "nope.txt")


def test_truth_file(tmp_path: Path) -> None:
    assert read_rul(_write(tmp_path, "112\n98 \n\n69\n", "r.txt")).tolist() == [112, 98, 69]
    with pytest.raises(CmapssError, match=r"r\.txt:2: expected one non-negative number"):
        read_rul(_write(tmp_path, "112\n-1\n", "r.txt"))


def test_the_target_is_the_remaining_cycles_capped() -> None:
    # unit 1 runs 130 cycles (fails at its last), unit 2 runs 3
    unit = np.array([1] * 130 + [2] * 3)
    cycle = np.concatenate([np.arange(1, 131), np.arange(1, 4)])
    fleet = Fleet(unit=unit, cycle=cycle, settings=np.zeros((133, 3)), sensors=np.zeros((133, 21)))
    y = rul_targets(fleet)
    assert y[0] == 125.0  # 129 remaining, capped
    assert y[4] == 125.0  # 125 remaining
    assert y[5] == 124.0
    assert y[129] == 0.0  # the failure cycle
    assert y[130:].tolist() == [2.0, 1.0, 0.0]
    assert rul_targets(fleet, cap=1e9)[0] == 129.0


def test_score_and_rmse_against_hand_computed_values() -> None:
    # d = -13 (early): e^1 - 1; d = +10 (late): e^1 - 1; d = 0: 0
    assert score([-13.0, 10.0, 0.0]) == pytest.approx(2 * (math.e - 1))
    # late costs more than early by the same amount
    assert score([5.0]) > score([-5.0])
    ev = evaluate([10.0, 130.0, 50.0], [20.0, 200.0, 50.0])
    # truth 200 is capped at 125; d = -10, +5, 0
    assert ev.n == 3
    assert ev.rmse == pytest.approx(math.sqrt((100 + 25 + 0) / 3))
    assert ev.score == pytest.approx(math.expm1(10 / 13) + math.expm1(0.5))
    assert ev.mean_error == pytest.approx(-5 / 3)
    with pytest.raises(ValueError, match="2 predictions for 3 true values"):
        evaluate([1.0, 2.0], [1.0, 2.0, 3.0])
