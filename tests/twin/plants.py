"""Plants for the twin tests (tests never read ../shared)."""

from __future__ import annotations

from pathlib import Path

from andon.model.loader import load_plant
from andon.model.plant import Plant

__all__ = ["DEMO", "bare_demo_plant"]

DEMO = Path(__file__).resolve().parents[2] / "src" / "andon" / "sim" / "plants" / "demo.yaml"


def bare_demo_plant() -> Plant:
    """The demo plant without signals and meters: the same lines, simulated much faster."""
    doc = load_plant(DEMO).model_dump(by_alias=True, mode="json")
    for a in doc["site"]["areas"]:
        a["sensors"] = []
        for ln in a["lines"]:
            for m in ln["machines"]:
                m["signals"] = []
    doc["site"]["meters"] = []
    return Plant.model_validate(doc)
