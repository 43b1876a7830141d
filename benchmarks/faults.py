"""Fault scenarios as a benchmark (issue 17): sent / stored / lost / dup / dropped / recovery
seconds per scenario, one JSON object per figure::

    {"figure": "faults.broker_restart.recovery_s", "value": 1.25, "unit": "s", "machine": "..."}

The scenarios are the fault tests themselves (``tests/faults``: real edge, Mosquitto,
PostgreSQL and ``andon serve`` processes), run by pytest in a child process with
``$ANDON_FAULTS_JSON`` set, where the harness (``tests.faults.harness.report``) appends each
scenario's figures. *Why not import the harness here?* A scenario is its fixtures (a private
broker, a tmpfs, a PostgreSQL cluster), its fault and its assertions; running the tests
measures exactly what ``make test`` checks, with one definition of each scenario, and a
benchmark whose scenario failed says so (exit 1) instead of printing a figure.

    .venv/bin/python benchmarks/faults.py            # every scenario (about 5 min)
    .venv/bin/python benchmarks/faults.py -k broker  # a pytest -k selection

``disk_full`` needs root (it mounts a small tmpfs); without root it is skipped and has no
figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ("sent", "stored", "lost", "dup", "dropped", "recovery_s")


def machine() -> str:
    return f"{os.cpu_count()} cpu, {platform.machine()}, {platform.system()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", default=None, help="pytest -k expression (default: every scenario)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="andon-faults-") as tmp:
        out = Path(tmp) / "faults.jsonl"
        cmd = [sys.executable, "-m", "pytest", "tests/faults", "-p", "no:cacheprovider", "-q"]
        if args.k:
            cmd += ["-k", args.k]
        run = subprocess.run(
            cmd,
            cwd=ROOT,
            env={**os.environ, "ANDON_FAULTS_JSON": str(out)},
            capture_output=True,
            text=True,
        )
        lines = out.read_text(encoding="utf-8").splitlines() if out.exists() else []
        for line in lines:
            doc = json.loads(line)
            for name in FIGURES:
                print(
                    json.dumps(
                        {
                            "figure": f"faults.{doc['scenario']}.{name}",
                            "value": doc[name],
                            "unit": "s" if name == "recovery_s" else "points",
                            "machine": machine(),
                        }
                    ),
                    flush=True,
                )
        if run.returncode != 0:
            sys.stderr.write(run.stdout[-4000:] + run.stderr[-2000:])
            print(f"faults: pytest exited {run.returncode}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
