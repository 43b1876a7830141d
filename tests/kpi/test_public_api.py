"""The public face of ``andon.kpi``: every module declares ``__all__`` and the package
exports exactly its documented names."""

from __future__ import annotations

import importlib
import pkgutil

import andon.kpi


def test_every_module_has_all_and_exports_exist() -> None:
    for info in pkgutil.iter_modules(andon.kpi.__path__):
        mod = importlib.import_module(f"andon.kpi.{info.name}")
        names = getattr(mod, "__all__", None)
        assert names, info.name
        assert all(hasattr(mod, n) for n in names), info.name


def test_package_exports_are_pinned() -> None:
    assert sorted(andon.kpi.__all__) == sorted(
        [
            "GRID_FACTORS",
            "LOSSES",
            "OEE",
            "Baseline",
            "Buckets",
            "GridFactor",
            "LossPrices",
            "OEETable",
            "ReasonEntry",
            "ReasonLog",
            "ReasonTree",
            "ReliabilityRow",
            "Tariff",
            "TimeClass",
            "TimeModel",
            "TouPeriod",
            "apply_entries",
            "buckets",
            "co2e_kg",
            "compute_oee",
            "counter_delta",
            "cumulative_power",
            "cumulative_register",
            "downtime",
            "energy_by_state",
            "fit_baseline",
            "grid_factor",
            "loss_costs",
            "oee_table",
            "peak_demand",
            "reliability",
            "tariff_cost",
        ]
    )
