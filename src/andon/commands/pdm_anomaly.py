"""``andon pdm anomaly score``: anomaly scores of a CSV file's rows, learned from its first rows.

The first ``--train-rows`` rows are declared normal and learned (``andon.pdm.anomaly``); the
rest are scored one by one in the file's order, which must be time order (a row whose time
goes back is an error): the score of a row depends only on the rows up to it. Every column
but the time (and the regime, when named) is a signal; an empty field is a missing value.
Output: CSV ``time,score,flag`` per scored row on stdout. A bad file is one error line
naming ``file:line``, exit 2.
"""

from __future__ import annotations

import csv
import math
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from andon.commands.common import fail

__all__ = ["CsvTable", "app", "read_table", "score_table"]

app = typer.Typer(no_args_is_help=True, help="Anomaly detection per operating regime.")


@dataclass(frozen=True)
class CsvTable:
    times: list[str]
    signals: list[str]
    rows: list[list[float]]
    regimes: list[str] | None


def _time_key(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def read_table(
    path: Path, time_col: str, sep: str = ",", regime_col: str | None = None
) -> CsvTable:
    """Read the file; raises ``ValueError`` with ``file:line: what`` for a bad one."""
    if len(sep) != 1:
        raise ValueError(f"--sep must be one character, got {sep!r}")
    try:
        fh = path.open(newline="", encoding="utf-8")
    except OSError as e:
        raise ValueError(f"{path}: {e.strerror or e}") from None
    with fh:
        reader = csv.reader(fh, delimiter=sep)
        try:
            header = next(reader, None)
            if header is None:
                raise ValueError(f"{path}:1: empty file (a header row is needed)")
            header = [h.strip() for h in header]
            if time_col not in header:
                raise ValueError(f"{path}:1: no time column {time_col!r} (columns: {header})")
            if regime_col is not None and regime_col not in header:
                raise ValueError(f"{path}:1: no regime column {regime_col!r}")
            ti = header.index(time_col)
            ri = header.index(regime_col) if regime_col is not None else -1
            cols = [j for j in range(len(header)) if j not in (ti, ri)]
            if not cols:
                raise ValueError(f"{path}:1: no signal columns besides {time_col!r}")
            times: list[str] = []
            rows: list[list[float]] = []
            regimes: list[str] = []
            last: float | None = None
            for fields in reader:
                line = reader.line_num
                if not fields or all(not f.strip() for f in fields):
                    continue
                if len(fields) != len(header):
                    raise ValueError(
                        f"{path}:{line}: {len(fields)} fields, the header has {len(header)}"
                    )
                t = fields[ti].strip()
                key = _time_key(t)
                if not t:
                    raise ValueError(f"{path}:{line}: empty time")
                if key is not None:
                    if last is not None and key < last:
                        raise ValueError(
                            f"{path}:{line}: time {t!r} goes back (rows must be in time order)"
                        )
                    last = key
                row: list[float] = []
                for j in cols:
                    v = fields[j].strip()
                    if not v:
                        row.append(math.nan)
                        continue
                    try:
                        x = float(v)
                    except ValueError:
                        raise ValueError(
                            f"{path}:{line}: column {header[j]!r}: {v!r} is not a number"
                        ) from None
                    if math.isinf(x):
                        raise ValueError(f"{path}:{line}: column {header[j]!r}: infinite value")
                    row.append(x)
                times.append(t)
                rows.append(row)
                if ri >= 0:
                    regimes.append(fields[ri].strip())
        except csv.Error as e:
            raise ValueError(f"{path}:{reader.line_num}: {e}") from None
        except UnicodeDecodeError:
            raise ValueError(f"{path}:{reader.line_num + 1}: not UTF-8 text") from None
    return CsvTable(times, [header[j] for j in cols], rows, regimes if ri >= 0 else None)


def score_table(
    table: CsvTable, train_rows: int, target_far: float, path: Path
) -> list[tuple[str, float, int]]:
    """Fit on the first ``train_rows`` rows, score the rest in order: ``(time, score, flag)``."""
    import numpy as np

    from andon.pdm.anomaly import AnomalyConfig, AnomalyModel, Scorer

    n = len(table.rows)
    if train_rows < 2:
        raise ValueError(f"--train-rows must be at least 2, got {train_rows}")
    if train_rows >= n:
        raise ValueError(
            f"{path}: {n} data rows, none left to score after --train-rows {train_rows}"
        )
    x = np.asarray(table.rows, dtype=np.float64)
    reg = table.regimes
    model = AnomalyModel.fit(
        x[:train_rows],
        reg[:train_rows] if reg is not None else None,
        signals=table.signals,
        config=AnomalyConfig(target_far=target_far),
    )
    idx = model.regime_index(reg[train_rows:] if reg is not None else None, n - train_rows)
    scorer = Scorer(model)
    # the EWMA starts where training left it: score the training rows first (not printed)
    train_idx = model.regime_index(reg[:train_rows] if reg is not None else None, train_rows)
    for i in range(train_rows):
        scorer.step(x[i : i + 1], train_idx[i : i + 1])
    out = []
    for k, i in enumerate(range(train_rows, n)):
        r = scorer.step(x[i : i + 1], idx[k : k + 1])
        out.append((table.times[i], float(r.score[0]), int(r.flag[0])))
    return out


@app.command("score")
def score(
    file: Annotated[Path, typer.Argument(help="CSV file: a header, a time column, signals")],
    time_col: Annotated[str, typer.Option("--time-col", help="The time column's name")],
    train_rows: Annotated[
        int, typer.Option("--train-rows", help="The first N rows, declared normal, are learned")
    ],
    sep: Annotated[str, typer.Option("--sep", help="Field separator")] = ",",
    target_far: Annotated[
        float, typer.Option("--target-far", help="False-alarm rate on the training rows")
    ] = 0.01,
    regime_col: Annotated[
        str | None, typer.Option("--regime-col", help="A categorical column: the regime")
    ] = None,
) -> None:
    """Score a file's rows after the first N: CSV time,score,flag on stdout."""
    if not 0.0 < target_far < 1.0:
        fail(f"--target-far must be in (0, 1), got {target_far}")
    try:
        table = read_table(file, time_col, "\t" if sep == "\\t" else sep, regime_col)
        rows = score_table(table, train_rows, target_far, file)
    except ValueError as e:
        fail(str(e))
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(["time", "score", "flag"])
    for t, s, f in rows:
        w.writerow([t, f"{s:.6g}", f])
