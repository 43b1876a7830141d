"""``andon pdm ...``: predictive maintenance from files (``anomaly`` is ``pdm_anomaly``'s).

``andon pdm rul fit --cmapss TRAIN.txt[.gz] --out MODEL`` fits a remaining-useful-life model
on run-to-failure histories in the NASA C-MAPSS text format; ``andon pdm rul predict MODEL
--cmapss TEST.txt --csv`` prints one row per unit (unit, rul, p10, p90) at its last cycle;
``andon pdm rul evaluate MODEL --cmapss TEST.txt --truth RUL.txt`` prints RMSE and the
C-MAPSS score against the truth capped at 125 cycles. The model is ``andon.pdm.rul``'s
(decision 0903), imported when a command runs, not with the CLI (LightGBM takes a while).
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from andon.commands import pdm_anomaly
from andon.commands.common import JsonOpt, err, fail

if TYPE_CHECKING:
    from andon.pdm.cmapss import Fleet
    from andon.pdm.rul import RulModel

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Predictive maintenance: anomalies, remaining life.")
rul_app = typer.Typer(no_args_is_help=True, help="Remaining useful life (C-MAPSS files).")
app.add_typer(rul_app, name="rul")
app.add_typer(pdm_anomaly.app, name="anomaly")
out = Console()

CmapssOpt = Annotated[
    Path,
    typer.Option("--cmapss", help="C-MAPSS text file (26 columns, whitespace separated; .gz too)"),
]
ModelArg = Annotated[Path, typer.Argument(help="Model file written by `andon pdm rul fit`")]


def _fleet(path: Path) -> Fleet:
    from andon.pdm.cmapss import CmapssError, read_cmapss

    try:
        fleet = read_cmapss(path)
    except CmapssError as e:
        fail(str(e))
    units = len(fleet.units)
    skipped = f", {fleet.blank_lines} blank lines skipped" if fleet.blank_lines else ""
    err.print(f"{path}: {len(fleet)} rows, {units} units{skipped}", highlight=False)
    return fleet


def _model(path: Path) -> RulModel:
    from andon.pdm.rul import ModelFormatError, RulModel

    try:
        return RulModel.load(path)
    except ModelFormatError as e:
        fail(str(e))


@rul_app.command("fit")
def fit(
    cmapss: CmapssOpt,
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the model")],
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Boosted models averaged")] = 3,
    no_regimes: Annotated[
        bool, typer.Option("--no-regimes", help="One normalisation for all operating settings")
    ] = False,
    trees: Annotated[
        int, typer.Option("--trees", min=1, help="Trees per boosted model (the band's: half)")
    ] = 300,
    threads: Annotated[int, typer.Option("--threads", min=0, help="0: one per core")] = 1,
) -> None:
    """Fit a model on run-to-failure histories (each unit's last cycle is its failure)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from andon.pdm.rul import RulConfig, RulModel

    fleet = _fleet(cmapss)
    config = RulConfig(
        seeds=tuple(range(seeds)),
        per_regime=not no_regimes,
        n_estimators=trees,
        quantile_estimators=max(1, trees // 2),
        threads=threads,
    )
    cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    started = time.perf_counter()
    with Progress(*cols, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("fitting", total=None)

        def progress(step: str, done: int, total: int) -> None:
            bar.update(task, description=f"fitting: {step}", completed=done, total=total)

        try:
            model = RulModel.fit(fleet, config, progress)
        except ValueError as e:
            fail(str(e))
    model.extra["source"] = str(cmapss)
    model.save(out_path)
    seconds = time.perf_counter() - started
    kept = ", ".join(f"s{j + 1}" for j in model.normaliser.kept)
    err.print(
        f"[green]ok[/] {out_path}: {model.regimes.k} operating regime(s), sensors {kept}, "
        f"{len(model.feature_names)} features, {seeds} boosted model(s) and a "
        f"p{round(config.quantiles[0] * 100)}-p{round(config.quantiles[1] * 100)} band, "
        f"{seconds:.1f} s",
        highlight=False,
        soft_wrap=True,
    )


@rul_app.command("predict")
def predict(
    model_path: ModelArg,
    cmapss: CmapssOpt,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV: unit,rul,p10,p90")] = False,
) -> None:
    """The remaining useful life of each unit at its last cycle, with the band."""
    model = _model(model_path)
    fleet = _fleet(cmapss)
    p = model.predict(fleet)
    lo, hi = (f"p{round(q * 100)}" for q in model.config.quantiles)
    if as_csv:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(["unit", "rul", lo, hi])
        for unit, rul, low, high in p.rows():
            w.writerow([unit, f"{rul:.1f}", f"{low:.1f}", f"{high:.1f}"])
        return
    table = Table("unit", "rul", lo, hi)
    for unit, rul, low, high in p.rows():
        table.add_row(str(unit), f"{rul:.1f}", f"{low:.1f}", f"{high:.1f}")
    out.print(table)


@rul_app.command("evaluate")
def evaluate(
    model_path: ModelArg,
    cmapss: CmapssOpt,
    truth: Annotated[
        Path, typer.Option("--truth", help="True remaining cycles, one per unit (RUL_FD00x.txt)")
    ],
    as_json: JsonOpt = False,
) -> None:
    """RMSE and the C-MAPSS score at each unit's last cycle, truth capped at 125."""
    from andon.pdm.cmapss import CmapssError, read_rul
    from andon.pdm.cmapss import evaluate as evaluate_rul

    model = _model(model_path)
    fleet = _fleet(cmapss)
    try:
        true = read_rul(truth)
    except CmapssError as e:
        fail(str(e))
    p = model.predict(fleet)
    if len(true) != len(p.units):
        fail(f"{truth}: {len(true)} true values for {len(p.units)} units in {cmapss}")
    ev = evaluate_rul(p.rul, true, model.config.cap)
    capped = true.clip(max=model.config.cap)
    covered = float(((p.low <= capped) & (capped <= p.high)).mean())
    row = ev.as_dict() | {"band_coverage": covered}
    if as_json:
        print(json.dumps(row))
        return
    out.print(
        f"{ev.n} units: RMSE [bold]{ev.rmse:.2f}[/] cycles, score {ev.score:.1f}, "
        f"mean error {ev.mean_error:+.2f} (> 0: late), truth in the band for "
        f"{covered:.0%} of units",
        highlight=False,
    )
