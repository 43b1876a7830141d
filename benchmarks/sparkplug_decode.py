"""Decode rate of Sparkplug B payloads: ``andon.connect.sparkplug.payload.decode_payload``
(protobuf's runtime plus the conversion to ``Payload``) against protobuf's bare
``ParseFromString`` on the same bytes.

The payload is a typical DDATA: 20 metrics by alias (10 doubles, 5 Int32, 5 booleans), each
with a timestamp. Figures, one JSON line each: ``sparkplug.decode.payloads_s`` and
``sparkplug.decode.metrics_s`` (andon's decoder), ``sparkplug.protobuf_parse.payloads_s``
(protobuf alone: the floor the conversion adds to).

Run: ``.venv/bin/python benchmarks/sparkplug_decode.py [--seconds S]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from andon.connect.sparkplug import payload as spb

__all__ = ["main"]


def _sample() -> bytes:
    metrics = []
    for i in range(20):
        if i < 10:
            m = spb.Metric(
                alias=i, timestamp=1_767_225_600_000 + i, datatype=spb.DOUBLE, value=i * 1.5
            )
        elif i < 15:
            m = spb.Metric(alias=i, timestamp=1_767_225_600_000 + i, datatype=spb.INT32, value=-i)
        else:
            m = spb.Metric(
                alias=i, timestamp=1_767_225_600_000 + i, datatype=spb.BOOLEAN, value=True
            )
        metrics.append(m)
    return spb.encode_payload(spb.Payload(timestamp=1_767_225_600_000, seq=7, metrics=metrics))


def _rate(fn: Callable[[bytes], object], raw: bytes, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        for _ in range(1000):
            fn(raw)
        n += 1000
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    raw = _sample()
    rate = _rate(spb.decode_payload, raw, args.seconds)
    print(json.dumps({"metric": "sparkplug.decode.payloads_s", "value": round(rate)}))
    print(json.dumps({"metric": "sparkplug.decode.metrics_s", "value": round(rate * 20)}))
    cls = getattr(spb, "PayloadMessage", None)
    if cls is not None:

        def parse(data: bytes) -> object:
            m = cls()
            m.ParseFromString(data)
            return m

        rate = _rate(parse, raw, args.seconds)
        print(json.dumps({"metric": "sparkplug.protobuf_parse.payloads_s", "value": round(rate)}))


if __name__ == "__main__":
    main()
