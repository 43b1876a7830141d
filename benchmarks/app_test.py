"""How many apps ``andon app test`` can test per hour: one whole test run (the standard
datasets simulated, the sandbox and permission probes, every replay, the determinism,
restart and damaged-data runs, the claims measured) of one app, timed end to end.

The app: ``--app PATH``, by default ``apps/energy_idle`` when it is there, else an app made
by ``andon app new`` in a temporary directory. Issue 14 asks for under 2 minutes on 2 cores.

Figure (one JSON line): ``apps.tested_per_hour`` = 3600 / the run's seconds, with the
seconds, the app, whether its report passed, and the CPU count.

Run: ``.venv/bin/python benchmarks/app_test.py [--app PATH] [--scale 1.0]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

from andon.commands.app import scaffold
from andon.commands.app_test import run_test

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--app", type=Path, default=None)
    ap.add_argument("--scale", type=float, default=1.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="andon-bench-") as tmp:
        app = args.app
        if app is None:
            app = ROOT / "apps" / "energy_idle"
            if not (app / "andon-app.yaml").exists():
                app = scaffold("bench_app", Path(tmp))
        t0 = time.perf_counter()
        report = asyncio.run(run_test(app, scale=args.scale, quiet=True))
        seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "figure": "apps.tested_per_hour",
                "value": round(3600.0 / seconds, 1),
                "unit": "apps/h",
                "seconds": round(seconds, 2),
                "app": str(app),
                "passed": report.ok,
                "failed_checks": [c.name for c in report.checks if not c.ok],
                "scale": args.scale,
                "cpus": len(os.sched_getaffinity(0)),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
