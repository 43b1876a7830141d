"""Small plants built in code for tests (tests never read ../shared or the network)."""

from __future__ import annotations

from typing import Any

import yaml

from andon.model.loader import parse_plant
from andon.model.plant import Plant

ALWAYS_ON: dict[str, Any] = {"shifts": [{"name": "all", "start": "00:00", "end": "00:00"}]}


def one_machine(
    *,
    cycle_s: float = 60.0,
    sim: dict[str, Any] | None = None,
    signals: list[dict[str, Any]] | None = None,
    calendar: dict[str, Any] | None = None,
    timezone: str = "UTC",
) -> Plant:
    """A site with one line of one machine, fed by the raw-material supply."""
    doc = {
        "tenant": "t1",
        "site": {
            "id": "s",
            "timezone": timezone,
            "calendar": calendar or ALWAYS_ON,
            "areas": [
                {
                    "id": "a",
                    "lines": [
                        {
                            "id": "l",
                            "products": [{"id": "p", "lot_size": 10}],
                            "machines": [
                                {
                                    "id": "m",
                                    "type": "machining_centre",
                                    "ideal_cycle_s": {"p": cycle_s},
                                    "signals": signals or [],
                                    "sim": sim or {},
                                }
                            ],
                        }
                    ],
                }
            ],
        },
    }
    return parse_plant(yaml.safe_dump(doc), "<test>")


def two_machines(
    buffer: int, sim1: dict[str, Any], sim2: dict[str, Any], c1: float = 50.0, c2: float = 60.0
) -> Plant:
    doc = {
        "tenant": "t1",
        "site": {
            "id": "s",
            "calendar": ALWAYS_ON,
            "areas": [
                {
                    "id": "a",
                    "lines": [
                        {
                            "id": "l",
                            "products": [{"id": "p"}],
                            "buffers": [
                                {"id": "b", "capacity": buffer, "from": ["m1"], "to": ["m2"]}
                            ],
                            "machines": [
                                {
                                    "id": "m1",
                                    "type": "generic",
                                    "ideal_cycle_s": {"p": c1},
                                    "sim": sim1,
                                },
                                {
                                    "id": "m2",
                                    "type": "generic",
                                    "ideal_cycle_s": {"p": c2},
                                    "sim": sim2,
                                },
                            ],
                        }
                    ],
                }
            ],
        },
    }
    return parse_plant(yaml.safe_dump(doc), "<test>")
