"""The uplink frame's codec on the numeric fast path, and with text values (decision 0202).

A batch of ``--points`` samples over 50 signals (as a poller delivers them) is encoded into a
frame and decoded again, its buffered column block written and read back
(``body_of``/``batch_from_parts``), and 8 decoded frames are merged (``SampleBatch.concat``,
what the gateway does per tenant). The same with ``--texts`` text values riding along.
Best of ``--reps`` runs of ``--rounds`` rounds each. Figures, one JSON line each:
``frame.round_trip.points_s``, ``frame.concat.points_s`` (numbers only) and
``frame.round_trip_with_text.values_s`` (numbers plus text values, both counted).

Run: ``.venv/bin/python benchmarks/frame_codec.py [--points N] [--texts N]``. To compare
with another revision, run its copy of this file with ``PYTHONPATH=<its src>``; revisions
before 0202 have no text values and report the numeric figures only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from andon.model.types import SampleBatch
from andon.wire.frames import batch_from_parts, body_of, decode_frame, encode_frame

__all__ = ["main"]

T0 = 1_767_225_600_000_000


def _emit(figure: str, value: float, unit: str) -> None:
    where = f"{os.cpu_count()} cpu, {platform.machine()}, python {platform.python_version()}"
    print(json.dumps({"figure": figure, "value": round(value), "unit": unit, "machine": where}))


def _round_trips(batch: SampleBatch, rounds: int) -> float:
    names = json.dumps(list(batch.names))
    t0 = time.perf_counter()
    for seq in range(rounds):
        frame = decode_frame(encode_frame("e", "tok", "m", seq, 1, False, batch))
        batch_from_parts(len(frame.batch), names, body_of(frame.batch))
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--points", type=int, default=10_000)
    p.add_argument("--texts", type=int, default=100)
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    n = a.points
    names = [f"s/a/l/m{i}/x" for i in range(50)]
    rng = np.random.default_rng(1)
    batch = SampleBatch.build(names, np.arange(n) % 50, np.arange(n) + T0, rng.normal(size=n))
    frames = [decode_frame(encode_frame("e", "t", "m", s, 1, False, batch)).batch for s in range(8)]
    trips, merges = [], []
    for _ in range(a.reps):
        trips.append(a.rounds * n / _round_trips(batch, a.rounds))
        t0 = time.perf_counter()
        for _ in range(a.rounds // 8):
            SampleBatch.concat(frames)
        merges.append(a.rounds // 8 * 8 * n / (time.perf_counter() - t0))
    _emit("frame.round_trip.points_s", max(trips), "points/s")
    _emit("frame.concat.points_s", max(merges), "points/s")
    try:
        from andon.model.types import TextBatch  # type: ignore[attr-defined,unused-ignore]
    except ImportError:  # a revision before decision 0202
        return
    m = a.texts
    labels = ["READY", "ACTIVE", "STOPPED", "O1234 (ROUGH) Ø12"]
    text = TextBatch.build(
        ["s/a/l/m0/execution", "s/a/l/m0/program"],
        np.arange(m) % 2,
        np.arange(m) + T0,
        [labels[i % 4] for i in range(m)],
    )
    mixed = SampleBatch.build(
        batch.names, batch.index, batch.ts, batch.value, batch.quality, text=text
    )
    best = max(a.rounds * (n + m) / _round_trips(mixed, a.rounds) for _ in range(a.reps))
    _emit("frame.round_trip_with_text.values_s", best, "values/s")


if __name__ == "__main__":
    main()
