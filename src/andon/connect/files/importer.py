"""CSV / Parquet import (see the package docstring)."""

from __future__ import annotations

import asyncio
import glob
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, model_validator

from andon.connect.base import Health, Manifest
from andon.model.types import Quality, SampleBatch

__all__ = ["MANIFEST", "FileConfig", "FileConnector", "read_table"]

MANIFEST = Manifest(
    domain="csv",
    name="CSV / Parquet file import",
    protocol="file",
    requirements=("pyarrow>=15",),
    iot_class="file",
    resumable=True,
)

_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1}


class FileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    path: str = Field(min_length=1)
    timestamp: str = Field(min_length=1)
    timestamp_unit: Literal["s", "ms", "us", "iso"] = "iso"
    columns: dict[str, str] = Field(default_factory=dict)
    signal_column: str | None = None
    value_column: str | None = None
    signals: dict[str, str] = Field(default_factory=dict)
    batch_rows: int = Field(50_000, gt=0)
    watch_s: float | None = Field(None, gt=0)
    """Look for new files every so often (None: stop after the last file)."""

    @model_validator(mode="after")
    def _one_layout(self) -> FileConfig:
        wide = bool(self.columns)
        long = self.signal_column is not None and self.value_column is not None
        if wide == long:
            raise ValueError("give either 'columns' (wide) or 'signal_column' + 'value_column'")
        return self


def read_table(path: Path) -> pa.Table:
    """A whole CSV or Parquet file as an Arrow table."""
    if path.suffix.lower() == ".parquet":
        return pq.read_table(path)
    return pacsv.read_csv(path)


def _micros(col: pa.ChunkedArray, unit: str) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Timestamps in µs and a validity mask."""
    if unit == "iso":
        if not pa.types.is_timestamp(col.type):
            col = pc.cast(col, pa.string())
            parsed = pc.strptime(col, format="%Y-%m-%dT%H:%M:%S", unit="us", error_is_null=True)
            col = parsed
        us = pc.cast(col, pa.timestamp("us", tz="UTC") if col.type.tz is None else col.type)
        ints = pc.cast(us, pa.int64())
    else:
        num = pc.cast(col, pa.float64(), safe=False)
        ints = pc.cast(pc.multiply(num, _UNIT[unit]), pa.int64(), safe=False)
    valid = np.asarray(pc.is_valid(ints).to_numpy(zero_copy_only=False), dtype=bool)
    return np.asarray(ints.fill_null(0).to_numpy(), dtype=np.int64), valid


class FileConnector:
    manifest = MANIFEST

    def __init__(self, config: FileConfig) -> None:
        self.config = config
        self.name = config.name
        self.health = Health(config.name)

    def _convert(self, table: pa.Table, file: str) -> SampleBatch:
        cfg = self.config
        try:
            ts, ts_ok = _micros(table.column(cfg.timestamp), cfg.timestamp_unit)
        except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            self.health.reject(file, "bad_timestamp", table.num_rows)
            self.health.error(file, exc)
            return SampleBatch.empty()
        if not ts_ok.all():
            self.health.reject(file, "bad_timestamp", int((~ts_ok).sum()))
        parts: list[SampleBatch] = []
        if cfg.columns:
            for col, signal in cfg.columns.items():
                if col not in table.column_names:
                    self.health.reject(file, "missing_column", table.num_rows)
                    continue
                parts.append(self._values(table.column(col), signal, ts, ts_ok, file))
        else:
            assert cfg.signal_column is not None and cfg.value_column is not None
            tags = table.column(cfg.signal_column).to_pylist()
            known = np.array([t in cfg.signals for t in tags], dtype=bool)
            if not known.all():
                self.health.reject(file, "unknown_tag", int((~known).sum()))
            names = list(
                dict.fromkeys(cfg.signals[t] for t, k in zip(tags, known, strict=True) if k)
            )
            code = {n: i for i, n in enumerate(names)}
            idx = np.array(
                [code[cfg.signals[t]] if k else 0 for t, k in zip(tags, known, strict=True)]
            )
            v, v_ok = self._numbers(table.column(cfg.value_column), file)
            ok = known & ts_ok & v_ok
            parts.append(SampleBatch.build(names, idx[ok], ts[ok], v[ok], np.zeros(int(ok.sum()))))
        return SampleBatch.concat(parts)

    def _numbers(
        self, col: pa.ChunkedArray, file: str
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        try:
            num = pc.cast(col, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            num = pc.cast(col, pa.string())
            num = pa.chunked_array([pa.array([_float(x) for x in num.to_pylist()], pa.float64())])
        v = np.asarray(num.fill_null(np.nan).to_numpy(), dtype=np.float64)
        ok = np.isfinite(v)
        if not ok.all():
            self.health.reject(file, "not_a_number", int((~ok).sum()))
        return v, ok

    def _values(
        self,
        col: pa.ChunkedArray,
        signal: str,
        ts: np.ndarray[Any, Any],
        ts_ok: np.ndarray[Any, Any],
        file: str,
    ) -> SampleBatch:
        v, v_ok = self._numbers(col, file)
        ok = ts_ok & v_ok
        n = int(ok.sum())
        return SampleBatch.build([signal], np.zeros(n), ts[ok], v[ok], np.full(n, Quality.GOOD))

    async def batches(self, cursor: str | None) -> AsyncIterator[tuple[SampleBatch, str | None]]:
        cfg = self.config
        done_file, done_rows = "", 0
        if cursor:
            done_file, _, rows = cursor.rpartition(":")
            done_rows = int(rows)
        while True:
            for f in sorted(glob.glob(cfg.path)):
                if f < done_file:
                    continue
                start = done_rows if f == done_file else 0
                t0 = time.monotonic()
                try:
                    table = await asyncio.to_thread(read_table, Path(f))
                except (OSError, pa.ArrowInvalid) as exc:
                    self.health.error(f, exc)
                    continue
                for off in range(start, table.num_rows, cfg.batch_rows):
                    part = table.slice(off, cfg.batch_rows)
                    batch = self._convert(part, f)
                    end = off + part.num_rows
                    self.health.success(f, len(batch), time.monotonic() - t0)
                    done_file, done_rows = f, end
                    yield batch, f"{f}:{end}"
                if table.num_rows <= start:
                    self.health.success(f, 0, time.monotonic() - t0)
                done_file, done_rows = f, table.num_rows
            if cfg.watch_s is None:
                return
            await asyncio.sleep(cfg.watch_s)


def _float(x: object) -> float | None:
    try:
        return float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
